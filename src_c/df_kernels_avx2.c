/* df_kernels_avx2.c: the AVX2 bodies. They reproduce df_kernels_scalar.c bit
 * for bit; test_kat.c checks that for every size, threshold and counter
 * offset it knows. The structure follows df_kernels_avx512.c (same group,
 * driver and tie patch; see there), with these differences:
 * - Four blocks per ymm, each 64-bit lane one block with its counter words in
 *   the low 32 bits (vpmuludq reads only those); no vpternlogd, so a round is
 *   two multiplies, two shifts and four xors. Lanes hold blocks [0, 1, 2, 3]:
 *   after merging (w0, w1) and (w2, w3) into qwords, the unpacks give blocks
 *   (0, 2) and (1, 3), which vpacksswb interleaves back into element order.
 * - No unsigned 16-bit compare: A >= thi is max_epu16(A, thi) == A, packed to
 *   bytes and turned into bits by vpmovmskb (dropped bits, inverted).
 * - No mask registers: each lane's keep bit is shifted into its sign bit
 *   (vpsllvd/q from a broadcast of the bits) and vblendvps/pd picks the
 *   product or +0.0; the first and last group of a call go scalar. */
#include <string.h>

#include "df_internal.h"
#include "df_philox.h"

#if DF_HAVE_X86
#include <immintrin.h>

#define DF_TARGET __attribute__((target("avx2")))
#define DF_INLINE static inline __attribute__((always_inline)) DF_TARGET

/* Elements per group (8 blocks), and groups per main-loop iteration. Two
 * groups (16 state registers, some spilled) beat one, which leaves the
 * multiplies' latency exposed, and three (on Zen 4). */
#define GROUP 64
#define BATCH 2

#include "df_simd_common.h"
}

/* Keep bits of nx (<= 2 * BATCH) runs of 4 blocks from block j: k[v] bit e =
 * keep(element 32 * v + e), before the tie patch; tie[v] likewise for
 * A == thresh >> 16 when thresh has low bits (else 0). */
