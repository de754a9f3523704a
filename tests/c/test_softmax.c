/* test_softmax.c: attention dropout (df_softmax_dropout_*) checked without
 * Python. Every available instruction set and thread count against the scalar
 * body on one thread, bit for bit (forward y, P and bits; backward from P, by
 * recomputation and from bits); y equal to df_dropout_fwd applied to P; rows
 * summing to 1 and close to a double-precision libm softmax; P's sign bits
 * holding the mask; masks broadcast through strides, causal rows, fully masked
 * rows, counters wrapping their low word, outputs written with non-temporal
 * stores; known answers for every platform; status codes. Exits non-zero and
 * prints what failed on any mismatch. */
#define _DEFAULT_SOURCE /* setenv */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "df_check.h"
#include "dropout_fast.h"

static uint64_t rng_state = 0x853c49e6748fea9bull;

static double uniform(void) /* xorshift64*, in [0, 1) */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 0x2545F4914F6CDD1Dull) >> 11) * 0x1p-53;
}

/* One call's buffers; dbl selects double, else float. */
typedef struct {
    int dbl;
    size_t es;
    int64_t n;
    df_attn_t a;
    void *s, *mask, *dy;
} case_t;

static df_status_t fwd(const case_t *c, void *y, void *p, uint8_t *bits, df_key_t key,
                       df_block_t b0, uint64_t th, double scale, const df_opts_t *o)
{
    if (c->dbl)
        return df_softmax_dropout_fwd_f64(c->s, y, p, bits, &c->a, key, b0, th, scale, o);
    return df_softmax_dropout_fwd_f32(c->s, y, p, bits, &c->a, key, b0, th, (float)scale, o);
}

static df_status_t bwd(const case_t *c, void *ds, const void *p, const uint8_t *bits,
                       df_key_t key, df_block_t b0, uint64_t th, double scale,
                       const df_opts_t *o)
{
    const void *s = p ? NULL : c->s;
    if (c->dbl)
        return df_softmax_dropout_bwd_f64(c->dy, ds, p, s, bits, &c->a, key, b0, th, scale, o);
    return df_softmax_dropout_bwd_f32(c->dy, ds, p, s, bits, &c->a, key, b0, th, (float)scale,
                                      o);
}

static double get(const case_t *c, const void *a, int64_t i)
{
    return c->dbl ? ((const double *)a)[i] : ((const float *)a)[i];
}

static void put(const case_t *c, void *a, int64_t i, double v)
{
    if (c->dbl)
        ((double *)a)[i] = v;
    else
        ((float *)a)[i] = (float)v;
}

/* P against a double libm softmax of the same masked row, and rows summing to 1. */
static void check_values(const case_t *c, const void *p, const char *what)
{
    const int64_t lk = c->a.shape[c->a.ndim - 1], lq = c->a.shape[c->a.ndim - 2];
    const double tol = c->dbl ? 1e-14 : 4e-6;
    double *row = malloc(sizeof(double) * (size_t)lk);
    for (int64_t r = 0; r < c->n / lk; ++r) {
        const int64_t nv = c->a.causal && r % lq + 1 < lk ? r % lq + 1 : lk;
        double m = -INFINITY, z = 0.0, sum = 0.0, err = 0.0;
        for (int64_t j = 0; j < nv; ++j) {
            double v = get(c, c->s, r * lk + j);
            if (c->a.mask_kind == DF_ATTN_MASK_ADD)
                v += get(c, c->mask, (r % lq) * lk + j); /* strides (0, lk, 1) */
            else if (c->a.mask_kind == DF_ATTN_MASK_BOOL &&
                     !((uint8_t *)c->mask)[(r / lq) * lk + j]) /* strides (lk, 0, 1) */
                v = -INFINITY;
            row[j] = v;
            m = v > m ? v : m;
        }
        for (int64_t j = 0; j < nv; ++j)
            z += m == -INFINITY ? 0.0 : exp(row[j] - m);
        for (int64_t j = 0; j < lk; ++j) {
            const double want = j < nv && z > 0 ? exp(row[j] - m) / z : 0.0;
            sum += fabs(get(c, p, r * lk + j)); /* P, its sign bit the dropped flag */
            err = fmax(err, fabs(fabs(get(c, p, r * lk + j)) - want));
        }
        CHECK(err <= tol, "%s: row %lld off by %g", what, (long long)r, err);
        CHECK(z == 0 ? sum == 0 : fabs(sum - 1.0) <= tol * 8, "%s: row %lld sums to %.17g", what,
              (long long)r, sum);
    }
    free(row);
}

