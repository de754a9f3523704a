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

/* `stream` != 0 asks for non-temporal stores; a kernel may ignore it, and uses
 * them only where y is suitably aligned. */
typedef struct {
    df_isa_t isa;
    df_mask_fn mask;
    df_fwd_f32_fn fwd_f32;
    df_fwd_f64_fn fwd_f64;
    df_bwd_f32_fn bwd_f32;
    df_bwd_f64_fn bwd_f64;
} df_kernels_t;

extern const df_kernels_t df_kernels_scalar;
#if defined(__x86_64__) || defined(_M_X64)
#define DF_HAVE_X86 1
extern const df_kernels_t df_kernels_avx2;
extern const df_kernels_t df_kernels_avx512;
#else
#define DF_HAVE_X86 0
#endif

/* Below this many elements per thread, fork/join costs more than it saves.
 * Measured (float32 forward, AVX-512, 2 cores of an AMD EPYC): 2 threads are
 * 0.9x as fast as 1 at 2**14 elements, 1.1x at 2**15, 1.3x at 2**16. */
#ifndef DF_PARALLEL_MIN
#define DF_PARALLEL_MIN (1 << 14)
#endif
/* Outputs at least this large (bytes) use non-temporal stores: they would only
 * evict the caller's working set from the last-level cache. Measured on a Zen 4
 * (32 MiB L3): streaming wins from 16 MiB outputs on and costs nothing measurable
 * at 4-8 MiB, where the kernel is bound by Philox, not memory. A constant, not
 * the cache size the OS reports: virtual machines report the host's (glibc
 * said 320 MiB here). The environment variable DROPOUT_FAST_STREAM_MIN_BYTES,
 * read once, overrides it (tests, tuning). */
#ifndef DF_STREAM_MIN_BYTES
#define DF_STREAM_MIN_BYTES (8 << 20)
#endif
uint64_t df_stream_min_bytes(void);

/* Threads for an n-element call: opts->nthreads (0: the OpenMP default),
 * lowered so each has at least DF_PARALLEL_MIN elements; 1 without OpenMP. */
int df_threads_for(int64_t n, const df_opts_t *opts);

/* The table for an instruction set (DF_ISA_AUTO: the default), or NULL if the
 * CPU or the build cannot run it. */
const df_kernels_t *df_kernels_get(int isa);

#endif /* DF_INTERNAL_H */
