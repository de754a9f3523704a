/* df_simd_common.h: the per-call constants and the tie patch shared by the
 * SIMD bodies (df_kernels_avx2.c, df_kernels_avx512.c). Included once by each,
 * after df_internal.h and df_philox.h; every definition is static. */
#ifndef DF_SIMD_COMMON_H
#define DF_SIMD_COMMON_H

/* What a kernel writes besides the mask bits; a compile-time argument of the
 * always-inlined bodies, so each kernel gets its own specialised loop. */
enum { K_MASK, K_F32, K_F64 };

/* The per-call constants of the stream contract (scalar, computed once). */
typedef struct {
    df_key_t key;
    df_block_t block0;
    uint64_t thresh;
    uint32_t b0, thi, tlo;
    uint32_t rk0[10], rk1[10]; /* round keys */
    uint32_t r1x0, r1x2, r2x2; /* hoisted parts of rounds 1 and 2 */
} df_ctx_t;

/* Round 0 sees (c0, b1, b2, 0): p1 = M1 * b2 is a constant, so new c0 and c1
 * are constants and round 1's p0 = M0 * c0 is one too (q below). */
static void ctx_init(df_ctx_t *c, df_key_t key, df_block_t block0, uint64_t thresh)
{
    c->key = key;
    c->block0 = block0;
    c->thresh = thresh;
    c->b0 = (uint32_t)block0.lo;
    c->thi = (uint32_t)(thresh >> 16);
    c->tlo = (uint32_t)(thresh & 0xFFFFu);
    for (int r = 0; r < 10; ++r) {
        c->rk0[r] = key.k0 + (uint32_t)r * DF_PHILOX_W0;
        c->rk1[r] = key.k1 + (uint32_t)r * DF_PHILOX_W1;
    }
    const uint64_t p1 = (uint64_t)DF_PHILOX_M1 * block0.hi;
    const uint32_t c0 = (uint32_t)(p1 >> 32) ^ (uint32_t)(block0.lo >> 32) ^ c->rk0[0];
    const uint64_t q = (uint64_t)DF_PHILOX_M0 * c0;
    c->r1x0 = (uint32_t)p1 ^ c->rk0[1];
    c->r1x2 = (uint32_t)(q >> 32) ^ c->rk1[1];
    c->r2x2 = (uint32_t)q ^ c->rk1[2];
}

/* Rare path: the blocks of a group (first block j) whose tie bits are set are
 * recomputed by the scalar specification, which draws stream 1. */
static __attribute__((noinline, cold)) uint64_t patch_ties(const df_ctx_t *c, uint64_t j,
                                                           uint64_t tie, uint64_t keep)
{
    for (int k = 0; k < 8; ++k) {
        if (((tie >> (8 * k)) & 0xFFu) == 0)
            continue;
        const df_block_t b = df_block_add(c->block0, j + (uint64_t)k);
        uint32_t w[4];
        df_philox_block(w, c->key, b, 0);
        const uint64_t byte = df_keep_byte(w, c->key, b, c->thresh);
        keep = (keep & ~((uint64_t)0xFF << (8 * k))) | byte << (8 * k);
    }
    return keep;

#endif /* DF_SIMD_COMMON_H */
