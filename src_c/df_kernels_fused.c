/* df_kernels_fused.c: bias + dropout + residual, y = residual + dropout(x + bias),
 * and its backward (dx, and the bias gradient summed over rows).
 *
 * The transformer-block fusion of Megatron-LM's bias_dropout_add (Shoeybi et
 * al., "Megatron-LM", 2019): one pass reads x, bias and residual and writes y,
 * instead of three passes and two temporaries.
 *
 * Masks: the work is cut into chunks of FUSED_CHUNK elements (a multiple of
 * DF_CHUNK_ALIGN, so every chunk starts on a block and a mask byte). Each
 * chunk's keep bits are drawn by the instruction set's own mask kernel (the
 * table entry `mask`, the same code as df_dropout_mask) into a stack buffer,
 * split where the low counter word wraps as df_api.c does; then a SIMD pass
 * over the chunk's row segments (the bias index is i % c, so a segment is a
 * run of one row) computes the output. The chunk is still in L1 when the pass
 * reads it, so the mask costs no memory traffic.
 *
 * Segment passes: the scalar body is the specification; the AVX2 and AVX-512
 * bodies do the same operations lane by lane (an add, a multiply, a select of
 * +0.0, an add; every one correctly rounded, nothing contracted), so all three
 * agree bit for bit (tests/c/test_fused.c and tests/test_bias_dropout_add.py
 * compare them).
 *
 * Backward with a bias gradient: every column j is summed in double over the
 * rows in row order. Threads split the columns (strips of at least
 * FUSED_MIN_STRIP), never the rows, so the sums do not depend on the thread
 * count; one strip means one sequential pass over the flat chunks, which adds
 * the rows of each column in the same order. */
#include <string.h>

#include "df_internal.h"
#include "df_philox.h"

#ifndef DF_USE_OPENMP
#define DF_USE_OPENMP 0
#endif

/* Elements per mask draw: 512 bytes of bits, x/residual/y chunks of 16 KiB
 * (float) that stay in L1/L2 between the draw and the pass. */
#define FUSED_CHUNK 4096
/* The segment passes read the bit buffer 4 bytes at a time from any bit. */
#define FUSED_PAD 8
/* Narrowest column strip a thread takes in the backward with a bias gradient. */
#define FUSED_MIN_STRIP 64

/* ------------------------------------------------------------------ masks */

/* Keep bits of elements [start, start + len) (start a multiple of 8) into buf
 * from bit 0, cut where the low counter word wraps (kernels never see a carry). */
static void draw_bits(const df_kernels_t *k, uint8_t *buf, int64_t start, int64_t len,
                      df_key_t key, df_block_t block0, uint64_t thresh)
{
    memset(buf + ((len + 7) >> 3), 0, FUSED_PAD); /* defined bytes for the wide reads */
    while (len > 0) {
        const df_block_t b = df_block_add(block0, (uint64_t)(start >> 3));
        const uint64_t to_wrap = ((uint64_t)1 << 32) - (b.lo & 0xFFFFFFFFu);
        int64_t piece = len;
        if ((uint64_t)len > 8 * to_wrap)
            piece = (int64_t)(8 * to_wrap);
        k->mask(buf, piece, key, b, thresh);
        buf += piece >> 3;
        start += piece;
        len -= piece;
    }
}

/* The keep bits of elements [e0, e0 + len) into buf (len <= FUSED_CHUNK - 8):
 * copied from a stored mask or drawn; returns the bit of buf that holds e0. */
static int64_t fetch_bits(const df_kernels_t *k, uint8_t *buf, const uint8_t *bits, int64_t e0,
                          int64_t len, df_key_t key, df_block_t block0, uint64_t thresh)
{
    const int64_t a0 = e0 & ~(int64_t)7;
    if (bits) {
        const size_t nb = (size_t)((e0 + len + 7) >> 3) - (size_t)(a0 >> 3);
        memcpy(buf, bits + (a0 >> 3), nb);
        memset(buf + nb, 0, FUSED_PAD);
    } else
        draw_bits(k, buf, a0, e0 + len - a0, key, block0, thresh);
    return e0 - a0;
}

static inline uint32_t load_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The keep bits of elements o, o + 1, ... of a padded buffer, from bit 0. */
static inline uint32_t bits_from(const uint8_t *mb, int64_t o)
{
    return load_u32(mb + (o >> 3)) >> (o & 7);
}

static inline int bit_at(const uint8_t *mb, int64_t o)
{
    return (mb[o >> 3] >> (o & 7)) & 1;
}

