/* df_kernels_avx512.c: the AVX-512 (F, BW, VL, DQ) bodies. They reproduce
 * df_kernels_scalar.c bit for bit; test_kat.c checks that for every size,
 * threshold and counter offset it knows.
 *
 * Philox4x32-10 (Salmon et al., SC'11), eight blocks per zmm:
 * - Each 64-bit lane holds one block, every counter word in the lane's low 32
 *   bits. vpmuludq reads only those, so the high halves may hold garbage: a
 *   round is two multiplies, two shifts and two three-way xors (vpternlogd).
 * - (b1, b2, stream) are constant within a call, so round 0 needs only the
 *   multiply of c0 and round 1 only that of c2; the rest is folded into
 *   per-call constants (ctx_init).
 * - Lanes hold blocks [0, 4, 1, 5, 2, 6, 3, 7] of a group of eight: merging
 *   (w0, w1) and (w2, w3) into qwords and one unpack each then gives the 16-bit
 *   halves of blocks 0..3 and 4..7 in element order, one zmm per 32 elements.
 * - BATCH groups (BATCH * 64 elements) are generated together so that their
 *   multiply chains overlap.
 * A < thresh >> 16 is one vpcmpuw per 32 elements; its mask, 64 bits a group,
 * is the bits output as it stands, and 16 (8) of its bits at a time are the
 * zeroing write mask of vmulps (vmulpd): dropped lanes come out +0.0. The tie
 * A == thresh >> 16 (probability 2**-16) is found with a compare-equal and its
 * block recomputed by the scalar specification (df_keep_byte).
 *
 * The driver (run, in df_simd_driver.h) is ISA-independent and shared with
 * df_kernels_avx2.c: it makes keep bits a group at a time and writes the
 * outputs in runs aligned to y's cache lines. */
#include <string.h>

#include "df_internal.h"
#include "df_philox.h"

#if DF_HAVE_X86
#include <immintrin.h>

#define DF_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
#define DF_INLINE static inline __attribute__((always_inline)) DF_TARGET

/* Elements per group (8 blocks), and groups per main-loop iteration: four
 * (16 state registers of 32) beat two, three and six on Zen 4. */
#define GROUP 64
#define BATCH 4

#include "df_simd_common.h"
}

#define XOR3 0x96 /* vpternlog truth table of a ^ b ^ c */

/* keep bits of ng groups (ng <= BATCH), the first at block j of the call:
 * m[g] bit e = keep(element 64 * g + e). Ties outside `valid` are not patched
 * (they lie past the end of the call). Needs thresh < 2**32. */
DF_INLINE void gen(const df_ctx_t *c, uint64_t j, int ng, uint64_t valid, uint64_t *m)
{
    const __m512i M0 = _mm512_set1_epi64(DF_PHILOX_M0), M1 = _mm512_set1_epi64(DF_PHILOX_M1);
    const __m512i lanes = _mm512_set_epi64(7, 3, 6, 2, 5, 1, 4, 0);
    __m512i c0[BATCH], c1[BATCH], c2[BATCH], c3[BATCH];
#pragma GCC unroll 4
    for (int g = 0; g < ng; ++g) {
        /* b0 + j never wraps inside a call (df_api.c), so 32-bit adds suffice. */
        const __m512i ctr =
            _mm512_add_epi32(_mm512_set1_epi64((uint32_t)(c->b0 + j + 8 * (uint64_t)g)), lanes);
        const __m512i p0 = _mm512_mul_epu32(ctr, M0); /* round 0 */
        const __m512i d2 =
            _mm512_xor_si512(_mm512_srli_epi64(p0, 32), _mm512_set1_epi32((int)c->rk1[0]));
        const __m512i p1 = _mm512_mul_epu32(d2, M1); /* round 1 */
        c0[g] = _mm512_xor_si512(_mm512_srli_epi64(p1, 32), _mm512_set1_epi32((int)c->r1x0));
        c1[g] = p1;
        c2[g] = _mm512_xor_si512(p0, _mm512_set1_epi32((int)c->r1x2));
    }
#pragma GCC unroll 4
    for (int g = 0; g < ng; ++g) { /* round 2: c3 = low(q) is a constant */
        const __m512i p0 = _mm512_mul_epu32(c0[g], M0), p1 = _mm512_mul_epu32(c2[g], M1);
        c0[g] = _mm512_ternarylogic_epi32(_mm512_srli_epi64(p1, 32), c1[g],
                                          _mm512_set1_epi32((int)c->rk0[2]), XOR3);
        c1[g] = p1;
        c2[g] = _mm512_xor_si512(_mm512_srli_epi64(p0, 32), _mm512_set1_epi32((int)c->r2x2));
        c3[g] = p0;
    }
#pragma GCC unroll 7
    for (int r = 3; r < 10; ++r) {
        const __m512i k0 = _mm512_set1_epi32((int)c->rk0[r]);
        const __m512i k1 = _mm512_set1_epi32((int)c->rk1[r]);
#pragma GCC unroll 4
        for (int g = 0; g < ng; ++g) {
            const __m512i p0 = _mm512_mul_epu32(c0[g], M0), p1 = _mm512_mul_epu32(c2[g], M1);
            c0[g] = _mm512_ternarylogic_epi32(_mm512_srli_epi64(p1, 32), c1[g], k0, XOR3);
            c1[g] = p1;
            c2[g] = _mm512_ternarylogic_epi32(_mm512_srli_epi64(p0, 32), c3[g], k1, XOR3);
            c3[g] = p0;
        }
    }
    const __m512i thi = _mm512_set1_epi16((short)c->thi);
#pragma GCC unroll 4
    for (int g = 0; g < ng; ++g) {
        /* qword = w0 | w1 << 32 and w2 | w3 << 32: c1's low dword into the odd one. */
        const __m512i w01 = _mm512_mask_shuffle_epi32(c0[g], 0xAAAA, c1[g], _MM_PERM_CDAB);
        const __m512i w23 = _mm512_mask_shuffle_epi32(c2[g], 0xAAAA, c3[g], _MM_PERM_CDAB);
        const __m512i a = _mm512_unpacklo_epi64(w01, w23), b = _mm512_unpackhi_epi64(w01, w23);
        m[g] = _cvtmask64_u64(_mm512_kunpackd(_mm512_cmplt_epu16_mask(b, thi),
                                              _mm512_cmplt_epu16_mask(a, thi)));
        if (c->tlo) {
            const uint64_t tie = _cvtmask64_u64(_mm512_kunpackd(_mm512_cmpeq_epu16_mask(b, thi),
                                                                _mm512_cmpeq_epu16_mask(a, thi)));
            if (__builtin_expect((tie & valid) != 0, 0))
                m[g] = patch_ties(c, j + 8 * (uint64_t)g, tie & valid, m[g]);
        }
    }
}

