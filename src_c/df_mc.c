/* df_mc.c: streaming statistics for Monte Carlo dropout (Gal & Ghahramani,
 * "Dropout as a Bayesian approximation", ICML 2016): the mean and variance of
 * T stochastic forward passes, element by element, without holding T outputs.
 *
 * Welford's update (Welford, "Note on a method for calculating corrected sums
 * of squares and products", Technometrics 4(3), 1962; Knuth, TAOCP vol. 2,
 * 4.2.2), in double whatever the samples' type:
 *   t = count + 1; d = x - mean; mean = mean + d / t; m2 = m2 + d * (x - mean)
 * Each operation is correctly rounded and nothing is contracted
 * (-ffp-contract=off), so every instruction set, the Numba backend and a
 * numpy loop doing the same steps give the same bits. One C source, compiled
 * for scalar, AVX2 and AVX-512 under target attributes (the compiler
 * vectorises the loop; the division stays a division, lane by lane).
 *
 * A call with k samples walks the elements in blocks of MC_BLOCK and applies
 * the k samples to each block in order: the running mean and m2 of a block stay
 * in cache for all k, and each element still sees its samples in order. */
#include "df_internal.h"

#ifndef DF_USE_OPENMP
#define DF_USE_OPENMP 0
#endif

/* Elements per block: mean and m2 of a block take 32 KiB. */
#define MC_BLOCK 2048

#define DF_DEFINE_WELFORD_RANGE(NAME, T, TARGET)                                           \
    TARGET static void NAME(const T *x, int64_t k, int64_t stride, double *mean, double *m2, \
                            int64_t len, int64_t count)                                    \
    {                                                                                      \
        for (int64_t s = 0; s < k; ++s) {                                                  \
            const double t = (double)(count + s + 1);                                      \
            const T *xs = x + s * stride;                                                  \
            for (int64_t i = 0; i < len; ++i) {                                            \
                const double xi = (double)xs[i];                                           \
                const double d = xi - mean[i];                                             \
                const double mu = mean[i] + d / t;                                         \
                mean[i] = mu;                                                              \
                m2[i] = m2[i] + d * (xi - mu);                                             \
            }                                                                              \
        }                                                                                  \
    }

typedef void (*welford_f32_fn)(const float *, int64_t, int64_t, double *, double *, int64_t,
                               int64_t);
typedef void (*welford_f64_fn)(const double *, int64_t, int64_t, double *, double *, int64_t,
                               int64_t);

DF_DEFINE_WELFORD_RANGE(welford_f32_scalar, float, )
DF_DEFINE_WELFORD_RANGE(welford_f64_scalar, double, )
#if DF_HAVE_X86
#define DF_MC_AVX2 __attribute__((target("avx2")))
#define DF_MC_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
DF_DEFINE_WELFORD_RANGE(welford_f32_avx2, float, DF_MC_AVX2)
DF_DEFINE_WELFORD_RANGE(welford_f64_avx2, double, DF_MC_AVX2)
DF_DEFINE_WELFORD_RANGE(welford_f32_avx512, float, DF_MC_AVX512)
DF_DEFINE_WELFORD_RANGE(welford_f64_avx512, double, DF_MC_AVX512)
#define DF_MC_PICK(S, isa)                                                                 \
    ((isa) == DF_ISA_AVX512 ? welford_##S##_avx512                                         \
     : (isa) == DF_ISA_AVX2 ? welford_##S##_avx2                                           \
                            : welford_##S##_scalar)
#else
#define DF_MC_PICK(S, isa) ((void)(isa), welford_##S##_scalar)
#endif

#if DF_USE_OPENMP
#define DF_MC_PARALLEL_FOR                                                                 \
    _Pragma("omp parallel for schedule(static) num_threads(nt) if (nt > 1)")
#else
#define DF_MC_PARALLEL_FOR
#endif

#define DF_DEFINE_WELFORD(NAME, T, S)                                                      \
    df_status_t NAME(const T *x, int64_t k, double *mean, double *m2, int64_t len,         \
                     int64_t count, const df_opts_t *opts)                                 \
    {                                                                                      \
        if (len < 0 || k < 0 || count < 0 || (len > 0 && k > 0 && (!x || !mean || !m2)))   \
            return DF_ERR_ARG;                                                             \
        const df_kernels_t *kt = df_kernels_get(opts ? opts->isa : DF_ISA_AUTO);           \
        if (kt == NULL)                                                                    \
            return DF_ERR_ISA;                                                             \
        if (len == 0 || k == 0)                                                            \
            return DF_OK;                                                                  \
        const welford_##S##_fn range = DF_MC_PICK(S, kt->isa);                             \
        const int64_t nblocks = (len + MC_BLOCK - 1) / MC_BLOCK;                           \
        const int nt = df_threads_for(len * k, opts);                                      \
        (void)nt;                                                                          \
        DF_MC_PARALLEL_FOR                                                                 \
        for (int64_t b = 0; b < nblocks; ++b) {                                            \
            const int64_t a = b * MC_BLOCK;                                                \
            range(x + a, k, len, mean + a, m2 + a, len - a < MC_BLOCK ? len - a : MC_BLOCK, \
                  count);                                                                  \
        }                                                                                  \
        return DF_OK;                                                                      \
    }

DF_DEFINE_WELFORD(df_welford_update_f32, float, f32)
DF_DEFINE_WELFORD(df_welford_update_f64, double, f64)

df_status_t df_welford_var(const double *m2, double *var, int64_t len, int64_t count,
                           int64_t ddof, const df_opts_t *opts)
{
    if (len < 0 || (len > 0 && (!m2 || !var)))
        return DF_ERR_ARG;
    if (ddof < 0 || count - ddof < 1)
        return DF_ERR_VALUE;
    if (df_kernels_get(opts ? opts->isa : DF_ISA_AUTO) == NULL)
        return DF_ERR_ISA;
    const double d = (double)(count - ddof);
    for (int64_t i = 0; i < len; ++i)
        var[i] = m2[i] / d;
    return DF_OK;
}
