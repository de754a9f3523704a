/* test_embedding.c: df_embedding_fwd/bwd checked without Python. Every
 * instruction set and thread count against a plain loop written from the
 * header's contract (the gather; the scatter-add in token order from +0.0 with
 * the row mask and scale), bit for bit, over duplicated ids, a row with many
 * tokens, empty ids, zero width, row strides of 0 and of more than the width,
 * NaN meeting NaN; then ids out of range (DF_ERR_INDEX, nothing written) and
 * argument errors. Exits non-zero and prints what failed on any mismatch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "df_check.h"
#include "dropout_fast.h"

/* (vocab, dim, ntok, ld - dim): sizes past 2**14 output elements so that 2 and
 * 3 threads split; ld = dim + extra (extra < 0: ld = 0, every row the same). */
static const int64_t CASES[][4] = {{1, 1, 1, 0},      {7, 3, 40, 0},     {50, 8, 80, 5},
                                   {300, 130, 1000, 0}, {1000, 67, 2000, 3}, {5, 4, 0, 0},
                                   {6, 0, 9, 0},       {64, 256, 64, -1}};
#define NCASES (sizeof CASES / sizeof *CASES)

static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static uint64_t next_u64(void)
{ /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

static float value(void)
{
    const uint64_t u = next_u64();
    if (u % 97 == 0)
        return NAN;
    if (u % 101 == 0)
        return -0.0f;
    return (float)((int64_t)(u >> 40) - (1 << 23)) / 4096.0f;
}

/* The contract, written plainly. */
static void ref_fwd(const float *w, int64_t ld, float *out, const int64_t *ids, int64_t ntok,
                    int64_t dim, const uint8_t *bits, float scale)
{
    for (int64_t t = 0; t < ntok; ++t) {
        const int64_t r = ids[t];
        const int keep = (bits[r / 8] >> (r % 8)) & 1;
        for (int64_t j = 0; j < dim; ++j)
            out[t * dim + j] = keep ? w[r * ld + j] * scale : 0.0f;
    }
}

static void ref_bwd(const float *dout, int64_t ld, float *grad, const int64_t *ids, int64_t ntok,
                    int64_t vocab, int64_t dim, const uint8_t *bits, float scale)
{
    for (int64_t r = 0; r < vocab; ++r) {
        const int keep = (bits[r / 8] >> (r % 8)) & 1;
        int any = 0;
        for (int64_t j = 0; j < dim; ++j)
            grad[r * dim + j] = 0.0f;
        for (int64_t t = 0; t < ntok && keep; ++t) {
            if (ids[t] != r)
                continue;
            any = 1;
            for (int64_t j = 0; j < dim; ++j) {
                const float d = dout[t * ld + j], g = grad[r * dim + j];
                grad[r * dim + j] = isnan(d) && isnan(g) ? d + d : d + g;
            }
        }
        for (int64_t j = 0; j < dim && any; ++j)
            grad[r * dim + j] = grad[r * dim + j] * scale;
    }
}

static void test_against_reference(void)
{
    const df_isa_t isas[] = {DF_ISA_SCALAR, DF_ISA_AVX2, DF_ISA_AVX512, DF_ISA_NEON};
    for (size_t c = 0; c < NCASES; ++c) {
        const int64_t vocab = CASES[c][0], dim = CASES[c][1], ntok = CASES[c][2];
        const int64_t ld = CASES[c][3] < 0 ? 0 : dim + CASES[c][3];
        const int64_t rows = ld ? (vocab > ntok ? vocab : ntok) : 1;
        float *w = malloc((size_t)(rows * (ld ? ld : dim) + 1) * sizeof *w);
        float *out = malloc((size_t)(ntok * dim + 1) * sizeof *out);
        float *want = malloc((size_t)(ntok * dim + vocab * dim + 1) * sizeof *want);
        float *grad = malloc((size_t)(vocab * dim + 1) * sizeof *grad);
        int64_t *ids = malloc((size_t)(ntok + 1) * sizeof *ids);
        int64_t *work = malloc((size_t)DF_EMBEDDING_WORK(vocab, ntok) * sizeof *work);
        uint8_t *bits = malloc((size_t)(vocab + 7) / 8 + 1);
        for (int64_t i = 0; i < rows * (ld ? ld : dim); ++i)
            w[i] = value();
        for (int64_t t = 0; t < ntok; ++t) /* a third of the tokens on row 0 */
            ids[t] = t % 3 == 0 ? 0 : (int64_t)(next_u64() % (uint64_t)vocab);
        for (int64_t i = 0; i < (vocab + 7) / 8; ++i)
            bits[i] = (uint8_t)next_u64() | 1; /* row 0 kept */
        const float scale = 1.75f;
        for (size_t s = 0; s < sizeof isas / sizeof *isas; ++s) {
            if (!df_isa_available(isas[s]))
                continue;
            for (int nt = 1; nt <= 3; ++nt) {
                const df_opts_t opts = {nt, isas[s]};
                /* forward: the matrix is w with rows ld apart; out is ntok x dim */
                CHECK(df_embedding_fwd_f32(w, ld, out, ids, ntok, vocab, dim, bits, scale, &opts) ==
                          DF_OK,
                      "fwd status case %zu", c);
                ref_fwd(w, ld, want, ids, ntok, dim, bits, scale);
                CHECK(memcmp(out, want, (size_t)(ntok * dim) * sizeof *out) == 0,
                      "fwd case %zu isa %s threads %d", c, df_isa_name(isas[s]), nt);
                /* backward: w read as dout (ntok rows ld apart) */
                CHECK(df_embedding_bwd_f32(w, ld, grad, ids, ntok, vocab, dim, bits, scale, work,
                                           &opts) == DF_OK,
                      "bwd status case %zu", c);
                ref_bwd(w, ld, want, ids, ntok, vocab, dim, bits, scale);
                CHECK(memcmp(grad, want, (size_t)(vocab * dim) * sizeof *grad) == 0,
                      "bwd case %zu isa %s threads %d", c, df_isa_name(isas[s]), nt);
            }
        }
        free(w);
        free(out);
        free(want);
        free(grad);
        free(ids);
        free(work);
        free(bits);
    }
}

static void test_status(void)
{
    float w[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, out[6], grad[12];
    double wd[12] = {0}, outd[6], gradd[12];
    int64_t work[DF_EMBEDDING_WORK(4, 2)];
    const uint8_t bits[1] = {0xFF};
    const int64_t bad[3][2] = {{0, 4}, {-1, 0}, {3, INT64_MIN}};
    for (int b = 0; b < 3; ++b) {
        for (int i = 0; i < 6; ++i)
            out[i] = outd[i] = 7;
        for (int i = 0; i < 12; ++i)
            grad[i] = gradd[i] = 7;
        CHECK(df_embedding_fwd_f32(w, 3, out, bad[b], 2, 4, 3, bits, 1.0f, NULL) == DF_ERR_INDEX,
              "fwd id %d", b);
        CHECK(df_embedding_fwd_f64(wd, 3, outd, bad[b], 2, 4, 3, bits, 1.0, NULL) == DF_ERR_INDEX,
              "fwd f64 id %d", b);
        CHECK(df_embedding_bwd_f32(w, 3, grad, bad[b], 2, 4, 3, bits, 1.0f, work, NULL) ==
                  DF_ERR_INDEX,
              "bwd id %d", b);
        CHECK(df_embedding_bwd_f64(wd, 3, gradd, bad[b], 2, 4, 3, bits, 1.0, work, NULL) ==
                  DF_ERR_INDEX,
              "bwd f64 id %d", b);
        for (int i = 0; i < 6; ++i)
            CHECK(out[i] == 7 && outd[i] == 7, "an index error wrote out");
        for (int i = 0; i < 12; ++i)
            CHECK(grad[i] == 7 && gradd[i] == 7, "an index error wrote grad");
    }
    /* dim 0 and no vocabulary still check the ids */
    CHECK(df_embedding_fwd_f32(NULL, 0, NULL, bad[0], 2, 4, 0, bits, 1.0f, NULL) == DF_ERR_INDEX,
          "dim 0 fwd");
    CHECK(df_embedding_bwd_f32(w, 3, NULL, bad[1], 2, 0, 3, NULL, 1.0f, NULL, NULL) ==
              DF_ERR_INDEX,
          "vocab 0 bwd");
    const int64_t ok[2] = {1, 2};
    CHECK(df_embedding_fwd_f32(w, 3, out, ok, -1, 4, 3, bits, 1.0f, NULL) == DF_ERR_ARG, "ntok<0");
    CHECK(df_embedding_fwd_f32(w, 3, out, NULL, 2, 4, 3, bits, 1.0f, NULL) == DF_ERR_ARG,
          "NULL ids");
    CHECK(df_embedding_fwd_f32(w, 3, out, ok, 2, 4, 3, NULL, 1.0f, NULL) == DF_ERR_ARG,
          "NULL bits");
    CHECK(df_embedding_bwd_f32(w, 3, grad, ok, 2, 4, 3, bits, 1.0f, NULL, NULL) == DF_ERR_ARG,
          "NULL work");
    CHECK(df_embedding_bwd_f32(w, 3, NULL, ok, 2, 4, 3, bits, 1.0f, work, NULL) == DF_ERR_ARG,
          "NULL grad");
    const df_opts_t bad_isa = {1, 99};
    CHECK(df_embedding_fwd_f32(w, 3, out, ok, 2, 4, 3, bits, 1.0f, &bad_isa) == DF_ERR_ISA,
          "isa");
    CHECK(strcmp(df_status_str(DF_ERR_INDEX), "unknown status") != 0, "status_str INDEX");
}

int main(void)
{
    test_status();
    test_against_reference();
    if (failures) {
        printf("%d failure(s)\n", failures);
        return 1;
    }
    printf("embedding C tests: ok\n");
    return 0;
}
