/* df_internal.h: the per-instruction-set kernel table. Not installed.
 *
 * A kernel processes one contiguous range on the calling thread. The driver in
 * df_api.c validates arguments, splits the work into chunks whose starts are
 * multiples of DF_CHUNK_ALIGN elements, and never hands a kernel a range in
 * which the low 32 bits of the block index wrap: inside a kernel call, block
 * b0 + j has counter words (b0 + j, b1,  b2) with no carry.
 * thresh <= 2**32 in every kernel call; thresh == 2**32 (keep everything) does not
 * fit the 16-bit compare of the SIMD bodies and each handles it itself. */
#ifndef DF_INTERNAL_H
#define DF_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "dropout_fast.h"

/* Chunk starts are multiples of this many elements (so of 8: whole mask bytes). */
#define DF_CHUNK_ALIGN 64

typedef void (*df_mask_fn)(uint8_t *bits, int64_t n, df_key_t key, df_block_t block0,
                           uint64_t thresh);
typedef void (*df_fwd_f32_fn)(const float *x, float *y, uint8_t *bits, int64_t n, df_key_t key,
                              df_block_t block0, uint64_t thresh, float scale, int stream);
typedef void (*df_fwd_f64_fn)(const double *x, double *y, uint8_t *bits, int64_t n, df_key_t key,
                              df_block_t block0, uint64_t thresh, double scale, int stream);
typedef void (*df_bwd_f32_fn)(const float *dy, float *dx, const uint8_t *bits, int64_t n,
                              float scale, int stream);
typedef void (*df_bwd_f64_fn)(const double *dy, double *dx, const uint8_t *bits, int64_t n,
                              double scale, int stream);

/* The row view of a broadcast mask (df_kernels_bcast.c): rows of len elements,
 * row r (of prod(dims[0..nd))) starting at element r * len. Its first mask bit
 * is m(r) = sum_d idx_d(r) * mstride[d] over the mixed-radix digits of r; a
 * varying row (mask along the row) uses bits m, m + 1, ..., m + len - 1, a
 * shared one bit m for every element. bits holds nbits keep bits. */
typedef struct {
    const uint8_t *bits;
    int64_t nbits, len;
    int varying, nd;
    int64_t dims[DF_MAX_DIMS], mstride[DF_MAX_DIMS];
} df_rows_t;

/* A position in the rows: the digits of a row index and its m(r). */
typedef struct {
    int64_t m;
    int64_t idx[DF_MAX_DIMS];
} df_rowpos_t;

static inline void df_rowpos_init(df_rowpos_t *p, const df_rows_t *v, int64_t r)
{
    p->m = 0;
    for (int d = v->nd - 1; d >= 0; --d) {
        p->idx[d] = r % v->dims[d];
        p->m += p->idx[d] * v->mstride[d];
        r /= v->dims[d];
    }
}

/* The next row: an odometer step, amortised O(1). Past the last row it wraps. */
static inline void df_rowpos_next(df_rowpos_t *p, const df_rows_t *v)
{
    for (int d = v->nd - 1; d >= 0; --d) {
        p->m += v->mstride[d];
        if (++p->idx[d] < v->dims[d])
            return;
        p->m -= v->dims[d] * v->mstride[d];
        p->idx[d] = 0;
    }
}

static inline int df_bit(const uint8_t *bits, int64_t i)
{
    return (bits[i >> 3] >> (i & 7)) & 1;
}

/* Flags of a bcast kernel call. DF_BC_STREAM: non-temporal stores (where y is
 * aligned). DF_BC_AFFINE: kept outputs are a * x + b (two roundings), else x * a. */
enum { DF_BC_STREAM = 1, DF_BC_AFFINE = 2 };

/* Rows [r0, r1) of the view v over arrays x, y (the whole arrays): for element
 * e of row r, y[e] = keep(e) ? (affine ? a * x[e] + b : x[e] * a) : c.
 * x may alias y exactly. One call per thread: at most one store fence. */
