/* df_bandwidth.c: copy and scale over the bytes a dropout call moves, with
 * plain and with non-temporal stores: the measured limit ("roofline") that
 * `python -m dropout_fast bench` reports every result against.
 *
 * The loops use the widest vectors this CPU runs (the library's own feature
 * detection, df_isa_available), so a kernel at the same vector width cannot
 * beat the probe by using wider registers; they are our own loops rather than
 * memcpy, whose glibc version switches to non-temporal stores by size. */
#include "df_bandwidth.h"

#include <stddef.h>
#include <time.h>

#include "dropout_fast.h"

#if DF_USE_OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define DF_BW_X86 1
#else
#define DF_BW_X86 0
#endif

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The portable body: the compiler vectorises it to the baseline ISA. */
static void pass_scalar(int kernel, const float *x, float *y, int64_t n)
{
    if (kernel == DF_BW_COPY)
        for (int64_t i = 0; i < n; ++i)
            y[i] = x[i];
    else
        for (int64_t i = 0; i < n; ++i)
            y[i] = 0.5f * x[i];
}

#if DF_BW_X86
/* The vector body at one width W (floats per register): four registers per
 * step, y 64-byte aligned (the chunking guarantees it), n a multiple of 64. */
#define DF_BW_PASS(NAME, TARGET, V, W, SET1, LOADU, MUL, STREAM, STORE)                       \
    __attribute__((target(TARGET))) static void NAME(int kernel, int nt, const float *x,     \
                                                     float *y, int64_t n)                     \
    {                                                                                         \
        const V a = SET1(kernel == DF_BW_COPY ? 1.0f : 0.5f);                                 \
        for (int64_t i = 0; i < n; i += 4 * (W)) {                                            \
            V v0 = LOADU(x + i), v1 = LOADU(x + i + (W));                                     \
            V v2 = LOADU(x + i + 2 * (W)), v3 = LOADU(x + i + 3 * (W));                       \
            if (kernel == DF_BW_SCALE) {                                                      \
                v0 = MUL(v0, a), v1 = MUL(v1, a);                                             \
                v2 = MUL(v2, a), v3 = MUL(v3, a);                                             \
            }                                                                                 \
            if (nt) {                                                                         \
                STREAM(y + i, v0), STREAM(y + i + (W), v1);                                   \
                STREAM(y + i + 2 * (W), v2), STREAM(y + i + 3 * (W), v3);                     \
            } else {                                                                          \
                STORE(y + i, v0), STORE(y + i + (W), v1);                                     \
                STORE(y + i + 2 * (W), v2), STORE(y + i + 3 * (W), v3);                       \
            }                                                                                 \
        }                                                                                     \
        if (nt)                                                                               \
            _mm_sfence();                                                                     \
    }

DF_BW_PASS(pass_avx2, "avx2", __m256, 8, _mm256_set1_ps, _mm256_loadu_ps, _mm256_mul_ps,
           _mm256_stream_ps, _mm256_store_ps)
DF_BW_PASS(pass_avx512, "avx512f", __m512, 16, _mm512_set1_ps, _mm512_loadu_ps, _mm512_mul_ps,
           _mm512_stream_ps, _mm512_store_ps)
#endif

static int simd_level(void)
{
#if DF_BW_X86
    if (df_isa_available(DF_ISA_AVX512))
        return 2;
    if (df_isa_available(DF_ISA_AVX2))
        return 1;
#endif
    return 0;
}

const char *df_bw_simd(void)
{
    static const char *names[] = {"scalar", "avx2", "avx512"};
    return names[simd_level()];
}

/* One pass over [0, n) of a chunk: scalar up to y's next 64-byte line, the
 * vector body over whole 64-element runs, scalar for the rest. */
static void pass(int level, int kernel, int nt, const float *x, float *y, int64_t n)
{
    int64_t head = 0;
    if (level > 0)
        head = (int64_t)((64 - ((uintptr_t)y & 63)) & 63) / 4;
    if (level == 0 || head >= n || ((uintptr_t)y & 3)) {
        pass_scalar(kernel, x, y, n);
        return;
    }
    pass_scalar(kernel, x, y, head);
    int64_t body = (n - head) & ~(int64_t)63;
#if DF_BW_X86
    if (level == 2)
        pass_avx512(kernel, nt, x + head, y + head, body);
    else
        pass_avx2(kernel, nt, x + head, y + head, body);
#endif
    pass_scalar(kernel, x + head + body, y + head + body, n - head - body);
}

double df_bw_run(int kernel, int streaming, const float *x, float *y, int64_t n, int passes,
                 int nthreads)
{
    const int level = simd_level();
    const int nt = streaming != 0;
    int threads = 1;
#if DF_USE_OPENMP
    threads = nthreads > 0 ? nthreads : omp_get_max_threads();
#endif
    (void)nthreads;
    const double t0 = now();
#if DF_USE_OPENMP
#pragma omp parallel num_threads(threads)
#endif
    {
        int t = 0, nth = 1;
#if DF_USE_OPENMP
        t = omp_get_thread_num();
        nth = omp_get_num_threads();
#endif
        /* Chunk bounds on multiples of 16 floats (64 bytes). */
        const int64_t per = ((n + nth - 1) / nth + 15) & ~(int64_t)15;
        const int64_t lo = per * t < n ? per * t : n;
        const int64_t hi = lo + per < n ? lo + per : n;
        for (int p = 0; p < passes; ++p)
            pass(level, kernel, nt, x + lo, y + lo, hi - lo);
    }
    (void)threads;
    return now() - t0;
}
