/* df_kernels_softmax.c: attention dropout, the softmax over the last axis fused
 * with inverted dropout, forward and backward (df_softmax_dropout_* in
 * dropout_fast.h, whose contract block specifies every step).
 *
 * A row of Lk scores (its first nv with is_causal) takes three passes over data
 * that stays in L1 for attention-sized rows:
 *   1. s' = the masked scores (into the output, as scratch), m = max;
 *   2. e = exp(s' - m) into the output, Z = sum of e in W lanes;
 *   3. P = e * (1 / Z), y = keep ? P * scale : +0, P to probs if asked, its sign
 *      bit set where dropped (flash-attention returns its dropped probabilities
 *      negated the same way), so backward from probs needs no mask at all.
 * Backward from probs: dot = sum |P| * dP in W lanes, then ds = |P| * (dP - dot),
 * streamed out for large outputs. Backward by recomputation: passes 1-3 again
 * into ds, then the same two passes with the mask drawn again (or read).
 *
 * exp is our own (sm_exp_f32/f64), every step an IEEE add or multiply or an exact
 * bit operation. The scalar, AVX2 and AVX-512 bodies are one C source compiled
 * under function target attributes (as in df_kernels_gaussian.c) whose lane
 * loops the compiler vectorises; nothing is contracted (-ffp-contract=off); so
 * every instruction set, the Numba backend and the numpy oracle agree bit for bit.
 *
 * Keep bits come from the instruction set's mask kernel (df_internal.h), drawn
 * into a window of SM_WCAP elements and expanded to 0/-1 byte lanes by a table:
 * short rows share one Philox call, long rows are walked in segments. Threads
 * take whole rows, parts of a multiple of 8 rows, so a part starts on a block
 * boundary and no two threads write the same mask byte. */
#include <math.h>
#include <string.h>

#include "df_internal.h"
#include "df_philox.h"

#ifndef DF_USE_OPENMP
#define DF_USE_OPENMP 0
#endif

#define SM_INLINE static inline __attribute__((always_inline))

/* Lanes of the sums (Z and the backward dot): two 64-byte vectors of each dtype,
 * so AVX-512 keeps two accumulators and AVX2 four. Part of the contract. */
#define SM_W_F32 32
#define SM_W_F64 16
/* Elements per keep segment (a multiple of both W) and of the bit window, which
 * starts at the multiple of 8 at or below the segment's first element. */
#define SM_SEG 2048
#define SM_WCAP (SM_SEG + 64)

/* exp(x) for x <= 0 (the row's s' - m), in float (double):
 *   x < XMIN = -87 (-708), also -inf: 0. Otherwise
 *   n = (x * LOG2E + MAGIC) - MAGIC, MAGIC = 1.5 * 2**23 (2**52): x log2 e rounded
 *       to the nearest integer, in [-126, 0] ([-1021, 0]);
 *   r = (x - n * LN2HI) - n * LN2LO, LN2HI = ln 2 to 9 (32) significant bits, so
 *       n * LN2HI is exact (Cody & Waite 1980);
 *   p = 1/7!; p = p * r + 1/6!; ...; p = p * r + 1/2; p = p * r + 1; p = p * r + 1
 *       (Taylor to 1/13! in double), each coefficient rounded to the dtype;
 *   exp = p * 2**n, exact: x >= XMIN keeps the result normal. NaN stays NaN.
 * The code is branch-free, so that every ISA vectorises it: lanes below XMIN
 * compute garbage (an exponent field that wraps, unsigned and defined) which an
 * integer mask clears; a select on x would become a branch around floating-point
 * operations, which GCC does not if-convert under -ftrapping-math without
 * AVX-512's masks. 2**n is built from the bits of t, which hold n exactly. */
static const float EXP_C_F[6] = {
    0x1.a01a02p-13f, 0x1.6c16c2p-10f, 0x1.111112p-7f, 0x1.555556p-5f, 0x1.555556p-3f, 0x1p-1f,
};
static const double EXP_C_D[12] = {
    0x1.6124613a86d09p-33, 0x1.1eed8eff8d898p-29, 0x1.ae64567f544e4p-26, 0x1.27e4fb7789f5cp-22,
    0x1.71de3a556c734p-19, 0x1.a01a01a01a01ap-16, 0x1.a01a01a01a01ap-13, 0x1.6c16c16c16c17p-10,
    0x1.1111111111111p-7,  0x1.5555555555555p-5,  0x1.5555555555555p-3,  0x1p-1,
};

#define SM_DEFINE_EXP(NAME, T, U, XMIN, LOG2E, MAGIC, LN2HI, LN2LO, C, NC, BIAS, MANT)      \
    SM_INLINE T NAME(T x)                                                                  \
    {                                                                                      \
        const T t = x * LOG2E + MAGIC;                                                     \
        const T n = t - MAGIC;                                                             \
        const T r = (x - n * LN2HI) - n * LN2LO;                                           \
        T p = C[0];                                                                        \
        for (int k = 1; k < NC; ++k)                                                       \
            p = p * r + C[k];                                                              \
        p = p * r + (T)1;                                                                  \
        p = p * r + (T)1;                                                                  \
        const T magic = MAGIC;                                                             \
        U tb, mb, eb;                                                                      \
        memcpy(&tb, &t, sizeof tb);                                                        \
        memcpy(&mb, &magic, sizeof mb);                                                    \
        const U sb = (tb - mb + BIAS) << MANT; /* 2**n: the bits of t hold n */            \
        T sc, e;                                                                           \
        memcpy(&sc, &sb, sizeof sc);                                                       \
        e = p * sc;                                                                        \
        memcpy(&eb, &e, sizeof eb);                                                        \
        eb &= (U)(x < XMIN) - 1u;                                                          \
        memcpy(&e, &eb, sizeof e);                                                         \
        return e;                                                                          \
    }