DF_INLINE void draw(const df_ctx_t *c, uint64_t j, int nx, uint32_t *k, uint32_t *tie)
{
    const __m256i M0 = _mm256_set1_epi64x(DF_PHILOX_M0), M1 = _mm256_set1_epi64x(DF_PHILOX_M1);
    const __m256i lanes = _mm256_setr_epi64x(0, 1, 2, 3);
    __m256i c0[2 * BATCH], c1[2 * BATCH], c2[2 * BATCH], c3[2 * BATCH];
#pragma GCC unroll 4
    for (int v = 0; v < nx; ++v) {
        /* b0 + j never wraps inside a call (df_api.c), so 32-bit adds suffice. */
        const __m256i ctr = _mm256_add_epi32(
            _mm256_set1_epi64x((uint32_t)(c->b0 + j + 4 * (uint64_t)v)), lanes);
        const __m256i p0 = _mm256_mul_epu32(ctr, M0); /* round 0 */
        const __m256i d2 =
            _mm256_xor_si256(_mm256_srli_epi64(p0, 32), _mm256_set1_epi32((int)c->rk1[0]));
        const __m256i p1 = _mm256_mul_epu32(d2, M1); /* round 1 */
        c0[v] = _mm256_xor_si256(_mm256_srli_epi64(p1, 32), _mm256_set1_epi32((int)c->r1x0));
        c1[v] = p1;
        c2[v] = _mm256_xor_si256(p0, _mm256_set1_epi32((int)c->r1x2));
    }
#pragma GCC unroll 4
    for (int v = 0; v < nx; ++v) { /* round 2: c3 = low(q) is a constant */
        const __m256i p0 = _mm256_mul_epu32(c0[v], M0), p1 = _mm256_mul_epu32(c2[v], M1);
        c0[v] = _mm256_xor_si256(_mm256_srli_epi64(p1, 32),
                                 _mm256_xor_si256(c1[v], _mm256_set1_epi32((int)c->rk0[2])));
        c1[v] = p1;
        c2[v] = _mm256_xor_si256(_mm256_srli_epi64(p0, 32), _mm256_set1_epi32((int)c->r2x2));
        c3[v] = p0;
    }
#pragma GCC unroll 7
    for (int r = 3; r < 10; ++r) {
        const __m256i k0 = _mm256_set1_epi32((int)c->rk0[r]);
        const __m256i k1 = _mm256_set1_epi32((int)c->rk1[r]);
#pragma GCC unroll 4
        for (int v = 0; v < nx; ++v) {
            /* c1 ^ k0 and c3 ^ k1 do not wait for the multiplies. */
            const __m256i x1 = _mm256_xor_si256(c1[v], k0), x3 = _mm256_xor_si256(c3[v], k1);
            const __m256i p0 = _mm256_mul_epu32(c0[v], M0), p1 = _mm256_mul_epu32(c2[v], M1);
            c0[v] = _mm256_xor_si256(_mm256_srli_epi64(p1, 32), x1);
            c1[v] = p1;
            c2[v] = _mm256_xor_si256(_mm256_srli_epi64(p0, 32), x3);
            c3[v] = p0;
        }
    }
    const __m256i thi = _mm256_set1_epi16((short)c->thi);
#pragma GCC unroll 4
    for (int v = 0; v < nx; ++v) {
        /* qword = w0 | w1 << 32 and w2 | w3 << 32; lo holds blocks 0 and 2, hi 1 and 3. */
        const __m256i w01 = _mm256_blend_epi32(c0[v], _mm256_slli_epi64(c1[v], 32), 0xAA);
        const __m256i w23 = _mm256_blend_epi32(c2[v], _mm256_slli_epi64(c3[v], 32), 0xAA);
        const __m256i lo = _mm256_unpacklo_epi64(w01, w23);
        const __m256i hi = _mm256_unpackhi_epi64(w01, w23);
        const __m256i dlo = _mm256_cmpeq_epi16(_mm256_max_epu16(lo, thi), lo);
        const __m256i dhi = _mm256_cmpeq_epi16(_mm256_max_epu16(hi, thi), hi);
        k[v] = ~(uint32_t)_mm256_movemask_epi8(_mm256_packs_epi16(dlo, dhi));
        tie[v] = 0;
        if (c->tlo) {
            const __m256i elo = _mm256_cmpeq_epi16(lo, thi), ehi = _mm256_cmpeq_epi16(hi, thi);
            /* One vpmovmskb says whether any lane ties; the bits are made only then. */
            if (__builtin_expect(_mm256_movemask_epi8(_mm256_or_si256(elo, ehi)) != 0, 0))
                tie[v] = (uint32_t)_mm256_movemask_epi8(_mm256_packs_epi16(elo, ehi));
        }
    }
}

/* Keep bits of ng groups (ng <= BATCH), the first at block j of the call:
 * m[g] bit e = keep(element 64 * g + e). Ties outside `valid` are not patched
 * (they lie past the end of the call). Needs thresh < 2**32. */
DF_INLINE void gen(const df_ctx_t *c, uint64_t j, int ng, uint64_t valid, uint64_t *m)
{
    uint32_t k[2 * BATCH], tie[2 * BATCH];
    draw(c, j, 2 * ng, k, tie);
    for (int g = 0; g < ng; ++g) {
        m[g] = k[2 * g] | (uint64_t)k[2 * g + 1] << 32;
        const uint64_t t = (tie[2 * g] | (uint64_t)tie[2 * g + 1] << 32) & valid;
        if (__builtin_expect(t != 0, 0))
            m[g] = patch_ties(c, j + 8 * (uint64_t)g, t, m[g]);
    }
}

/* 64 elements from p: y[p + e] = bit e of s ? x[p + e] * scale : +0.0. With
 * nt, y + p is 64-byte aligned and the stores are non-temporal. A lane's keep
 * bit is shifted into its sign bit (vpsllvd/q), which vblendvps/pd reads. */
