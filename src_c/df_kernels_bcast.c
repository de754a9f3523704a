/* df_kernels_bcast.c: structured dropout, a mask over a broadcast shape.
 *
 * The array is viewed as rows: the shape with size-1 axes removed and
 * neighbouring axes of the same kind (the mask varies along it, or is
 * broadcast along it) merged, its last axis the row. A row either shares one
 * mask bit (a channel map, a sample of DropPath: one scale-or-zero pass) or
 * follows a run of consecutive mask bits (channels-last, variational
 * dropout). The mask is never expanded. Rows are split among threads; each
 * row's mask position comes from its own index, so threading changes nothing. */
#include <string.h>

#include "df_internal.h"

#ifndef DF_USE_OPENMP
#define DF_USE_OPENMP 0
#endif

/* The merged view: dims[0..nd), mstride[d] the step of the mask's flat index
 * along d (0 where the mask is broadcast). */
typedef struct {
    int nd;
    int64_t dims[DF_MAX_DIMS];
    int64_t mstride[DF_MAX_DIMS];
    int64_t n;
} df_view_t;

static df_status_t make_view(df_view_t *v, int ndim, const int64_t *shape,
                             const int64_t *noise_shape)
{
    int64_t kind[DF_MAX_DIMS];
    v->nd = 0;
    v->n = 1;
    for (int d = 0; d < ndim; ++d) {
        if (shape[d] < 0 || noise_shape[d] < 0)
            return DF_ERR_ARG;
        if (noise_shape[d] != shape[d] && noise_shape[d] != 1)
            return DF_ERR_SHAPE;
        v->n *= shape[d];
        if (shape[d] == 1)
            continue;
        const int64_t k = noise_shape[d] == shape[d];
        if (v->nd > 0 && kind[v->nd - 1] == k) {
            v->dims[v->nd - 1] *= shape[d];
        } else {
            kind[v->nd] = k;
            v->dims[v->nd++] = shape[d];
        }
    }
    int64_t step = 1;
    for (int d = v->nd - 1; d >= 0; --d) {
        v->mstride[d] = kind[d] ? step : 0;
        step *= kind[d] ? v->dims[d] : 1;
    }
    if (v->nd == 0) { /* a single element, or none */
        v->nd = 1;
        v->dims[0] = v->n;
        v->mstride[0] = 0;
    }
    return DF_OK;
}

static inline int bit_at(const uint8_t *bits, int64_t i)
{
    return (bits[i >> 3] >> (i & 7)) & 1;
}

/* Bits [m, m + len) of src into dst from bit 0 (len <= 8 * sizeof dst). */
static void shift_bits(uint8_t *dst, const uint8_t *src, int64_t m, int64_t len)
{
    const int sh = (int)(m & 7);
    const uint8_t *s = src + (m >> 3);
    const int64_t nbytes = (len + 7) >> 3;
    for (int64_t i = 0; i < nbytes; ++i) {
        unsigned v = s[i] >> sh;
        if (sh && ((i + 1) << 3) - sh < len)
            v |= (unsigned)s[i + 1] << (8 - sh);
        dst[i] = (uint8_t)v;
    }
}

#define DF_ROW_BITS 4096 /* bits handled per kernel call of an unaligned row */

/* One row of len elements whose first mask bit is m (inner axis broadcast:
 * every element uses bit m; else bits m, m + 1, ...). */
