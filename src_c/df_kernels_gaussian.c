/* df_kernels_gaussian.c: Gaussian dropout, y = x * (1 + sigma * z) with z ~ N(0, 1).
 *
 * Multiplicative Gaussian noise with the variance p / (1 - p) of inverted
 * dropout's multiplier (Srivastava et al., "Dropout: a simple way to prevent
 * neural networks from overfitting", JMLR 2014, sec. 10; Keras' GaussianDropout).
 * z comes from Box-Muller (Box & Muller, Ann. Math. Stat. 1958) on two 32-bit
 * Philox words, with the logarithm and cos(2 pi u) written out below as a fixed
 * sequence of IEEE double operations instead of libm calls, whose last bit
 * differs between platforms and between C and LLVM. Every operation is an
 * add, multiply, divide or square root of doubles (correctly rounded), exact
 * scaling by powers of two, or an exact exponent extraction; with
 * -ffp-contract=off nothing is fused, so the Numba backend and the numpy
 * oracle, doing the same operations in the same order, agree bit for bit.
 *
 * Counter layout (streams 2..5 of the stream contract; see dropout_fast.h):
 * element i of a call at block offset block0 uses block b = block0 + i / 8 and
 * h = i % 8; w1 = word h % 4 of stream 2 + h / 4, w2 = word h % 4 of stream
 * 4 + h / 4, both at block b. A call reserves ceil(n / 8) blocks, like a mask.
 *
 * The transform (one element; c[] the constants below, Horner from the top):
 *   u1 = (w1 + 0.5) * 2**-32                       in (0, 1), never 0
 *   u1 = f * 2**e, f in [0.5, 1)                   (exponent bits, exact)
 *   m, k = (2f, e - 1) if f < SQRT_HALF else (f, e) m in [0.7071, 1.4142)
 *   s = (m - 1) / (m + 1); s2 = s * s
 *   P = 1/17; P = P * s2 + 1/15; ...; P = P * s2 + 1/3; P = P * s2 + 1
 *   ln_u1 = k * LN2 + (2 * s) * P                  (atanh series of log m)
 *   r = sqrt(-2 * ln_u1)
 *   q = (w2 + 2**29) >> 30                         nearest quarter turn, 0..4
 *   t = ((w2 - q * 2**30) * 2**-32) * TWO_PI       in [-pi/4, pi/4), exact before * TWO_PI
 *   t2 = t * t
 *   S = -1/15!; S = S * t2 + 1/13!; ...; S = S * t2 - 1/3!;  sin_t = t + (t * t2) * S
 *   C = 1/16!;  C = C * t2 - 1/14!; ...; C = C * t2 - 1/2!;  cos_t = 1 + t2 * C
 *   c = cos_t, -sin_t, -cos_t, sin_t for q % 4 = 0, 1, 2, 3  (= cos(2 pi w2 / 2**32))
 *   mult = 1 + sigma * (r * c), rounded once to the array's dtype; y = x * mult.
 * Each series is truncated where the next term is below 1e-15 relative; on
 * sampled words the log is within about 1e-15 and the cos within about 3e-16
 * of the exact values, relative, zeros of the cos included (tests/
 * test_gaussian.py asks for 1e-14). The code below computes exactly these
 * values, with integer selects in place of the branches.
 *
 * Instruction sets: this file's body, plain C, is the portable specification
 * (blocks of DF_GAUSS_G at a time, each step a loop over the lanes). The AVX2
 * and AVX-512 bodies (df_gaussian_simd.h, with df_kernels_gaussian_avx2.c and
 * _avx512.c) compute the same operations in the same order with explicit
 * intrinsics: Philox on one block per 64-bit lane, the transform on 4 or 8
 * doubles. Every step is exact or correctly rounded lane by lane and nothing
 * is contracted, so all of them give the same bits (test_kat.c and
 * tests/test_gaussian.py compare them). No libm transcendental is called. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "df_internal.h"
#include "df_philox.h"
#include "df_gaussian.h"

#ifndef DF_USE_OPENMP
#define DF_USE_OPENMP 0
#endif

#define LN2 DF_GAUSS_LN2
#define TWO_PI DF_GAUSS_TWO_PI
#define SQRT_HALF_MANT DF_GAUSS_SQRT_HALF_MANT
#define LOG_C DF_GAUSS_LOG_C
#define SIN_C DF_GAUSS_SIN_C
#define COS_C DF_GAUSS_COS_C

#define DF_GAUSS_INLINE static inline __attribute__((always_inline))

/* double(w) for w < 2**32 through the bits of 2**52 + w: exact, and a plain
 * integer-and-subtract that every SIMD width has (unlike unsigned conversion). */