/* 64 elements from p: y[p + e] = bit e of s ? x[p + e] * scale : +0.0. With
 * nt, y + p is 64-byte aligned and the stores are non-temporal. */
DF_INLINE void emit_full(int kind, const void *xv, void *yv, int64_t p, uint64_t s, __m512 sf,
                         __m512d sd, int nt)
{
    if (kind == K_F32) {
        const float *x = (const float *)xv + p;
        float *y = (float *)yv + p;
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) {
            const __mmask16 k = _cvtu32_mask16((uint32_t)(s >> (16 * q)) & 0xFFFFu);
            const __m512 v = _mm512_maskz_mul_ps(k, _mm512_loadu_ps(x + 16 * q), sf);
            if (nt)
                _mm512_stream_ps(y + 16 * q, v);
            else
                _mm512_storeu_ps(y + 16 * q, v);
        }
    } else if (kind == K_F64) {
        const double *x = (const double *)xv + p;
        double *y = (double *)yv + p;
#pragma GCC unroll 8
        for (int q = 0; q < 8; ++q) {
            const __mmask8 k = _cvtu32_mask8((uint32_t)(s >> (8 * q)) & 0xFFu);
            const __m512d v = _mm512_maskz_mul_pd(k, _mm512_loadu_pd(x + 8 * q), sd);
            if (nt)
                _mm512_stream_pd(y + 8 * q, v);
            else
                _mm512_storeu_pd(y + 8 * q, v);
        }
    }
}

/* The elements of [e, e + 64) inside [0, n), bit k of s for element e + k,
 * with masked loads and stores that touch nothing outside [0, n). */
DF_INLINE void emit_part(int kind, const void *xv, void *yv, int64_t e, uint64_t s, int64_t n,
                         __m512 sf, __m512d sd)
{
    const int64_t a = e < 0 ? 0 : e, end = e + GROUP < n ? e + GROUP : n;
    const int ve = kind == K_F64 ? 8 : 16;
    for (int64_t p = a; p < end; p += ve) {
        const int64_t cnt = end - p < ve ? end - p : ve;
        const uint32_t in = (1u << cnt) - 1u, k = (uint32_t)(s >> (p - e)) & in;
        if (kind == K_F32) {
            const __m512 v = _mm512_maskz_loadu_ps(_cvtu32_mask16(in), (const float *)xv + p);
            _mm512_mask_storeu_ps((float *)yv + p, _cvtu32_mask16(in),
                                  _mm512_maskz_mul_ps(_cvtu32_mask16(k), v, sf));
        } else if (kind == K_F64) {
            const __m512d v = _mm512_maskz_loadu_pd(_cvtu32_mask8(in), (const double *)xv + p);
            _mm512_mask_storeu_pd((double *)yv + p, _cvtu32_mask8(in),
                                  _mm512_maskz_mul_pd(_cvtu32_mask8(k), v, sd));
        }
    }
}

/* The broadcast kernels' coefficients: kept = x * a, or a * x + b when affine
 * (two roundings); dropped = c. */
