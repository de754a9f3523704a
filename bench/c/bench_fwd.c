/* bench_fwd.c: the time of one df_dropout_fwd_f32 call from plain C, the C-side
 * half of bench/bench_c_vs_python.py (which runs this program and the Python
 * call dropout_fast.dropout(x, p, out=y) in alternating rounds on the same
 * size and compares medians). Not a test: numbers depend on the machine.
 *
 *   bench_fwd [N [REPS [THREADS [P [HUGE]]]]]      (defaults 2**24, 10, 1, 0.1, 1)
 *
 * Prints "ns WALL CPU" per call after one untimed warm-up call (which also faults
 * the pages in). x and y are placed as numpy places its data, so the two sides
 * differ only in the caller: from malloc (glibc serves large blocks 16 bytes
 * past a page) and, with HUGE = 1 and for 4 MiB or more, madvise(MADV_HUGEPAGE)
 * on the page-aligned interior, as numpy does for large arrays on Linux
 * (numpy/_core/src/multiarray/alloc.c). Under transparent_hugepage=madvise that
 * decides whether the kernel streams through 2 MiB or 4 KiB pages. WALL is
 * CLOCK_MONOTONIC, CPU the calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID,
 * Python's time.thread_time_ns), which leaves out the time the thread waited
 * for a core on a machine shared with other work. */
#define _DEFAULT_SOURCE /* madvise */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "dropout_fast.h"

static double now_ns(clockid_t clock)
{
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* malloc, then numpy's huge-page hint (npy_alloc_cache -> indicate_hugepages). */
static void *numpy_like_alloc(size_t size, int huge)
{
    void *p = malloc(size);
#if defined(MADV_HUGEPAGE)
    if (p != NULL && huge && size >= ((size_t)1 << 22)) {
        const uintptr_t offset = 4096u - (uintptr_t)p % 4096u;
        madvise((char *)p + offset, size - offset, MADV_HUGEPAGE);
    }
#else
    (void)huge;
#endif
    return p;
}

int main(int argc, char **argv)
{
    const long long n = argc > 1 ? atoll(argv[1]) : 1LL << 24;
    const int reps = argc > 2 ? atoi(argv[2]) : 10;
    const int threads = argc > 3 ? atoi(argv[3]) : 1;
    const double p = argc > 4 ? atof(argv[4]) : 0.1;
    const int huge = argc > 5 ? atoi(argv[5]) : 1;
    if (n < 1 || reps < 1 || threads < 0 || !(p >= 0.0 && p <= 1.0)) {
        fprintf(stderr, "usage: %s [N [REPS [THREADS [P [HUGE]]]]]\n", argv[0]);
        return 2;
    }
    float *x = numpy_like_alloc((size_t)n * sizeof *x, huge);
    float *y = numpy_like_alloc((size_t)n * sizeof *y, huge);
    if (x == NULL || y == NULL) {
        fprintf(stderr, "bench_fwd: out of memory\n");
        return 1;
    }
    for (long long i = 0; i < n; ++i)
        x[i] = (float)(i % 1000) * 0.001f;
    const df_opts_t opts = {threads, DF_ISA_AUTO};
    const df_key_t key = {42u, 0u};
    const uint64_t thresh = df_threshold(p);
    const float scale = (float)(1.0 / (1.0 - p));
    uint64_t offset = 0;
    printf("dropout_fast %s isa %s openmp %d n %lld threads %d p %g huge %d\n", df_version(),
           df_isa_name(df_isa_default()), df_has_openmp(), n, threads, p, huge);
    for (int r = -1; r < reps; ++r) {
        const df_block_t b0 = {offset, 0};
        const double t0 = now_ns(CLOCK_MONOTONIC), c0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
        const df_status_t rc = df_dropout_fwd_f32(x, y, NULL, n, key, b0, thresh, scale, &opts);
        const double c1 = now_ns(CLOCK_THREAD_CPUTIME_ID), t1 = now_ns(CLOCK_MONOTONIC);
        if (rc != DF_OK) {
            fprintf(stderr, "bench_fwd: %s\n", df_status_str(rc));
            return 1;
        }
        offset += (uint64_t)(n + 7) / 8; /* a fresh mask each call, as a Generator gives */
        if (r >= 0)
            printf("ns %.0f %.0f\n", t1 - t0, c1 - c0);
    }
    double sum = 0.0; /* keeps y live */
    for (long long i = 0; i < n; i += 4096)
        sum += y[i];
    printf("checksum %.6g\n", sum);
    free(x);
    free(y);
    return 0;
}