/* ------------------------------------------------------------------ segment passes
 * fwd: y[e] = r[e] + (bit o + e ? (x[e] + b[e]) * s : +0)   (x[e] alone when b is NULL)
 * bwd: dx[e] = bit o + e ? dy[e] * s : +0, and acc[e] += (double)dx[e] unless acc is NULL
 * for e in [0, len); mb a padded bit buffer. */
typedef void (*seg_fwd_f32_fn)(const float *x, const float *b, const float *r, float *y,
                               const uint8_t *mb, int64_t o, int64_t len, float s);
typedef void (*seg_fwd_f64_fn)(const double *x, const double *b, const double *r, double *y,
                               const uint8_t *mb, int64_t o, int64_t len, double s);
typedef void (*seg_bwd_f32_fn)(const float *dy, float *dx, double *acc, const uint8_t *mb,
                               int64_t o, int64_t len, float s);
typedef void (*seg_bwd_f64_fn)(const double *dy, double *dx, double *acc, const uint8_t *mb,
                               int64_t o, int64_t len, double s);

#define DF_FUSED_INLINE static inline __attribute__((always_inline))

#define DF_DEFINE_SEG_SCALAR(S, T)                                                         \
    DF_FUSED_INLINE void seg_fwd_##S##_tail(const T *x, const T *b, const T *r, T *y,      \
                                            const uint8_t *mb, int64_t o, int64_t len, T s) \
    {                                                                                      \
        for (int64_t e = 0; e < len; ++e) {                                                \
            const T v = b ? x[e] + b[e] : x[e];                                            \
            y[e] = r[e] + (bit_at(mb, o + e) ? v * s : (T)0);                              \
        }                                                                                  \
    }                                                                                      \
    DF_FUSED_INLINE void seg_bwd_##S##_tail(const T *dy, T *dx, double *acc,               \
                                            const uint8_t *mb, int64_t o, int64_t len, T s) \
    {                                                                                      \
        for (int64_t e = 0; e < len; ++e) {                                                \
            const T d = bit_at(mb, o + e) ? dy[e] * s : (T)0;                              \
            dx[e] = d;                                                                     \
            if (acc)                                                                       \
                acc[e] = acc[e] + (double)d;                                               \
        }                                                                                  \
    }                                                                                      \
    static void seg_fwd_##S##_scalar(const T *x, const T *b, const T *r, T *y,             \
                                     const uint8_t *mb, int64_t o, int64_t len, T s)        \
    {                                                                                      \
        seg_fwd_##S##_tail(x, b, r, y, mb, o, len, s);                                     \
    }                                                                                      \
    static void seg_bwd_##S##_scalar(const T *dy, T *dx, double *acc, const uint8_t *mb,   \
                                     int64_t o, int64_t len, T s)                          \
    {                                                                                      \
        seg_bwd_##S##_tail(dy, dx, acc, mb, o, len, s);                                    \
    }

DF_DEFINE_SEG_SCALAR(f32, float)
DF_DEFINE_SEG_SCALAR(f64, double)

#if DF_HAVE_X86
#include <immintrin.h>

#define DF_TARGET_AVX2 __attribute__((target("avx2")))
#define DF_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))

/* AVX2: a lane's keep bit is shifted into its sign bit (vpsllvd/q), which
 * vblendvps/pd reads to pick the product or +0.0; the tail goes scalar. The
 * bias test is hoisted by the compiler (always-inlined with a constant). */
DF_FUSED_INLINE DF_TARGET_AVX2 void fwd_f32_avx2_body(const float *x, const float *b,
                                                      const float *r, float *y,
                                                      const uint8_t *mb, int64_t o,
                                                      int64_t len, float s, int has_b)
{
    const __m256 vs = _mm256_set1_ps(s), zero = _mm256_setzero_ps();
    const __m256i up = _mm256_setr_epi32(31, 30, 29, 28, 27, 26, 25, 24);
    int64_t e = 0;
    for (; e + 8 <= len; e += 8) {
        const __m256i kb = _mm256_set1_epi32((int)bits_from(mb, o + e));
        const __m256 keep = _mm256_castsi256_ps(_mm256_sllv_epi32(kb, up));
        __m256 v = _mm256_loadu_ps(x + e);
        if (has_b)
            v = _mm256_add_ps(v, _mm256_loadu_ps(b + e));
        v = _mm256_blendv_ps(zero, _mm256_mul_ps(v, vs), keep);
        _mm256_storeu_ps(y + e, _mm256_add_ps(_mm256_loadu_ps(r + e), v));
    }
    seg_fwd_f32_tail(x + e, has_b ? b + e : NULL, r + e, y + e, mb, o + e, len - e, s);
}