SM_DEFINE_EXP(sm_exp_f32, float, uint32_t, -87.0f, 0x1.715476p+0f, 0x1.8p+23f, 0x1.63p-1f,
              -0x1.bd0106p-13f, EXP_C_F, 6, 127u, 23)
SM_DEFINE_EXP(sm_exp_f64, double, uint64_t, -708.0, 0x1.71547652b82fep+0, 0x1.8p+52,
              0x1.62e42fee00000p-1, 0x1.a39ef35793c76p-33, EXP_C_D, 12, 1023u, 52)

/* ------------------------------------------------------------------ the call */
typedef struct {
    const df_kernels_t *k;
    const df_attn_t *a;
    int64_t lq, lk; /* queries (extent of axis ndim - 2, 1 for ndim 1) and keys */
    const void *s;        /* scores (forward; backward "recompute"), or NULL */
    void *y;              /* forward output, or backward ds */
    void *probs_out;      /* forward: P (may be NULL) */
    const void *probs_in; /* backward "store": P; NULL to recompute it from s */
    const void *dy;       /* backward only */
    uint8_t *bits_out;
    const uint8_t *bits_in;
    df_key_t key;
    df_block_t block0;
    uint64_t thresh;
    double scale;
    int stream; /* non-temporal stores for ds (large outputs) */
} sm_job_t;

/* Element offset of row r's mask row: the multi-index of r over axes
 * 0 .. ndim-2 of the scores dotted with the mask's strides. */
static int64_t sm_mask_offset(const df_attn_t *a, int64_t r)
{
    int64_t off = 0;
    for (int d = a->ndim - 2; d >= 0; --d) {
        const int64_t e = a->shape[d];
        off += (r % e) * a->mask_strides[d];
        r /= e;
    }
    return off;
}

/* The keys row r attends to: all Lk, or keys 0 .. i with is_causal (top-left
 * aligned: query i = r % Lq). */
static int64_t sm_valid(const sm_job_t *j, int64_t r)
{
    if (!j->a->causal)
        return j->lk;
    const int64_t i = r % j->lq;
    return i + 1 < j->lk ? i + 1 : j->lk;
}

/* Keep bits [start, start + count), start a multiple of 8, into dst: the mask
 * kernel, cut where the low counter word wraps (df_internal.h's promise). */
static void sm_draw(const sm_job_t *j, uint8_t *dst, int64_t start, int64_t count)
{
    while (count > 0) {
        const df_block_t b = df_block_add(j->block0, (uint64_t)(start >> 3));
        const uint64_t to_wrap = ((uint64_t)1 << 32) - (b.lo & 0xFFFFFFFFu);
        const int64_t piece = (uint64_t)count > 8 * to_wrap ? (int64_t)(8 * to_wrap) : count;
        j->k->mask(dst, piece, j->key, b, j->thresh);
        dst += piece >> 3;
        start += piece;
        count -= piece;
    }
}

/* The keep window of one thread: flat elements [start, start + len) of its part
 * (which ends at end) as lanes of 0 (drop) or -1 (keep), from the given bits or
 * drawn into buf. */
typedef struct {
    const uint8_t *given;
    int64_t end, start, len;
    uint8_t buf[SM_WCAP / 8];
    int8_t lanes[SM_WCAP];
} sm_win_t;

static void sm_win_init(sm_win_t *w, const uint8_t *given, int64_t end)
{
    w->given = given;
    w->end = end;
    w->start = 0;
    w->len = 0;
}

/* The eight lanes of a mask byte b as a word whose byte h (in memory order) is
 * 0xFF if bit h of b is set, else 0: spread b, isolate bit h in byte h,
 * saturate each byte. A table of all 256, so expanding the bits is a load and
 * a store per byte. */
#define SM_SPREAD(b)                                                                       \
    ((((((uint64_t)(b) * 0x0101010101010101ull) & 0x8040201008040201ull) +                \
       0x7F7F7F7F7F7F7F7Full) & 0x8080808080808080ull) >> 7) * 0xFFu
#define SM_SPREAD4(b) SM_SPREAD(b), SM_SPREAD(b + 1), SM_SPREAD(b + 2), SM_SPREAD(b + 3)
#define SM_SPREAD16(b) SM_SPREAD4(b), SM_SPREAD4(b + 4), SM_SPREAD4(b + 8), SM_SPREAD4(b + 12)
#define SM_SPREAD64(b)                                                                     \
    SM_SPREAD16(b), SM_SPREAD16(b + 16), SM_SPREAD16(b + 32), SM_SPREAD16(b + 48)
static const uint64_t SM_LANES[256] = {SM_SPREAD64(0), SM_SPREAD64(64), SM_SPREAD64(128),
                                       SM_SPREAD64(192)};

/* The lanes of flat elements [f, f + n), n <= SM_SEG: the window moves to start
 * at f rounded down to 8 when they are not all in it. */