#define DF_DEFINE_ROW(NAME, T, FWD, BWD)                                                  \
    static void NAME(const df_kernels_t *k, const T *x, T *y, const uint8_t *bits,        \
                     int64_t m, int64_t len, int varying, T a, T b, T c, int stream)       \
    {                                                                                     \
        if (!varying) {                                                                   \
            if (!bit_at(bits, m)) {                                                       \
                for (int64_t i = 0; i < len; ++i)                                         \
                    y[i] = c;                                                             \
            } else if (b == 0) {                                                          \
                const df_key_t key = {0, 0};                                              \
                const df_block_t blk = {0, 0};                                            \
                k->FWD(x, y, NULL, len, key, blk, (uint64_t)1 << 32, a, stream);          \
            } else {                                                                      \
                for (int64_t i = 0; i < len; ++i)                                         \
                    y[i] = a * x[i] + b;                                                  \
            }                                                                             \
        } else if (b == 0 && c == 0) {                                                    \
            if ((m & 7) == 0) {                                                           \
                k->BWD(x, y, bits + (m >> 3), len, a, stream);                            \
                return;                                                                   \
            }                                                                             \
            uint8_t buf[DF_ROW_BITS / 8];                                                 \
            for (int64_t i = 0; i < len; i += DF_ROW_BITS) {                              \
                const int64_t cnt = len - i < DF_ROW_BITS ? len - i : DF_ROW_BITS;        \
                shift_bits(buf, bits, m + i, cnt);                                        \
                k->BWD(x + i, y + i, buf, cnt, a, stream);                                \
            }                                                                             \
        } else {                                                                          \
            for (int64_t i = 0; i < len; ++i)                                             \
                y[i] = bit_at(bits, m + i) ? a * x[i] + b : c;                            \
        }                                                                                 \
    }

DF_DEFINE_ROW(row_f32, float, fwd_f32, bwd_f32)
DF_DEFINE_ROW(row_f64, double, fwd_f64, bwd_f64)

/* The mask offset of row r: its index over dims[0..nd-1) in mixed radix. */
static int64_t row_mask(const df_view_t *v, int64_t r)
{
    int64_t m = 0;
    for (int d = v->nd - 2; d >= 0; --d) {
        m += (r % v->dims[d]) * v->mstride[d];
        r /= v->dims[d];
    }
    return m;
}

#define DF_DEFINE_BCAST(NAME, T, ROW)                                                     \
    df_status_t NAME(const T *x, T *y, const uint8_t *bits, int ndim, const int64_t *shape, \
                     const int64_t *noise_shape, T a, T b, T c, const df_opts_t *opts)     \
    {                                                                                     \
        if (ndim < 0 || ndim > DF_MAX_DIMS || (ndim > 0 && (!shape || !noise_shape)))     \
            return DF_ERR_ARG;                                                            \
        df_view_t v;                                                                      \
        df_status_t st = make_view(&v, ndim, shape, noise_shape);                         \
        if (st != DF_OK)                                                                  \
            return st;                                                                    \
        if (v.n > 0 && (!x || !y || !bits))                                               \
            return DF_ERR_ARG;                                                            \
        const df_kernels_t *k = df_kernels_get(opts ? opts->isa : DF_ISA_AUTO);           \
        if (k == NULL)                                                                    \
            return DF_ERR_ISA;                                                            \
        if (v.n == 0)                                                                     \
            return DF_OK;                                                                 \
        const int64_t len = v.dims[v.nd - 1], rows = v.n / len;                           \
        const int varying = v.mstride[v.nd - 1] != 0;                                     \
        const int stream = (uint64_t)v.n * sizeof(T) >= df_stream_min_bytes();    \
        int nt = df_threads_for(v.n, opts);                                               \
        if (nt > rows)                                                                    \
            nt = (int)rows;                                                               \
        DF_BCAST_PARALLEL                                                                 \
        for (int64_t r = 0; r < rows; ++r)                                                \
            ROW(k, x + r * len, y + r * len, bits, row_mask(&v, r), len, varying, a, b,   \
                c, stream);                                                               \
        return DF_OK;                                                                     \
    }

#if DF_USE_OPENMP
#define DF_BCAST_PARALLEL _Pragma("omp parallel for schedule(static) num_threads(nt) if (nt > 1)")
#else
#define DF_BCAST_PARALLEL (void)nt;
#endif

DF_DEFINE_BCAST(df_bcast_apply_f32, float, row_f32)
DF_DEFINE_BCAST(df_bcast_apply_f64, double, row_f64)