DF_TARGET_AVX2 static void seg_fwd_f32_avx2(const float *x, const float *b, const float *r,
                                            float *y, const uint8_t *mb, int64_t o, int64_t len,
                                            float s)
{
    if (b)
        fwd_f32_avx2_body(x, b, r, y, mb, o, len, s, 1);
    else
        fwd_f32_avx2_body(x, NULL, r, y, mb, o, len, s, 0);
}

DF_FUSED_INLINE DF_TARGET_AVX2 void fwd_f64_avx2_body(const double *x, const double *b,
                                                      const double *r, double *y,
                                                      const uint8_t *mb, int64_t o,
                                                      int64_t len, double s, int has_b)
{
    const __m256d vs = _mm256_set1_pd(s), zero = _mm256_setzero_pd();
    const __m256i up = _mm256_setr_epi64x(63, 62, 61, 60);
    int64_t e = 0;
    for (; e + 4 <= len; e += 4) {
        const __m256i kb = _mm256_set1_epi64x((long long)bits_from(mb, o + e));
        const __m256d keep = _mm256_castsi256_pd(_mm256_sllv_epi64(kb, up));
        __m256d v = _mm256_loadu_pd(x + e);
        if (has_b)
            v = _mm256_add_pd(v, _mm256_loadu_pd(b + e));
        v = _mm256_blendv_pd(zero, _mm256_mul_pd(v, vs), keep);
        _mm256_storeu_pd(y + e, _mm256_add_pd(_mm256_loadu_pd(r + e), v));
    }
    seg_fwd_f64_tail(x + e, has_b ? b + e : NULL, r + e, y + e, mb, o + e, len - e, s);
}

DF_TARGET_AVX2 static void seg_fwd_f64_avx2(const double *x, const double *b, const double *r,
                                            double *y, const uint8_t *mb, int64_t o,
                                            int64_t len, double s)
{
    if (b)
        fwd_f64_avx2_body(x, b, r, y, mb, o, len, s, 1);
    else
        fwd_f64_avx2_body(x, NULL, r, y, mb, o, len, s, 0);
}

DF_TARGET_AVX2 static void seg_bwd_f32_avx2(const float *dy, float *dx, double *acc,
                                            const uint8_t *mb, int64_t o, int64_t len, float s)
{
    const __m256 vs = _mm256_set1_ps(s), zero = _mm256_setzero_ps();
    const __m256i up = _mm256_setr_epi32(31, 30, 29, 28, 27, 26, 25, 24);
    int64_t e = 0;
    for (; e + 8 <= len; e += 8) {
        const __m256i kb = _mm256_set1_epi32((int)bits_from(mb, o + e));
        const __m256 keep = _mm256_castsi256_ps(_mm256_sllv_epi32(kb, up));
        const __m256 d = _mm256_blendv_ps(zero, _mm256_mul_ps(_mm256_loadu_ps(dy + e), vs), keep);
        _mm256_storeu_ps(dx + e, d);
        if (acc) {
            const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(d));
            const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(d, 1));
            _mm256_storeu_pd(acc + e, _mm256_add_pd(_mm256_loadu_pd(acc + e), lo));
            _mm256_storeu_pd(acc + e + 4, _mm256_add_pd(_mm256_loadu_pd(acc + e + 4), hi));
        }
    }
    seg_bwd_f32_tail(dy + e, dx + e, acc ? acc + e : NULL, mb, o + e, len - e, s);
}

DF_TARGET_AVX2 static void seg_bwd_f64_avx2(const double *dy, double *dx, double *acc,
                                            const uint8_t *mb, int64_t o, int64_t len, double s)
{
    const __m256d vs = _mm256_set1_pd(s), zero = _mm256_setzero_pd();
    const __m256i up = _mm256_setr_epi64x(63, 62, 61, 60);
    int64_t e = 0;
    for (; e + 4 <= len; e += 4) {
        const __m256i kb = _mm256_set1_epi64x((long long)bits_from(mb, o + e));
        const __m256d keep = _mm256_castsi256_pd(_mm256_sllv_epi64(kb, up));
        const __m256d d = _mm256_blendv_pd(zero, _mm256_mul_pd(_mm256_loadu_pd(dy + e), vs), keep);
        _mm256_storeu_pd(dx + e, d);
        if (acc)
            _mm256_storeu_pd(acc + e, _mm256_add_pd(_mm256_loadu_pd(acc + e), d));
    }
    seg_bwd_f64_tail(dy + e, dx + e, acc ? acc + e : NULL, mb, o + e, len - e, s);
}

