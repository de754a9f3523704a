/* bench_bcast.c: speed of the structured-dropout pass (df_bcast_apply_f32) per
 * instruction set, in ns per element (median of interleaved runs), with memcpy
 * of the same bytes as the yardstick. Not a test: numbers depend on the
 * machine and its load.
 *
 * Build and run from the repository root:
 *   gcc -std=c11 -O3 -ffp-contract=off -fopenmp -DDF_USE_OPENMP=1 -Isrc_c src_c/[a-z]*.c \
 *       bench/c/bench_bcast.c -o /tmp/bench_bcast -lm && /tmp/bench_bcast [threads]
 * Every case runs with x and y 0 and 16 bytes past a 64-byte boundary (numpy's
 * large buffers sit 16 bytes past one). Within every repetition memcpy and each
 * instruction set are timed in turn, so load from other processes on a shared
 * machine falls on all of them alike; the order rotates from one repetition to
 * the next, because a pass runs measurably slower right after one that left
 * dirty lines of y in the cache (memcpy, the scalar body). p = 0.5 throughout;
 * the last columns are each SIMD body's time over memcpy's. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dropout_fast.h"

#define REPS 21
#define NIMPL 4 /* memcpy, scalar, avx2, avx512 */

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double d = *(const double *)a - *(const double *)b;
    return (d > 0) - (d < 0);
}

typedef struct {
    const char *name;
    int ndim;
    int64_t shape[4], noise[4];
    float a, b, c;
} case_t;

/* Alpha dropout's coefficients at p = 0.5 (Klambauer et al. 2017), rounded to float. */
#define ALPHA_A 0.8864053f
#define ALPHA_B 0.7791938f
#define ALPHA_C (-1.5583874f)

static const case_t cases[] = {
    {"spatial NCHW", 4, {64, 64, 32, 32}, {64, 64, 1, 1}, 2.0f, 0.0f, 0.0f},
    {"spatial NCHW", 4, {256, 64, 32, 32}, {256, 64, 1, 1}, 2.0f, 0.0f, 0.0f},
    {"spatial NHWC", 4, {64, 32, 32, 64}, {64, 1, 1, 64}, 2.0f, 0.0f, 0.0f},
    {"variational", 3, {64, 256, 512, 1}, {64, 1, 512, 1}, 2.0f, 0.0f, 0.0f},
    {"drop_path", 4, {64, 64, 32, 32}, {64, 1, 1, 1}, 2.0f, 0.0f, 0.0f},
    {"alpha NCHW", 4, {64, 64, 32, 32}, {64, 64, 1, 1}, ALPHA_A, ALPHA_B, ALPHA_C},
    {"alpha NHWC", 4, {64, 32, 32, 64}, {64, 1, 1, 64}, ALPHA_A, ALPHA_B, ALPHA_C},
};

static int64_t prod(const int64_t *d, int nd)
{
    int64_t n = 1;
    for (int i = 0; i < nd; ++i)
        n *= d[i];
    return n;
}

static void run_impl(int impl, const case_t *cs, const float *x, float *y, const uint8_t *bits,
                     int64_t n, int threads)
{
    if (impl == 0) {
        memcpy(y, x, (size_t)n * sizeof(float));
        return;
    }
    const df_opts_t o = {threads, impl - 1};
    df_bcast_apply_f32(x, y, bits, cs->ndim, cs->shape, cs->noise, cs->a, cs->b, cs->c, &o);
}

static double sample(int impl, const case_t *cs, const float *x, float *y, const uint8_t *bits,
                     int64_t n, int threads, int inner)
{
    const double t0 = now_ns();
    for (int i = 0; i < inner; ++i)
        run_impl(impl, cs, x, y, bits, n, threads);
    return (now_ns() - t0) / inner / (double)n;
}

static int available(int impl)
{
    return impl == 0 || df_isa_available((df_isa_t)(impl - 1));
}

int main(int argc, char **argv)
{
    const int threads = argc > 1 ? atoi(argv[1]) : 1;
    int64_t nmax = 0, mmax = 0;
    const int ncases = (int)(sizeof cases / sizeof cases[0]);
    for (int k = 0; k < ncases; ++k) {
        const int64_t n = prod(cases[k].shape, cases[k].ndim);
        const int64_t m = prod(cases[k].noise, cases[k].ndim);
        nmax = n > nmax ? n : nmax;
        mmax = m > mmax ? m : mmax;
    }
    const size_t bytes = (size_t)nmax * sizeof(float) + 128;
    char *xm = aligned_alloc(64, bytes), *ym = aligned_alloc(64, bytes);
    memset(xm, 0, bytes);
    memset(ym, 0, bytes);
    uint8_t *bits = malloc((size_t)(mmax + 7) / 8);
    const df_key_t key = {0x12345678u, 0x9abcdef0u};
    const df_opts_t o1 = {1, DF_ISA_AUTO};
    df_dropout_mask(bits, mmax, key, (df_block_t){1000, 0}, df_threshold(0.5), &o1);
    printf("df_bcast_apply_f32, %d thread(s), p = 0.5, ns/element (median of %d), "
           "x/y offset from 64-byte alignment\n", threads, REPS);
    printf("%-13s %-16s %4s %8s %8s %8s %8s %9s %11s\n", "case", "shape", "off", "memcpy",
           "scalar", "avx2", "avx512", "avx2/cpy", "avx512/cpy");
    for (int k = 0; k < ncases; ++k) {
        const case_t *cs = &cases[k];
        const int64_t n = prod(cs->shape, cs->ndim);
        for (int off = 0; off <= 16; off += 16) {
            const float *x = (const float *)(xm + off);
            float *y = (float *)(ym + off);
            for (int64_t i = 0; i < n; ++i)
                ((float *)(xm + off))[i] = (float)(i % 1000) - 500.0f;
            int inner[NIMPL];
            double r[NIMPL][REPS], med[NIMPL];
            for (int impl = 0; impl < NIMPL; ++impl) {
                if (!available(impl))
                    continue;
                const double one = sample(impl, cs, x, y, bits, n, threads, 1) * (double)n;
                inner[impl] = one > 5e6 ? 1 : (int)(5e6 / (one + 1.0)) + 1;
            }
            for (int rep = 0; rep < REPS; ++rep)
                for (int j = 0; j < NIMPL; ++j) {
                    const int impl = (j + rep) % NIMPL;
                    if (available(impl))
                        r[impl][rep] = sample(impl, cs, x, y, bits, n, threads, inner[impl]);
                }
            for (int impl = 0; impl < NIMPL; ++impl) {
                med[impl] = 0.0;
                if (!available(impl))
                    continue;
                qsort(r[impl], REPS, sizeof r[impl][0], cmp_double);
                med[impl] = r[impl][REPS / 2];
            }
            char shape[64];
            if (cs->ndim == 3)
                snprintf(shape, sizeof shape, "%lldx%lldx%lld", (long long)cs->shape[0],
                         (long long)cs->shape[1], (long long)cs->shape[2]);
            else
                snprintf(shape, sizeof shape, "%lldx%lldx%lldx%lld", (long long)cs->shape[0],
                         (long long)cs->shape[1], (long long)cs->shape[2], (long long)cs->shape[3]);
            printf("%-13s %-16s %4d %8.3f %8.3f %8.3f %8.3f %9.2f %11.2f\n", cs->name, shape,
                   off, med[0], med[1], med[2], med[3], med[2] / med[0], med[3] / med[0]);
            fflush(stdout);
        }
    }
    free(xm);
    free(ym);
    free(bits);
    return 0;
}
