/* df_kernels_scalar.c: the portable bodies. They are the specification: every
 * SIMD body must reproduce them bit for bit. Any C11 compiler, any CPU. */
#include "df_internal.h"
#include "df_philox.h"

static void mask_scalar(uint8_t *bits, int64_t n, df_key_t key, df_block_t block0,
                        uint64_t thresh)
{
    for (int64_t i = 0; i < n; i += 8) {
        df_block_t b = df_block_add(block0, (uint64_t)(i >> 3));
        uint32_t w[4];
        df_philox_block(w, key, b, 0);
        unsigned keep = df_keep_byte(w, key, b, thresh);
        int64_t m = n - i < 8 ? n - i : 8;
        bits[i >> 3] = (uint8_t)(keep & ((1u << m) - 1u));
    }
}

/* y[i] = keep(i) ? x[i] * scale : 0, one block (8 elements) at a time. */
#define DF_DEFINE_FWD_SCALAR(NAME, T)                                                      \
    static void NAME(const T *x, T *y, uint8_t *bits, int64_t n, df_key_t key,             \
                     df_block_t block0, uint64_t thresh, T scale, int stream)              \
    {                                                                                      \
        (void)stream;                                                                      \
        if (thresh >> 32) { /* keep everything: nothing to draw */                         \
            for (int64_t i = 0; i < n; ++i)                                                \
                y[i] = x[i] * scale;                                                       \
            for (int64_t i = 0; bits && i < n; i += 8)                                     \
                bits[i >> 3] = (uint8_t)(n - i < 8 ? (1u << (n - i)) - 1u : 0xFFu);        \
            return;                                                                        \
        }                                                                                  \
        for (int64_t i = 0; i < n; i += 8) {                                               \
            df_block_t b = df_block_add(block0, (uint64_t)(i >> 3));                       \
            uint32_t w[4];                                                                 \
            df_philox_block(w, key, b, 0);                                                 \
            unsigned keep = df_keep_byte(w, key, b, thresh);                               \
            int64_t m = n - i < 8 ? n - i : 8;                                             \
            for (int64_t h = 0; h < m; ++h)                                                \
                y[i + h] = ((keep >> h) & 1u) ? x[i + h] * scale : (T)0;                   \
            if (bits)                                                                      \
                bits[i >> 3] = (uint8_t)(keep & ((1u << m) - 1u));                         \
        }                                                                                  \
    }

/* dx[i] = bit i ? dy[i] * scale : 0. */
#define DF_DEFINE_BWD_SCALAR(NAME, T)                                                      \
    static void NAME(const T *dy, T *dx, const uint8_t *bits, int64_t n, T scale,          \
                     int stream)                                                           \
    {                                                                                      \
        (void)stream;                                                                      \
        for (int64_t i = 0; i < n; ++i)                                                    \
            dx[i] = ((bits[i >> 3] >> (i & 7)) & 1u) ? dy[i] * scale : (T)0;               \
    }

/* Rows [r0, r1) of a broadcast view (df_internal.h): the specification of the
 * bcast kernels, one element at a time. */
#define DF_DEFINE_BCAST_SCALAR(NAME, T)                                                    \
    static void NAME(const T *x, T *y, const df_rows_t *v, int64_t r0, int64_t r1, T a,  \
                     T b, T c, int flags)                                                  \
    {                                                                                      \
        const int aff = (flags & DF_BC_AFFINE) != 0;                                       \
        const int64_t len = v->len;                                                        \
        df_rowpos_t pos;                                                                   \
        df_rowpos_init(&pos, v, r0);                                                       \
        for (int64_t r = r0; r < r1; ++r, df_rowpos_next(&pos, v)) {                       \
            const T *xr = x + r * len;                                                     \
            T *yr = y + r * len;                                                           \
            const uint8_t *bits = v->bits + (pos.m >> 3); /* the row's bits from bit o */  \
            const int64_t o = pos.m & 7;                                                   \
            if (v->varying && aff) {                                                       \
                for (int64_t i = 0; i < len; ++i)                                          \
                    yr[i] = df_bit(bits, o + i) ? a * xr[i] + b : c;                       \
            } else if (v->varying) {                                                       \
                for (int64_t i = 0; i < len; ++i)                                          \
                    yr[i] = df_bit(bits, o + i) ? xr[i] * a : c;                           \
            } else if (!df_bit(bits, o)) {                                                 \
                for (int64_t i = 0; i < len; ++i)                                          \
                    yr[i] = c;                                                             \
            } else if (aff) {                                                              \
                for (int64_t i = 0; i < len; ++i)                                          \
                    yr[i] = a * xr[i] + b;                                                 \
            } else {                                                                       \
                for (int64_t i = 0; i < len; ++i)                                          \
                    yr[i] = xr[i] * a;                                                     \
            }                                                                              \
        }                                                                                  \
    }

DF_DEFINE_FWD_SCALAR(fwd_f32_scalar, float)
DF_DEFINE_FWD_SCALAR(fwd_f64_scalar, double)
DF_DEFINE_BWD_SCALAR(bwd_f32_scalar, float)
DF_DEFINE_BWD_SCALAR(bwd_f64_scalar, double)
DF_DEFINE_BCAST_SCALAR(bcast_f32_scalar, float)
DF_DEFINE_BCAST_SCALAR(bcast_f64_scalar, double)

void df_bcast_f32_scalar(const float *x, float *y, const df_rows_t *v, int64_t r0, int64_t r1,
                         float a, float b, float c, int flags)
{
    bcast_f32_scalar(x, y, v, r0, r1, a, b, c, flags);
}

void df_bcast_f64_scalar(const double *x, double *y, const df_rows_t *v, int64_t r0, int64_t r1,
                         double a, double b, double c, int flags)
{
    bcast_f64_scalar(x, y, v, r0, r1, a, b, c, flags);
}

const df_kernels_t df_kernels_scalar = {
    DF_ISA_SCALAR,  mask_scalar,      fwd_f32_scalar,   fwd_f64_scalar,
    bwd_f32_scalar, bwd_f64_scalar,   bcast_f32_scalar, bcast_f64_scalar,
};