/* AVX-512: the keep bits are the multiply's zeroing mask; the tail is the same
 * loop with masked loads and stores. */
DF_FUSED_INLINE DF_TARGET_AVX512 void fwd_f32_avx512_body(const float *x, const float *b,
                                                          const float *r, float *y,
                                                          const uint8_t *mb, int64_t o,
                                                          int64_t len, float s, int has_b)
{
    const __m512 vs = _mm512_set1_ps(s);
    for (int64_t e = 0; e < len; e += 16) {
        const __mmask16 t = len - e >= 16 ? (__mmask16)0xFFFF
                                           : (__mmask16)((1u << (len - e)) - 1u);
        const __mmask16 keep = (__mmask16)bits_from(mb, o + e) & t;
        __m512 v = _mm512_maskz_loadu_ps(t, x + e);
        if (has_b)
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(t, b + e));
        v = _mm512_maskz_mul_ps(keep, v, vs);
        _mm512_mask_storeu_ps(y + e, t, _mm512_add_ps(_mm512_maskz_loadu_ps(t, r + e), v));
    }
}

DF_TARGET_AVX512 static void seg_fwd_f32_avx512(const float *x, const float *b, const float *r,
                                                float *y, const uint8_t *mb, int64_t o,
                                                int64_t len, float s)
{
    if (b)
        fwd_f32_avx512_body(x, b, r, y, mb, o, len, s, 1);
    else
        fwd_f32_avx512_body(x, NULL, r, y, mb, o, len, s, 0);
}

DF_FUSED_INLINE DF_TARGET_AVX512 void fwd_f64_avx512_body(const double *x, const double *b,
                                                          const double *r, double *y,
                                                          const uint8_t *mb, int64_t o,
                                                          int64_t len, double s, int has_b)
{
    const __m512d vs = _mm512_set1_pd(s);
    for (int64_t e = 0; e < len; e += 8) {
        const __mmask8 t = len - e >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (len - e)) - 1u);
        const __mmask8 keep = (__mmask8)bits_from(mb, o + e) & t;
        __m512d v = _mm512_maskz_loadu_pd(t, x + e);
        if (has_b)
            v = _mm512_add_pd(v, _mm512_maskz_loadu_pd(t, b + e));
        v = _mm512_maskz_mul_pd(keep, v, vs);
        _mm512_mask_storeu_pd(y + e, t, _mm512_add_pd(_mm512_maskz_loadu_pd(t, r + e), v));
    }
}

DF_TARGET_AVX512 static void seg_fwd_f64_avx512(const double *x, const double *b,
                                                const double *r, double *y, const uint8_t *mb,
                                                int64_t o, int64_t len, double s)
{
    if (b)
        fwd_f64_avx512_body(x, b, r, y, mb, o, len, s, 1);
    else
        fwd_f64_avx512_body(x, NULL, r, y, mb, o, len, s, 0);
}

DF_TARGET_AVX512 static void seg_bwd_f32_avx512(const float *dy, float *dx, double *acc,
                                                const uint8_t *mb, int64_t o, int64_t len,
                                                float s)
{
    const __m512 vs = _mm512_set1_ps(s);
    for (int64_t e = 0; e < len; e += 16) {
        const __mmask16 t = len - e >= 16 ? (__mmask16)0xFFFF
                                           : (__mmask16)((1u << (len - e)) - 1u);
        const __mmask16 keep = (__mmask16)bits_from(mb, o + e) & t;
        const __m512 d = _mm512_maskz_mul_ps(keep, _mm512_maskz_loadu_ps(t, dy + e), vs);
        _mm512_mask_storeu_ps(dx + e, t, d);
        if (acc) {
            const __mmask8 tl = (__mmask8)t, th = (__mmask8)(t >> 8);
            const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(d));
            const __m512d hi = _mm512_cvtps_pd(_mm512_extractf32x8_ps(d, 1));
            _mm512_mask_storeu_pd(acc + e, tl,
                                  _mm512_add_pd(_mm512_maskz_loadu_pd(tl, acc + e), lo));
            _mm512_mask_storeu_pd(acc + e + 8, th,
                                  _mm512_add_pd(_mm512_maskz_loadu_pd(th, acc + e + 8), hi));
        }
    }
}

