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
    DF_ERR_VALUE = 7,    /* a real parameter outside its domain (NaN, infinite, negative sigma) */
    DF_ERR_INDEX = 8     /* an index outside its range (an embedding id not in [0, vocab)) */
} df_status_t;

/* The most dimensions a broadcast mask (df_bcast_apply_*) may have. */
#define DF_MAX_DIMS 32

/* Instruction sets. DF_ISA_AUTO picks the best one this CPU supports (or the
 * one named by the environment variable DROPOUT_FAST_ISA, read once). Append-only.
 * DF_ISA_NEON (AArch64) covers the mask, forward and backward kernels; the other
 * families run their scalar bodies under it. */
typedef enum {
    DF_ISA_AUTO = -1,
    DF_ISA_SCALAR = 0,
    DF_ISA_AVX2 = 1,
    DF_ISA_AVX512 = 2,
    DF_ISA_NEON = 3
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

/* df_isa_name: "scalar", "avx2", "avx512", "neon", or "unknown". */
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
 *   y[e] = keep(e) ? a * x[e] + b : c        (a * x rounded, then + b: no FMA),
 * where b == 0 counts as -0.0 (a * x passes unchanged, signed zeros included)
 * and c == 0 as +0.0.
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

/* Embedding (word) dropout (Gal & Ghahramani, NeurIPS 2016, sec. 4.1)
 * -------------------------------------------------------------------
 * A (vocab, dim) matrix whose rows are kept or dropped whole: keep(r) is bit
 * r % 8 of byte r / 8 of bits (df_dropout_mask over vocab elements). Row r of
 * a matrix A with leading dimension ld starts at A + r * ld (ld may be 0 or
 * negative; the row itself is contiguous). ids[0..ntok) are token ids.
 *
 * df_embedding_fwd_f32: the lookup under the row mask, out C-contiguous (ntok, dim):
 *   out[t * dim + j] = keep(ids[t]) ? weight[ids[t] * ldw + j] * scale : +0.0f.
 * Dropped rows are not read. out must not overlap weight.
 *
 * df_embedding_bwd_f32: the gradient with respect to the matrix, grad
 * C-contiguous (vocab, dim): for each row r, with t1 < t2 < ... < tk the tokens
 * with ids[t] == r,
 *   grad[r, j] = keep(r) && k > 0 ? (((0.0f + dout[t1, j]) + dout[t2, j]) + ... + dout[tk, j]) * scale
 *                                 : +0.0f,
 * dout[t, j] = dout[t * ldd + j]: each row summed in token order in the dtype,
 * rounded at every step (no FMA), then scaled; where dout[t, j] and the running
 * sum are both NaN, the sum becomes dout[t, j]'s NaN (quieted), whatever the
 * operand order a compiler picks. That is numpy.add.at into zeros
 * followed by the row mask, bit for bit, whenever scale * 0 == +0 (finite
 * scale > 0). work: DF_EMBEDDING_WORK(vocab, ntok) int64_t of scratch (the
 * kept tokens bucketed by row); grad must not overlap dout or work. Threads
 * take ranges of rows, so the output does not depend on threads or ISA.
 *
 * Both check every id first and return DF_ERR_INDEX, writing nothing to out or
 * grad, if one is outside [0, vocab). Returns DF_OK, DF_ERR_ARG (a negative
 * count, a NULL pointer that would be read or written), DF_ERR_ISA or
 * DF_ERR_INDEX. */
#define DF_EMBEDDING_WORK(vocab, ntok) ((vocab) + (ntok) + 1)

DF_API df_status_t df_embedding_fwd_f32(const float *weight, int64_t ldw, float *out,
                                        const int64_t *ids, int64_t ntok, int64_t vocab,
                                        int64_t dim, const uint8_t *bits, float scale,
                                        const df_opts_t *opts);

/* df_embedding_fwd_f64: as df_embedding_fwd_f32 for double. */
DF_API df_status_t df_embedding_fwd_f64(const double *weight, int64_t ldw, double *out,
                                        const int64_t *ids, int64_t ntok, int64_t vocab,
                                        int64_t dim, const uint8_t *bits, double scale,
                                        const df_opts_t *opts);

DF_API df_status_t df_embedding_bwd_f32(const float *dout, int64_t ldd, float *grad,
                                        const int64_t *ids, int64_t ntok, int64_t vocab,
                                        int64_t dim, const uint8_t *bits, float scale,
                                        int64_t *work, const df_opts_t *opts);

/* df_embedding_bwd_f64: as df_embedding_bwd_f32 for double. */
DF_API df_status_t df_embedding_bwd_f64(const double *dout, int64_t ldd, double *grad,
                                        const int64_t *ids, int64_t ntok, int64_t vocab,
                                        int64_t dim, const uint8_t *bits, double scale,
                                        int64_t *work, const df_opts_t *opts);

/* ---- transformer fusions: softmax + dropout ---- */

/* Attention dropout: softmax over the last axis fused with inverted dropout
 * --------------------------------------------------------------------------
 * The scores are a C-contiguous array of attn->shape (ndim >= 1); a row is the
 * Lk = shape[ndim-1] scores of one query, row r at element r * Lk, query index
 * i = r % Lq with Lq = shape[ndim-2] (1 when ndim == 1). Per row, in the dtype,
 * every operation rounded on its own (no FMA):
 *   mask      s'_j = s_j + mask_j (DF_ATTN_MASK_ADD), s'_j = mask_j ? s_j : -inf
 *             (DF_ATTN_MASK_BOOL: nonzero = attend, the convention of torch's
 *             scaled_dot_product_attention), or s'_j = s_j. With causal the row
 *             is keys j < nv = min(i + 1, Lk) only (torch's is_causal, top-left
 *             aligned when Lq != Lk): keys j >= nv output +0.0 in y, probs and ds
 *             and take no part in anything below.
 *   max       m = max of the non-NaN s'_j (exact, order free); m = 0 if that is
 *             -inf (an empty row: every s'_j -inf or NaN).
 *   exp       e_j = exp(s'_j - m): 0 below -87 (double: -708), else Cody-Waite
 *             reduction n = round(x log2 e), r = (x - n LN2HI) - n LN2LO, the
 *             degree-7 (13) Taylor polynomial in Horner form, times 2**n; the
 *             constants and steps are in df_kernels_softmax.c. No libm.
 *   sum       Z = sum of the e_j in W = 32 (double: 16) lanes: lane l adds e_j for
 *             j = l, l + W, ... in order from +0.0, then acc[l] += acc[l + h] for
 *             h = W/2, W/4, ..., 1 and l < h; Z = acc[0].
 *   normalise inv = Z == 0 ? 0 : 1 / Z;  P_j = e_j * inv.
 *   dropout   y_j = keep(g) ? P_j * scale : +0.0, g = 8 * block0 + r * Lk + j: the
 *             stream contract's decision over the flat C-order index of the
 *             output, so y is df_dropout_fwd applied to P, bit for bit.
 * A NaN score (after masking) makes its row's P NaN; an empty row has P = 0 and
 * y = 0. Subnormal results assume no flush-to-zero mode.
 *
 * df_softmax_dropout_fwd_f32: y as above. probs (may be NULL; "store" mode)
 * receives P_j with its sign bit set where keep is false (-P_j, -0.0 for 0; P_j
 * is >= 0 or NaN, so nothing is lost) for j < nv, so backward needs no mask.
 * bits (may be NULL) receives keep as df_dropout_mask writes it. thresh == 2**32
 * keeps everything without drawing: with scale = 1 that is the plain softmax,
 * y = P. y may alias s exactly, probs may alias s, not y.
 *
 * df_softmax_dropout_bwd_f32: the gradient with respect to the scores given dy:
 *   dP_j = keep ? dy_j * scale : +0.0;  dot = sum of P_j * dP_j in the lanes and
 *   tree of Z;  ds_j = P_j * (dP_j - dot)  (+0.0 for keys j >= nv).
 * With probs (as the forward wrote them) P and keep come from probs, and bits,
 * key, block0, thresh and the mask in attn are not used; ds may alias dy or
 * probs exactly, and outputs of DROPOUT_FAST_STREAM_MIN_BYTES (8 MiB) or more are
 * written with non-temporal stores. With probs NULL, P is recomputed from s and
 * attn exactly as the forward computed it, into ds as scratch (ds may alias s,
 * not dy), and keep is read from bits if given, else drawn from (key, block0,
 * thresh). The additive mask's gradient is ds summed over its broadcast axes.
 *
 * Rows are independent: OpenMP threads take parts of a multiple of 8 rows. The
 * output depends only on the arguments, not on the ISA (one C source under
 * target attributes) or the threads. Returns DF_OK, DF_ERR_ARG (NULL pointer
 * with elements; attn NULL; ndim outside [1, DF_MAX_DIMS]; a negative extent; an
 * unknown mask kind; a mask NULL or with a last stride other than 1; probs == y
 * in forward; neither probs nor s, or ds == dy without probs, in backward),
 * DF_ERR_THRESH, DF_ERR_RANGE or DF_ERR_ISA. */
typedef enum {
    DF_ATTN_MASK_NONE = 0,
    DF_ATTN_MASK_ADD = 1, /* the scores' dtype, added */
    DF_ATTN_MASK_BOOL = 2 /* uint8_t, nonzero = attend, zero = -inf */
} df_attn_mask_t;

/* The layout of a softmax call: the scores' shape; the mask (mask_kind, a
 * pointer to its element of index (0, ..., 0) once broadcast to shape, and that
 * broadcast view's strides in elements: 0 along broadcast axes, possibly
 * negative, the last 1 when Lk > 1); causal 0 or 1. */
typedef struct {
    int ndim;
    int64_t shape[DF_MAX_DIMS];
    int mask_kind;
    const void *mask;
    int64_t mask_strides[DF_MAX_DIMS];
    int causal;
} df_attn_t;

DF_API df_status_t df_softmax_dropout_fwd_f32(const float *s, float *y, float *probs,
                                              uint8_t *bits, const df_attn_t *attn,
                                              df_key_t key, df_block_t block0, uint64_t thresh,
                                              float scale, const df_opts_t *opts);

/* df_softmax_dropout_fwd_f64: as df_softmax_dropout_fwd_f32 for double. */
DF_API df_status_t df_softmax_dropout_fwd_f64(const double *s, double *y, double *probs,
                                              uint8_t *bits, const df_attn_t *attn,
                                              df_key_t key, df_block_t block0, uint64_t thresh,
                                              double scale, const df_opts_t *opts);

DF_API df_status_t df_softmax_dropout_bwd_f32(const float *dy, float *ds, const float *probs,
                                              const float *s, const uint8_t *bits,
                                              const df_attn_t *attn, df_key_t key,
                                              df_block_t block0, uint64_t thresh, float scale,
                                              const df_opts_t *opts);

/* df_softmax_dropout_bwd_f64: as df_softmax_dropout_bwd_f32 for double. */
DF_API df_status_t df_softmax_dropout_bwd_f64(const double *dy, double *ds, const double *probs,
                                              const double *s, const uint8_t *bits,
                                              const df_attn_t *attn, df_key_t key,
                                              df_block_t block0, uint64_t thresh, double scale,
                                              const df_opts_t *opts);

/* ---- transformer fusions: bias + dropout + residual; Monte Carlo statistics ---- */

/* Bias + dropout + residual (the fusion of Megatron-LM's bias_dropout_add)
 * ------------------------------------------------------------------------
 * df_bias_dropout_add_f32: for i in [0, n), with j = i % c (the bias index: the
 * position of element i in the last axis, of length c),
 *   v    = x[i] + bias[j]                rounded to float (v = x[i] when bias is NULL)
 *   y[i] = residual[i] + (keep(i) ? v * scale : +0.0f)
 * every operation rounded on its own (no FMA), keep(i) the stream contract's
 * decision for draw 8*block0 + i. So y equals df_dropout_fwd_f32 applied to
 * x + bias and then added to residual, bit for bit (IEEE addition commutes;
 * only which NaN payload survives residual[i] and the dropout term both being
 * NaN is not specified). bits (may be NULL) receives keep(i) exactly as
 * df_dropout_fwd_f32 writes it. y may alias x or residual exactly, not bias.
 * c >= 1 and n a multiple of c when bias is given; c is ignored without one.
 * The mask is drawn a chunk (4096 elements) at a time by the instruction set's
 * mask kernel into a stack buffer, then one SIMD pass adds, scales, selects and
 * adds; OpenMP threads take whole chunks. Output depends only on the arguments.
 * Returns DF_OK, DF_ERR_ARG, DF_ERR_SHAPE (bias with c < 1 or n % c != 0),
 * DF_ERR_THRESH, DF_ERR_RANGE or DF_ERR_ISA. */
DF_API df_status_t df_bias_dropout_add_f32(const float *x, const float *bias,
                                           const float *residual, float *y, uint8_t *bits,
                                           int64_t n, int64_t c,
                                           df_key_t key, df_block_t block0, uint64_t thresh,
                                           float scale, const df_opts_t *opts);

/* df_bias_dropout_add_f64: as df_bias_dropout_add_f32 for double. */
DF_API df_status_t df_bias_dropout_add_f64(const double *x, const double *bias,
                                           const double *residual, double *y, uint8_t *bits,
                                           int64_t n, int64_t c, df_key_t key, df_block_t block0,
                                           uint64_t thresh, double scale, const df_opts_t *opts);

/* df_bias_dropout_add_bwd_f32: the gradients of df_bias_dropout_add_f32.
 *   dx[i] = keep(i) ? dy[i] * scale : +0.0f
 * with keep(i) read from bits (bit i % 8 of byte i / 8, as the forward wrote
 * them) or, when bits is NULL, regenerated from (key, block0, thresh) as the
 * forward drew them. dy may alias dx exactly. The gradient of residual is dy.
 * dbias (may be NULL; c entries, double): with R = n / c rows,
 *   dbias[j] = (((0.0 + (double)dx[j]) + (double)dx[c + j]) + ...) + (double)dx[(R-1)*c + j]
 * that is each column summed in double over the rows in row order, nothing
 * else: the same bits for any thread count or instruction set (threads split
 * the columns, never the rows). Round it to float to get the bias gradient.
 * With dbias, c >= 1 and n a multiple of c; threads take strips of at least
 * 64 columns, so fewer than 128 columns run on one thread.
 * Returns DF_OK, DF_ERR_ARG, DF_ERR_SHAPE, DF_ERR_THRESH, DF_ERR_RANGE (the
 * last two only when bits is NULL) or DF_ERR_ISA. */
DF_API df_status_t df_bias_dropout_add_bwd_f32(const float *dy, float *dx, double *dbias,
                                               const uint8_t *bits, int64_t n, int64_t c,
                                               df_key_t key, df_block_t block0, uint64_t thresh,
                                               float scale, const df_opts_t *opts);

/* df_bias_dropout_add_bwd_f64: as df_bias_dropout_add_bwd_f32 for double. */
DF_API df_status_t df_bias_dropout_add_bwd_f64(const double *dy, double *dx, double *dbias,
                                               const uint8_t *bits, int64_t n, int64_t c,
                                               df_key_t key, df_block_t block0, uint64_t thresh,
                                               double scale, const df_opts_t *opts);

/* Monte Carlo statistics (Welford's streaming mean and variance)
 * -------------------------------------------------------------
 * df_welford_update_f32: add k samples of len elements to running statistics.
 * x holds the samples one after another (sample s at x + s * len). mean and m2
 * (double, len entries each) hold the statistics of the first `count` samples
 * (all zeros when count == 0). For s = 0 .. k-1, then for each i:
 *   t = (double)(count + s + 1); xi = (double)x[s * len + i];
 *   d = xi - mean[i]; mean[i] = mean[i] + d / t; m2[i] = m2[i] + d * (xi - mean[i])
 * (Welford, Technometrics 4(3), 1962; Knuth TAOCP vol. 2, 4.2.2), each
 * operation rounded on its own, so one call with k samples equals k calls with
 * one, on every instruction set and thread count. The variance of the
 * count + k samples is m2 / (count + k - ddof). x must not overlap mean or m2.
 * Returns DF_OK or DF_ERR_ARG (NULL pointer with work, len, k or count < 0). */
DF_API df_status_t df_welford_update_f32(const float *x, int64_t k, double *mean, double *m2,
                                         int64_t len, int64_t count, const df_opts_t *opts);

/* df_welford_update_f64: as df_welford_update_f32 for double samples. */
DF_API df_status_t df_welford_update_f64(const double *x, int64_t k, double *mean, double *m2,
                                         int64_t len, int64_t count, const df_opts_t *opts);

/* df_welford_var: var[i] = m2[i] / (double)(count - ddof) for i in [0, len);
 * var may alias m2 exactly. Returns DF_OK, DF_ERR_ARG, or DF_ERR_VALUE when
 * count - ddof < 1 or ddof < 0, or DF_ERR_ISA for an unavailable opts->isa. */
DF_API df_status_t df_welford_var(const double *m2, double *var, int64_t len, int64_t count,
                                  int64_t ddof, const df_opts_t *opts);

#ifdef __cplusplus
}
#endif

#endif /* DROPOUT_FAST_H */
