/* dropout_fast.h: the public C interface of dropout_fast.
 *
 * Inverted dropout on the CPU with masks drawn from a counter-based
 * Philox4x32-10 stream (Salmon, Moraes, Dror, Shaw, "Parallel random numbers:
 * as easy as 1, 2, 3", SC'11). The mask bit of element i depends only on
 * (key, block0, i), so every function here gives the same output for any
 * instruction set, any thread count and any split of the work.
 *
 * The stream contract
 * -------------------
 * - Counter words (b0, b1, b2, s): (b0, b1, b2) a 96-bit block index,
 *   little-endian, and s the stream id. Key words (k0, k1) = (seed & 0xFFFFFFFF,
 *   seed >> 32).
 * - A block gives four words w0..w3; its eight 16-bit halves in order are
 *   w0 & 0xFFFF, w0 >> 16, w1 & 0xFFFF, ... Draw g of stream s is half g % 8 of
 *   block g / 8 of stream s.
 * - Element i of a call at block offset block0 uses draw g = 8*block0 + i:
 *   A = draw g of stream 0, B = draw g of stream 1, U = (A << 16) | B.
 *   keep(i) = U < thresh, thresh = min(floor((1 - p) * 2**32), 2**32).
 *   Stream 1 is computed only when A == thresh >> 16 (probability 2**-16).
 * - Kept outputs are x * scale, dropped outputs are exactly +0.0.
 * - Streams 2 and above are reserved for variants that need other numbers.
 *
 * Every function is safe to call from several threads at once: the only
 * global state is the instruction-set table, chosen once.
 */
#ifndef DROPOUT_FAST_H
#define DROPOUT_FAST_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DF_VERSION_MAJOR 0
#define DF_VERSION_MINOR 1
#define DF_VERSION_PATCH 0
#define DF_VERSION_NUMBER (DF_VERSION_MAJOR * 10000 + DF_VERSION_MINOR * 100 + DF_VERSION_PATCH)
#define DF_VERSION_STRING "0.1.0"

#if defined(_WIN32) && defined(DF_BUILD_SHARED)
#define DF_API __declspec(dllexport)
#elif defined(__GNUC__)
#define DF_API __attribute__((visibility("default")))
#else
#define DF_API
#endif

/* Status codes. Append-only: the values are pinned. */
typedef enum {
    DF_OK = 0,
    DF_ERR_ARG = 1,      /* NULL pointer with n > 0, or n < 0 */
    DF_ERR_THRESH = 2,   /* thresh > 2**32 */
    DF_ERR_ISA = 3,      /* the requested instruction set is not available here */
    DF_ERR_RANGE = 4,    /* block0 + ceil(n/8) passes the 96-bit counter space */
    DF_ERR_ROUNDS = 5,   /* Philox rounds outside [0, 16] */
    DF_ERR_SHAPE = 6,    /* a noise shape that does not broadcast, or too many dims */
    DF_ERR_VALUE = 7     /* a real parameter outside its domain (NaN, infinite, negative sigma) */
} df_status_t;

/* The most dimensions a broadcast mask (df_bcast_apply_*) may have. */
#define DF_MAX_DIMS 32

/* Instruction sets. DF_ISA_AUTO picks the best one this CPU supports (or the
 * one named by the environment variable DROPOUT_FAST_ISA, read once). */
typedef enum {
    DF_ISA_AUTO = -1,
    DF_ISA_SCALAR = 0,
    DF_ISA_AVX2 = 1,
    DF_ISA_AVX512 = 2
} df_isa_t;

/* A Philox4x32 key: (seed & 0xFFFFFFFF, seed >> 32). */
typedef struct {
    uint32_t k0, k1;
} df_key_t;

/* A 96-bit block index: b0 = lo & 0xFFFFFFFF, b1 = lo >> 32, b2 = hi. */
typedef struct {
    uint64_t lo;
    uint32_t hi;
} df_block_t;

/* Per-call execution options; NULL means the defaults {0, DF_ISA_AUTO}.
 * nthreads: OpenMP threads to use, 0 for the OpenMP default. Small arrays run
 * on one thread whatever is asked. Options change speed only, never output. */