DF_INLINE void emit_full(int kind, const void *xv, void *yv, int64_t p, uint64_t s, __m256 sf,
                         __m256d sd, int nt)
{
    if (kind == K_F32) {
        const float *x = (const float *)xv + p;
        float *y = (float *)yv + p;
        const __m256i up = _mm256_setr_epi32(31, 30, 29, 28, 27, 26, 25, 24);
#pragma GCC unroll 8
        for (int q = 0; q < 8; ++q) {
            const __m256i b = _mm256_set1_epi32((int)(uint32_t)(s >> (32 * (q >> 2))));
            /* folded to a constant per q */
            const __m256i sh = _mm256_sub_epi32(up, _mm256_set1_epi32(8 * (q & 3)));
            const __m256 k = _mm256_castsi256_ps(_mm256_sllv_epi32(b, sh));
            const __m256 v = _mm256_blendv_ps(_mm256_setzero_ps(),
                                              _mm256_mul_ps(_mm256_loadu_ps(x + 8 * q), sf), k);
            if (nt)
                _mm256_stream_ps(y + 8 * q, v);
            else
                _mm256_storeu_ps(y + 8 * q, v);
        }
    } else if (kind == K_F64) {
        const double *x = (const double *)xv + p;
        double *y = (double *)yv + p;
        const __m256i b = _mm256_set1_epi64x((long long)s);
        const __m256i up = _mm256_setr_epi64x(63, 62, 61, 60);
#pragma GCC unroll 16
        for (int q = 0; q < 16; ++q) {
            const __m256i sh = _mm256_sub_epi64(up, _mm256_set1_epi64x(4 * q));
            const __m256d k = _mm256_castsi256_pd(_mm256_sllv_epi64(b, sh));
            const __m256d v = _mm256_blendv_pd(_mm256_setzero_pd(),
                                               _mm256_mul_pd(_mm256_loadu_pd(x + 4 * q), sd), k);
            if (nt)
                _mm256_stream_pd(y + 4 * q, v);
            else
                _mm256_storeu_pd(y + 4 * q, v);
        }
    }
}

/* The elements of [e, e + 64) inside [0, n), bit k of s for element e + k:
 * scalar, as AVX2 has no byte-exact masked stores; only the first and last
 * group of a call come here. */
DF_INLINE void emit_part(int kind, const void *xv, void *yv, int64_t e, uint64_t s, int64_t n,
                         __m256 sf, __m256d sd)
{
    const int64_t a = e < 0 ? 0 : e, end = e + GROUP < n ? e + GROUP : n;
    const float f = _mm256_cvtss_f32(sf);
    const double d = _mm256_cvtsd_f64(sd);
    for (int64_t p = a; p < end; ++p) {
        const int keep = (int)((s >> (p - e)) & 1u);
        if (kind == K_F32)
            ((float *)yv)[p] = keep ? ((const float *)xv)[p] * f : 0.0f;
        else if (kind == K_F64)
            ((double *)yv)[p] = keep ? ((const double *)xv)[p] * d : 0.0;
    }
}

/* The broadcast kernels' coefficients: kept = x * a, or a * x + b when affine
 * (two roundings); dropped = c. */
typedef struct {
    __m256 a, b, c;
    __m256d ad, bd, cd;
} df_coef_t;

/* emit_full of the broadcast kernels: y[p + e] = bit e of s ? kept : c, the
 * keep bit shifted into each lane's sign bit as in emit_full. */
