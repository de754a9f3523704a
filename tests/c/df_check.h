/* df_check.h: the one assertion macro of the C test programs. CHECK counts a
 * failure and prints where and what, then the program goes on, so one run
 * reports every mismatch; main returns non-zero when `failures` is. */
#ifndef DF_CHECK_H
#define DF_CHECK_H

#include <stdio.h>
#include <stdlib.h>

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

/* DF_TEST_QUICK set (and not "0") in the environment: the programs skip their
 * largest sizes and extra thread counts, which take many minutes under an
 * instrumenting tool (tests/test_valgrind.py); every code path still runs. */
static inline int df_test_quick(void)
{
    const char *q = getenv("DF_TEST_QUICK");
    return q != NULL && q[0] != '\0' && q[0] != '0';
}

#endif
