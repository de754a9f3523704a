/* df_api.c: the public entry points. Validate, split the range into per-thread
 * parts (each a multiple of DF_CHUNK_ALIGN elements, so each starts on a block
 * boundary and a mask byte), split again where the 32-bit low counter word
 * wraps, and hand each piece to the chosen instruction set's kernel. */
#include <math.h>

#include "df_internal.h"
#include "df_philox.h"

#ifndef DF_USE_OPENMP
#define DF_USE_OPENMP 0
#endif
#if DF_USE_OPENMP
#include <omp.h>
#endif

const char *df_version(void) { return DF_VERSION_STRING; }

const char *df_status_str(df_status_t status)
{
    switch (status) {
    case DF_OK:
        return "ok";
    case DF_ERR_ARG:
        return "invalid argument: NULL pointer with n > 0, or n < 0";
    case DF_ERR_THRESH:
        return "threshold above 2**32";
    case DF_ERR_ISA:
        return "instruction set not available on this CPU or build";
    case DF_ERR_RANGE:
        return "counter range passes 2**96 blocks";
    case DF_ERR_ROUNDS:
        return "Philox rounds outside [0, 16]";
    case DF_ERR_SHAPE:
        return "noise shape does not broadcast to the array's shape";
    case DF_ERR_VALUE:
        return "parameter outside its domain (NaN, infinite or negative)";
    case DF_ERR_INDEX:
        return "index outside its range (an embedding id not in [0, vocab))";
    default:
        return "unknown status";
    }
}

int df_has_openmp(void) { return DF_USE_OPENMP; }

