/* df_gaussian.h: what the Gaussian-dropout bodies share (not installed).
 *
 * The constants of the transform spelled out in df_kernels_gaussian.c, and the
 * range functions of the x86 bodies (df_kernels_gaussian_avx2.c and
 * df_kernels_gaussian_avx512.c). A range function computes y[i] = x[i] * (T)mult(i)
 * for i in [0, n), element 0 at block block0, on the calling thread; any n and
 * any block0 (it splits where the low 32 bits of the block index carry). */
#ifndef DF_GAUSSIAN_H
#define DF_GAUSSIAN_H

#include <stdint.h>

#include "df_internal.h"

#define DF_GAUSS_LN2 0x1.62e42fefa39efp-1        /* log(2) rounded to double */
#define DF_GAUSS_TWO_PI 0x1.921fb54442d18p+2     /* 2 pi rounded to double */
#define DF_GAUSS_SQRT_HALF_MANT 0x6a09e667f3bcdull /* mantissa field of sqrt(1/2) */

/* 1/17, 1/15, ..., 1/3: the atanh series log m = 2 s (1 + s2/3 + s2**2/5 + ...). */
static const double DF_GAUSS_LOG_C[8] = {
    0x1.e1e1e1e1e1e1ep-5, 0x1.1111111111111p-4, 0x1.3b13b13b13b14p-4, 0x1.745d1745d1746p-4,
    0x1.c71c71c71c71cp-4, 0x1.2492492492492p-3, 0x1.999999999999ap-3, 0x1.5555555555555p-2,
};
/* (-1)**k / (2k + 1)! for k = 7 .. 1. */
static const double DF_GAUSS_SIN_C[7] = {
    -0x1.ae7f3e733b81fp-41, 0x1.6124613a86d09p-33, -0x1.ae64567f544e4p-26, 0x1.71de3a556c734p-19,
    -0x1.a01a01a01a01ap-13, 0x1.1111111111111p-7,  -0x1.5555555555555p-3,
};
/* (-1)**k / (2k)! for k = 8 .. 1. */
static const double DF_GAUSS_COS_C[8] = {
    0x1.ae7f3e733b81fp-45,  -0x1.93974a8c07c9dp-37, 0x1.1eed8eff8d898p-29, -0x1.27e4fb7789f5cp-22,
    0x1.a01a01a01a01ap-16,  -0x1.6c16c16c16c17p-10, 0x1.5555555555555p-5,  -0x1.0000000000000p-1,
};

typedef void (*df_gauss_f32_fn)(const float *, float *, int64_t, df_key_t, df_block_t, double);
typedef void (*df_gauss_f64_fn)(const double *, double *, int64_t, df_key_t, df_block_t, double);

#if DF_HAVE_X86
void df_gauss_f32_avx2(const float *x, float *y, int64_t n, df_key_t key, df_block_t block0,
                       double sigma);
void df_gauss_f64_avx2(const double *x, double *y, int64_t n, df_key_t key, df_block_t block0,
                       double sigma);
void df_gauss_f32_avx512(const float *x, float *y, int64_t n, df_key_t key, df_block_t block0,
                         double sigma);
void df_gauss_f64_avx512(const double *x, double *y, int64_t n, df_key_t key,
                         df_block_t block0, double sigma);
#endif

#endif /* DF_GAUSSIAN_H */
