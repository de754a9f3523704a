/* df_kernels_gaussian_avx2.c: Gaussian dropout on AVX2, four blocks (32
 * elements) per group. The body is df_gaussian_simd.h; this file supplies its
 * 4-lane operations and the stores, which turn the eight vectors of a group
 * (vector h, lane j = element 8 j + h) into element order with in-lane 4x4
 * transposes. AVX2 has no mask registers: a lane mask is a vector whose sign
 * bits (vblendvpd) or whole lanes (compares) are set. It reproduces the scalar
 * specification in df_kernels_gaussian.c bit for bit (test_kat.c and
 * tests/test_gaussian.py compare). */
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
#include <immintrin.h>

#define GV_LANES 4
#define GV_TARGET __attribute__((target("avx2")))
#define GV_INLINE static inline __attribute__((always_inline)) GV_TARGET

typedef __m256d vd;
typedef __m256i vi;
typedef __m256i vm; /* all-ones lanes from a compare, or sign bits from a shift */

#define GV_SET1_64(a) _mm256_set1_epi64x((long long)(a))
#define GV_SET1_32(a) _mm256_set1_epi32((int)(a))
#define GV_SET1_PD(a) _mm256_set1_pd(a)
#define GV_LANE_IDS _mm256_setr_epi64x(0, 1, 2, 3)
#define GV_ADD32 _mm256_add_epi32
#define GV_MUL32 _mm256_mul_epu32
#define GV_XOR _mm256_xor_si256
#define GV_AND _mm256_and_si256
#define GV_OR _mm256_or_si256
#define GV_SRLI64 _mm256_srli_epi64
#define GV_SLLI64 _mm256_slli_epi64
#define GV_SLLI32 _mm256_slli_epi32
#define GV_BLEND_HI(a, b) _mm256_blend_epi32(a, b, 0xAA) /* low dwords of a, high of b */
#define GV_CAST_PD _mm256_castsi256_pd
#define GV_CAST_SI _mm256_castpd_si256
#define GV_ADD_PD _mm256_add_pd
#define GV_SUB_PD _mm256_sub_pd
#define GV_MUL_PD _mm256_mul_pd
#define GV_DIV_PD _mm256_div_pd
#define GV_SQRT_PD _mm256_sqrt_pd
#define GV_XOR_PD _mm256_xor_pd
#define GV_LT64(a, b) _mm256_cmpgt_epi64(b, a) /* a < b, signed */
#define GV_SIGN_MASK(a) (a)
/* m ? b : a, reading the sign bit of each lane of m */
#define GV_SEL_PD(m, a, b) _mm256_blendv_pd(a, b, _mm256_castsi256_pd(m))
#define GV_SEL_SI(m, a, b)                                                                 \
    _mm256_castpd_si256(_mm256_blendv_pd(_mm256_castsi256_pd(a), _mm256_castsi256_pd(b),   \
                                         _mm256_castsi256_pd(m)))
/* m ? a - 1 : a for a compare's all-ones m (= -1) */
#define GV_DEC64(m, a) _mm256_add_epi64(a, m)

/* y[8 j + h] = x[8 j + h] * (float)mult[h][j]: each pair (h, h + 4) in one
 * register, then a 4x4 transpose within each 128-bit half gives block j's
 * eight elements in register j. */
GV_INLINE void gv_store_f32(const float *x, float *y, const vd mult[8])
{
    __m256 a[4];
    for (int h = 0; h < 4; ++h)
        a[h] = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm256_cvtpd_ps(mult[h])),
                                    _mm256_cvtpd_ps(mult[h + 4]), 1);
    const __m256 t0 = _mm256_unpacklo_ps(a[0], a[1]), t1 = _mm256_unpackhi_ps(a[0], a[1]);
    const __m256 t2 = _mm256_unpacklo_ps(a[2], a[3]), t3 = _mm256_unpackhi_ps(a[2], a[3]);
    __m256 r[4];
    r[0] = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
    r[1] = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
    r[2] = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
    r[3] = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
    for (int j = 0; j < 4; ++j)
        _mm256_storeu_ps(y + 8 * j, _mm256_mul_ps(_mm256_loadu_ps(x + 8 * j), r[j]));
}

/* y[8 j + h] = x[8 j + h] * mult[h][j]: a 4x4 transpose of doubles per half block. */
GV_INLINE void gv_store_f64(const double *x, double *y, const vd mult[8])
{
    for (int half = 0; half < 2; ++half) {
        const vd *m = mult + 4 * half;
        const vd t0 = _mm256_unpacklo_pd(m[0], m[1]), t1 = _mm256_unpackhi_pd(m[0], m[1]);
        const vd t2 = _mm256_unpacklo_pd(m[2], m[3]), t3 = _mm256_unpackhi_pd(m[2], m[3]);
        vd r[4];
        r[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
        r[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
        r[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
        r[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
        for (int j = 0; j < 4; ++j) {
            const int64_t o = 8 * j + 4 * half;
            _mm256_storeu_pd(y + o, _mm256_mul_pd(_mm256_loadu_pd(x + o), r[j]));
        }
    }
}

#include "df_gaussian_simd.h"

GV_DEFINE_RANGE(df_gauss_f32_avx2, float, gv_segment_f32)
GV_DEFINE_RANGE(df_gauss_f64_avx2, double, gv_segment_f64)

#endif /* DF_HAVE_X86 */