int df_max_threads(void)
{
#if DF_USE_OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

uint64_t df_threshold(double p)
{
    double t = floor((1.0 - p) * 4294967296.0);
    if (!(t > 0.0))
        return 0;
    return t >= 4294967296.0 ? (uint64_t)1 << 32 : (uint64_t)t;
}

df_status_t df_philox4x32(const uint32_t *ctr, const uint32_t *key, uint32_t *out, int64_t n,
                          int rounds)
{
    if (n < 0 || (n > 0 && (!ctr || !key || !out)))
        return DF_ERR_ARG;
    if (rounds < 0 || rounds > 16)
        return DF_ERR_ROUNDS;
    for (int64_t j = 0; j < n; ++j) {
        uint32_t c[4] = {ctr[4 * j], ctr[4 * j + 1], ctr[4 * j + 2], ctr[4 * j + 3]};
        df_philox4x32_r(c, key[2 * j], key[2 * j + 1], rounds);
        for (int w = 0; w < 4; ++w)
            out[4 * j + w] = c[w];
    }
    return DF_OK;
}

typedef enum { OP_MASK, OP_FWD_F32, OP_FWD_F64, OP_BWD_F32, OP_BWD_F64 } df_op_t;

/* Everything one call needs; each thread runs job_range on its own part. */
typedef struct {
    df_op_t op;
    const df_kernels_t *k;
    const void *x;
    void *y;
    uint8_t *bits;
    const uint8_t *bits_in;
    df_key_t key;
    df_block_t block0;
    uint64_t thresh;
    double scale;
    int stream;
} df_job_t;

static void job_piece(const df_job_t *j, int64_t start, int64_t len)
{
    const df_block_t b = df_block_add(j->block0, (uint64_t)(start >> 3));
    uint8_t *bits = j->bits ? j->bits + (start >> 3) : NULL;
    switch (j->op) {
    case OP_MASK:
        j->k->mask(bits, len, j->key, b, j->thresh);
        break;
    case OP_FWD_F32:
        j->k->fwd_f32((const float *)j->x + start, (float *)j->y + start, bits, len, j->key, b,
                      j->thresh, (float)j->scale, j->stream);
        break;
    case OP_FWD_F64:
        j->k->fwd_f64((const double *)j->x + start, (double *)j->y + start, bits, len, j->key, b,
                      j->thresh, j->scale, j->stream);
        break;
    case OP_BWD_F32:
        j->k->bwd_f32((const float *)j->x + start, (float *)j->y + start,
                      j->bits_in + (start >> 3), len, (float)j->scale, j->stream);
        break;
    case OP_BWD_F64:
        j->k->bwd_f64((const double *)j->x + start, (double *)j->y + start,
                      j->bits_in + (start >> 3), len, j->scale, j->stream);
        break;
    }
}

/* Elements [start, start + len), start a multiple of 8, cut where the low
 * counter word wraps so kernels never see a carry. */
static void job_range(const df_job_t *j, int64_t start, int64_t len)
{
    while (len > 0) {
        const df_block_t b = df_block_add(j->block0, (uint64_t)(start >> 3));
        const uint64_t to_wrap = ((uint64_t)1 << 32) - (b.lo & 0xFFFFFFFFu);
        int64_t piece = len;
        if (j->op <= OP_FWD_F64 && (uint64_t)len > 8 * to_wrap)
            piece = (int64_t)(8 * to_wrap);
        job_piece(j, start, piece);
        start += piece;
        len -= piece;
    }
}

int df_threads_for(int64_t n, const df_opts_t *opts)
{
#if DF_USE_OPENMP
    int nt = (opts && opts->nthreads > 0) ? opts->nthreads : omp_get_max_threads();
    int64_t most = n / DF_PARALLEL_MIN;
    if (most < nt)
        nt = most < 1 ? 1 : (int)most;
    return nt;
#else
    (void)n;
    (void)opts;
    return 1;
#endif
}

static void job_run(const df_job_t *j, int64_t n, int nt)
{
    if (nt <= 1) {
        job_range(j, 0, n);
        return;
    }
    int64_t part = (n + nt - 1) / nt;
    part = (part + DF_CHUNK_ALIGN - 1) / DF_CHUNK_ALIGN * DF_CHUNK_ALIGN;
#if DF_USE_OPENMP
#pragma omp parallel for schedule(static) num_threads(nt)
#endif
    for (int t = 0; t < nt; ++t) {
        int64_t start = (int64_t)t * part;
        if (start < n)
            job_range(j, start, n - start < part ? n - start : part);
    }
}

static df_status_t check_counter(int64_t n, df_block_t block0, uint64_t thresh)
{
    if (thresh > ((uint64_t)1 << 32))
        return DF_ERR_THRESH;
    const uint64_t blocks = (uint64_t)(n + 7) / 8;
    const uint64_t end_lo = block0.lo + blocks;
    if (end_lo < block0.lo && block0.hi == 0xFFFFFFFFu && end_lo != 0)
        return DF_ERR_RANGE;
    return DF_OK;
}

static df_status_t start(df_job_t *j, int64_t n, const df_opts_t *opts, size_t esize)
{
    j->k = df_kernels_get(opts ? opts->isa : DF_ISA_AUTO);
    if (j->k == NULL)
        return DF_ERR_ISA;
    j->stream = (uint64_t)n * esize >= df_stream_min_bytes();
    job_run(j, n, df_threads_for(n, opts));
    return DF_OK;
}

df_status_t df_dropout_mask(uint8_t *bits, int64_t n, df_key_t key, df_block_t block0,
                            uint64_t thresh, const df_opts_t *opts)
{
    if (n < 0 || (n > 0 && !bits))
        return DF_ERR_ARG;
    df_status_t st = check_counter(n, block0, thresh);
    if (st != DF_OK)
        return st;
    df_job_t j = {OP_MASK, NULL, NULL, NULL, bits, NULL, key, block0, thresh, 0.0, 0};
    return start(&j, n, opts, 1);
}

#define DF_DEFINE_FWD(NAME, T, OP)                                                         \
    df_status_t NAME(const T *x, T *y, uint8_t *bits, int64_t n, df_key_t key,             \
                     df_block_t block0, uint64_t thresh, T scale, const df_opts_t *opts)   \
    {                                                                                      \
        if (n < 0 || (n > 0 && (!x || !y)))                                                \
            return DF_ERR_ARG;                                                             \
        df_status_t st = check_counter(n, block0, thresh);                                 \
        if (st != DF_OK)                                                                   \
            return st;                                                                     \
        df_job_t j = {OP, NULL, x, y, bits, NULL, key, block0, thresh, (double)scale, 0};  \
        return start(&j, n, opts, sizeof(T));                                              \
    }

#define DF_DEFINE_BWD(NAME, T, OP)                                                         \
    df_status_t NAME(const T *dy, T *dx, const uint8_t *bits, int64_t n, T scale,          \
                     const df_opts_t *opts)                                                \
    {                                                                                      \
        if (n < 0 || (n > 0 && (!dy || !dx || !bits)))                                     \
            return DF_ERR_ARG;                                                             \
        df_key_t key = {0, 0};                                                             \
        df_block_t b = {0, 0};                                                             \
        df_job_t j = {OP, NULL, dy, dx, NULL, bits, key, b, 0, (double)scale, 0};          \
        return start(&j, n, opts, sizeof(T));                                              \
    }

DF_DEFINE_FWD(df_dropout_fwd_f32, float, OP_FWD_F32)
DF_DEFINE_FWD(df_dropout_fwd_f64, double, OP_FWD_F64)
DF_DEFINE_BWD(df_dropout_bwd_bits_f32, float, OP_BWD_F32)
DF_DEFINE_BWD(df_dropout_bwd_bits_f64, double, OP_BWD_F64)
