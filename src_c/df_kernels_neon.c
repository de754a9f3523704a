/* df_kernels_neon.c: the AArch64 Advanced SIMD (NEON) bodies of the mask,
 * forward and backward kernels. They reproduce df_kernels_scalar.c bit for bit;
 * test_kat.c and test_vectors.c check that under qemu-aarch64
 * (tests/c/cross_aarch64.sh), on the stored vectors too.
 *
 * Four blocks per vector: lane l of c[k] holds counter word k of block j + l, so
 * a Philox round (Salmon et al., SC'11) is two widening multiplies per product
 * (umull/umull2), an unzip into high and low halves, and four xors. The keep
 * byte of each block is built in its lane from the eight 16-bit compares; the
 * rare blocks with a half equal to thresh >> 16 (when thresh has low bits) are
 * redone by the scalar specification, which draws stream 1. Outputs: a bit
 * select between x * scale (IEEE, no FMA) and +0.0, eight elements per block.
 * NEON is part of the AArch64 base, so no target attribute and no CPU check.
 * The broadcast pass uses the scalar body. */
#include "df_internal.h"
#include "df_philox.h"

#if DF_HAVE_NEON
#include <arm_neon.h>

/* Keep bytes of the four blocks j .. j + 3 (j + 3 without a carry into the
 * high counter words, see df_internal.h), thresh < 2**32. */
static inline uint32x4_t keep4(df_key_t key, df_block_t block0, uint64_t j, uint64_t thresh)
{
    const uint32_t base = (uint32_t)block0.lo + (uint32_t)j;
    static const uint32_t lane[4] = {0, 1, 2, 3};
    uint32x4_t c0 = vaddq_u32(vdupq_n_u32(base), vld1q_u32(lane));
    uint32x4_t c1 = vdupq_n_u32((uint32_t)(block0.lo >> 32));
    uint32x4_t c2 = vdupq_n_u32(block0.hi);
    uint32x4_t c3 = vdupq_n_u32(0); /* stream 0 */
    const uint32x2_t m0 = vdup_n_u32(DF_PHILOX_M0), m1 = vdup_n_u32(DF_PHILOX_M1);
    const uint32x4_t m0q = vdupq_n_u32(DF_PHILOX_M0), m1q = vdupq_n_u32(DF_PHILOX_M1);
    uint32_t k0 = key.k0, k1 = key.k1;
    for (int r = 0; r < 10; ++r) {
        if (r > 0) {
            k0 += DF_PHILOX_W0;
            k1 += DF_PHILOX_W1;
        }
        const uint32x4_t p0a = vreinterpretq_u32_u64(vmull_u32(vget_low_u32(c0), m0));
        const uint32x4_t p0b = vreinterpretq_u32_u64(vmull_high_u32(c0, m0q));
        const uint32x4_t p1a = vreinterpretq_u32_u64(vmull_u32(vget_low_u32(c2), m1));
        const uint32x4_t p1b = vreinterpretq_u32_u64(vmull_high_u32(c2, m1q));
        const uint32x4_t hi0 = vuzp2q_u32(p0a, p0b), lo0 = vuzp1q_u32(p0a, p0b);
        const uint32x4_t hi1 = vuzp2q_u32(p1a, p1b), lo1 = vuzp1q_u32(p1a, p1b);
        const uint32x4_t n0 = veorq_u32(veorq_u32(hi1, c1), vdupq_n_u32(k0));
        const uint32x4_t n2 = veorq_u32(veorq_u32(hi0, c3), vdupq_n_u32(k1));
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
    }
    /* Half 2k of a block is word k's low 16 bits, half 2k + 1 its high 16. */
    const uint32x4_t thi = vdupq_n_u32((uint32_t)(thresh >> 16)), low = vdupq_n_u32(0xFFFFu);
    const uint32x4_t w[4] = {c0, c1, c2, c3};
    uint32x4_t keep = vdupq_n_u32(0), tie = vdupq_n_u32(0);
    for (int k = 0; k < 4; ++k) {
        const uint32x4_t a = vandq_u32(w[k], low), b = vshrq_n_u32(w[k], 16);
        const uint32x4_t bit_a = vdupq_n_u32(1u << (2 * k)), bit_b = vdupq_n_u32(2u << (2 * k));
        keep = vorrq_u32(keep, vandq_u32(vcltq_u32(a, thi), bit_a));
        keep = vorrq_u32(keep, vandq_u32(vcltq_u32(b, thi), bit_b));
        tie = vorrq_u32(tie, vorrq_u32(vceqq_u32(a, thi), vceqq_u32(b, thi)));
    }
    if ((thresh & 0xFFFFu) != 0 && vmaxvq_u32(tie) != 0) {
        uint32_t t[4], kb[4];
        vst1q_u32(t, tie);
        vst1q_u32(kb, keep);
        for (int l = 0; l < 4; ++l)
            if (t[l]) {
                const df_block_t b = df_block_add(block0, j + (uint64_t)l);
                uint32_t s0[4];
                df_philox_block(s0, key, b, 0);
                kb[l] = df_keep_byte(s0, key, b, thresh);
            }
        keep = vld1q_u32(kb);
    }
    return keep;
}

