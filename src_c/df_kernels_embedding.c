/* df_kernels_embedding.c: embedding (word) dropout (Gal & Ghahramani, "A
 * theoretically grounded application of dropout in recurrent neural networks",
 * NeurIPS 2016, sec. 4.1; AWD-LSTM's embedded_dropout): whole rows of a (V, D)
 * matrix are kept or dropped, one mask bit per row, and only the rows that
 * tokens look up are touched.
 *
 * Forward is a gather: each token's row, scaled or zeroed, one pass over the
 * output, reading only kept rows. Backward is its transpose, a scatter-add of
 * the tokens' gradient rows into their ids' rows. numpy.add.at does that one
 * token at a time; here the kept tokens are first bucketed by row with a stable
 * counting sort (in the caller's workspace: kernels do not allocate), so that
 * each output row is summed in registers/L1 from its tokens in token order and
 * written exactly once, dropped rows read nothing, and threads can take ranges
 * of rows: every row's sum is the same sequence of roundings whatever the
 * thread count. Where a NaN token value meets a NaN sum, the sum takes the
 * token's NaN (quieted, d + d) by an explicit select: IEEE leaves the payload
 * of NaN + NaN to the hardware's operand order, which compilers may swap, and
 * this is the choice numpy.add.at makes on x86-64. The sums are plain loops
 * over the row; the compiler vectorises them across columns (each lane its own
 * column, so no reassociation), once per instruction set under target
 * attributes, as df_mc.c. */
#include <string.h>

#include "df_internal.h"

#ifndef DF_USE_OPENMP
#define DF_USE_OPENMP 0
#endif
#if DF_USE_OPENMP
#include <omp.h>
#endif

/* Rows are read in an order the hardware prefetcher cannot guess (the ids), a
 * DRAM and TLB miss each when the matrix is large: ask for the row LOOKAHEAD
 * tokens ahead (its first KiB; the stream prefetcher follows the rest).
 * Measured (2**18 rows of 256 floats, half kept, one thread, AVX2): 4 tokens
 * ahead 47/61 ms forward/backward, 8: 33/44, 16: 32/41, 32: 33/42. */
#ifndef DF_EMB_LOOKAHEAD
#define DF_EMB_LOOKAHEAD 16
#endif
static inline void prefetch_row(const void *p, int64_t bytes)
{
#if defined(__GNUC__)
    const char *c = (const char *)p;
    for (int64_t o = 0; o < bytes && o < 1024; o += 64)
        __builtin_prefetch(c + o, 0, 3);
#else
    (void)p;
    (void)bytes;
#endif
}

/* Tokens [t0, t1) of the gather. */
#define DF_DEFINE_EMB_FWD_RANGE(NAME, T, TARGET)                                            \
    TARGET static void NAME(const T *weight, int64_t ldw, T *out, const int64_t *ids,        \
                            int64_t dim, const uint8_t *bits, T scale, int64_t t0, int64_t t1) \
    {                                                                                        \
        for (int64_t t = t0; t < t1; ++t) {                                                  \
            const int64_t r = ids[t];                                                        \
            T *o = out + t * dim;                                                            \
            if (t + DF_EMB_LOOKAHEAD < t1 && df_bit(bits, ids[t + DF_EMB_LOOKAHEAD]))        \
                prefetch_row(weight + ids[t + DF_EMB_LOOKAHEAD] * ldw,                       \
                             dim * (int64_t)sizeof(T));                                      \
            if (df_bit(bits, r)) {                                                           \
                const T *w = weight + r * ldw;                                               \
                for (int64_t j = 0; j < dim; ++j)                                            \
                    o[j] = w[j] * scale;                                                     \
            } else {                                                                         \
                memset(o, 0, (size_t)dim * sizeof(T));                                       \
            }                                                                                \
        }                                                                                    \
    }

/* Rows [r0, r1) of the gradient; row r's kept tokens are perm[beg(r) .. end[r]),
 * beg(r) = r > 0 ? end[r - 1] : 0. Runs of rows without one are cleared at once. */