static const int8_t *sm_keep(const sm_job_t *j, sm_win_t *w, int64_t f, int64_t n)
{
    if (f < w->start || f + n > w->start + w->len) {
        const int64_t a = f & ~(int64_t)7;
        w->start = a;
        w->len = w->end - a < SM_WCAP ? w->end - a : SM_WCAP;
        const uint8_t *b = w->buf;
        if (w->given)
            b = w->given + (a >> 3);
        else
            sm_draw(j, w->buf, a, w->len);
        for (int64_t q = 0; q < (w->len + 7) >> 3; ++q) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
            const uint64_t v = __builtin_bswap64(SM_LANES[b[q]]);
#else
            const uint64_t v = SM_LANES[b[q]];
#endif
            memcpy(w->lanes + 8 * q, &v, sizeof v);
        }
    }
    return w->lanes + (f - w->start);
}

/* One level of a lanes' tree: A[l] = OP(A[l], A[l + H]) for l < H, if W > H. */
#define SM_HALVE(A, W, H, OP)                                                              \
    do {                                                                                   \
        if ((W) > (H))                                                                     \
            for (int l = 0; l < (H); ++l)                                                  \
                A[l] = OP(A[l], A[l + (H)]);                                               \
    } while (0)

/* ------------------------------------------------------------------ row passes
 * Stamped out once per dtype: T the float, U the unsigned integer of its width,
 * S the suffix, W the lanes. Always inlined into the per-ISA row loops below, so
 * each instruction set vectorises its own copy. */