static void mask_neon(uint8_t *bits, int64_t n, df_key_t key, df_block_t block0, uint64_t thresh)
{
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        uint32_t kb[4];
        vst1q_u32(kb, keep4(key, block0, (uint64_t)i >> 3, thresh));
        for (int l = 0; l < 4; ++l)
            bits[(i >> 3) + l] = (uint8_t)kb[l];
    }
    if (i < n) /* the tail (fewer than 32 elements): the scalar specification */
        df_kernels_scalar.mask(bits + (i >> 3), n - i, key, df_block_add(block0, (uint64_t)i >> 3),
                               thresh);
}

/* Lane masks of the keep byte kb: elements 0-3 and 4-7 of a block. */
static inline void lanes32(unsigned kb, uint32x4_t *lo, uint32x4_t *hi)
{
    static const uint32_t b_lo[4] = {1, 2, 4, 8}, b_hi[4] = {16, 32, 64, 128};
    const uint32x4_t v = vdupq_n_u32(kb);
    *lo = vtstq_u32(v, vld1q_u32(b_lo));
    *hi = vtstq_u32(v, vld1q_u32(b_hi));
}

/* Eight elements: y = keep ? x * scale : +0.0. */
static inline void emit8_f32(const float *x, float *y, unsigned kb, float32x4_t s)
{
    uint32x4_t ml, mh;
    lanes32(kb, &ml, &mh);
    const float32x4_t z = vdupq_n_f32(0.0f);
    const float32x4_t a = vmulq_f32(vld1q_f32(x), s), b = vmulq_f32(vld1q_f32(x + 4), s);
    vst1q_f32(y, vbslq_f32(ml, a, z));
    vst1q_f32(y + 4, vbslq_f32(mh, b, z));
}

static inline void emit8_f64(const double *x, double *y, unsigned kb, float64x2_t s)
{
    static const uint64_t bit[8] = {1, 2, 4, 8, 16, 32, 64, 128};
    const uint64x2_t v = vdupq_n_u64(kb);
    const float64x2_t z = vdupq_n_f64(0.0);
    for (int q = 0; q < 4; ++q) {
        const uint64x2_t m = vtstq_u64(v, vld1q_u64(bit + 2 * q));
        vst1q_f64(y + 2 * q, vbslq_f64(m, vmulq_f64(vld1q_f64(x + 2 * q), s), z));
    }
}

/* The forward kernels: whole groups of four blocks by vector; the tail (fewer than
 * 32 elements) and thresh == 2**32 (keep everything) go to the scalar
 * specification, which the contract lets start at any multiple of 8. */
#define DF_DEFINE_FWD_NEON(NAME, T, EMIT, VT, DUP, SCALAR)                                 \
    static void NAME(const T *x, T *y, uint8_t *bits, int64_t n, df_key_t key,             \
                     df_block_t block0, uint64_t thresh, T scale, int stream)              \
    {                                                                                      \
        int64_t i = 0;                                                                     \
        if (!(thresh >> 32)) {                                                             \
            const VT s = DUP(scale);                                                       \
            for (; i + 32 <= n; i += 32) {                                                 \
                uint32_t kb[4];                                                            \
                vst1q_u32(kb, keep4(key, block0, (uint64_t)i >> 3, thresh));               \
                for (int l = 0; l < 4; ++l) {                                              \
                    EMIT(x + i + 8 * l, y + i + 8 * l, kb[l], s);                          \
                    if (bits)                                                              \
                        bits[(i >> 3) + l] = (uint8_t)kb[l];                               \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
        if (i < n)                                                                         \
            SCALAR(x + i, y + i, bits ? bits + (i >> 3) : NULL, n - i, key,                \
                   df_block_add(block0, (uint64_t)i >> 3), thresh, scale, stream);         \
    }

/* dx[i] = bit i ? dy[i] * scale : +0.0, a byte of bits (8 elements) at a time. */
#define DF_DEFINE_BWD_NEON(NAME, T, EMIT, VT, DUP)                                         \
    static void NAME(const T *dy, T *dx, const uint8_t *bits, int64_t n, T scale,          \
                     int stream)                                                           \
    {                                                                                      \
        (void)stream;                                                                      \
        const VT s = DUP(scale);                                                           \
        int64_t i = 0;                                                                     \
        for (; i + 8 <= n; i += 8)                                                         \
            EMIT(dy + i, dx + i, bits[i >> 3], s);                                         \
        for (; i < n; ++i)                                                                 \
            dx[i] = ((bits[i >> 3] >> (i & 7)) & 1u) ? dy[i] * scale : (T)0;               \
    }

DF_DEFINE_FWD_NEON(fwd_f32_neon, float, emit8_f32, float32x4_t, vdupq_n_f32,
                   df_kernels_scalar.fwd_f32)
DF_DEFINE_FWD_NEON(fwd_f64_neon, double, emit8_f64, float64x2_t, vdupq_n_f64,
                   df_kernels_scalar.fwd_f64)
DF_DEFINE_BWD_NEON(bwd_f32_neon, float, emit8_f32, float32x4_t, vdupq_n_f32)
DF_DEFINE_BWD_NEON(bwd_f64_neon, double, emit8_f64, float64x2_t, vdupq_n_f64)

const df_kernels_t df_kernels_neon = {
    DF_ISA_NEON,  mask_neon,    fwd_f32_neon,         fwd_f64_neon,
    bwd_f32_neon, bwd_f64_neon, df_bcast_f32_scalar, df_bcast_f64_scalar,
};

#else
/* ISO C forbids an empty translation unit. */
typedef int df_kernels_neon_unused;
#endif /* DF_HAVE_NEON */