#define DF_DEFINE_EMB_BWD_RANGE(NAME, T, U, TARGET)                                          \
    TARGET static void NAME(const T *dout, int64_t ldd, T *grad, const int64_t *end,         \
                            const int64_t *perm, int64_t dim, T scale, int64_t r0, int64_t r1) \
    {                                                                                        \
        int64_t zero_from = r0;                                                              \
        const int64_t kend = r1 > r0 ? end[r1 - 1] : 0;                                      \
        for (int64_t r = r0; r < r1; ++r) {                                                  \
            const int64_t a = r > 0 ? end[r - 1] : 0, b = end[r];                            \
            if (a == b)                                                                      \
                continue;                                                                    \
            if (zero_from < r)                                                               \
                memset(grad + zero_from * dim, 0, (size_t)((r - zero_from) * dim) * sizeof(T)); \
            zero_from = r + 1;                                                               \
            T *g = grad + r * dim;                                                           \
            const T *d = dout + perm[a] * ldd;                                               \
            if (a + DF_EMB_LOOKAHEAD < kend)                                                 \
                prefetch_row(dout + perm[a + DF_EMB_LOOKAHEAD] * ldd,                        \
                             dim * (int64_t)sizeof(T));                                      \
            for (int64_t j = 0; j < dim; ++j)                                                \
                g[j] = (T)0 + d[j];                                                          \
            for (int64_t k = a + 1; k < b; ++k) {                                            \
                d = dout + perm[k] * ldd;                                                    \
                if (k + DF_EMB_LOOKAHEAD < kend)                                             \
                    prefetch_row(dout + perm[k + DF_EMB_LOOKAHEAD] * ldd,                    \
                                 dim * (int64_t)sizeof(T));                                  \
                for (int64_t j = 0; j < dim; ++j) {                                          \
                    /* A blend of bits, not ?: (which GCC keeps as a branch under its        \
                     * default -ftrapping-math, unvectorised). */                            \
                    const T sum = d[j] + g[j], own = d[j] + d[j];                            \
                    U us, uo;                                                                \
                    memcpy(&us, &sum, sizeof us);                                            \
                    memcpy(&uo, &own, sizeof uo);                                            \
                    const U nan = (U)0 - (U)(d[j] != d[j]);                                  \
                    us = (uo & nan) | (us & ~nan);                                           \
                    memcpy(&g[j], &us, sizeof us);                                           \
                }                                                                            \
            }                                                                                \
            for (int64_t j = 0; j < dim; ++j)                                                \
                g[j] = g[j] * scale;                                                         \
        }                                                                                    \
        if (zero_from < r1)                                                                  \
            memset(grad + zero_from * dim, 0, (size_t)((r1 - zero_from) * dim) * sizeof(T)); \
    }

typedef void (*emb_fwd_f32_fn)(const float *, int64_t, float *, const int64_t *, int64_t,
                               const uint8_t *, float, int64_t, int64_t);
typedef void (*emb_fwd_f64_fn)(const double *, int64_t, double *, const int64_t *, int64_t,
                               const uint8_t *, double, int64_t, int64_t);
typedef void (*emb_bwd_f32_fn)(const float *, int64_t, float *, const int64_t *,
                               const int64_t *, int64_t, float, int64_t, int64_t);
typedef void (*emb_bwd_f64_fn)(const double *, int64_t, double *, const int64_t *,
                               const int64_t *, int64_t, double, int64_t, int64_t);