#define SM_DEFINE_PASSES(T, U, S, W, EXP)                                                  \
    /* attend ? v : -inf by bit masks: a select around the load of v would be a            \
     * branch that the compiler cannot vectorise without masked loads. */                  \
    SM_INLINE T sm_attend_##S(T v, uint8_t attend)                                         \
    {                                                                                      \
        const T ninf = (T)-INFINITY;                                                       \
        const U keep = (U)0 - (U)(attend != 0);                                            \
        U b, nb;                                                                           \
        memcpy(&b, &v, sizeof b);                                                          \
        memcpy(&nb, &ninf, sizeof nb);                                                     \
        b = (b & keep) | (nb & ~keep);                                                     \
        memcpy(&v, &b, sizeof v);                                                          \
        return v;                                                                          \
    }                                                                                      \
                                                                                           \
    /* v where m is all ones, +0 where m is 0. */                                          \
    SM_INLINE T sm_and_##S(T v, U m)                                                       \
    {                                                                                      \
        U b;                                                                               \
        memcpy(&b, &v, sizeof b);                                                          \
        b &= m;                                                                            \
        memcpy(&v, &b, sizeof v);                                                          \
        return v;                                                                          \
    }                                                                                      \
                                                                                           \
    /* keep ? v : +0 with a window lane k (0 or -1). */                                    \
    SM_INLINE T sm_sel_##S(T v, int8_t k) { return sm_and_##S(v, (U)(int64_t)k); }         \
                                                                                           \
    SM_INLINE T sm_add_##S(T a, T b) { return a + b; }                                     \
    SM_INLINE T sm_max_##S(T a, T b) { return b > a ? b : a; }                             \
                                                                                           \
    /* The lanes' fixed tree: a[l] = OP(a[l], a[l + h]) for h = W/2, ..., 1, one           \
     * loop of constant length per level, so each level is one vector operation. */        \
    SM_INLINE T sm_tree_##S(T *a, T (*op)(T, T))                                           \
    {                                                                                      \
        SM_HALVE(a, W, 16, op);                                                            \
        SM_HALVE(a, W, 8, op);                                                             \
        SM_HALVE(a, W, 4, op);                                                             \
        SM_HALVE(a, W, 2, op);                                                             \
        SM_HALVE(a, W, 1, op);                                                             \
        return a[0];                                                                       \
    }                                                                                      \
                                                                                           \
    /* Pass 1: x = masked scores (x is s without a mask), returns the max of the           \
     * non-NaN ones (-inf if none); max is exact, so its order is free. */                 \
    SM_INLINE T sm_pass1_##S(const T *s, T *x, const void *mask, int kind, int64_t n)      \
    {                                                                                      \
        T mx[W];                                                                           \
        for (int l = 0; l < W; ++l)                                                        \
            mx[l] = (T)-INFINITY;                                                          \
        int64_t j = 0;                                                                     \
        if (kind == DF_ATTN_MASK_ADD) {                                                    \
            const T *mk = (const T *)mask;                                                 \
            for (; j + W <= n; j += W)                                                     \
                for (int l = 0; l < W; ++l) {                                              \
                    const T v = s[j + l] + mk[j + l];                                      \
                    x[j + l] = v;                                                          \
                    mx[l] = sm_max_##S(mx[l], v);                                          \
                }                                                                          \
            for (; j < n; ++j) {                                                           \
                const T v = s[j] + mk[j];                                                  \
                x[j] = v;                                                                  \
                mx[0] = sm_max_##S(mx[0], v);                                              \
            }                                                                              \
        } else if (kind == DF_ATTN_MASK_BOOL) {                                            \
            const uint8_t *mb = (const uint8_t *)mask;                                     \
            for (; j + W <= n; j += W)                                                     \
                for (int l = 0; l < W; ++l) {                                              \
                    const T v = sm_attend_##S(s[j + l], mb[j + l]);                        \
                    x[j + l] = v;                                                          \
                    mx[l] = sm_max_##S(mx[l], v);                                          \
                }                                                                          \
            for (; j < n; ++j) {                                                           \
                const T v = sm_attend_##S(s[j], mb[j]);                                    \
                x[j] = v;                                                                  \
                mx[0] = sm_max_##S(mx[0], v);                                              \
            }                                                                              \
        } else {                                                                           \
            for (; j + W <= n; j += W)                                                     \
                for (int l = 0; l < W; ++l)                                                \
                    mx[l] = sm_max_##S(mx[l], s[j + l]);                                   \
            for (; j < n; ++j)                                                             \
                mx[0] = sm_max_##S(mx[0], s[j]);                                           \
        }                                                                                  \
        return sm_tree_##S(mx, sm_max_##S);                                                \
    }                                                                                      \
                                                                                           \
    /* Pass 2 on one block of W: e = exp(x - m), acc[l] += e[l]. */                        \
    SM_INLINE void sm_exp_block_##S(T *acc, const T *x, T *e, T m)                         \
    {                                                                                      \
        for (int l = 0; l < W; ++l) {                                                      \
            const T v = EXP(x[l] - m);                                                     \
            e[l] = v;                                                                      \
            acc[l] = acc[l] + v;                                                           \
        }                                                                                  \
    }                                                                                      \
                                                                                           \
    /* Pass 2: e[j] = exp(x[j] - m) (x is e or apart from it); returns Z, lane j % W       \
     * adding e[j] in order. A last partial block runs as a whole one on a copy            \
     * padded with -inf, whose lanes add exp(-inf) = +0: no change, and no scalar          \
     * tail of exps. */                                                                    \
    SM_INLINE T sm_pass2_##S(const T *x, T *e, int64_t n, T m)                             \
    {                                                                                      \
        T acc[W], xt[W], et[W];                                                            \
        for (int l = 0; l < W; ++l)                                                        \
            acc[l] = 0;                                                                    \
        int64_t j = 0;                                                                     \
        for (; j + W <= n; j += W)                                                         \
            sm_exp_block_##S(acc, x + j, e + j, m);                                        \
        if (j < n) {                                                                       \
            for (int l = 0; l < W; ++l)                                                    \
                xt[l] = j + l < n ? x[j + l] : (T)-INFINITY;                               \
            sm_exp_block_##S(acc, xt, et, m);                                              \
            for (int l = 0; j + l < n; ++l)                                                \
                e[j + l] = et[l];                                                          \
        }                                                                                  \
        return sm_tree_##S(acc, sm_add_##S);                                               \
    }                                                                                      \
                                                                                           \
    /* -v where the lane k drops (sets the sign bit), v where it keeps. */                 \
    SM_INLINE T sm_sign_##S(T v, int8_t k)                                                 \
    {                                                                                      \
        U b;                                                                               \
        memcpy(&b, &v, sizeof b);                                                          \
        b |= ~(U)(int64_t)k & ((U)1 << (8 * sizeof(U) - 1));                               \
        memcpy(&v, &b, sizeof v);                                                          \
        return v;                                                                          \
    }                                                                                      \
                                                                                           \
    /* |v| and the keep mask its sign bit encodes (all ones if clear). */                  \
    SM_INLINE T sm_unsign_##S(T v, U *keep)                                                \
    {                                                                                      \
        U b;                                                                               \
        memcpy(&b, &v, sizeof b);                                                          \
        *keep = (b >> (8 * sizeof(U) - 1)) - 1;                                            \
        b &= ~((U)1 << (8 * sizeof(U) - 1));                                               \
        memcpy(&v, &b, sizeof v);                                                          \
        return v;                                                                          \
    }                                                                                      \
                                                                                           \
    /* Pass 3 over a segment: P = y * inv (to pr if asked, negated where dropped),         \
     * y = keep ? P * scale : 0. */                                                        \
    SM_INLINE void sm_out_##S(T *y, T *pr, int64_t n, T inv, T scale, const int8_t *k)     \
    {                                                                                      \
        if (k && pr)                                                                       \
            for (int64_t j = 0; j < n; ++j) {                                              \
                const T p = y[j] * inv;                                                    \
                pr[j] = sm_sign_##S(p, k[j]);                                              \
                y[j] = sm_sel_##S(p * scale, k[j]);                                        \
            }                                                                              \
        else if (k)                                                                        \
            for (int64_t j = 0; j < n; ++j)                                                \
                y[j] = sm_sel_##S((y[j] * inv) * scale, k[j]);                             \
        else if (pr)                                                                       \
            for (int64_t j = 0; j < n; ++j) {                                              \
                const T p = y[j] * inv;                                                    \
                pr[j] = p;                                                                 \
                y[j] = p * scale;                                                          \
            }                                                                              \
        else                                                                               \
            for (int64_t j = 0; j < n; ++j)                                                \
                y[j] = (y[j] * inv) * scale;                                               \
    }                                                                                      \
                                                                                           \
    /* One block of W of sm_dot_signed. */                                                 \
    SM_INLINE void sm_dots_block_##S(T *acc, const T *ps, const T *g, T scale)             \
    {                                                                                      \
        U keep;                                                                            \
        for (int l = 0; l < W; ++l) {                                                      \
            const T p = sm_unsign_##S(ps[l], &keep);                                       \
            acc[l] = acc[l] + p * sm_and_##S(g[l] * scale, keep);                          \
        }                                                                                  \
    }                                                                                      \
                                                                                           \
    /* From signed P (store mode): dot = sum of |P| * dP in W lanes over a row,            \
     * dP = keep ? g * scale : 0 with keep from the sign of P. The last partial            \
     * block is padded with zeros, which add +0 (the lanes never hold -0). */              \
    SM_INLINE T sm_dot_signed_##S(const T *ps, const T *g, int64_t n, T scale)             \
    {                                                                                      \
        T acc[W], pt[W], gt[W];                                                            \
        for (int l = 0; l < W; ++l)                                                        \
            acc[l] = 0;                                                                    \
        int64_t j = 0;                                                                     \
        for (; j + W <= n; j += W)                                                         \
            sm_dots_block_##S(acc, ps + j, g + j, scale);                                  \
        if (j < n) {                                                                       \
            for (int l = 0; l < W; ++l) {                                                  \
                pt[l] = j + l < n ? ps[j + l] : (T)0;                                      \
                gt[l] = j + l < n ? g[j + l] : (T)0;                                       \
            }                                                                              \
            sm_dots_block_##S(acc, pt, gt, scale);                                         \
        }                                                                                  \
        return sm_tree_##S(acc, sm_add_##S);                                               \
    }                                                                                      \
                                                                                           \
    /* ds = |P| * (dP - dot) from signed P over a segment; ds may be ps or g. */           \
    SM_INLINE void sm_grad_signed_##S(T *ds, const T *ps, const T *g, int64_t n, T scale,  \
                                      T dot)                                               \
    {                                                                                      \
        U keep;                                                                            \
        for (int64_t j = 0; j < n; ++j) {                                                  \
            const T p = sm_unsign_##S(ps[j], &keep);                                       \
            ds[j] = p * (sm_and_##S(g[j] * scale, keep) - dot);                            \
        }                                                                                  \
    }                                                                                      \
                                                                                           \
    /* One block of W of sm_dot_g (k NULL: keep everything). */                            \
    SM_INLINE void sm_dotg_block_##S(T *acc, T *p, const T *g, T inv, T scale,             \
                                     const int8_t *k)                                      \
    {                                                                                      \
        for (int l = 0; l < W; ++l) {                                                      \
            const T d = k ? sm_sel_##S(g[l] * scale, k[l]) : g[l] * scale;                 \
            const T q = p[l] * inv;                                                        \
            p[l] = q;                                                                      \
            acc[l] = acc[l] + q * d;                                                       \
        }                                                                                  \
    }                                                                                      \
                                                                                           \
    /* Recompute mode: P = e * inv in place of e (in ds), and acc[j % W] += P * dP         \
     * with dP = keep ? g * scale : 0 over a segment (n a multiple of W unless             \
     * last, which is padded with zeros as in sm_dot_signed). */                           \
    SM_INLINE void sm_dot_g_##S(T *acc, T *p, const T *g, int64_t n, T inv, T scale,       \
                                const int8_t *k)                                           \
    {                                                                                      \
        T pt[W], gt[W];                                                                    \
        int8_t kt[W];                                                                      \
        int64_t j = 0;                                                                     \
        for (; j + W <= n; j += W)                                                         \
            sm_dotg_block_##S(acc, p + j, g + j, inv, scale, k ? k + j : NULL);            \
        if (j < n) {                                                                       \
            for (int l = 0; l < W; ++l) {                                                  \
                pt[l] = j + l < n ? p[j + l] : (T)0;                                       \
                gt[l] = j + l < n ? g[j + l] : (T)0;                                       \
                kt[l] = j + l < n && k ? k[j + l] : 0;                                     \
            }                                                                              \
            sm_dotg_block_##S(acc, pt, gt, inv, scale, k ? kt : NULL);                     \
            for (int l = 0; j + l < n; ++l)                                                \
                p[j + l] = pt[l];                                                          \
        }                                                                                  \
    }                                                                                      \
                                                                                           \
    /* ds = P * (dP - dot) over a segment, P in ds and dP recomputed from g. */            \
    SM_INLINE void sm_grad_##S(T *ds, const T *g, int64_t n, T scale, T dot,               \
                               const int8_t *k)                                            \
    {                                                                                      \
        if (k)                                                                             \
            for (int64_t j = 0; j < n; ++j)                                                \
                ds[j] = ds[j] * (sm_sel_##S(g[j] * scale, k[j]) - dot);                    \
        else                                                                               \
            for (int64_t j = 0; j < n; ++j)                                                \
                ds[j] = ds[j] * (g[j] * scale - dot);                                      \
    }                                                                                      \
                                                                                           \
    /* Passes 1 and 2 of row r into out; returns 1 / Z (0 for an empty row). */            \
    SM_INLINE T sm_expnorm_##S(const sm_job_t *jb, int64_t r, T *out, int64_t nv)          \
    {                                                                                      \
        const df_attn_t *a = jb->a;                                                        \
        const T *s = (const T *)jb->s + r * jb->lk;                                        \
        const int kind = a->mask_kind;                                                     \
        const void *mk = NULL;                                                             \
        if (kind != DF_ATTN_MASK_NONE) {                                                   \
            const int64_t off = sm_mask_offset(a, r);                                      \
            mk = kind == DF_ATTN_MASK_ADD ? (const void *)((const T *)a->mask + off)       \
                                          : (const void *)((const uint8_t *)a->mask + off);\
        }                                                                                  \
        T m = sm_pass1_##S(s, out, mk, kind, nv);                                          \
        m = m == (T)-INFINITY ? (T)0 : m;                                                  \
        const T z = sm_pass2_##S(kind == DF_ATTN_MASK_NONE ? s : out, out, nv, m);         \
        return z == (T)0 ? (T)0 : (T)1 / z;                                                \
    }                                                                                      \
                                                                                           \
    /* Forward rows [r0, r1) of one thread. */                                             \
    SM_INLINE void sm_fwd_rows_##S(const sm_job_t *jb, int64_t r0, int64_t r1)             \
    {                                                                                      \
        const int64_t lk = jb->lk;                                                         \
        const int keep = jb->thresh >> 32 == 0;                                            \
        const T scale = (T)jb->scale;                                                      \
        sm_win_t w;                                                                        \
        if (keep && jb->bits_out)                                                          \
            sm_draw(jb, jb->bits_out + ((r0 * lk) >> 3), r0 * lk, (r1 - r0) * lk);         \
        sm_win_init(&w, jb->bits_out, r1 * lk);                                            \
        for (int64_t r = r0; r < r1; ++r) {                                                \
            T *y = (T *)jb->y + r * lk;                                                    \
            T *pr = jb->probs_out ? (T *)jb->probs_out + r * lk : NULL;                    \
            const int64_t nv = sm_valid(jb, r);                                            \
            const T inv = sm_expnorm_##S(jb, r, y, nv);                                    \
            for (int64_t j0 = 0; j0 < nv; j0 += SM_SEG) {                                  \
                const int64_t n = nv - j0 < SM_SEG ? nv - j0 : SM_SEG;                     \
                const int8_t *k = keep ? sm_keep(jb, &w, r * lk + j0, n) : NULL;           \
                sm_out_##S(y + j0, pr ? pr + j0 : NULL, n, inv, scale, k);                 \
            }                                                                              \
            for (int64_t j = nv; j < lk; ++j)                                              \
                y[j] = 0;                                                                  \
            for (int64_t j = nv; pr && j < lk; ++j)                                        \
                pr[j] = 0;                                                                 \
        }                                                                                  \
    }                                                                                      \
                                                                                           \
    /* Backward rows [r0, r1) of one thread: from signed P, or with P recomputed into      \
     * ds (dP recomputed in the second pass). stream (may be NULL) writes a finished       \
     * segment of ds from a stack buffer with non-temporal stores. */                      \
    SM_INLINE void sm_bwd_rows_##S(const sm_job_t *jb, int64_t r0, int64_t r1,             \
                                   void (*stream)(void *, const void *, size_t))           \
    {                                                                                      \
        const int64_t lk = jb->lk;                                                         \
        const int keep = jb->thresh >> 32 == 0;                                            \
        const T scale = (T)jb->scale;                                                      \
        sm_win_t w;                                                                        \
        T buf[SM_SEG];                                                                     \
        sm_win_init(&w, jb->bits_in, r1 * lk);                                             \
        for (int64_t r = r0; r < r1; ++r) {                                                \
            T *ds = (T *)jb->y + r * lk;                                                   \
            const T *g = (const T *)jb->dy + r * lk;                                       \
            const int64_t nv = sm_valid(jb, r);                                            \
            if (jb->probs_in && stream) { /* the whole row, causal zeros too, streamed */  \
                const T *ps = (const T *)jb->probs_in + r * lk;                            \
                const T dot = sm_dot_signed_##S(ps, g, nv, scale);                         \
                for (int64_t j0 = 0; j0 < lk; j0 += SM_SEG) {                              \
                    const int64_t n = lk - j0 < SM_SEG ? lk - j0 : SM_SEG;                 \
                    const int64_t m = nv - j0 < 0 ? 0 : nv - j0 < n ? nv - j0 : n;         \
                    sm_grad_signed_##S(buf, ps + j0, g + j0, m, scale, dot);               \
                    for (int64_t j = m; j < n; ++j)                                        \
                        buf[j] = 0;                                                        \
                    stream(ds + j0, buf, (size_t)n * sizeof(T));                           \
                }                                                                          \
                continue;                                                                  \
            }                                                                              \
            if (jb->probs_in) {                                                            \
                const T *ps = (const T *)jb->probs_in + r * lk;                            \
                const T dot = sm_dot_signed_##S(ps, g, nv, scale);                         \
                sm_grad_signed_##S(ds, ps, g, nv, scale, dot);                             \
            } else {                                                                       \
                const T inv = sm_expnorm_##S(jb, r, ds, nv);                               \
                T acc[W];                                                                  \
                for (int l = 0; l < W; ++l)                                                \
                    acc[l] = 0;                                                            \
                for (int64_t j0 = 0; j0 < nv; j0 += SM_SEG) {                              \
                    const int64_t n = nv - j0 < SM_SEG ? nv - j0 : SM_SEG;                 \
                    const int8_t *k = keep ? sm_keep(jb, &w, r * lk + j0, n) : NULL;       \
                    sm_dot_g_##S(acc, ds + j0, g + j0, n, inv, scale, k);                  \
                }                                                                          \
                const T dot = sm_tree_##S(acc, sm_add_##S);                                \
                for (int64_t j0 = 0; j0 < nv; j0 += SM_SEG) {                              \
                    const int64_t n = nv - j0 < SM_SEG ? nv - j0 : SM_SEG;                 \
                    const int8_t *k = keep ? sm_keep(jb, &w, r * lk + j0, n) : NULL;       \
                    sm_grad_##S(ds + j0, g + j0, n, scale, dot, k);                        \
                }                                                                          \
            }                                                                              \
            for (int64_t j = nv; j < lk; ++j)                                              \
                ds[j] = 0;                                                                 \
        }                                                                                  \
    }

