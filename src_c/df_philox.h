/* df_philox.h: the Philox4x32 block function and 96-bit block arithmetic.
 * Scalar and static inline: this is the specification that every SIMD body and
 * the Numba reference reproduce. Constants from Random123's philox.h
 * (Salmon et al., SC'11). */
#ifndef DF_PHILOX_H
#define DF_PHILOX_H

#include <stdint.h>

#include "dropout_fast.h"

#define DF_PHILOX_M0 0xD2511F53u
#define DF_PHILOX_M1 0xCD9E8D57u
#define DF_PHILOX_W0 0x9E3779B9u
#define DF_PHILOX_W1 0xBB67AE85u

/* One round: (hi0, lo0) = M0 * c0, (hi1, lo1) = M1 * c2,
 * c = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0). */
static inline void df_philox_round(uint32_t c[4], uint32_t k0, uint32_t k1)
{
    uint64_t p0 = (uint64_t)DF_PHILOX_M0 * c[0];
    uint64_t p1 = (uint64_t)DF_PHILOX_M1 * c[2];
    uint32_t c1 = c[1], c3 = c[3];
    c[0] = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
    c[1] = (uint32_t)p1;
    c[2] = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    c[3] = (uint32_t)p0;
}

/* Philox4x32-R in place: round 0 uses the key, each later round first bumps
 * the key by the Weyl constants (W0, W1). */
static inline void df_philox4x32_r(uint32_t c[4], uint32_t k0, uint32_t k1, int rounds)
{
    for (int r = 0; r < rounds; ++r) {
        if (r > 0) {
            k0 += DF_PHILOX_W0;
            k1 += DF_PHILOX_W1;
        }
        df_philox_round(c, k0, k1);
    }
}

/* The generator of the stream contract: block `block` of stream `stream`. */
static inline void df_philox_block(uint32_t out[4], df_key_t key, df_block_t block,
                                   uint32_t stream)
{
    out[0] = (uint32_t)block.lo;
    out[1] = (uint32_t)(block.lo >> 32);
    out[2] = block.hi;
    out[3] = stream;
    df_philox4x32_r(out, key.k0, key.k1, 10);
}

/* block + n with the carry into the top 32 bits (wraps modulo 2**96). */
static inline df_block_t df_block_add(df_block_t b, uint64_t n)
{
    df_block_t r;
    r.lo = b.lo + n;
    r.hi = b.hi + (uint32_t)(r.lo < b.lo);
    return r;
}

/* Half h (0..7) of a block's output: w[h/2] >> (16 * (h % 2)) & 0xFFFF. */
static inline uint32_t df_half(const uint32_t w[4], int h)
{
    return (w[h >> 1] >> ((h & 1) * 16)) & 0xFFFFu;
}

/* keep(i) for the 8 elements of one block: bit h set iff element h is kept.
 * stream0 is the block's stream-0 output; stream 1 is computed only when some
 * A equals thresh >> 16 and thresh has nonzero low bits. */
static inline unsigned df_keep_byte(const uint32_t stream0[4], df_key_t key, df_block_t block,
                                    uint64_t thresh)
{
    const uint32_t thi = (uint32_t)(thresh >> 16), tlo = (uint32_t)(thresh & 0xFFFFu);
    unsigned keep = 0, tie = 0;
    for (int h = 0; h < 8; ++h) {
        uint32_t a = df_half(stream0, h);
        keep |= (unsigned)(a < thi) << h;
        tie |= (unsigned)(a == thi) << h;
    }
    if (tie && tlo) {
        uint32_t s1[4];
        df_philox_block(s1, key, block, 1);
        for (int h = 0; h < 8; ++h)
            if ((tie >> h) & 1u)
                keep |= (unsigned)(df_half(s1, h) < tlo) << h;
    }
    return keep;
}

#endif /* DF_PHILOX_H */
