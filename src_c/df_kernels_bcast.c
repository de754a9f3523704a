/* df_kernels_bcast.c: structured dropout, a mask over a broadcast shape.
 *
 * The array is viewed as rows: the shape with size-1 axes removed and
 * neighbouring axes of the same kind (the mask varies along it, or is
 * broadcast along it) merged, its last axis the row. A row either shares one
 * mask bit (a channel map, a sample of DropPath: one scale-or-zero pass) or
 * follows a run of consecutive mask bits (channels-last, variational
 * dropout). The mask is never expanded. Each thread takes a contiguous range
 * of rows in one call of the instruction set's bcast kernel (df_internal.h),
 * which finds each row's mask position from its own index: threading and
 * splitting change nothing. */
#include "df_internal.h"

#ifndef DF_USE_OPENMP
#define DF_USE_OPENMP 0
#endif
#if DF_USE_OPENMP
#include <omp.h>
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

/* The kernels' description of view v: its last axis the row, the rest the
 * outer digits; nbits the mask's element count (noise_shape's product). */
static void rows_of(df_rows_t *rv, const df_view_t *v, const uint8_t *bits, int ndim,
                    const int64_t *noise_shape)
{
    rv->bits = bits;
    rv->nbits = 1;
    for (int d = 0; d < ndim; ++d)
        rv->nbits *= noise_shape[d];
    rv->len = v->dims[v->nd - 1];
    rv->varying = v->mstride[v->nd - 1] != 0;
    rv->nd = v->nd - 1;
    for (int d = 0; d < rv->nd; ++d) {
        rv->dims[d] = v->dims[d];
        rv->mstride[d] = v->mstride[d];
    }
}

/* One kernel call per thread over a contiguous range of rows: the ISA's bcast
 * kernel keeps its stores aligned to y's cache lines across row boundaries and
 * fences non-temporal stores once. Rows split evenly, in order.
 * Signed zeros, as the header states: b == 0 is taken as -0.0, so that a * x + b
 * is a * x exactly (the kernels then skip the add), and c == 0 as +0.0 (the
 * varying-row kernels then clear dropped lanes with a bit mask). */
#define DF_DEFINE_BCAST(NAME, T, FN)                                                      \
    df_status_t NAME(const T *x, T *y, const uint8_t *bits, int ndim, const int64_t *shape, \
                     const int64_t *noise_shape, T a, T b, T c, const df_opts_t *opts)     \
    {                                                                                     \
        if (ndim < 0 || ndim > DF_MAX_DIMS || (ndim > 0 && (!shape || !noise_shape)))     \
            return DF_ERR_ARG;                                                            \
        if (b == 0)                                                                       \
            b = -(T)0;                                                                    \
        if (c == 0)                                                                       \
            c = (T)0;                                                                     \
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
        df_rows_t rv;                                                                     \
        rows_of(&rv, &v, bits, ndim, noise_shape);                                        \
        const int64_t rows = v.n / rv.len;                                                \
        const int affine = !(b == 0) || (rv.varying && !(c == 0));                        \
        const T drop = affine || !rv.varying ? c : (T)0;                                  \
        const int stream = (uint64_t)v.n * sizeof(T) >= df_stream_min_bytes();            \
        const int flags = (affine ? DF_BC_AFFINE : 0) | (stream ? DF_BC_STREAM : 0);      \
        int nt = df_threads_for(v.n, opts);                                               \
        if (nt > rows)                                                                    \
            nt = (int)rows;                                                               \
        DF_BCAST_PARALLEL                                                                 \
        {                                                                                 \
            const int t = DF_THREAD_NUM, tn = DF_NUM_THREADS;                             \
            const int64_t q = rows / tn, rem = rows % tn;                                 \
            const int64_t r0 = q * t + (t < rem ? t : rem), r1 = r0 + q + (t < rem);      \
            if (r1 > r0)                                                                  \
                k->FN(x, y, &rv, r0, r1, a, b, drop, flags);                              \
        }                                                                                 \
        return DF_OK;                                                                     \
    }

#if DF_USE_OPENMP
#define DF_BCAST_PARALLEL _Pragma("omp parallel num_threads(nt) if (nt > 1)")
#define DF_THREAD_NUM omp_get_thread_num()
#define DF_NUM_THREADS omp_get_num_threads()
#else
#define DF_BCAST_PARALLEL (void)nt;
#define DF_THREAD_NUM 0
#define DF_NUM_THREADS 1
#endif

DF_DEFINE_BCAST(df_bcast_apply_f32, float, bcast_f32)
DF_DEFINE_BCAST(df_bcast_apply_f64, double, bcast_f64)