typedef struct {
    __m512 a, b, c;
    __m512d ad, bd, cd;
} df_coef_t;

/* 16 (8) lanes of the broadcast kernels: k ? kept : c. */
DF_INLINE __m512 bc_ps(int aff, __mmask16 k, __m512 v, const df_coef_t *c)
{
    return aff ? _mm512_mask_add_ps(c->c, k, _mm512_mul_ps(v, c->a), c->b)
               : _mm512_mask_mul_ps(c->c, k, v, c->a);
}

DF_INLINE __m512d bc_pd(int aff, __mmask8 k, __m512d v, const df_coef_t *c)
{
    return aff ? _mm512_mask_add_pd(c->cd, k, _mm512_mul_pd(v, c->ad), c->bd)
               : _mm512_mask_mul_pd(c->cd, k, v, c->ad);
}

/* emit_full of the broadcast kernels: y[p + e] = bit e of s ? kept : c. */
DF_INLINE void emit_bc_full(int kind, int aff, const void *xv, void *yv, int64_t p, uint64_t s,
                            const df_coef_t *c, int nt)
{
    if (kind == K_F32) {
        const float *x = (const float *)xv + p;
        float *y = (float *)yv + p;
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) {
            const __mmask16 k = _cvtu32_mask16((uint32_t)(s >> (16 * q)) & 0xFFFFu);
            const __m512 v = bc_ps(aff, k, _mm512_loadu_ps(x + 16 * q), c);
            if (nt)
                _mm512_stream_ps(y + 16 * q, v);
            else
                _mm512_storeu_ps(y + 16 * q, v);
        }
    } else if (kind == K_F64) {
        const double *x = (const double *)xv + p;
        double *y = (double *)yv + p;
#pragma GCC unroll 8
        for (int q = 0; q < 8; ++q) {
            const __mmask8 k = _cvtu32_mask8((uint32_t)(s >> (8 * q)) & 0xFFu);
            const __m512d v = bc_pd(aff, k, _mm512_loadu_pd(x + 8 * q), c);
            if (nt)
                _mm512_stream_pd(y + 8 * q, v);
            else
                _mm512_storeu_pd(y + 8 * q, v);
        }
    }
}

/* emit_part of the broadcast kernels: the elements of [e, e + 64) inside [0, n). */
DF_INLINE void emit_bc_part(int kind, int aff, const void *xv, void *yv, int64_t e, uint64_t s,
                            int64_t n, const df_coef_t *c)
{
    const int64_t a = e < 0 ? 0 : e, end = e + GROUP < n ? e + GROUP : n;
    const int ve = kind == K_F64 ? 8 : 16;
    for (int64_t p = a; p < end; p += ve) {
        const int64_t cnt = end - p < ve ? end - p : ve;
        const uint32_t in = (1u << cnt) - 1u, k = (uint32_t)(s >> (p - e)) & in;
        if (kind == K_F32) {
            const __m512 v = _mm512_maskz_loadu_ps(_cvtu32_mask16(in), (const float *)xv + p);
            _mm512_mask_storeu_ps((float *)yv + p, _cvtu32_mask16(in),
                                  bc_ps(aff, _cvtu32_mask16(k), v, c));
        } else if (kind == K_F64) {
            const __m512d v = _mm512_maskz_loadu_pd(_cvtu32_mask8(in), (const double *)xv + p);
            _mm512_mask_storeu_pd((double *)yv + p, _cvtu32_mask8(in),
                                  bc_pd(aff, _cvtu32_mask8(k), v, c));
        }
    }
}

/* 64 elements from p set to c without reading x (a long dropped run). */
DF_INLINE void emit_fill(int kind, void *yv, int64_t p, const df_coef_t *c, int nt)
{
#pragma GCC unroll 8
    for (int q = 0; q < 4; ++q) {
        if (kind == K_F32 && nt)
            _mm512_stream_ps((float *)yv + p + 16 * q, c->c);
        else if (kind == K_F32)
            _mm512_storeu_ps((float *)yv + p + 16 * q, c->c);
        else if (nt) {
            _mm512_stream_pd((double *)yv + p + 16 * q, c->cd);
            _mm512_stream_pd((double *)yv + p + 16 * q + 8, c->cd);
        } else {
            _mm512_storeu_pd((double *)yv + p + 16 * q, c->cd);
            _mm512_storeu_pd((double *)yv + p + 16 * q + 8, c->cd);
        }
    }
}

/* What df_simd_driver.h needs besides gen(), emit_full() and emit_part(), and
 * emit_bc_full(), emit_bc_part(), emit_fill() for the broadcast kernels. */
#define DF_VF __m512
#define DF_VD __m512d
#define DF_SET1_PS _mm512_set1_ps
#define DF_SET1_PD _mm512_set1_pd
#define DF_SIMD_FN(name) name##_avx512
#define DF_SIMD_ISA DF_ISA_AVX512

#include "df_simd_driver.h"
#endif /* DF_HAVE_X86 */