typedef struct {
    int nthreads;
    int isa;
} df_opts_t;

/* df_version: the run-time version string, equal to DF_VERSION_STRING of the
 * header the library was built with. */
DF_API const char *df_version(void);

/* df_status_str: a static English description of a status code. */
DF_API const char *df_status_str(df_status_t status);

/* df_isa_available: 1 if this CPU and build can run the instruction set, else 0. */
DF_API int df_isa_available(df_isa_t isa);

/* df_isa_default: the instruction set DF_ISA_AUTO resolves to. */
DF_API df_isa_t df_isa_default(void);

/* df_isa_name: "scalar", "avx2", "avx512", or "unknown". */
DF_API const char *df_isa_name(df_isa_t isa);

/* df_has_openmp: 1 if the library was built with OpenMP. */
DF_API int df_has_openmp(void);

/* df_max_threads: the number of threads a call with nthreads = 0 may use. */
DF_API int df_max_threads(void);

/* df_philox4x32: out[4*j .. 4*j+3] = Philox4x32-R(ctr[4*j .. 4*j+3], key[2*j .. 2*j+1])
 * for j in [0, n), with R = rounds (10 is the standard generator).
 * Returns DF_OK, DF_ERR_ARG, or DF_ERR_ROUNDS for rounds outside [0, 16]. */
DF_API df_status_t df_philox4x32(const uint32_t *ctr, const uint32_t *key, uint32_t *out,
                                 int64_t n, int rounds);

/* df_threshold: thresh = min(floor((1 - p) * 2**32), 2**32) in double precision,
 * for p in [0, 1]; the keep threshold of the stream contract. */
DF_API uint64_t df_threshold(double p);

/* df_dropout_mask: bits receives keep(i) at bit i % 8 of byte i / 8 for
 * i in [0, n); the unused high bits of the last byte are zero.
 * Returns DF_OK, DF_ERR_ARG, DF_ERR_THRESH, DF_ERR_ISA or DF_ERR_RANGE. */
DF_API df_status_t df_dropout_mask(uint8_t *bits, int64_t n, df_key_t key, df_block_t block0,
                                   uint64_t thresh, const df_opts_t *opts);

/* df_dropout_fwd_f32: y[i] = keep(i) ? x[i] * scale : 0.0f for i in [0, n).
 * bits (may be NULL) receives keep(i) at bit i % 8 of byte i / 8 (the layout of
 * numpy.packbits(..., bitorder="little")). x may alias y exactly.
 * The backward pass by recomputation is this same function applied to dy:
 * dx[i] = keep(i) ? dy[i] * scale : 0, with no stored mask.
 * Returns DF_OK, DF_ERR_ARG, DF_ERR_THRESH, DF_ERR_ISA or DF_ERR_RANGE. */
DF_API df_status_t df_dropout_fwd_f32(const float *x, float *y, uint8_t *bits, int64_t n,
                                      df_key_t key, df_block_t block0, uint64_t thresh,
                                      float scale, const df_opts_t *opts);

/* df_dropout_fwd_f64: as df_dropout_fwd_f32 for double. */
DF_API df_status_t df_dropout_fwd_f64(const double *x, double *y, uint8_t *bits, int64_t n,
                                      df_key_t key, df_block_t block0, uint64_t thresh,
                                      double scale, const df_opts_t *opts);

/* df_dropout_bwd_bits_f32: dx[i] = bit i of bits ? dy[i] * scale : 0.0f, with
 * bits as written by the forward pass. dy may alias dx exactly.
 * Returns DF_OK, DF_ERR_ARG or DF_ERR_ISA. */
DF_API df_status_t df_dropout_bwd_bits_f32(const float *dy, float *dx, const uint8_t *bits,
                                           int64_t n, float scale, const df_opts_t *opts);

/* df_dropout_bwd_bits_f64: as df_dropout_bwd_bits_f32 for double. */
DF_API df_status_t df_dropout_bwd_bits_f64(const double *dy, double *dx, const uint8_t *bits,
                                           int64_t n, double scale, const df_opts_t *opts);

