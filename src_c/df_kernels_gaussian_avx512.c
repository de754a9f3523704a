/* df_kernels_gaussian_avx512.c: Gaussian dropout on AVX-512, eight blocks (64
 * elements) per group. The body is df_gaussian_simd.h, the same source as the
 * AVX2 one; this file supplies its 8-lane operations (lane masks in mask
 * registers) and the stores, which turn the eight vectors of a group (vector h,
 * lane j = element 8 j + h) into element order: an 8x8 transpose of doubles,
 * or for float32 in-lane 4x4 transposes and 128-bit shuffles. It reproduces the
 * scalar specification in df_kernels_gaussian.c bit for bit (test_kat.c and
 * tests/test_gaussian.py compare where the CPU has AVX-512;
 * tests/c/gauss_simde.sh runs this file under SIMDe's portable AVX-512). */
#include "df_internal.h"
#include "df_philox.h"
#include "df_gaussian.h"

#if DF_HAVE_X86
/* GCC: schedule before register allocation, minding register pressure; the
 * body keeps more vectors live than there are registers, and this halves the
 * spill code (about 5% faster on Zen 3). Scheduling changes no result. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("schedule-insns", "sched-pressure")
#endif
#ifdef DF_GAUSS_SIMDE
/* A test build only (tests/c/gauss_simde.sh): SIMDe's portable AVX-512, which
 * lacks these names. */
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
typedef simde__mmask8 __mmask8;
#define _mm512_cvtpd_ps(a)                                                                 \
    _mm256_set_m128(_mm256_cvtpd_ps(_mm512_extractf64x4_pd(a, 1)),                          \
                    _mm256_cvtpd_ps(_mm512_castpd512_pd256(a)))
#define _mm512_shuffle_f32x4(a, b, i)                                                      \
    _mm512_castsi512_ps(_mm512_shuffle_i32x4(_mm512_castps_si512(a), _mm512_castps_si512(b), i))
#define _mm512_shuffle_f64x2(a, b, i)                                                      \
    _mm512_castsi512_pd(_mm512_shuffle_i32x4(_mm512_castpd_si512(a), _mm512_castpd_si512(b), i))
#else
#include <immintrin.h>
#endif

#define GV_LANES 8
#ifdef DF_GAUSS_SIMDE
#define GV_TARGET
#else
#define GV_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
#endif
#define GV_INLINE static inline __attribute__((always_inline)) GV_TARGET

typedef __m512d vd;
typedef __m512i vi;
typedef __mmask8 vm;

#define GV_SET1_64(a) _mm512_set1_epi64((long long)(a))
#define GV_SET1_32(a) _mm512_set1_epi32((int)(a))
#define GV_SET1_PD(a) _mm512_set1_pd(a)
#define GV_LANE_IDS _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0)
#define GV_ADD32 _mm512_add_epi32
#define GV_MUL32 _mm512_mul_epu32
#define GV_XOR _mm512_xor_si512
#define GV_AND _mm512_and_si512
#define GV_OR _mm512_or_si512
#define GV_SRLI64 _mm512_srli_epi64
#define GV_SLLI64 _mm512_slli_epi64
#define GV_SLLI32 _mm512_slli_epi32
#define GV_BLEND_HI(a, b) _mm512_mask_blend_epi32(0xAAAA, a, b) /* low dwords of a, high of b */
#define GV_CAST_PD _mm512_castsi512_pd
#define GV_CAST_SI _mm512_castpd_si512
#define GV_ADD_PD _mm512_add_pd
#define GV_SUB_PD _mm512_sub_pd
#define GV_MUL_PD _mm512_mul_pd
#define GV_DIV_PD _mm512_div_pd
#define GV_SQRT_PD _mm512_sqrt_pd
#define GV_XOR_PD _mm512_xor_pd
#define GV_LT64(a, b) _mm512_cmpgt_epi64_mask(b, a) /* a < b, signed */
#define GV_SIGN_MASK(a) _mm512_movepi64_mask(a)
#define GV_SEL_PD(m, a, b) _mm512_mask_blend_pd(m, a, b)     /* m ? b : a */
#define GV_SEL_SI(m, a, b) _mm512_mask_blend_epi64(m, a, b)  /* m ? b : a */
#define GV_DEC64(m, a) _mm512_mask_sub_epi64(a, m, a, _mm512_set1_epi64(1))

/* Register t of the in-lane 4x4 transpose of a[0..3] (float lanes within each
 * 128-bit lane): t[r] lane l element i = a[i] lane l element r. */
GV_INLINE void gv_transpose4_ps(const __m512 a[4], __m512 t[4])
{
    const __m512 u0 = _mm512_unpacklo_ps(a[0], a[1]), u1 = _mm512_unpackhi_ps(a[0], a[1]);
    const __m512 u2 = _mm512_unpacklo_ps(a[2], a[3]), u3 = _mm512_unpackhi_ps(a[2], a[3]);
    t[0] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(u0), _mm512_castps_pd(u2)));
    t[1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(u0), _mm512_castps_pd(u2)));
    t[2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(u1), _mm512_castps_pd(u3)));
    t[3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(u1), _mm512_castps_pd(u3)));
}