DF_INLINE void emit_bc_full(int kind, int aff, const void *xv, void *yv, int64_t p, uint64_t s,
                            const df_coef_t *c, int nt)
{
    if (kind == K_F32) {
        const float *x = (const float *)xv + p;
        float *y = (float *)yv + p;
        const __m256i up = _mm256_setr_epi32(31, 30, 29, 28, 27, 26, 25, 24);
#pragma GCC unroll 8
        for (int q = 0; q < 8; ++q) {
            const __m256i b = _mm256_set1_epi32((int)(uint32_t)(s >> (32 * (q >> 2))));
            const __m256i sh = _mm256_sub_epi32(up, _mm256_set1_epi32(8 * (q & 3)));
            const __m256 k = _mm256_castsi256_ps(_mm256_sllv_epi32(b, sh));
            __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + 8 * q), c->a);
            if (aff)
                v = _mm256_add_ps(v, c->b);
            v = _mm256_blendv_ps(c->c, v, k);
            if (nt)
                _mm256_stream_ps(y + 8 * q, v);
            else
                _mm256_storeu_ps(y + 8 * q, v);
        }
    } else if (kind == K_F64) {
        const double *x = (const double *)xv + p;
        double *y = (double *)yv + p;
        const __m256i b = _mm256_set1_epi64x((long long)s);
        const __m256i up = _mm256_setr_epi64x(63, 62, 61, 60);
#pragma GCC unroll 16
        for (int q = 0; q < 16; ++q) {
            const __m256i sh = _mm256_sub_epi64(up, _mm256_set1_epi64x(4 * q));
            const __m256d k = _mm256_castsi256_pd(_mm256_sllv_epi64(b, sh));
            __m256d v = _mm256_mul_pd(_mm256_loadu_pd(x + 4 * q), c->ad);
            if (aff)
                v = _mm256_add_pd(v, c->bd);
            v = _mm256_blendv_pd(c->cd, v, k);
            if (nt)
                _mm256_stream_pd(y + 4 * q, v);
            else
                _mm256_storeu_pd(y + 4 * q, v);
        }
    }
}

/* emit_part of the broadcast kernels: the elements of [e, e + 64) inside
 * [0, n), scalar. */
DF_INLINE void emit_bc_part(int kind, int aff, const void *xv, void *yv, int64_t e, uint64_t s,
                            int64_t n, const df_coef_t *c)
{
    const int64_t a = e < 0 ? 0 : e, end = e + GROUP < n ? e + GROUP : n;
    const float fa = _mm256_cvtss_f32(c->a), fb = _mm256_cvtss_f32(c->b);
    const float fc = _mm256_cvtss_f32(c->c);
    const double da = _mm256_cvtsd_f64(c->ad), db = _mm256_cvtsd_f64(c->bd);
    const double dc = _mm256_cvtsd_f64(c->cd);
    for (int64_t p = a; p < end; ++p) {
        const int keep = (int)((s >> (p - e)) & 1u);
        if (kind == K_F32) {
            const float v = ((const float *)xv)[p];
            ((float *)yv)[p] = !keep ? fc : aff ? fa * v + fb : v * fa;
        } else if (kind == K_F64) {
            const double v = ((const double *)xv)[p];
            ((double *)yv)[p] = !keep ? dc : aff ? da * v + db : v * da;
        }
    }
}

/* 64 elements from p set to c without reading x (a long dropped run). */
DF_INLINE void emit_fill(int kind, void *yv, int64_t p, const df_coef_t *c, int nt)
{
#pragma GCC unroll 8
    for (int q = 0; q < 8; ++q) {
        if (kind == K_F32 && nt)
            _mm256_stream_ps((float *)yv + p + 8 * q, c->c);
        else if (kind == K_F32)
            _mm256_storeu_ps((float *)yv + p + 8 * q, c->c);
        else if (nt) {
            _mm256_stream_pd((double *)yv + p + 8 * q, c->cd);
            _mm256_stream_pd((double *)yv + p + 8 * q + 4, c->cd);
        } else {
            _mm256_storeu_pd((double *)yv + p + 8 * q, c->cd);
            _mm256_storeu_pd((double *)yv + p + 8 * q + 4, c->cd);
        }
    }
}

/* What df_simd_driver.h needs besides gen(), emit_full() and emit_part(), and
 * emit_bc_full(), emit_bc_part(), emit_fill() for the broadcast kernels. */
#define DF_VF __m256
#define DF_VD __m256d
#define DF_SET1_PS _mm256_set1_ps
#define DF_SET1_PD _mm256_set1_pd
#define DF_SIMD_FN(name) name##_avx2
#define DF_SIMD_ISA DF_ISA_AVX2

#include "df_simd_driver.h"
#endif /* DF_HAVE_X86 */