DF_GAUSS_INLINE double df_u32_to_double(uint32_t w)
{
    const uint64_t bits = 0x4330000000000000ull | w;
    double d;
    memcpy(&d, &bits, sizeof d);
    return d - 0x1p52;
}

/* log((w + 0.5) * 2**-32), to about 1e-15 relative. */
DF_GAUSS_INLINE double df_gauss_log(uint32_t w)
{
    const double u = (df_u32_to_double(w) + 0.5) * 0x1p-32;
    uint64_t bits;
    memcpy(&bits, &u, sizeof bits);
    /* u >= 2**-33 is normal: u = f * 2**e with f in [0.5, 1) its mantissa under
     * exponent -1. f < SQRT_HALF compares the mantissa fields; m = 2f then is
     * the same mantissa under exponent 0. Integer selects only: nothing for a
     * compiler to move into a branch, so it can vectorise the loop. */
    const uint64_t mant = bits & 0x000FFFFFFFFFFFFFull;
    const uint64_t small = mant < SQRT_HALF_MANT;
    const uint64_t mbits = mant | ((1022 + small) << 52);
    double m;
    memcpy(&m, &mbits, sizeof m);
    const double k = (double)((int32_t)(bits >> 52) - 1022 - (int32_t)small);
    const double s = (m - 1.0) / (m + 1.0), s2 = s * s;
    double p = LOG_C[0];
    p = p * s2 + LOG_C[1];
    p = p * s2 + LOG_C[2];
    p = p * s2 + LOG_C[3];
    p = p * s2 + LOG_C[4];
    p = p * s2 + LOG_C[5];
    p = p * s2 + LOG_C[6];
    p = p * s2 + LOG_C[7];
    p = p * s2 + 1.0;
    return k * LN2 + (2.0 * s) * p;
}

/* cos(2 pi w / 2**32), to about 1e-16 absolute and 1e-15 relative. */
DF_GAUSS_INLINE double df_gauss_cos2pi(uint32_t w)
{
    /* v = w + 2**29 (mod 2**32) = q * 2**30 + (d + 2**29), q = v >> 30 the
     * nearest quarter turn mod 4 and d in [-2**29, 2**29): w = q * 2**30 + d. */
    const uint32_t v = w + 0x20000000u;
    const double d = (double)(int32_t)(v & 0x3FFFFFFFu) - 0x1p29;
    const double t = (d * 0x1p-32) * TWO_PI, t2 = t * t;
    double sp = SIN_C[0];
    for (int j = 1; j < 7; ++j)
        sp = sp * t2 + SIN_C[j];
    const double sn = t + (t * t2) * sp;
    double cp = COS_C[0];
    for (int j = 1; j < 8; ++j)
        cp = cp * t2 + COS_C[j];
    const double cs = 1.0 + t2 * cp;
    /* q = 0, 1, 2, 3: cs, -sn, -cs, sn: sn for odd q (bit 30), negated when
     * bits 30 and 31 differ (q = 1, 2); a select and a sign flip on the bits. */
    uint64_t sb, cb;
    memcpy(&sb, &sn, sizeof sb);
    memcpy(&cb, &cs, sizeof cb);
    const uint64_t odd = (v >> 30) & 1u, neg = ((v >> 31) ^ (v >> 30)) & 1u;
    const uint64_t rb = ((sb & (0 - odd)) | (cb & (odd - 1))) ^ (neg << 63);
    double r;
    memcpy(&r, &rb, sizeof r);
    return r;
}

