/* test_fused.c: bias + dropout + residual and the Welford accumulator, checked
 * without Python. Every instruction set and thread count against the scalar
 * body on one thread; the fused forward against df_dropout_fwd of x + bias plus
 * residual; the backward against df_dropout_bwd_bits and a plain row-order sum;
 * recompute against stored bits; in-place calls; Welford's k-sample call against
 * k one-sample calls and a two-pass mean and variance; status codes. Exits
 * non-zero and prints what failed on any mismatch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "df_check.h"
#include "dropout_fast.h"

/* (rows, c): odd widths, one column, strips of exactly 64, and sizes past the
 * per-thread minimum (2**14 elements) so that 2 and 3 threads really split. */
static const int64_t SHAPES[][2] = {{1, 1},   {3, 5},     {1, 9},    {7, 64},   {13, 100},
                                    {2, 4099}, {40, 513}, {64, 2048}, {1000, 130}, {11, 8191}};
#define NSHAPES (sizeof SHAPES / sizeof *SHAPES)
static const uint64_t THRESH[] = {0, 0x10000u, 0x80000000u, 0xE6666666u, 0xFFFF0000u,
                                  (uint64_t)1 << 32};
#define NTHRESH (sizeof THRESH / sizeof *THRESH)
static const df_block_t OFFSETS[] = {{0, 0}, {12345, 0}, {0xFFFFFFF0u, 0}, {~(uint64_t)0 - 40, 7}};
#define NOFFSETS (sizeof OFFSETS / sizeof *OFFSETS)

static float *fbuf(int64_t n, int salt)
{
    float *p = malloc((size_t)(n + 1) * sizeof *p);
    for (int64_t i = 0; i < n; ++i)
        p[i] = (float)((i * 7 + salt) % 1009) * 0.37f - 150.0f;
    return p;
}

static double *dbuf(int64_t n, int salt)
{
    double *p = malloc((size_t)(n + 1) * sizeof *p);
    for (int64_t i = 0; i < n; ++i)
        p[i] = (double)((i * 5 + salt) % 1013) * 0.37 - 150.0;
    return p;
}

/* Every ISA and thread count, forward and backward, float and double, equals
 * the scalar body on one thread; the forward equals the unfused composition. */