DF_TARGET_AVX512 static void seg_bwd_f64_avx512(const double *dy, double *dx, double *acc,
                                                const uint8_t *mb, int64_t o, int64_t len,
                                                double s)
{
    const __m512d vs = _mm512_set1_pd(s);
    for (int64_t e = 0; e < len; e += 8) {
        const __mmask8 t = len - e >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (len - e)) - 1u);
        const __mmask8 keep = (__mmask8)bits_from(mb, o + e) & t;
        const __m512d d = _mm512_maskz_mul_pd(keep, _mm512_maskz_loadu_pd(t, dy + e), vs);
        _mm512_mask_storeu_pd(dx + e, t, d);
        if (acc)
            _mm512_mask_storeu_pd(acc + e, t,
                                  _mm512_add_pd(_mm512_maskz_loadu_pd(t, acc + e), d));
    }
}

#define DF_SEG_PICK(NAME, isa)                                                             \
    ((isa) == DF_ISA_AVX512 ? NAME##_avx512 : (isa) == DF_ISA_AVX2 ? NAME##_avx2 : NAME##_scalar)
#else
#define DF_SEG_PICK(NAME, isa) ((void)(isa), NAME##_scalar)
#endif

/* ------------------------------------------------------------------ drivers */

#if DF_USE_OPENMP
#define DF_FUSED_PARALLEL_FOR                                                              \
    _Pragma("omp parallel for schedule(static) num_threads(nt) if (nt > 1)")
#else
#define DF_FUSED_PARALLEL_FOR
#endif

/* block0 + ceil(n / 8) must stay inside the 96-bit counter space. */
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

static df_status_t check_bias(int has_bias, int64_t n, int64_t c)
{
    if (has_bias && (c < 1 || n % c != 0))
        return DF_ERR_SHAPE;
    return DF_OK;
}

#define DF_DEFINE_BDA_FWD(NAME, T, S)                                                      \
    df_status_t NAME(const T *x, const T *bias, const T *residual, T *y, uint8_t *bits,    \
                     int64_t n, int64_t c, df_key_t key, df_block_t block0, uint64_t thresh, \
                     T scale, const df_opts_t *opts)                                       \
    {                                                                                      \
        if (n < 0 || (n > 0 && (!x || !residual || !y)))                                   \
            return DF_ERR_ARG;                                                             \
        df_status_t st = check_bias(bias != NULL, n, c);                                   \
        if (st == DF_OK)                                                                   \
            st = check_counter(n, block0, thresh);                                         \
        if (st != DF_OK)                                                                   \
            return st;                                                                     \
        const df_kernels_t *k = df_kernels_get(opts ? opts->isa : DF_ISA_AUTO);            \
        if (k == NULL)                                                                     \
            return DF_ERR_ISA;                                                             \
        if (n == 0)                                                                        \
            return DF_OK;                                                                  \
        const seg_fwd_##S##_fn seg = DF_SEG_PICK(seg_fwd_##S, k->isa);                     \
        const int64_t row = bias ? c : n, nchunks = (n + FUSED_CHUNK - 1) / FUSED_CHUNK;   \
        const int nt = df_threads_for(n, opts);                                            \
        (void)nt;                                                                          \
        DF_FUSED_PARALLEL_FOR                                                              \
        for (int64_t ch = 0; ch < nchunks; ++ch) {                                         \
            uint8_t mb[FUSED_CHUNK / 8 + FUSED_PAD];                                       \
            const int64_t s = ch * FUSED_CHUNK;                                            \
            const int64_t len = n - s < FUSED_CHUNK ? n - s : FUSED_CHUNK;                 \
            draw_bits(k, mb, s, len, key, block0, thresh);                                 \
            if (bits)                                                                      \
                memcpy(bits + (s >> 3), mb, (size_t)(len + 7) >> 3);                       \
            for (int64_t i = s; i < s + len;) {                                            \
                const int64_t j = i % row;                                                 \
                const int64_t m = s + len - i < row - j ? s + len - i : row - j;          \
                seg(x + i, bias ? bias + j : NULL, residual + i, y + i, mb, i - s, m, scale); \
                i += m;                                                                    \
            }                                                                              \
        }                                                                                  \
        return DF_OK;                                                                      \
    }

DF_DEFINE_BDA_FWD(df_bias_dropout_add_f32, float, f32)
DF_DEFINE_BDA_FWD(df_bias_dropout_add_f64, double, f64)

/* Backward. Without dbias: whole chunks, in parallel, like the forward. With
 * dbias and one strip: the flat chunks in order on one thread, each row segment
 * adding into dbias + j, so every column takes its rows in order. With several
 * strips: thread t owns columns [c0, c1) and walks the rows in order, fetching
 * the bits of each row's piece (copied, or drawn from the aligned block before it). */
#define DF_DEFINE_BDA_BWD(NAME, T, S)                                                      \
    df_status_t NAME(const T *dy, T *dx, double *dbias, const uint8_t *bits, int64_t n,    \
                     int64_t c, df_key_t key, df_block_t block0, uint64_t thresh, T scale,  \
                     const df_opts_t *opts)                                                \
    {                                                                                      \
        if (n < 0 || (n > 0 && (!dy || !dx)))                                              \
            return DF_ERR_ARG;                                                             \
        df_status_t st = check_bias(dbias != NULL, n, c);                                  \
        if (st == DF_OK && !bits)                                                          \
            st = check_counter(n, block0, thresh);                                         \
        if (st != DF_OK)                                                                   \
            return st;                                                                     \
        const df_kernels_t *k = df_kernels_get(opts ? opts->isa : DF_ISA_AUTO);            \
        if (k == NULL)                                                                     \
            return DF_ERR_ISA;                                                             \
        if (dbias)                                                                         \
            for (int64_t j = 0; j < c; ++j)                                                \
                dbias[j] = 0.0;                                                            \
        if (n == 0)                                                                        \
            return DF_OK;                                                                  \
        const seg_bwd_##S##_fn seg = DF_SEG_PICK(seg_bwd_##S, k->isa);                     \
        int nt = df_threads_for(n, opts);                                                  \
        const int64_t row = dbias ? c : n;                                                 \
        int64_t nstrips = 1;                                                               \
        if (dbias) {                                                                       \
            nstrips = c / FUSED_MIN_STRIP < nt ? c / FUSED_MIN_STRIP : nt;                 \
            if (nstrips < 1)                                                               \
                nstrips = 1;                                                               \
            nt = (int)nstrips;                                                             \
        }                                                                                  \
        if (nstrips == 1) {                                                                \
            const int64_t nchunks = (n + FUSED_CHUNK - 1) / FUSED_CHUNK;                   \
            if (dbias)                                                                     \
                nt = 1;                                                                    \
            (void)nt;                                                                      \
            DF_FUSED_PARALLEL_FOR                                                          \
            for (int64_t ch = 0; ch < nchunks; ++ch) {                                     \
                uint8_t mb[FUSED_CHUNK / 8 + FUSED_PAD];                                   \
                const int64_t s = ch * FUSED_CHUNK;                                        \
                const int64_t len = n - s < FUSED_CHUNK ? n - s : FUSED_CHUNK;             \
                fetch_bits(k, mb, bits, s, len, key, block0, thresh);                      \
                for (int64_t i = s; i < s + len;) {                                        \
                    const int64_t j = i % row;                                             \
                    const int64_t m = s + len - i < row - j ? s + len - i : row - j;       \
                    seg(dy + i, dx + i, dbias ? dbias + j : NULL, mb, i - s, m, scale);    \
                    i += m;                                                                \
                }                                                                          \
            }                                                                              \
            return DF_OK;                                                                  \
        }                                                                                  \
        const int64_t rows = n / c;                                                        \
        DF_FUSED_PARALLEL_FOR                                                              \
        for (int64_t t = 0; t < nstrips; ++t) {                                            \
            uint8_t mb[FUSED_CHUNK / 8 + FUSED_PAD];                                       \
            const int64_t c0 = c * t / nstrips, c1 = c * (t + 1) / nstrips;                \
            for (int64_t r = 0; r < rows; ++r)                                             \
                for (int64_t j = c0; j < c1;) {                                            \
                    const int64_t m = c1 - j < FUSED_CHUNK - 8 ? c1 - j : FUSED_CHUNK - 8; \
                    const int64_t e = r * c + j;                                           \
                    const int64_t o = fetch_bits(k, mb, bits, e, m, key, block0, thresh);  \
                    seg(dy + e, dx + e, dbias + j, mb, o, m, scale);                       \
                    j += m;                                                                \
                }                                                                          \
        }                                                                                  \
        return DF_OK;                                                                      \
    }

DF_DEFINE_BDA_BWD(df_bias_dropout_add_bwd_f32, float, f32)
DF_DEFINE_BDA_BWD(df_bias_dropout_add_bwd_f64, double, f64)