/* Blocks per group: the words of DF_GAUSS_G consecutive blocks are drawn
 * first, then transformed, each step a loop over all lanes so independent
 * chains overlap and a compiler may vectorise them. */
#define DF_GAUSS_G 16

/* w[8 * j + 4 * (s & 1) + k] = word k of block b + j of stream s (stream 2, 3 or
 * 4, 5 fill w1 or w2): Philox4x32-10 (df_philox.h) over the lanes of a group. */
DF_GAUSS_INLINE void df_gauss_words(uint32_t *w, df_key_t key, df_block_t b, uint32_t stream)
{
    uint32_t c0[DF_GAUSS_G], c1[DF_GAUSS_G], c2[DF_GAUSS_G], c3[DF_GAUSS_G];
    for (int j = 0; j < DF_GAUSS_G; ++j) {
        const df_block_t bj = df_block_add(b, (uint64_t)j);
        c0[j] = (uint32_t)bj.lo;
        c1[j] = (uint32_t)(bj.lo >> 32);
        c2[j] = bj.hi;
        c3[j] = stream;
    }
    /* lanes outer, the rounds of the specification inner: each lane a
     * straight line, so a compiler can vectorise across lanes */
    for (int j = 0; j < DF_GAUSS_G; ++j) {
        uint32_t c[4] = {c0[j], c1[j], c2[j], c3[j]};
        df_philox4x32_r(c, key.k0, key.k1, 10);
        c0[j] = c[0];
        c1[j] = c[1];
        c2[j] = c[2];
        c3[j] = c[3];
    }
    const int o = 4 * (int)(stream & 1u);
    for (int j = 0; j < DF_GAUSS_G; ++j) {
        w[8 * j + o] = c0[j];
        w[8 * j + o + 1] = c1[j];
        w[8 * j + o + 2] = c2[j];
        w[8 * j + o + 3] = c3[j];
    }
}

enum { DF_GAUSS_L = 8 * DF_GAUSS_G };

/* y[i] = x[i] * (T)mult(i) for i in [0, n), n elements from block block0 on,
 * a group (DF_GAUSS_L elements) at a time: draw the words of DF_GAUSS_G blocks
 * of each stream, then take each step of the transform over all lanes. The
 * last group may compute lanes past n; they are not stored. */
#define DF_DEFINE_GAUSS_RANGE(NAME, T)                                                     \
    static void NAME(const T *x, T *y, int64_t n, df_key_t key, df_block_t block0,         \
                     double sigma)                                                         \
    {                                                                                      \
        uint32_t w1[DF_GAUSS_L], w2[DF_GAUSS_L];                                           \
        double t[DF_GAUSS_L];                                                              \
        for (int64_t i = 0; i < n; i += DF_GAUSS_L) {                                      \
            const df_block_t b = df_block_add(block0, (uint64_t)(i >> 3));                 \
            df_gauss_words(w1, key, b, 2);                                                 \
            df_gauss_words(w1, key, b, 3);                                                 \
            df_gauss_words(w2, key, b, 4);                                                 \
            df_gauss_words(w2, key, b, 5);                                                 \
            for (int h = 0; h < DF_GAUSS_L; ++h)                                           \
                t[h] = sqrt(-2.0 * df_gauss_log(w1[h]));                                   \
            for (int h = 0; h < DF_GAUSS_L; ++h)                                           \
                t[h] = 1.0 + sigma * (t[h] * df_gauss_cos2pi(w2[h]));                      \
            const int64_t m = n - i < DF_GAUSS_L ? n - i : DF_GAUSS_L;                     \
            for (int64_t h = 0; h < m; ++h)                                                \
                y[i + h] = x[i + h] * (T)t[h];                                             \
        }                                                                                  \
    }