/* df_bcast_apply_f32: the structured-dropout pass. x and y are C-contiguous
 * arrays of shape[0..ndim); the mask has shape noise_shape[0..ndim), each entry
 * equal to shape[d] or 1 (Keras' noise_shape), and bits holds its keep bits
 * packed over the mask's own flat C-order index (as df_dropout_mask writes
 * them). With keep(e) the bit of the mask element that element e broadcasts from:
 *   y[e] = keep(e) ? a * x[e] + b : c        (a * x rounded, then + b: no FMA).
 * Standard, spatial, variational and path dropout use (scale, 0, 0), alpha
 * dropout (a, b, c) of Klambauer et al. 2017; backward is (a, 0, 0) on dy.
 * The mask is never expanded: rows that share one bit are a scale-or-zero pass.
 * x may alias y exactly. Output does not depend on ISA or threads.
 * Returns DF_OK, DF_ERR_ARG (NULL pointer with elements, ndim outside
 * [0, DF_MAX_DIMS], negative extent), DF_ERR_SHAPE or DF_ERR_ISA. */
DF_API df_status_t df_bcast_apply_f32(const float *x, float *y, const uint8_t *bits, int ndim,
                                      const int64_t *shape, const int64_t *noise_shape,
                                      float a, float b, float c, const df_opts_t *opts);

/* df_bcast_apply_f64: as df_bcast_apply_f32 for double. */
DF_API df_status_t df_bcast_apply_f64(const double *x, double *y, const uint8_t *bits, int ndim,
                                      const int64_t *shape, const int64_t *noise_shape,
                                      double a, double b, double c, const df_opts_t *opts);

/* Gaussian dropout (Srivastava et al., JMLR 2014, sec. 10; Keras' GaussianDropout)
 * ------------------------------------------------------------------------------
 * df_gaussian_fwd_f32: y[i] = x[i] * mult(i) for i in [0, n), where
 * mult(i) = 1 + sigma * z(i) computed in double and rounded once to float, and
 * z(i) a standard normal deviate from Philox streams 2..5 of the stream contract:
 *   b = block0 + i / 8, h = i % 8,
 *   w1 = word h % 4 of block b of stream 2 + h / 4,
 *   w2 = word h % 4 of block b of stream 4 + h / 4,
 *   u1 = (w1 + 0.5) / 2**32 (never 0), u2 = w2 / 2**32,
 *   z = sqrt(-2 ln u1) * cos(2 pi u2)                       (Box-Muller),
 * with ln and cos evaluated by the fixed sequence of IEEE double operations
 * spelled out in df_kernels_gaussian.c (no libm transcendental: the result is
 * the same bits on every platform, and in the Numba backend and the oracle).
 * A call covers blocks [block0, block0 + ceil(n / 8)), the accounting of a mask.
 * sigma = sqrt(p / (1 - p)) for a drop rate p in [0, 1). The backward pass by
 * recomputation is this same function applied to dy (dx = dy * mult), and an
 * x of ones gives the multipliers themselves. x may alias y exactly.
 * Output does not depend on threads, ISA (scalar, AVX2 and AVX-512 bodies are
 * one C source under target attributes) or splits at multiples of 8 elements.
 * Returns DF_OK, DF_ERR_ARG, DF_ERR_VALUE (sigma NaN, infinite or negative),
 * DF_ERR_RANGE or DF_ERR_ISA. */
DF_API df_status_t df_gaussian_fwd_f32(const float *x, float *y, int64_t n, df_key_t key,
                                       df_block_t block0, double sigma, const df_opts_t *opts);

/* df_gaussian_fwd_f64: as df_gaussian_fwd_f32 for double (mult not rounded further). */
DF_API df_status_t df_gaussian_fwd_f64(const double *x, double *y, int64_t n, df_key_t key,
                                       df_block_t block0, double sigma, const df_opts_t *opts);

/* ---- transformer fusions: softmax + dropout ---- */

/* ---- transformer fusions: bias + dropout + residual; Monte Carlo statistics ---- */

#ifdef __cplusplus
}
#endif

#endif /* DROPOUT_FAST_H */