/* y[8 j + h] = x[8 j + h] * (float)mult[h][j]. a[h] holds mult[h] (128-bit lanes
 * 0, 1: blocks 0-3, 4-7) and mult[h + 4] (lanes 2, 3); after the in-lane
 * transpose t[r] lane 0 is elements 0-3 of block r, lane 1 of block r + 4,
 * lane 2 elements 4-7 of block r, lane 3 of block r + 4. */
GV_INLINE void gv_store_f32(const float *x, float *y, const vd mult[8])
{
    __m512 a[4], t[4], o[4];
    for (int h = 0; h < 4; ++h)
        a[h] = _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(mult[h])),
                                  _mm512_cvtpd_ps(mult[h + 4]), 1);
    gv_transpose4_ps(a, t);
    o[0] = _mm512_shuffle_f32x4(t[0], t[1], _MM_SHUFFLE(2, 0, 2, 0)); /* blocks 0, 1 */
    o[1] = _mm512_shuffle_f32x4(t[2], t[3], _MM_SHUFFLE(2, 0, 2, 0)); /* blocks 2, 3 */
    o[2] = _mm512_shuffle_f32x4(t[0], t[1], _MM_SHUFFLE(3, 1, 3, 1)); /* blocks 4, 5 */
    o[3] = _mm512_shuffle_f32x4(t[2], t[3], _MM_SHUFFLE(3, 1, 3, 1)); /* blocks 6, 7 */
    for (int k = 0; k < 4; ++k)
        _mm512_storeu_ps(y + 16 * k, _mm512_mul_ps(_mm512_loadu_ps(x + 16 * k), o[k]));
}

/* y[8 j + h] = x[8 j + h] * mult[h][j]: an 8x8 transpose of doubles. */
GV_INLINE void gv_store_f64(const double *x, double *y, const vd mult[8])
{
    vd a[8], b[8], r[8];
    for (int i = 0; i < 4; ++i) { /* a[p + 2 i'] lane l = (mult[2i], mult[2i+1]) at 2 l + p */
        a[2 * i] = _mm512_unpacklo_pd(mult[2 * i], mult[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_pd(mult[2 * i], mult[2 * i + 1]);
    }
    b[0] = _mm512_shuffle_f64x2(a[0], a[2], _MM_SHUFFLE(2, 0, 2, 0));
    b[1] = _mm512_shuffle_f64x2(a[0], a[2], _MM_SHUFFLE(3, 1, 3, 1));
    b[2] = _mm512_shuffle_f64x2(a[1], a[3], _MM_SHUFFLE(2, 0, 2, 0));
    b[3] = _mm512_shuffle_f64x2(a[1], a[3], _MM_SHUFFLE(3, 1, 3, 1));
    b[4] = _mm512_shuffle_f64x2(a[4], a[6], _MM_SHUFFLE(2, 0, 2, 0));
    b[5] = _mm512_shuffle_f64x2(a[4], a[6], _MM_SHUFFLE(3, 1, 3, 1));
    b[6] = _mm512_shuffle_f64x2(a[5], a[7], _MM_SHUFFLE(2, 0, 2, 0));
    b[7] = _mm512_shuffle_f64x2(a[5], a[7], _MM_SHUFFLE(3, 1, 3, 1));
    r[0] = _mm512_shuffle_f64x2(b[0], b[4], _MM_SHUFFLE(2, 0, 2, 0));
    r[4] = _mm512_shuffle_f64x2(b[0], b[4], _MM_SHUFFLE(3, 1, 3, 1));
    r[2] = _mm512_shuffle_f64x2(b[1], b[5], _MM_SHUFFLE(2, 0, 2, 0));
    r[6] = _mm512_shuffle_f64x2(b[1], b[5], _MM_SHUFFLE(3, 1, 3, 1));
    r[1] = _mm512_shuffle_f64x2(b[2], b[6], _MM_SHUFFLE(2, 0, 2, 0));
    r[5] = _mm512_shuffle_f64x2(b[2], b[6], _MM_SHUFFLE(3, 1, 3, 1));
    r[3] = _mm512_shuffle_f64x2(b[3], b[7], _MM_SHUFFLE(2, 0, 2, 0));
    r[7] = _mm512_shuffle_f64x2(b[3], b[7], _MM_SHUFFLE(3, 1, 3, 1));
    for (int j = 0; j < 8; ++j)
        _mm512_storeu_pd(y + 8 * j, _mm512_mul_pd(_mm512_loadu_pd(x + 8 * j), r[j]));
}

#include "df_gaussian_simd.h"

GV_DEFINE_RANGE(df_gauss_f32_avx512, float, gv_segment_f32)
GV_DEFINE_RANGE(df_gauss_f64_avx512, double, gv_segment_f64)

#endif /* DF_HAVE_X86 */