DF_DEFINE_EMB_FWD_RANGE(emb_fwd_f32_scalar, float, )
DF_DEFINE_EMB_FWD_RANGE(emb_fwd_f64_scalar, double, )
DF_DEFINE_EMB_BWD_RANGE(emb_bwd_f32_scalar, float, uint32_t, )
DF_DEFINE_EMB_BWD_RANGE(emb_bwd_f64_scalar, double, uint64_t, )
#if DF_HAVE_X86
#define DF_EMB_AVX2 __attribute__((target("avx2")))
#define DF_EMB_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
DF_DEFINE_EMB_FWD_RANGE(emb_fwd_f32_avx2, float, DF_EMB_AVX2)
DF_DEFINE_EMB_FWD_RANGE(emb_fwd_f64_avx2, double, DF_EMB_AVX2)
DF_DEFINE_EMB_BWD_RANGE(emb_bwd_f32_avx2, float, uint32_t, DF_EMB_AVX2)
DF_DEFINE_EMB_BWD_RANGE(emb_bwd_f64_avx2, double, uint64_t, DF_EMB_AVX2)
DF_DEFINE_EMB_FWD_RANGE(emb_fwd_f32_avx512, float, DF_EMB_AVX512)
DF_DEFINE_EMB_FWD_RANGE(emb_fwd_f64_avx512, double, DF_EMB_AVX512)
DF_DEFINE_EMB_BWD_RANGE(emb_bwd_f32_avx512, float, uint32_t, DF_EMB_AVX512)
DF_DEFINE_EMB_BWD_RANGE(emb_bwd_f64_avx512, double, uint64_t, DF_EMB_AVX512)
#define DF_EMB_PICK(DIR, S, isa)                                                             \
    ((isa) == DF_ISA_AVX512 ? emb_##DIR##_##S##_avx512                                       \
     : (isa) == DF_ISA_AVX2 ? emb_##DIR##_##S##_avx2                                         \
                            : emb_##DIR##_##S##_scalar)
#else
#define DF_EMB_PICK(DIR, S, isa) ((void)(isa), emb_##DIR##_##S##_scalar)
#endif

#if DF_USE_OPENMP
#define DF_EMB_PARALLEL _Pragma("omp parallel num_threads(nt) if (nt > 1)")
#define DF_EMB_THREAD omp_get_thread_num()
#define DF_EMB_NTHREADS omp_get_num_threads()
#else
#define DF_EMB_PARALLEL (void)nt;
#define DF_EMB_THREAD 0
#define DF_EMB_NTHREADS 1
#endif

/* Part t of tn of [0, n): contiguous, in order, sizes differing by at most one. */
#define DF_EMB_PART(n, t, tn, lo, hi)                                                        \
    const int64_t q_ = (n) / (tn), m_ = (n) % (tn);                                          \
    const int64_t lo = q_ * (t) + ((t) < m_ ? (t) : m_), hi = lo + q_ + ((t) < m_)

/* Every id in [0, vocab), or DF_ERR_INDEX. */
static df_status_t check_ids(const int64_t *ids, int64_t ntok, int64_t vocab)
{
    uint64_t bad = 0;
    for (int64_t t = 0; t < ntok; ++t)
        bad |= (uint64_t)ids[t] >= (uint64_t)vocab; /* a negative id wraps above vocab */
    return bad ? DF_ERR_INDEX : DF_OK;
}

#define DF_DEFINE_EMB_FWD(NAME, T, S)                                                        \
    df_status_t NAME(const T *weight, int64_t ldw, T *out, const int64_t *ids, int64_t ntok, \
                     int64_t vocab, int64_t dim, const uint8_t *bits, T scale,               \
                     const df_opts_t *opts)                                                  \
    {                                                                                        \
        if (ntok < 0 || vocab < 0 || dim < 0 || (ntok > 0 && (!ids || !bits)) ||             \
            (ntok > 0 && dim > 0 && (!weight || !out)))                                      \
            return DF_ERR_ARG;                                                               \
        const df_kernels_t *kt = df_kernels_get(opts ? opts->isa : DF_ISA_AUTO);             \
        if (kt == NULL)                                                                      \
            return DF_ERR_ISA;                                                               \
        if (check_ids(ids, ntok, vocab) != DF_OK)                                            \
            return DF_ERR_INDEX;                                                             \
        if (ntok == 0 || dim == 0)                                                           \
            return DF_OK;                                                                    \
        const emb_fwd_##S##_fn range = DF_EMB_PICK(fwd, S, kt->isa);                         \
        int nt = df_threads_for(ntok * dim, opts);                                           \
        if (nt > ntok)                                                                       \
            nt = (int)ntok;                                                                  \
        DF_EMB_PARALLEL                                                                      \
        {                                                                                    \
            DF_EMB_PART(ntok, DF_EMB_THREAD, DF_EMB_NTHREADS, t0, t1);                       \
            range(weight, ldw, out, ids, dim, bits, scale, t0, t1);                          \
        }                                                                                    \
        return DF_OK;                                                                        \
    }

DF_DEFINE_EMB_FWD(df_embedding_fwd_f32, float, f32)
DF_DEFINE_EMB_FWD(df_embedding_fwd_f64, double, f64)

/* The stable counting sort of the kept tokens by row into work: end[0..vocab)
 * (end[r]: one past row r's last entry of perm) and perm[0..ntok). Checks the
 * ids before anything is written outside work. */
static df_status_t bucket_rows(const int64_t *ids, int64_t ntok, int64_t vocab,
                               const uint8_t *bits, int64_t *work)
{
    int64_t *start = work, *perm = work + vocab + 1;
    memset(start, 0, (size_t)(vocab + 1) * sizeof(int64_t));
    uint64_t bad = 0;
    for (int64_t t = 0; t < ntok; ++t) {
        const int64_t r = ids[t];
        if ((uint64_t)r >= (uint64_t)vocab) {
            bad = 1;
            continue;
        }
        start[r + 1] += df_bit(bits, r);
    }
    if (bad)
        return DF_ERR_INDEX;
    for (int64_t r = 1; r <= vocab; ++r)
        start[r] += start[r - 1];
    /* start[r] = where row r begins; filling advances it to where row r ends. */
    for (int64_t t = 0; t < ntok; ++t) {
        const int64_t r = ids[t];
        if (df_bit(bits, r))
            perm[start[r]++] = t;
    }
    return DF_OK;
}

#define DF_DEFINE_EMB_BWD(NAME, T, S)                                                        \
    df_status_t NAME(const T *dout, int64_t ldd, T *grad, const int64_t *ids, int64_t ntok,  \
                     int64_t vocab, int64_t dim, const uint8_t *bits, T scale, int64_t *work, \
                     const df_opts_t *opts)                                                  \
    {                                                                                        \
        if (ntok < 0 || vocab < 0 || dim < 0 || (ntok > 0 && !ids) ||                        \
            (vocab > 0 && (!bits || !work)) || (ntok > 0 && dim > 0 && !dout) ||             \
            (vocab > 0 && dim > 0 && !grad))                                                 \
            return DF_ERR_ARG;                                                               \
        const df_kernels_t *kt = df_kernels_get(opts ? opts->isa : DF_ISA_AUTO);             \
        if (kt == NULL)                                                                      \
            return DF_ERR_ISA;                                                               \
        if (vocab == 0)                                                                      \
            return check_ids(ids, ntok, vocab);                                              \
        const df_status_t st = bucket_rows(ids, ntok, vocab, bits, work);                    \
        if (st != DF_OK || dim == 0)                                                         \
            return st;                                                                       \
        const emb_bwd_##S##_fn range = DF_EMB_PICK(bwd, S, kt->isa);                         \
        const int64_t *end = work, *perm = work + vocab + 1;                                 \
        int nt = df_threads_for(vocab * dim, opts);                                          \
        if (nt > vocab)                                                                      \
            nt = (int)vocab;                                                                 \
        DF_EMB_PARALLEL                                                                      \
        {                                                                                    \
            DF_EMB_PART(vocab, DF_EMB_THREAD, DF_EMB_NTHREADS, r0, r1);                      \
            range(dout, ldd, grad, end, perm, dim, scale, r0, r1);                           \
        }                                                                                    \
        return DF_OK;                                                                        \
    }

DF_DEFINE_EMB_BWD(df_embedding_bwd_f32, float, f32)
DF_DEFINE_EMB_BWD(df_embedding_bwd_f64, double, f64)