typedef void (*df_bcast_f32_fn)(const float *x, float *y, const df_rows_t *v, int64_t r0,
                                int64_t r1, float a, float b, float c, int flags);
typedef void (*df_bcast_f64_fn)(const double *x, double *y, const df_rows_t *v, int64_t r0,
                                int64_t r1, double a, double b, double c, int flags);

/* `stream` != 0 asks for non-temporal stores; a kernel may ignore it, and uses
 * them only where y is suitably aligned. */
typedef struct {
    df_isa_t isa;
    df_mask_fn mask;
    df_fwd_f32_fn fwd_f32;
    df_fwd_f64_fn fwd_f64;
    df_bwd_f32_fn bwd_f32;
    df_bwd_f64_fn bwd_f64;
    df_bcast_f32_fn bcast_f32;
    df_bcast_f64_fn bcast_f64;
} df_kernels_t;

extern const df_kernels_t df_kernels_scalar;
#if defined(__x86_64__) || defined(_M_X64)
#define DF_HAVE_X86 1
extern const df_kernels_t df_kernels_avx2;
extern const df_kernels_t df_kernels_avx512;
#else
#define DF_HAVE_X86 0
#endif
#if defined(__aarch64__) && defined(__ARM_NEON)
#define DF_HAVE_NEON 1
extern const df_kernels_t df_kernels_neon;
#else
#define DF_HAVE_NEON 0
#endif

/* The scalar broadcast pass, for tables without a body of their own (NEON). */
void df_bcast_f32_scalar(const float *x, float *y, const df_rows_t *v, int64_t r0, int64_t r1,
                         float a, float b, float c, int flags);
void df_bcast_f64_scalar(const double *x, double *y, const df_rows_t *v, int64_t r0, int64_t r1,
                         double a, double b, double c, int flags);

/* Below this many elements per thread, fork/join costs more than it saves.
 * Measured (float32 forward, AVX-512, 2 cores of an AMD EPYC): 2 threads are
 * 0.9x as fast as 1 at 2**14 elements, 1.1x at 2**15, 1.3x at 2**16. */
#ifndef DF_PARALLEL_MIN
#define DF_PARALLEL_MIN (1 << 14)
#endif
/* Outputs at least this large (bytes) use non-temporal stores: they would only
 * evict the caller's working set from the last-level cache. Measured on a Zen 4
 * (32 MiB L3): streaming wins from 16 MiB outputs on and costs nothing measurable
 * at 4-8 MiB in the forward, where the kernel is bound by Philox, not memory. On
 * a Zen 3 (32 MiB L3) the backward of an 8 MiB output (2**20 doubles), which is
 * bound by memory, ran 1.2x (1 thread) to 1.4-2.3x (2 threads) faster with plain
 * stores (`python -m dropout_fast bench --ops dropout --sizes 20 --dtype float64`
 * with DROPOUT_FAST_STREAM_MIN_BYTES at 8 and 16 MiB, alternated), hence 16
 * MiB. A constant, not the cache size the OS reports: virtual machines report
 * the host's (glibc said 320 MiB here). The environment variable DROPOUT_FAST_STREAM_MIN_BYTES,
 * read once, overrides it (tests, tuning). */
#ifndef DF_STREAM_MIN_BYTES
#define DF_STREAM_MIN_BYTES (16 << 20)
#endif
uint64_t df_stream_min_bytes(void);

/* Threads for an n-element call: opts->nthreads (0: the OpenMP default),
 * lowered so each has at least DF_PARALLEL_MIN elements; 1 without OpenMP. */
int df_threads_for(int64_t n, const df_opts_t *opts);

/* The table for an instruction set (DF_ISA_AUTO: the default), or NULL if the
 * CPU or the build cannot run it. */
const df_kernels_t *df_kernels_get(int isa);

#endif /* DF_INTERNAL_H */