SM_DEFINE_PASSES(float, uint32_t, f32, SM_W_F32, sm_exp_f32)
SM_DEFINE_PASSES(double, uint64_t, f64, SM_W_F64, sm_exp_f64)

/* ------------------------------------------------------------------ per ISA */
typedef void (*sm_rows_fn)(const sm_job_t *, int64_t, int64_t);

#if DF_HAVE_X86
#include <immintrin.h>

#define SM_TARGET_AVX2 __attribute__((target("avx2")))
#define SM_TARGET_AVX512                                                                   \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,prefer-vector-width=512")))

/* n bytes (whole elements) from src to dst, the aligned middle with non-temporal
 * stores: a gradient of many MiB would only evict the caller's working set, and
 * skipping the read for ownership of ds saves a quarter of the backward's traffic. */
static inline SM_TARGET_AVX2 void sm_stream_avx2(void *dst, const void *src, size_t n)
{
    char *d = dst;
    const char *s = src;
    size_t head = (32 - ((uintptr_t)d & 31)) & 31;
    head = head < n ? head : n;
    memcpy(d, s, head);
    for (size_t i = head; i + 32 <= n; i += 32)
        _mm256_stream_si256((__m256i *)(d + i), _mm256_loadu_si256((const __m256i *)(s + i)));
    const size_t tail = head + (n - head) / 32 * 32;
    memcpy(d + tail, s + tail, n - tail);
}