static void test_fused_equal(void)
{
    const df_key_t key = {0x12345678u, 0x9abcdef0u};
    for (size_t si = 0; si < NSHAPES; ++si) {
        const int64_t rows = SHAPES[si][0], c = SHAPES[si][1], n = rows * c;
        const size_t nb = (size_t)(n + 7) / 8;
        float *x = fbuf(n, 1), *b = fbuf(c, 2), *r = fbuf(n, 3), *y0 = fbuf(n, 0);
        float *y1 = fbuf(n, 0), *t = fbuf(n, 0);
        double *xd = dbuf(n, 1), *bd = dbuf(c, 2), *rd = dbuf(n, 3), *yd0 = dbuf(n, 0);
        double *yd1 = dbuf(n, 0), *s0 = dbuf(c, 0), *s1 = dbuf(c, 0), *sref = dbuf(c, 0);
        uint8_t *m0 = malloc(nb + 1), *m1 = malloc(nb + 1);
        for (size_t ti = 0; ti < NTHRESH; ++ti)
            for (size_t oi = 0; oi < NOFFSETS; ++oi) {
                /* large arrays: two thresholds (with and without low bits), and the
                 * offsets 0 and a low-word wrap inside the call */
                if (n > 20000 && ((ti != 2 && ti != 3) || (oi != 0 && oi != 2)))
                    continue;
                const uint64_t th = THRESH[ti];
                const df_block_t o = OFFSETS[oi];
                const df_opts_t ref = {1, DF_ISA_SCALAR};
                const float sf = 1.25f;
                /* the composition: dropout(x + b) + r */
                for (int64_t i = 0; i < n; ++i)
                    t[i] = x[i] + b[i % c];
                CHECK(df_dropout_fwd_f32(t, t, m0, n, key, o, th, sf, &ref) == DF_OK, "fwd rc");
                for (int64_t i = 0; i < n; ++i)
                    t[i] = t[i] + r[i];
                CHECK(df_bias_dropout_add_f32(x, b, r, y0, m1, n, c, key, o, th, sf, &ref) ==
                          DF_OK,
                      "bda rc");
                CHECK(memcmp(t, y0, (size_t)n * 4) == 0 && memcmp(m0, m1, nb) == 0,
                      "fused != composition, n %lld c %lld t %llx", (long long)n, (long long)c,
                      (unsigned long long)th);
                /* reference backward: dx from bits, dbias summed in row order */
                for (int64_t j = 0; j < c; ++j)
                    sref[j] = 0.0;
                CHECK(df_dropout_bwd_bits_f32(r, t, m0, n, sf, &ref) == DF_OK, "bwd rc");
                for (int64_t i = 0; i < n; ++i)
                    sref[i % c] = sref[i % c] + (double)t[i];
                CHECK(df_bias_dropout_add_f64(xd, bd, rd, yd0, NULL, n, c, key, o, th, 1.25,
                                              &ref) == DF_OK, "bda f64 rc");
                for (int isa = DF_ISA_SCALAR; isa <= DF_ISA_NEON; ++isa) {
                    if (!df_isa_available((df_isa_t)isa))
                        continue;
                    for (int nt = 1; nt <= (df_test_quick() ? 1 : 3); ++nt) {
                        const df_opts_t opt = {nt, isa};
                        memset(m1, 0x5A, nb);
                        df_bias_dropout_add_f32(x, b, r, y1, m1, n, c, key, o, th, sf, &opt);
                        CHECK(memcmp(y0, y1, (size_t)n * 4) == 0 && memcmp(m0, m1, nb) == 0,
                              "fwd_f32 %s nt %d n %lld c %lld", df_isa_name(isa), nt,
                              (long long)n, (long long)c);
                        df_bias_dropout_add_f64(xd, bd, rd, yd1, NULL, n, c, key, o, th, 1.25,
                                                &opt);
                        CHECK(memcmp(yd0, yd1, (size_t)n * 8) == 0, "fwd_f64 %s nt %d n %lld",
                              df_isa_name(isa), nt, (long long)n);
                        /* no bias: dropout(x) + r */
                        df_bias_dropout_add_f32(x, NULL, r, y1, NULL, n, 0, key, o, th, sf, &opt);
                        df_dropout_fwd_f32(x, t, NULL, n, key, o, th, sf, &ref);
                        for (int64_t i = 0; i < n; ++i)
                            t[i] = r[i] + t[i];
                        CHECK(memcmp(t, y1, (size_t)n * 4) == 0, "no bias %s nt %d n %lld",
                              df_isa_name(isa), nt, (long long)n);
                        /* backward from bits and by recomputation */
                        for (int rec = 0; rec < 2; ++rec) {
                            df_dropout_bwd_bits_f32(r, t, m0, n, sf, &ref);
                            df_bias_dropout_add_bwd_f32(r, y1, s1, rec ? NULL : m0, n, c, key, o,
                                                        th, sf, &opt);
                            CHECK(memcmp(t, y1, (size_t)n * 4) == 0 &&
                                      memcmp(s1, sref, (size_t)c * 8) == 0,
                                  "bwd_f32 %s nt %d rec %d n %lld c %lld", df_isa_name(isa), nt,
                                  rec, (long long)n, (long long)c);
                            df_bias_dropout_add_bwd_f64(rd, yd1, s1, rec ? NULL : m0, n, c, key,
                                                        o, th, 1.25, &opt);
                            df_bias_dropout_add_bwd_f64(rd, yd0, s0, m0, n, c, key, o, th, 1.25,
                                                        &ref);
                            CHECK(memcmp(yd0, yd1, (size_t)n * 8) == 0 &&
                                      memcmp(s0, s1, (size_t)c * 8) == 0,
                                  "bwd_f64 %s nt %d rec %d n %lld", df_isa_name(isa), nt, rec,
                                  (long long)n);
                        }
                        df_bias_dropout_add_f64(xd, bd, rd, yd0, NULL, n, c, key, o, th, 1.25,
                                                &ref);
                    }
                }
            }
        free(x); free(b); free(r); free(y0); free(y1); free(t);
        free(xd); free(bd); free(rd); free(yd0); free(yd1); free(s0); free(s1); free(sref);
        free(m0); free(m1);
    }
}

