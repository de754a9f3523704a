/* df_check.h: the one assertion macro of the C test programs. CHECK counts a
 * failure and prints where and what, then the program goes on, so one run
 * reports every mismatch; main returns non-zero when `failures` is. */
#ifndef DF_CHECK_H
#define DF_CHECK_H

#include <stdio.h>

static int failures = 0;

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            ++failures;                                                                    \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                    \
            printf(__VA_ARGS__);                                                           \
            printf("\n");                                                                  \
        }                                                                                  \
    } while (0)

#endif