static inline SM_TARGET_AVX512 void sm_stream_avx512(void *dst, const void *src, size_t n)
{
    char *d = dst;
    const char *s = src;
    size_t head = (64 - ((uintptr_t)d & 63)) & 63;
    head = head < n ? head : n;
    memcpy(d, s, head);
    for (size_t i = head; i + 64 <= n; i += 64)
        _mm512_stream_si512((__m512i *)(d + i), _mm512_loadu_si512((const void *)(s + i)));
    const size_t tail = head + (n - head) / 64 * 64;
    memcpy(d + tail, s + tail, n - tail);
}
#endif

/* One function per kernel, dtype and ISA; STREAM is the ISA's non-temporal copy
 * (NULL: plain stores), used for outputs of at least df_stream_min_bytes(), and
 * FENCE orders its stores before the caller's next ones. */
#define SM_DEFINE_ISA(ISA, TARGET, STREAM, FENCE)                                          \
    TARGET static void fwd_f32_##ISA(const sm_job_t *j, int64_t r0, int64_t r1)            \
    {                                                                                      \
        sm_fwd_rows_f32(j, r0, r1);                                                        \
    }                                                                                      \
    TARGET static void fwd_f64_##ISA(const sm_job_t *j, int64_t r0, int64_t r1)            \
    {                                                                                      \
        sm_fwd_rows_f64(j, r0, r1);                                                        \
    }                                                                                      \
    TARGET static void bwd_f32_##ISA(const sm_job_t *j, int64_t r0, int64_t r1)            \
    {                                                                                      \
        sm_bwd_rows_f32(j, r0, r1, j->stream ? STREAM : NULL);                             \
        if (j->stream)                                                                     \
            FENCE;                                                                         \
    }                                                                                      \
    TARGET static void bwd_f64_##ISA(const sm_job_t *j, int64_t r0, int64_t r1)            \
    {                                                                                      \
        sm_bwd_rows_f64(j, r0, r1, j->stream ? STREAM : NULL);                             \
        if (j->stream)                                                                     \
            FENCE;                                                                         \
    }