DF_DEFINE_GAUSS_RANGE(gauss_f32_scalar, float)
DF_DEFINE_GAUSS_RANGE(gauss_f64_scalar, double)
#if DF_HAVE_X86
#define DF_GAUSS_PICK(S, isa)                                                              \
    ((isa) == DF_ISA_AVX512 ? df_gauss_##S##_avx512                                        \
     : (isa) == DF_ISA_AVX2 ? df_gauss_##S##_avx2                                          \
                            : gauss_##S##_scalar)
#else
#define DF_GAUSS_PICK(S, isa) ((void)(isa), gauss_##S##_scalar)
#endif

/* Validates the arguments; *isa receives the instruction set to run. */
static df_status_t gauss_check(int64_t n, const void *x, const void *y, df_block_t block0,
                               double sigma, const df_opts_t *opts, df_isa_t *isa)
{
    if (n < 0 || (n > 0 && (!x || !y)))
        return DF_ERR_ARG;
    if (!(sigma >= 0.0 && sigma <= DBL_MAX))
        return DF_ERR_VALUE;
    const uint64_t blocks = (uint64_t)(n + 7) / 8;
    const uint64_t end_lo = block0.lo + blocks;
    if (end_lo < block0.lo && block0.hi == 0xFFFFFFFFu && end_lo != 0)
        return DF_ERR_RANGE;
    const df_kernels_t *k = df_kernels_get(opts ? opts->isa : DF_ISA_AUTO);
    if (k == NULL)
        return DF_ERR_ISA;
    *isa = k->isa;
    return DF_OK;
}

#if DF_USE_OPENMP
#define DF_GAUSS_PARALLEL_FOR _Pragma("omp parallel for schedule(static) num_threads(nt)")
#else
#define DF_GAUSS_PARALLEL_FOR
#endif

/* Threads over parts that are multiples of DF_CHUNK_ALIGN elements, each
 * starting at its own block (block0 + start / 8), as in df_api.c. */
#define DF_DEFINE_GAUSS(NAME, T, S)                                                        \
    df_status_t NAME(const T *x, T *y, int64_t n, df_key_t key, df_block_t block0,         \
                     double sigma, const df_opts_t *opts)                                  \
    {                                                                                      \
        df_isa_t isa = DF_ISA_SCALAR;                                                      \
        const df_status_t st = gauss_check(n, x, y, block0, sigma, opts, &isa);            \
        if (st != DF_OK || n == 0)                                                         \
            return st;                                                                     \
        const df_gauss_##S##_fn range = DF_GAUSS_PICK(S, isa);                             \
        const int nt = df_threads_for(n, opts);                                            \
        if (nt <= 1) {                                                                     \
            range(x, y, n, key, block0, sigma);                                            \
            return DF_OK;                                                                  \
        }                                                                                  \
        int64_t part = (n + nt - 1) / nt;                                                  \
        part = (part + DF_CHUNK_ALIGN - 1) / DF_CHUNK_ALIGN * DF_CHUNK_ALIGN;              \
        DF_GAUSS_PARALLEL_FOR                                                              \
        for (int t = 0; t < nt; ++t) {                                                     \
            const int64_t start = (int64_t)t * part;                                       \
            if (start < n)                                                                 \
                range(x + start, y + start, n - start < part ? n - start : part, key,      \
                      df_block_add(block0, (uint64_t)(start >> 3)), sigma);                \
        }                                                                                  \
        return DF_OK;                                                                      \
    }

DF_DEFINE_GAUSS(df_gaussian_fwd_f32, float, f32)
DF_DEFINE_GAUSS(df_gaussian_fwd_f64, double, f64)