/* FNV-1a over bytes, folded into h. */
static uint64_t fnv(uint64_t h, const void *data, size_t n)
{
    const uint8_t *b = data;
    for (size_t i = 0; i < n; ++i)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* shape (b, lq, lk); mask_kind 0/1/2 (ADD broadcast over b, BOOL over lq). Returns a
 * hash of the reference outputs (y, P, bits, ds): the same on every platform. */
static uint64_t run_case(int dbl, int64_t b, int64_t lq, int64_t lk, int kind, int causal,
                         uint64_t block_lo)
{
    rng_state = 0x853c49e6748fea9bull;
    case_t c = {dbl, dbl ? 8 : 4, b * lq * lk, {0}, NULL, NULL, NULL};
    c.a.ndim = 3;
    c.a.shape[0] = b;
    c.a.shape[1] = lq;
    c.a.shape[2] = lk;
    c.a.causal = causal;
    c.a.mask_kind = kind;
    const size_t bytes = (size_t)c.n * c.es, nb = (size_t)(c.n + 7) / 8;
    c.s = malloc(bytes);
    c.dy = malloc(bytes);
    for (int64_t i = 0; i < c.n; ++i) {
        put(&c, c.s, i, i % 37 == 5 ? -INFINITY : (uniform() - 0.5) * 12.0);
        put(&c, c.dy, i, uniform() - 0.5);
    }
    if (kind == DF_ATTN_MASK_ADD) { /* (1, lq, lk): row 0 fully -inf */
        c.mask = malloc((size_t)(lq * lk) * c.es);
        for (int64_t i = 0; i < lq * lk; ++i)
            put(&c, c.mask, i, i < lk || uniform() < 0.2 ? -INFINITY : uniform() - 0.5);
        c.a.mask_strides[1] = lk;
        c.a.mask_strides[2] = 1;
    } else if (kind == DF_ATTN_MASK_BOOL) { /* (b, 1, lk): batch 0 attends nothing */
        c.mask = malloc((size_t)(b * lk));
        for (int64_t i = 0; i < b * lk; ++i)
            ((uint8_t *)c.mask)[i] = i >= lk && uniform() < 0.7;
        c.a.mask_strides[0] = lk;
        c.a.mask_strides[2] = 1;
    }
    c.a.mask = c.mask;
    const df_key_t key = {0x12345678u, 0x9abcdef0u};
    const df_block_t b0 = {block_lo, 7};
    const uint64_t th = df_threshold(0.3);
    const double scale = dbl ? 1.0 / 0.7 : (double)(float)(1.0 / 0.7);
    void *y0 = malloc(bytes), *p0 = malloc(bytes), *d0 = malloc(bytes), *y = malloc(bytes);
    void *p = malloc(bytes), *d = malloc(bytes);
    uint8_t *bits0 = malloc(nb), *bits = malloc(nb);
    const df_opts_t ref = {1, DF_ISA_SCALAR};
    df_status_t st0 = fwd(&c, y0, p0, bits0, key, b0, th, scale, &ref);
    CHECK(st0 == DF_OK, "fwd rc %d (lk %lld kind %d causal %d dbl %d)", (int)st0, (long long)lk,
          kind, causal, dbl);
    CHECK(bwd(&c, d0, p0, NULL, key, b0, th, scale, &ref) == DF_OK, "bwd rc");
    check_values(&c, p0, dbl ? "f64" : "f32");
    /* y is dropout applied to |P|, bit for bit; P's sign bit is set exactly where dropped */
    for (int64_t i = 0; i < c.n; ++i) {
        const double v = get(&c, p0, i);
        const int64_t q = (i / lk) % lq, past = causal && i % lk > q; /* past the causal cut */
        CHECK(past ? v == 0 && !signbit(v) : (signbit(v) == 0) == ((bits0[i >> 3] >> (i & 7)) & 1),
              "sign of P %lld", (long long)i);
        put(&c, p, i, fabs(v));
    }
    CHECK((dbl ? df_dropout_fwd_f64(p, y, NULL, c.n, key, b0, th, scale, &ref)
               : df_dropout_fwd_f32(p, y, NULL, c.n, key, b0, th, (float)scale, &ref)) == DF_OK,
          "dropout rc");
    CHECK(memcmp(y, y0, bytes) == 0, "y != dropout(P) (lk %lld kind %d causal %d)",
          (long long)lk, kind, causal);
    for (int isa = DF_ISA_SCALAR; isa <= DF_ISA_NEON; ++isa) {
        if (!df_isa_available((df_isa_t)isa))
            continue;
        for (int nt = 1; nt <= 3; ++nt) {
            const df_opts_t o = {nt, isa};
            memset(bits, 0xA5, nb);
            CHECK(fwd(&c, y, p, bits, key, b0, th, scale, &o) == DF_OK, "fwd rc");
            CHECK(memcmp(y, y0, bytes) == 0 && memcmp(p, p0, bytes) == 0 &&
                      memcmp(bits, bits0, nb) == 0,
                  "fwd %s x%d differs (lk %lld kind %d causal %d dbl %d)",
                  df_isa_name((df_isa_t)isa), nt, (long long)lk, kind, causal, dbl);
            CHECK(fwd(&c, y, NULL, NULL, key, b0, th, scale, &o) == DF_OK, "fwd rc");
            CHECK(memcmp(y, y0, bytes) == 0, "fwd without P/bits differs");
            for (int mode = 0; mode < 3; ++mode) { /* from P, recomputed, recomputed + bits */
                CHECK(bwd(&c, d, mode ? NULL : p0, mode == 2 ? bits0 : NULL, key, b0, th, scale,
                          &o) == DF_OK, "bwd rc");
                CHECK(memcmp(d, d0, bytes) == 0, "bwd mode %d %s x%d differs (lk %lld kind %d "
                      "causal %d dbl %d)", mode, df_isa_name((df_isa_t)isa), nt, (long long)lk,
                      kind, causal, dbl);
            }
        }
    }
    uint64_t h = fnv(0xcbf29ce484222325ull, y0, bytes);
    h = fnv(fnv(fnv(h, p0, bytes), bits0, nb), d0, bytes);
    free(c.s), free(c.dy), free(c.mask), free(y0), free(p0), free(d0), free(y), free(p), free(d);
    free(bits0), free(bits);
    return h;
}

static void test_status(void)
{
    float s[16] = {0, 1, 2, 3}, y[16], p[16];
    df_attn_t a = {0};
    a.ndim = 2;
    a.shape[0] = 8;
    a.shape[1] = 2;
    const df_key_t k = {1, 2};
    const df_block_t b = {0, 0};
    CHECK(df_softmax_dropout_fwd_f32(s, y, NULL, NULL, &a, k, b, 1ull << 32, 1.0f, NULL) == DF_OK,
          "plain softmax");
    CHECK(fabsf(y[0] + y[1] - 1.0f) < 1e-6f && y[1] > y[0], "softmax values");
    CHECK(df_softmax_dropout_fwd_f32(NULL, y, NULL, NULL, &a, k, b, 0, 1.0f, NULL) == DF_ERR_ARG,
          "NULL s");
    CHECK(df_softmax_dropout_fwd_f32(s, y, y, NULL, &a, k, b, 0, 1.0f, NULL) == DF_ERR_ARG,
          "probs == y");
    CHECK(df_softmax_dropout_fwd_f32(s, y, p, NULL, NULL, k, b, 0, 1.0f, NULL) == DF_ERR_ARG,
          "NULL attn");
    CHECK(df_softmax_dropout_fwd_f32(s, y, p, NULL, &a, k, b, (1ull << 32) + 1, 1.0f, NULL) ==
              DF_ERR_THRESH, "thresh");
    const df_block_t end = {~0ull, 0xFFFFFFFFu};
    CHECK(df_softmax_dropout_fwd_f32(s, y, p, NULL, &a, k, end, 0, 1.0f, NULL) == DF_ERR_RANGE,
          "range");
    CHECK(df_softmax_dropout_bwd_f32(s, y, NULL, NULL, NULL, &a, k, b, 0, 1.0f, NULL) ==
              DF_ERR_ARG, "neither probs nor s");
    CHECK(df_softmax_dropout_bwd_f32(y, y, NULL, s, NULL, &a, k, b, 0, 1.0f, NULL) == DF_ERR_ARG,
          "ds == dy when recomputing");
    CHECK(df_softmax_dropout_bwd_f32(y, y, p, NULL, NULL, &a, k, b, 0, 1.0f, NULL) == DF_OK,
          "ds == dy from P");
    a.mask_kind = DF_ATTN_MASK_ADD;
    CHECK(df_softmax_dropout_fwd_f32(s, y, p, NULL, &a, k, b, 0, 1.0f, NULL) == DF_ERR_ARG,
          "NULL mask");
    a.mask = s;
    a.mask_strides[1] = 2;
    CHECK(df_softmax_dropout_fwd_f32(s, y, p, NULL, &a, k, b, 0, 1.0f, NULL) == DF_ERR_ARG,
          "last mask stride");
    a.mask_strides[1] = 1;
    a.mask_kind = 7;
    CHECK(df_softmax_dropout_fwd_f32(s, y, p, NULL, &a, k, b, 0, 1.0f, NULL) == DF_ERR_ARG,
          "mask kind");
    a.mask_kind = DF_ATTN_MASK_NONE;
    a.ndim = 0;
    CHECK(df_softmax_dropout_fwd_f32(s, y, p, NULL, &a, k, b, 0, 1.0f, NULL) == DF_ERR_ARG,
          "ndim 0");
    a.ndim = 2;
    a.shape[0] = 0; /* empty: nothing to touch, NULL pointers fine */
    CHECK(df_softmax_dropout_fwd_f32(NULL, NULL, NULL, NULL, &a, k, b, 0, 1.0f, NULL) == DF_OK,
          "empty");
    a.shape[0] = -1;
    CHECK(df_softmax_dropout_fwd_f32(s, y, p, NULL, &a, k, b, 0, 1.0f, NULL) == DF_ERR_ARG,
          "negative extent");
    a.shape[0] = 8;
    for (int isa = DF_ISA_SCALAR; isa <= DF_ISA_NEON; ++isa) {
        const df_opts_t o = {1, isa};
        if (!df_isa_available((df_isa_t)isa))
            CHECK(df_softmax_dropout_fwd_f32(s, y, p, NULL, &a, k, b, 0, 1.0f, &o) == DF_ERR_ISA,
                  "unavailable isa %d", isa);
    }
}

#define KAT_F32 0x0d8727d119f0939full
#define KAT_F64 0xdea3741a9351b649ull

int main(void)
{
    /* outputs from 64 KiB on take the non-temporal path (read once, before any call) */
    setenv("DROPOUT_FAST_STREAM_MIN_BYTES", "65536", 1);
    static const int64_t lens[] = {1, 3, 17, 256, 1000};
    for (int dbl = 0; dbl < 2; ++dbl)
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; ++i)
            for (int kind = 0; kind < 3; ++kind)
                for (int causal = 0; causal < 2; ++causal)
                    run_case(dbl, 2, 5, lens[i], kind, causal, 0xFFFFFFFEull);
    /* Known answers: the bits of the outputs, from x86-64 (any ISA), must come out on
     * every platform (tests/c/cross_aarch64.sh runs this on aarch64). */
    const uint64_t h32 = run_case(0, 2, 5, 17, DF_ATTN_MASK_BOOL, 1, 3);
    const uint64_t h64 = run_case(1, 2, 5, 17, DF_ATTN_MASK_ADD, 0, 3);
    CHECK(h32 == KAT_F32 && h64 == KAT_F64, "known answers: %016llx %016llx",
          (unsigned long long)h32, (unsigned long long)h64);
    /* big enough for 2 and 3 threads; one with the low counter word wrapping mid-call */
    run_case(0, 4, 14, 1000, DF_ATTN_MASK_BOOL, 1, 0xFFFFFFFFull - 3000);
    run_case(1, 1200, 3, 17, DF_ATTN_MASK_ADD, 0, 5);
    run_case(0, 2, 256, 256, DF_ATTN_MASK_NONE, 1, 0x1FFFFFF00ull);
    test_status();
    if (failures) {
        printf("%d failures\n", failures);
        return 1;
    }
    printf("softmax C tests: ok\n");
    return 0;
}