SM_DEFINE_ISA(scalar, , NULL, (void)0)
#if DF_HAVE_X86
SM_DEFINE_ISA(avx2, SM_TARGET_AVX2, sm_stream_avx2, _mm_sfence())
SM_DEFINE_ISA(avx512, SM_TARGET_AVX512, sm_stream_avx512, _mm_sfence())
#define SM_PICK(OP, isa)                                                                   \
    ((isa) == DF_ISA_AVX512 ? OP##_avx512 : (isa) == DF_ISA_AVX2 ? OP##_avx2 : OP##_scalar)
#else
#define SM_PICK(OP, isa) ((void)(isa), OP##_scalar)
#endif

/* ------------------------------------------------------------------ entry points */
/* Validates the layout; *n receives the element count. */
static df_status_t sm_check_attn(const df_attn_t *a, int64_t *n)
{
    if (!a || a->ndim < 1 || a->ndim > DF_MAX_DIMS)
        return DF_ERR_ARG;
    int64_t count = 1;
    for (int d = 0; d < a->ndim; ++d) {
        if (a->shape[d] < 0)
            return DF_ERR_ARG;
        if (a->shape[d] > 0 && count > INT64_MAX / a->shape[d])
            return DF_ERR_ARG;
        count *= a->shape[d];
    }
    if (a->mask_kind != DF_ATTN_MASK_NONE) {
        if (a->mask_kind != DF_ATTN_MASK_ADD && a->mask_kind != DF_ATTN_MASK_BOOL)
            return DF_ERR_ARG;
        if (count > 0 && (!a->mask || (a->shape[a->ndim - 1] > 1 &&
                                       a->mask_strides[a->ndim - 1] != 1)))
            return DF_ERR_ARG;
    }
    *n = count;
    return DF_OK;
}

static df_status_t sm_check_stream(sm_job_t *j, int64_t n, const df_opts_t *opts)
{
    if (j->thresh > ((uint64_t)1 << 32))
        return DF_ERR_THRESH;
    const uint64_t blocks = (uint64_t)(n + 7) / 8;
    const uint64_t end_lo = j->block0.lo + blocks;
    if (end_lo < j->block0.lo && j->block0.hi == 0xFFFFFFFFu && end_lo != 0)
        return DF_ERR_RANGE;
    j->k = df_kernels_get(opts ? opts->isa : DF_ISA_AUTO);
    return j->k ? DF_OK : DF_ERR_ISA;
}

static void sm_shape(sm_job_t *j)
{
    const df_attn_t *a = j->a;
    j->lk = a->shape[a->ndim - 1];
    j->lq = a->ndim >= 2 ? a->shape[a->ndim - 2] : 1;
}

#if DF_USE_OPENMP
#define SM_PARALLEL_FOR _Pragma("omp parallel for schedule(static) num_threads(nt)")
#else
#define SM_PARALLEL_FOR
#endif

/* Rows split into nt parts of a multiple of 8 rows each. */
static void sm_run(const sm_job_t *j, sm_rows_fn rows, int64_t n, const df_opts_t *opts)
{
    const int64_t nrows = n / j->lk;
    const int nt = df_threads_for(n, opts);
    if (nt <= 1) {
        rows(j, 0, nrows);
        return;
    }
    int64_t part = (nrows + nt - 1) / nt;
    part = (part + 7) / 8 * 8;
    SM_PARALLEL_FOR
    for (int t = 0; t < nt; ++t) {
        const int64_t r0 = (int64_t)t * part;
        if (r0 < nrows)
            rows(j, r0, nrows - r0 < part ? nrows : r0 + part);
    }
}

static df_status_t sm_fwd(const void *s, void *y, void *probs, uint8_t *bits,
                          const df_attn_t *attn, df_key_t key, df_block_t block0,
                          uint64_t thresh, double scale, const df_opts_t *opts, int dbl)
{
    int64_t n = 0;
    df_status_t st = sm_check_attn(attn, &n);
    if (st != DF_OK)
        return st;
    if (n > 0 && (!s || !y || (probs && probs == y)))
        return DF_ERR_ARG;
    sm_job_t j = {.a = attn, .s = s, .y = y, .probs_out = probs, .bits_out = bits, .key = key,
                  .block0 = block0, .thresh = thresh, .scale = scale};
    sm_shape(&j);
    st = sm_check_stream(&j, n, opts);
    if (st != DF_OK || n == 0)
        return st;
    if (bits && thresh >> 32) /* keep everything: no draws, the bits are all ones */
        for (int64_t i = 0; i < n; i += 8)
            bits[i >> 3] = (uint8_t)(n - i < 8 ? (1u << (n - i)) - 1u : 0xFFu);
    sm_run(&j, dbl ? SM_PICK(fwd_f64, j.k->isa) : SM_PICK(fwd_f32, j.k->isa), n, opts);
    return DF_OK;
}

static df_status_t sm_bwd(const void *dy, void *ds, const void *probs, const void *s,
                          const uint8_t *bits, const df_attn_t *attn, df_key_t key,
                          df_block_t block0, uint64_t thresh, double scale,
                          const df_opts_t *opts, int dbl)
{
    int64_t n = 0;
    df_status_t st = sm_check_attn(attn, &n);
    if (st != DF_OK)
        return st;
    if (n > 0 && (!dy || !ds || (!probs && !s) || (!probs && (const void *)ds == dy)))
        return DF_ERR_ARG;
    sm_job_t j = {.a = attn, .s = probs ? NULL : s, .y = ds, .probs_in = probs, .dy = dy,
                  .bits_in = bits, .key = key, .block0 = block0, .thresh = thresh,
                  .scale = scale};
    sm_shape(&j);
    st = sm_check_stream(&j, bits || probs ? 0 : n, opts); /* else nothing is drawn */
    if (st != DF_OK || n == 0)
        return st;
    j.stream = (uint64_t)n * (dbl ? 8u : 4u) >= df_stream_min_bytes();
    sm_run(&j, dbl ? SM_PICK(bwd_f64, j.k->isa) : SM_PICK(bwd_f32, j.k->isa), n, opts);
    return DF_OK;
}

df_status_t df_softmax_dropout_fwd_f32(const float *s, float *y, float *probs, uint8_t *bits,
                                       const df_attn_t *attn, df_key_t key, df_block_t block0,
                                       uint64_t thresh, float scale, const df_opts_t *opts)
{
    return sm_fwd(s, y, probs, bits, attn, key, block0, thresh, scale, opts, 0);
}

df_status_t df_softmax_dropout_fwd_f64(const double *s, double *y, double *probs,
                                       uint8_t *bits, const df_attn_t *attn, df_key_t key,
                                       df_block_t block0, uint64_t thresh, double scale,
                                       const df_opts_t *opts)
{
    return sm_fwd(s, y, probs, bits, attn, key, block0, thresh, scale, opts, 1);
}

df_status_t df_softmax_dropout_bwd_f32(const float *dy, float *ds, const float *probs,
                                       const float *s, const uint8_t *bits,
                                       const df_attn_t *attn, df_key_t key, df_block_t block0,
                                       uint64_t thresh, float scale, const df_opts_t *opts)
{
    return sm_bwd(dy, ds, probs, s, bits, attn, key, block0, thresh, scale, opts, 0);
}

df_status_t df_softmax_dropout_bwd_f64(const double *dy, double *ds, const double *probs,
                                       const double *s, const uint8_t *bits,
                                       const df_attn_t *attn, df_key_t key, df_block_t block0,
                                       uint64_t thresh, double scale, const df_opts_t *opts)
{
    return sm_bwd(dy, ds, probs, s, bits, attn, key, block0, thresh, scale, opts, 1);
}