/* y may be x or residual; dx may be dy. */
static void test_in_place(void)
{
    const df_key_t key = {7, 8};
    const df_block_t o = {3, 0};
    const int64_t rows = 37, c = 129, n = rows * c;
    float *x = fbuf(n, 1), *b = fbuf(c, 2), *r = fbuf(n, 3), *y = fbuf(n, 0), *w = fbuf(n, 0);
    double *s = dbuf(c, 0), *s2 = dbuf(c, 0);
    for (int isa = DF_ISA_SCALAR; isa <= DF_ISA_NEON; ++isa) {
        if (!df_isa_available((df_isa_t)isa))
            continue;
        const df_opts_t opt = {2, isa};
        df_bias_dropout_add_f32(x, b, r, y, NULL, n, c, key, o, 0x9999999Au, 1.5f, &opt);
        memcpy(w, x, (size_t)n * 4);
        df_bias_dropout_add_f32(w, b, r, w, NULL, n, c, key, o, 0x9999999Au, 1.5f, &opt);
        CHECK(memcmp(w, y, (size_t)n * 4) == 0, "y = x in place, %s", df_isa_name(isa));
        memcpy(w, r, (size_t)n * 4);
        df_bias_dropout_add_f32(x, b, w, w, NULL, n, c, key, o, 0x9999999Au, 1.5f, &opt);
        CHECK(memcmp(w, y, (size_t)n * 4) == 0, "y = residual in place, %s", df_isa_name(isa));
        df_bias_dropout_add_bwd_f32(x, y, s, NULL, n, c, key, o, 0x9999999Au, 1.5f, &opt);
        memcpy(w, x, (size_t)n * 4);
        df_bias_dropout_add_bwd_f32(w, w, s2, NULL, n, c, key, o, 0x9999999Au, 1.5f, &opt);
        CHECK(memcmp(w, y, (size_t)n * 4) == 0 && memcmp(s, s2, (size_t)c * 8) == 0,
              "dx = dy in place, %s", df_isa_name(isa));
    }
    free(x); free(b); free(r); free(y); free(w); free(s); free(s2);
}

/* k samples in one call == k calls of one sample, on every ISA and thread count;
 * mean and variance agree with the two-pass formulas to rounding. */
static void test_welford(void)
{
    static const int64_t lens[] = {1, 5, 64, 2049, 40000};
    const int64_t k = 7;
    for (size_t li = 0; li < sizeof lens / sizeof *lens; ++li) {
        const int64_t len = lens[li];
        float *x = fbuf(len * k, 11);
        double *xd = dbuf(len * k, 13);
        double *mean0 = calloc((size_t)len, 8), *m20 = calloc((size_t)len, 8);
        double *mean1 = malloc((size_t)len * 8), *m21 = malloc((size_t)len * 8);
        double *var = malloc((size_t)len * 8);
        const df_opts_t ref = {1, DF_ISA_SCALAR};
        for (int64_t s = 0; s < k; ++s)
            CHECK(df_welford_update_f32(x + s * len, 1, mean0, m20, len, s, &ref) == DF_OK, "rc");
        int ok = 1;
        for (int64_t i = 0; i < len; ++i) {
            double mu = 0.0, ss = 0.0;
            for (int64_t s = 0; s < k; ++s)
                mu += (double)x[s * len + i];
            mu /= (double)k;
            for (int64_t s = 0; s < k; ++s)
                ss += ((double)x[s * len + i] - mu) * ((double)x[s * len + i] - mu);
            ok &= fabs(mean0[i] - mu) <= 1e-12 * (1.0 + fabs(mu));
            ok &= fabs(m20[i] - ss) <= 1e-9 * (1.0 + ss);
        }
        CHECK(ok, "welford vs two-pass, len %lld", (long long)len);
        CHECK(df_welford_var(m20, var, len, k, 1, &ref) == DF_OK &&
                  var[0] == m20[0] / (double)(k - 1),
              "welford_var");
        for (int isa = DF_ISA_SCALAR; isa <= DF_ISA_NEON; ++isa) {
            if (!df_isa_available((df_isa_t)isa))
                continue;
            for (int nt = 1; nt <= (df_test_quick() ? 1 : 3); ++nt) {
                const df_opts_t opt = {nt, isa};
                memset(mean1, 0, (size_t)len * 8);
                memset(m21, 0, (size_t)len * 8);
                df_welford_update_f32(x, 3, mean1, m21, len, 0, &opt);
                df_welford_update_f32(x + 3 * len, k - 3, mean1, m21, len, 3, &opt);
                CHECK(memcmp(mean0, mean1, (size_t)len * 8) == 0 &&
                          memcmp(m20, m21, (size_t)len * 8) == 0,
                      "welford_f32 %s nt %d len %lld", df_isa_name(isa), nt, (long long)len);
            }
        }
        memset(mean0, 0, (size_t)len * 8);
        memset(m20, 0, (size_t)len * 8);
        for (int64_t s = 0; s < k; ++s)
            df_welford_update_f64(xd + s * len, 1, mean0, m20, len, s, &ref);
        for (int isa = DF_ISA_SCALAR; isa <= DF_ISA_NEON; ++isa) {
            if (!df_isa_available((df_isa_t)isa))
                continue;
            const df_opts_t opt = {3, isa};
            memset(mean1, 0, (size_t)len * 8);
            memset(m21, 0, (size_t)len * 8);
            df_welford_update_f64(xd, k, mean1, m21, len, 0, &opt);
            CHECK(memcmp(mean0, mean1, (size_t)len * 8) == 0 &&
                      memcmp(m20, m21, (size_t)len * 8) == 0,
                  "welford_f64 %s len %lld", df_isa_name(isa), (long long)len);
        }
        free(x); free(xd); free(mean0); free(m20); free(mean1); free(m21); free(var);
    }
}

static void test_status(void)
{
    const df_key_t key = {1, 2};
    const df_block_t b0 = {0, 0}, top = {~(uint64_t)0, 0xFFFFFFFFu};
    float x[12] = {0}, y[12];
    double s[12], m[12] = {0}, v[12];
    CHECK(df_bias_dropout_add_f32(NULL, x, x, y, NULL, 4, 4, key, b0, 1u << 31, 2.0f, NULL) ==
              DF_ERR_ARG, "NULL x");
    CHECK(df_bias_dropout_add_f32(x, x, NULL, y, NULL, 4, 4, key, b0, 1u << 31, 2.0f, NULL) ==
              DF_ERR_ARG, "NULL residual");
    CHECK(df_bias_dropout_add_f32(x, x, x, y, NULL, -1, 4, key, b0, 1u << 31, 2.0f, NULL) ==
              DF_ERR_ARG, "n < 0");
    CHECK(df_bias_dropout_add_f32(x, x, x, y, NULL, 12, 5, key, b0, 1u << 31, 2.0f, NULL) ==
              DF_ERR_SHAPE, "n %% c");
    CHECK(df_bias_dropout_add_f32(x, x, x, y, NULL, 12, 0, key, b0, 1u << 31, 2.0f, NULL) ==
              DF_ERR_SHAPE, "c == 0 with bias");
    CHECK(df_bias_dropout_add_f32(x, NULL, x, y, NULL, 12, 0, key, b0, 1u << 31, 2.0f, NULL) ==
              DF_OK, "c ignored without bias");
    CHECK(df_bias_dropout_add_f32(x, x, x, y, NULL, 12, 4, key, b0, ((uint64_t)1 << 32) + 1, 2.0f,
                                  NULL) == DF_ERR_THRESH, "thresh");
    CHECK(df_bias_dropout_add_f32(x, x, x, y, NULL, 8, 4, key, top, 1u << 31, 2.0f, NULL) == DF_OK,
          "last block");
    CHECK(df_bias_dropout_add_f32(x, x, x, y, NULL, 12, 4, key, top, 1u << 31, 2.0f, NULL) ==
              DF_ERR_RANGE, "past 2**96");
    const df_opts_t bad = {1, 99};
    CHECK(df_bias_dropout_add_f32(x, x, x, y, NULL, 12, 4, key, b0, 1u << 31, 2.0f, &bad) ==
              DF_ERR_ISA, "isa 99");
    CHECK(df_bias_dropout_add_f32(NULL, NULL, NULL, NULL, NULL, 0, 0, key, b0, 0, 2.0f, NULL) ==
              DF_OK, "n == 0");
    CHECK(df_bias_dropout_add_bwd_f32(x, y, s, NULL, 12, 5, key, b0, 1u << 31, 2.0f, NULL) ==
              DF_ERR_SHAPE, "bwd n %% c");
    CHECK(df_bias_dropout_add_bwd_f32(x, y, s, NULL, 12, 4, key, top, 1u << 31, 2.0f, NULL) ==
              DF_ERR_RANGE, "bwd recompute past 2**96");
    uint8_t bits[2] = {0xFF, 0xFF};
    CHECK(df_bias_dropout_add_bwd_f32(x, y, s, bits, 12, 4, key, top, 1u << 31, 2.0f, NULL) ==
              DF_OK, "bwd from bits ignores the counter");
    CHECK(df_bias_dropout_add_bwd_f32(NULL, y, NULL, bits, 12, 4, key, b0, 0, 2.0f, NULL) ==
              DF_ERR_ARG, "bwd NULL dy");
    CHECK(df_welford_update_f32(NULL, 1, m, m, 4, 0, NULL) == DF_ERR_ARG, "welford NULL x");
    CHECK(df_welford_update_f32(x, 1, m, m, 4, -1, NULL) == DF_ERR_ARG, "welford count < 0");
    CHECK(df_welford_update_f32(NULL, 0, NULL, NULL, 4, 0, NULL) == DF_OK, "welford k == 0");
    CHECK(df_welford_var(m, v, 4, 1, 1, NULL) == DF_ERR_VALUE, "var count - ddof < 1");
    CHECK(df_welford_var(m, v, 4, 3, -1, NULL) == DF_ERR_VALUE, "var ddof < 0");
    CHECK(df_welford_var(m, m, 4, 3, 0, NULL) == DF_OK, "var in place");
}

int main(void)
{
    test_status();
    test_fused_equal();
    test_in_place();
    test_welford();
    if (failures) {
        printf("%d failure(s)\n", failures);
        return 1;
    }
    printf("fused C tests: ok\n");
    return 0;
}
