/* test_kat.c: the C library checked without Python. Philox4x32 known-answer
 * vectors (Random123's kat_vectors, 7 and 10 rounds), status codes, and every
 * available instruction set against the scalar specification. Exits non-zero
 * and prints what failed on any mismatch. */
#define _DEFAULT_SOURCE /* setenv */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "df_check.h"
#include "dropout_fast.h"

static void test_kat(void)
{
    static const uint32_t in[3][6] = {
        {0, 0, 0, 0, 0, 0},
        {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
        {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u},
    };
    static const uint32_t r10[3][4] = {
        {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u},
        {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu},
        {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u},
    };
    static const uint32_t r7[3][4] = {
        {0x5f6fb709u, 0x0d893f64u, 0x4f121f81u, 0x4f730a48u},
        {0x5207ddc2u, 0x45165e59u, 0x4d8ee751u, 0x8c52f662u},
        {0x4dfccabau, 0x190a87f0u, 0xc47362bau, 0xb6b5242au},
    };
    for (int v = 0; v < 3; ++v) {
        uint32_t out[4];
        CHECK(df_philox4x32(in[v], in[v] + 4, out, 1, 10) == DF_OK, "philox rc");
        CHECK(memcmp(out, r10[v], sizeof out) == 0, "philox4x32-10 vector %d", v);
        CHECK(df_philox4x32(in[v], in[v] + 4, out, 1, 7) == DF_OK, "philox rc");
        CHECK(memcmp(out, r7[v], sizeof out) == 0, "philox4x32-7 vector %d", v);
    }
}

static void test_status(void)
{
    df_key_t key = {1, 2};
    df_block_t b = {0, 0};
    float x = 1.0f;
    uint8_t bits[1];
    uint32_t c[4] = {0}, k[2] = {0}, o[4];
    CHECK(df_philox4x32(c, k, o, 1, 17) == DF_ERR_ROUNDS, "rounds 17");
    CHECK(df_philox4x32(c, k, o, 1, -1) == DF_ERR_ROUNDS, "rounds -1");
    CHECK(df_philox4x32(NULL, k, o, 1, 10) == DF_ERR_ARG, "NULL ctr");
    CHECK(df_dropout_fwd_f32(NULL, &x, NULL, 1, key, b, 1u << 31, 2.0f, NULL) == DF_ERR_ARG,
          "NULL x");
    CHECK(df_dropout_fwd_f32(&x, &x, NULL, -1, key, b, 1u << 31, 2.0f, NULL) == DF_ERR_ARG,
          "n < 0");
    CHECK(df_dropout_fwd_f32(NULL, NULL, NULL, 0, key, b, 1u << 31, 2.0f, NULL) == DF_OK,
          "n == 0 with NULL");
    CHECK(df_dropout_fwd_f32(&x, &x, NULL, 1, key, b, ((uint64_t)1 << 32) + 1, 2.0f, NULL) ==
              DF_ERR_THRESH,
          "thresh");
    df_block_t top = {~(uint64_t)0, 0xFFFFFFFFu};
    CHECK(df_dropout_mask(bits, 8, key, top, 1u << 31, NULL) == DF_OK, "last block");
    CHECK(df_dropout_mask(bits, 9, key, top, 1u << 31, NULL) == DF_ERR_RANGE, "past 2**96");
    df_opts_t bad = {1, 99};
    CHECK(df_dropout_mask(bits, 8, key, b, 1u << 31, &bad) == DF_ERR_ISA, "isa 99");
    CHECK(df_dropout_bwd_bits_f32(&x, &x, NULL, 1, 2.0f, NULL) == DF_ERR_ARG, "NULL bits");
    double xd = 1.0;
    CHECK(df_dropout_fwd_f64(NULL, &xd, NULL, 1, key, b, 1u << 31, 2.0, NULL) == DF_ERR_ARG,
          "NULL x f64");
    CHECK(df_dropout_fwd_f64(&xd, &xd, NULL, 1, key, b, ((uint64_t)1 << 32) + 1, 2.0, NULL) ==
              DF_ERR_THRESH,
          "thresh f64");
    CHECK(df_dropout_fwd_f64(&xd, &xd, NULL, 9, key, top, 1u << 31, 2.0, NULL) == DF_ERR_RANGE,
          "past 2**96 f64");
    CHECK(df_dropout_bwd_bits_f64(&xd, &xd, NULL, 1, 2.0, NULL) == DF_ERR_ARG, "NULL bits f64");
    CHECK(x == 1.0f && xd == 1.0, "an error wrote the output");
    const int64_t shape[2] = {2, 3}, noise[2] = {2, 2};
    float xs[6] = {0};
    CHECK(df_bcast_apply_f32(xs, xs, bits, 2, shape, noise, 1.0f, 0.0f, 0.0f, NULL) ==
              DF_ERR_SHAPE,
          "noise shape");
    /* The values are pinned (the enum is append-only) and each has its own text. */
    static const df_status_t pinned[] = {DF_OK,        DF_ERR_ARG,    DF_ERR_THRESH, DF_ERR_ISA,
                                         DF_ERR_RANGE, DF_ERR_ROUNDS, DF_ERR_SHAPE,  DF_ERR_VALUE,
                                         DF_ERR_INDEX};
    for (int s = 0; s < (int)(sizeof pinned / sizeof pinned[0]); ++s) {
        CHECK((int)pinned[s] == s, "status %d pinned", s);
        CHECK(strcmp(df_status_str(pinned[s]), "unknown status") != 0, "status_str %d", s);
        for (int t = 0; t < s; ++t)
            CHECK(strcmp(df_status_str(pinned[s]), df_status_str(pinned[t])) != 0,
                  "status_str %d == status_str %d", s, t);
    }
    CHECK(strcmp(df_status_str((df_status_t)9), "unknown status") == 0, "status_str 9");
    CHECK(strcmp(df_version(), DF_VERSION_STRING) == 0, "version");
}

/* Every instruction set, every thread count, equals the scalar body. */
static void test_isa_equal(void)
{
    static const int64_t sizes[] = {0, 1, 7, 8, 63, 64, 65, 255, 256, 257, 1000, 4099, 200003};
    static const uint64_t thresholds[] = {0,           1,           0xFFFFu,     0x10000u,
                                          0x1FFFFu,    0x7FFFFFFFu, 0x80000000u, 0xE6666666u,
                                          0xFFFF0000u, 0xFFFFFFFFu, (uint64_t)1 << 32, 0x1999999Au};
    static const df_block_t offsets[] = {{0, 0}, {12345, 0}, {0xFFFFFFF0u, 0}, {~(uint64_t)0 - 40, 7}};
    const int64_t nmax = 200003;
    float *x = malloc(nmax * sizeof *x), *y0 = malloc(nmax * sizeof *x), *y1 = malloc(nmax * sizeof *x);
    double *xd = malloc(nmax * sizeof *xd), *yd0 = malloc(nmax * sizeof *xd), *yd1 = malloc(nmax * sizeof *xd);
    uint8_t *b0 = malloc(nmax / 8 + 1), *b1 = malloc(nmax / 8 + 1);
    for (int64_t i = 0; i < nmax; ++i) {
        x[i] = (float)(i % 1001) * 0.37f - 100.0f;
        xd[i] = (double)(i % 1003) * 0.37 - 100.0;
    }
    df_key_t key = {0x12345678u, 0x9abcdef0u};
    for (int isa = DF_ISA_SCALAR; isa <= DF_ISA_NEON; ++isa) {
        if (!df_isa_available((df_isa_t)isa))
            continue;
        for (int nt = 1; nt <= (df_test_quick() ? 1 : 3); ++nt) {
            df_opts_t ref = {1, DF_ISA_SCALAR}, opt = {nt, isa};
            for (size_t si = 0; si < sizeof sizes / sizeof *sizes - (size_t)df_test_quick(); ++si)
                for (size_t ti = 0; ti < sizeof thresholds / sizeof *thresholds; ++ti)
                    for (size_t oi = 0; oi < sizeof offsets / sizeof *offsets; ++oi) {
                        int64_t n = sizes[si];
                        uint64_t t = thresholds[ti];
                        df_block_t o = offsets[oi];
                        size_t nb = (size_t)(n + 7) / 8;
                        float s = 1.25f;
                        memset(b0, 0xAA, nb);
                        memset(b1, 0x55, nb);
                        df_dropout_fwd_f32(x, y0, b0, n, key, o, t, s, &ref);
                        df_dropout_fwd_f32(x, y1, b1, n, key, o, t, s, &opt);
                        CHECK(memcmp(y0, y1, n * sizeof *x) == 0 && memcmp(b0, b1, nb) == 0,
                              "fwd_f32 isa %s nt %d n %lld t %llx", df_isa_name(isa), nt,
                              (long long)n, (unsigned long long)t);
                        df_dropout_fwd_f64(xd, yd0, NULL, n, key, o, t, 1.25, &ref);
                        df_dropout_fwd_f64(xd, yd1, NULL, n, key, o, t, 1.25, &opt);
                        CHECK(memcmp(yd0, yd1, n * sizeof *xd) == 0, "fwd_f64 isa %s n %lld",
                              df_isa_name(isa), (long long)n);
                        memset(b1, 0x33, nb);
                        df_dropout_mask(b1, n, key, o, t, &opt);
                        CHECK(memcmp(b0, b1, nb) == 0, "mask isa %s n %lld", df_isa_name(isa),
                              (long long)n);
                        df_dropout_bwd_bits_f32(x, y0, b0, n, s, &ref);
                        df_dropout_bwd_bits_f32(x, y1, b0, n, s, &opt);
                        CHECK(memcmp(y0, y1, n * sizeof *x) == 0, "bwd_f32 isa %s n %lld",
                              df_isa_name(isa), (long long)n);
                        df_dropout_fwd_f64(xd, yd0, b0, n, key, o, t, 1.25, &ref);
                        df_dropout_bwd_bits_f64(xd, yd0, b0, n, 1.25, &ref);
                        df_dropout_bwd_bits_f64(xd, yd1, b0, n, 1.25, &opt);
                        CHECK(memcmp(yd0, yd1, n * sizeof *xd) == 0, "bwd_f64 isa %s n %lld",
                              df_isa_name(isa), (long long)n);
                    }
        }
    }
    free(x); free(y0); free(y1); free(xd); free(yd0); free(yd1); free(b0); free(b1);
}

/* A float32 / float64 value no kernel writes: the guard around each output. */
#define GUARD32 0x7FC0DEADu
#define GUARD64 0x7FF8DEADDEADDEADull

static int guards_ok(const void *buf, size_t esize, int64_t lo, int64_t hi, int64_t total)
{
    for (int64_t i = 0; i < total; ++i) {
        if (i >= lo && i < hi)
            continue;
        uint64_t v = 0;
        memcpy(&v, (const char *)buf + (size_t)i * esize, esize);
        if (v != (esize == 4 ? GUARD32 : GUARD64))
            return 0;
    }
    return 1;
}

/* C11 aligned_alloc wants a size that is a multiple of the alignment. */
static void *alloc64(size_t bytes)
{
    return aligned_alloc(64, (bytes + 63) / 64 * 64);
}

static void fill_guard(void *buf, size_t esize, int64_t total)
{
    const uint32_t g32 = GUARD32;
    const uint64_t g64 = GUARD64;
    for (int64_t i = 0; i < total; ++i)
        memcpy((char *)buf + (size_t)i * esize, esize == 4 ? (const void *)&g32 : (const void *)&g64,
               esize);
}

/* Starts off 64-byte alignment (every output alignment the SIMD bodies shift
 * by), in-place calls, outputs large enough for non-temporal stores (8 MiB;
 * main lowers the streaming threshold to 1 MiB so they stream on any CPU),
 * and no write outside [0, n) of y or past the last mask byte. */
static void test_layouts(void)
{
    static const int64_t sizes[] = {1, 9, 15, 63, 64, 65, 127, 200, 255, 256, 257, 321, 1000, 4099};
    static const int offs[][2] = {{0, 0}, {1, 1}, {3, 5}, {8, 0}, {0, 12}, {15, 15}, {7, 2}};
    const int64_t nbig = ((int64_t)1 << (df_test_quick() ? 15 : 21)) + 77, pad = 32;
    const int64_t total = nbig + 2 * pad;
    float *x = alloc64((size_t)total * 4), *y0 = alloc64((size_t)total * 4);
    float *y1 = alloc64((size_t)total * 4);
    double *xd = alloc64((size_t)total * 8), *yd0 = alloc64((size_t)total * 8);
    double *yd1 = alloc64((size_t)total * 8);
    uint8_t *b0 = malloc((size_t)total / 8 + 16), *b1 = malloc((size_t)total / 8 + 16);
    for (int64_t i = 0; i < total; ++i) {
        x[i] = (float)(i % 997) * 0.51f - 200.0f;
        xd[i] = (double)(i % 991) * 0.51 - 200.0;
    }
    const df_key_t key = {0xdeadbeefu, 0x01234567u};
    const df_block_t blk = {77, 0};
    const uint64_t t = 0xB3333333u;
    const df_opts_t ref = {1, DF_ISA_SCALAR};
    for (int isa = DF_ISA_AVX2; isa <= DF_ISA_NEON; ++isa) {
        if (!df_isa_available((df_isa_t)isa))
            continue;
        const df_opts_t opt = {1, isa};
        for (size_t si = 0; si <= sizeof sizes / sizeof *sizes; ++si)
            for (size_t oi = 0; oi < sizeof offs / sizeof *offs; ++oi) {
                const int64_t n = si < sizeof sizes / sizeof *sizes ? sizes[si] : nbig;
                const int xo = offs[oi][0], yo = offs[oi][1];
                const size_t nb = (size_t)(n + 7) / 8;
                if (n == nbig && oi > 2)
                    continue;
                /* out of place, x and y at their own offsets */
                df_dropout_fwd_f32(x + pad + xo, y0, b0, n, key, blk, t, 1.5f, &ref);
                fill_guard(y1, 4, total);
                memset(b1, 0xA5, nb + 16);
                df_dropout_fwd_f32(x + pad + xo, y1 + pad + yo, b1, n, key, blk, t, 1.5f, &opt);
                CHECK(memcmp(y0, y1 + pad + yo, (size_t)n * 4) == 0 && memcmp(b0, b1, nb) == 0,
                      "fwd_f32 layout isa %s n %lld x+%d y+%d", df_isa_name(isa), (long long)n, xo, yo);
                CHECK(guards_ok(y1, 4, pad + yo, pad + yo + n, total) && b1[nb] == 0xA5,
                      "fwd_f32 wrote outside isa %s n %lld y+%d", df_isa_name(isa), (long long)n, yo);
                /* in place at offset yo */
                memcpy(y1 + pad + yo, x + pad + xo, (size_t)n * 4);
                df_dropout_fwd_f32(y1 + pad + yo, y1 + pad + yo, NULL, n, key, blk, t, 1.5f, &opt);
                CHECK(memcmp(y0, y1 + pad + yo, (size_t)n * 4) == 0, "fwd_f32 in place isa %s n %lld y+%d",
                      df_isa_name(isa), (long long)n, yo);
                /* backward from the bits, out of place and in place */
                df_dropout_bwd_bits_f32(x + pad + xo, y0, b0, n, 0.75f, &ref);
                fill_guard(y1, 4, total);
                df_dropout_bwd_bits_f32(x + pad + xo, y1 + pad + yo, b0, n, 0.75f, &opt);
                CHECK(memcmp(y0, y1 + pad + yo, (size_t)n * 4) == 0 &&
                          guards_ok(y1, 4, pad + yo, pad + yo + n, total),
                      "bwd_f32 layout isa %s n %lld x+%d y+%d", df_isa_name(isa), (long long)n, xo, yo);
                memcpy(y1 + pad + yo, x + pad + xo, (size_t)n * 4);
                df_dropout_bwd_bits_f32(y1 + pad + yo, y1 + pad + yo, b0, n, 0.75f, &opt);
                CHECK(memcmp(y0, y1 + pad + yo, (size_t)n * 4) == 0, "bwd_f32 in place isa %s n %lld",
                      df_isa_name(isa), (long long)n);
                /* float64: same, with the mask from the mask kernel */
                df_dropout_fwd_f64(xd + pad + xo, yd0, NULL, n, key, blk, t, 1.5, &ref);
                fill_guard(yd1, 8, total);
                df_dropout_fwd_f64(xd + pad + xo, yd1 + pad + yo, NULL, n, key, blk, t, 1.5, &opt);
                CHECK(memcmp(yd0, yd1 + pad + yo, (size_t)n * 8) == 0 &&
                          guards_ok(yd1, 8, pad + yo, pad + yo + n, total),
                      "fwd_f64 layout isa %s n %lld x+%d y+%d", df_isa_name(isa), (long long)n, xo, yo);
                memset(b1, 0xA5, nb + 16);
                df_dropout_mask(b1, n, key, blk, t, &opt);
                CHECK(memcmp(b0, b1, nb) == 0 && b1[nb] == 0xA5, "mask isa %s n %lld",
                      df_isa_name(isa), (long long)n);
                df_dropout_bwd_bits_f64(xd + pad + xo, yd0, b0, n, 0.75, &ref);
                memcpy(yd1 + pad + yo, xd + pad + xo, (size_t)n * 8);
                df_dropout_bwd_bits_f64(yd1 + pad + yo, yd1 + pad + yo, b0, n, 0.75, &opt);
                CHECK(memcmp(yd0, yd1 + pad + yo, (size_t)n * 8) == 0, "bwd_f64 in place isa %s n %lld",
                      df_isa_name(isa), (long long)n);
            }
    }
    free(x); free(y0); free(y1); free(xd); free(yd0); free(yd1); free(b0); free(b1);
}

/* The tie A == thresh >> 16 taken both ways: with thresh's low bits the kept
 * set lies strictly between those of thi << 16 and (thi + 1) << 16. Also a
 * backward mask whose unused high bits of the last byte are set (ignored). */
static void test_ties(void)
{
    const int64_t n = (int64_t)1 << (df_test_quick() ? 18 : 22);
    uint8_t *lo = malloc((size_t)n / 8), *mid = malloc((size_t)n / 8), *hi = malloc((size_t)n / 8);
    uint8_t *got = malloc((size_t)n / 8);
    const df_key_t key = {0x9e3779b9u, 0x7f4a7c15u};
    const df_block_t blk = {0xFFFFFF00u, 3}; /* the low counter word wraps inside the call */
    const uint64_t t = 0xE6666666u, tlo0 = t & ~(uint64_t)0xFFFF, thi1 = tlo0 + 0x10000;
    const df_opts_t ref = {1, DF_ISA_SCALAR};
    df_dropout_mask(lo, n, key, blk, tlo0, &ref);
    df_dropout_mask(mid, n, key, blk, t, &ref);
    df_dropout_mask(hi, n, key, blk, thi1, &ref);
    int64_t more = 0, fewer = 0, nested = 1;
    for (int64_t i = 0; i < n / 8; ++i) {
        nested &= (lo[i] & ~mid[i]) == 0 && (mid[i] & ~hi[i]) == 0;
        more += __builtin_popcount((unsigned)(mid[i] & ~lo[i]));
        fewer += __builtin_popcount((unsigned)(hi[i] & ~mid[i]));
    }
    CHECK(nested && more > 0 && fewer > 0, "ties: nested %d, kept %lld, dropped %lld", (int)nested,
          (long long)more, (long long)fewer);
    for (int isa = DF_ISA_AVX2; isa <= DF_ISA_NEON; ++isa) {
        if (!df_isa_available((df_isa_t)isa))
            continue;
        for (int nt = 1; nt <= 2; ++nt) {
            const df_opts_t opt = {nt, isa};
            df_dropout_mask(got, n, key, blk, t, &opt);
            CHECK(memcmp(got, mid, (size_t)n / 8) == 0, "ties isa %s nt %d", df_isa_name(isa), nt);
            df_dropout_mask(got, n, key, blk, tlo0, &opt);
            CHECK(memcmp(got, lo, (size_t)n / 8) == 0, "ties tlo 0 isa %s", df_isa_name(isa));
        }
    }
    /* bwd ignores bits at and after n */
    float x[13], y0[13], y1[13];
    uint8_t bits[2] = {0x5Bu, 0xFFu};
    for (int i = 0; i < 13; ++i)
        x[i] = (float)i - 6.5f;
    df_dropout_bwd_bits_f32(x, y0, bits, 13, 2.0f, &ref);
    for (int isa = DF_ISA_AVX2; isa <= DF_ISA_NEON; ++isa)
        if (df_isa_available((df_isa_t)isa)) {
            const df_opts_t opt = {1, isa};
            df_dropout_bwd_bits_f32(x, y1, bits, 13, 2.0f, &opt);
            CHECK(memcmp(y0, y1, sizeof y0) == 0, "bwd high bits isa %s", df_isa_name(isa));
        }
    free(lo); free(mid); free(hi); free(got);
}

/* Gaussian dropout: known multipliers (x = 1) from the numpy oracle
 * (tests/oracle.py gaussian_multiplier, seed 0x9abcdef012345678, block offset
 * 2**64 * 3 + 2**64 - 1, so elements 8.. take the carry into the top word),
 * status codes, and every ISA / thread count / split / in-place call equal to
 * the one-thread scalar call. */
static void test_gaussian(void)
{
    static const uint64_t kat64[12] = {
        0x3ffcbe56c238dc31ull, 0x3fe7e2d53085a6ccull, 0x3fdf4812c1884394ull, 0x3f9e7edb1c5ac4e0ull,
        0x3ff4fdb661577f60ull, 0x3ff39a9fd9bee2f4ull, 0x3fdd4e6b9ff13a68ull, 0x3ffe5b4554ff4b80ull,
        0x3fe488a2a601ba18ull, 0xbfe091d6c5c5fc7cull, 0xbfda8483106232b0ull, 0x3fe11dda59530cbcull,
    };
    static const uint32_t kat32[12] = {
        0x3fbadc19u, 0x3f5a85fau, 0x3f3470a0u, 0x3ee13331u, 0x3f970d80u, 0x3f90a56bu,
        0x3f2fe0dfu, 0x3fc24f59u, 0x3f4b0a22u, 0x3dfd5476u, 0x3e3bd581u, 0x3f3b41afu,
    };
    const df_key_t key = {0x12345678u, 0x9abcdef0u};
    const df_block_t carry = {~(uint64_t)0, 3};
    const double sigma_half = 1.0, sigma_quarter = 0x1.279a74590331cp-1; /* p = 0.5, 0.25 */
    double d[12];
    float f[12];
    for (int i = 0; i < 12; ++i) {
        d[i] = 1.0;
        f[i] = 1.0f;
    }
    CHECK(df_gaussian_fwd_f64(d, d, 12, key, carry, sigma_half, NULL) == DF_OK, "gauss f64 rc");
    CHECK(memcmp(d, kat64, sizeof d) == 0, "gaussian f64 known values");
    CHECK(df_gaussian_fwd_f32(f, f, 12, key, carry, sigma_quarter, NULL) == DF_OK, "gauss f32 rc");
    CHECK(memcmp(f, kat32, sizeof f) == 0, "gaussian f32 known values");

    /* status codes; nothing is written on an error */
    float e[9];
    for (int i = 0; i < 9; ++i)
        e[i] = 1.0f;
    volatile double zero = 0.0;
    const double nan = zero / zero, inf = 1.0 / zero;
    const df_block_t b0 = {0, 0}, top = {~(uint64_t)0, 0xFFFFFFFFu};
    const df_opts_t bad = {1, 99};
    CHECK(df_gaussian_fwd_f32(NULL, e, 1, key, b0, 1.0, NULL) == DF_ERR_ARG, "gauss NULL x");
    CHECK(df_gaussian_fwd_f32(e, NULL, 1, key, b0, 1.0, NULL) == DF_ERR_ARG, "gauss NULL y");
    CHECK(df_gaussian_fwd_f32(e, e, -1, key, b0, 1.0, NULL) == DF_ERR_ARG, "gauss n < 0");
    CHECK(df_gaussian_fwd_f32(NULL, NULL, 0, key, b0, 1.0, NULL) == DF_OK, "gauss n == 0");
    CHECK(df_gaussian_fwd_f32(e, e, 9, key, b0, -1.0, NULL) == DF_ERR_VALUE, "sigma < 0");
    CHECK(df_gaussian_fwd_f32(e, e, 9, key, b0, nan, NULL) == DF_ERR_VALUE, "sigma NaN");
    CHECK(df_gaussian_fwd_f32(e, e, 9, key, b0, inf, NULL) == DF_ERR_VALUE, "sigma inf");
    CHECK(df_gaussian_fwd_f32(e, e, 9, key, top, 1.0, NULL) == DF_ERR_RANGE, "gauss past 2**96");
    CHECK(df_gaussian_fwd_f32(e, e, 9, key, b0, 1.0, &bad) == DF_ERR_ISA, "gauss isa 99");
    int untouched = 1;
    for (int i = 0; i < 9; ++i)
        untouched &= e[i] == 1.0f;
    CHECK(untouched, "gaussian wrote on an error");
    CHECK(df_gaussian_fwd_f32(e, e, 8, key, top, 1.0, NULL) == DF_OK, "gauss last block");
    CHECK(df_gaussian_fwd_f32(e, e, 9, key, b0, 0.0, NULL) == DF_OK && e[8] == 1.0f,
          "sigma 0 is the identity");
    CHECK(strcmp(df_status_str(DF_ERR_VALUE), "unknown status") != 0, "status_str VALUE");

    /* invariance: every ISA and thread count, split calls, in place */
    const int64_t n = df_test_quick() ? 20003 : 200003, cut = 8 * (df_test_quick() ? 1234 : 12345);
    const df_block_t o = {0xFFFFFFF0u, 7}; /* the low counter word wraps inside the call */
    float *x = malloc(n * sizeof *x), *y0 = malloc(n * sizeof *x), *y1 = malloc(n * sizeof *x);
    double *xd = malloc(n * sizeof *xd), *yd0 = malloc(n * sizeof *xd), *yd1 = malloc(n * sizeof *xd);
    for (int64_t i = 0; i < n; ++i) {
        x[i] = (float)(i % 1001) * 0.37f - 100.0f;
        xd[i] = (double)(i % 1003) * 0.37 - 100.0;
    }
    const df_opts_t ref = {1, DF_ISA_SCALAR};
    df_gaussian_fwd_f32(x, y0, n, key, o, sigma_quarter, &ref);
    df_gaussian_fwd_f64(xd, yd0, n, key, o, sigma_half, &ref);
    for (int isa = DF_ISA_SCALAR; isa <= DF_ISA_NEON; ++isa) {
        if (!df_isa_available((df_isa_t)isa))
            continue;
        for (int nt = 1; nt <= (df_test_quick() ? 1 : 3); ++nt) {
            const df_opts_t opt = {nt, isa};
            memset(y1, 0, n * sizeof *y1);
            df_gaussian_fwd_f32(x, y1, n, key, o, sigma_quarter, &opt);
            CHECK(memcmp(y0, y1, n * sizeof *y1) == 0, "gauss f32 isa %s nt %d",
                  df_isa_name((df_isa_t)isa), nt);
            memcpy(yd1, xd, n * sizeof *yd1);
            df_gaussian_fwd_f64(yd1, yd1, n, key, o, sigma_half, &opt);
            CHECK(memcmp(yd0, yd1, n * sizeof *yd1) == 0, "gauss f64 in place isa %s nt %d",
                  df_isa_name((df_isa_t)isa), nt);
        }
    }
    memset(y1, 0, n * sizeof *y1);
    df_gaussian_fwd_f32(x, y1, cut, key, o, sigma_quarter, &ref);
    df_gaussian_fwd_f32(x + cut, y1 + cut, n - cut, key, (df_block_t){o.lo + cut / 8, o.hi},
                        sigma_quarter, &ref);
    CHECK(memcmp(y0, y1, n * sizeof *y1) == 0, "gauss split at %lld", (long long)cut);
    free(x); free(y0); free(y1); free(xd); free(yd0); free(yd1);
}

/* The structured-dropout pass (df_bcast_apply_*) against a plain loop over
 * every element's mask index: channels first and last, variational rows at
 * odd bit offsets, DropPath (long runs: the fill path), a full mask, alpha
 * coefficients, every ISA, threads 1..3, x and y off alignment, in place,
 * guards around y, and NaN / -0.0 / infinite inputs. Signed zeros as the
 * header states: the kept value is a * x + b with b == 0 taken as -0.0 (a * x
 * unchanged), the dropped value c with c == 0 taken as +0.0. */
#define DF_DEFINE_BCAST_REF(NAME, T)                                                       \
    static void NAME(const T *x, T *y, const uint8_t *bits, int nd, const int64_t *shape,  \
                     const int64_t *noise, T a, T b, T c)                                  \
    {                                                                                      \
        int64_t idx[8] = {0}, mstr[8], n = 1, st = 1;                                      \
        for (int d = nd - 1; d >= 0; --d) {                                                \
            mstr[d] = noise[d] == 1 ? 0 : st;                                              \
            st *= noise[d];                                                                \
            n *= shape[d];                                                                 \
        }                                                                                  \
        const T b0 = b == 0 ? -(T)0 : b, drop = c == 0 ? (T)0 : c;                         \
        for (int64_t e = 0; e < n; ++e) {                                                  \
            int64_t m = 0;                                                                 \
            for (int d = 0; d < nd; ++d)                                                   \
                m += idx[d] * mstr[d];                                                     \
            const int keep = (bits[m >> 3] >> (m & 7)) & 1;                                \
            y[e] = keep ? a * x[e] + b0 : drop;                                            \
            for (int d = nd - 1; d >= 0 && ++idx[d] == shape[d]; --d)                      \
                idx[d] = 0;                                                                \
        }                                                                                  \
    }
DF_DEFINE_BCAST_REF(bcast_ref_f32, float)
DF_DEFINE_BCAST_REF(bcast_ref_f64, double)

static void test_bcast(void)
{
    static const struct {
        int nd, big;
        int64_t shape[4], noise[4];
    } cases[] = {
        {0, 0, {0}, {0}},
        {4, 0, {3, 5, 7, 9}, {3, 5, 1, 1}},
        {4, 0, {4, 8, 16, 16}, {4, 8, 1, 1}},
        {3, 0, {2, 3, 1000}, {2, 3, 1}},
        {4, 0, {3, 7, 9, 5}, {3, 1, 1, 5}},
        {4, 0, {2, 5, 5, 64}, {2, 1, 1, 64}},
        {4, 0, {2, 4, 4, 67}, {2, 1, 1, 67}},
        {3, 0, {4, 33, 100}, {4, 1, 100}},
        {3, 0, {3, 17, 13}, {3, 1, 13}},
        {4, 0, {5, 3, 11, 13}, {5, 1, 1, 1}},
        {2, 0, {7, 4099}, {7, 1}},
        {2, 0, {3, 100}, {3, 100}},
        {4, 0, {4, 6, 8, 10}, {4, 1, 8, 1}},
        {4, 0, {6, 1, 5, 40}, {6, 1, 1, 40}},
        {2, 0, {8, 16384}, {8, 1}},
        {3, 0, {2, 3, 9000}, {2, 1, 9000}},
        {3, 0, {2, 5, 8255}, {2, 1, 8255}},
        {2, 0, {3, 20000}, {3, 20000}},
        {3, 0, {5, 1, 1}, {5, 1, 1}},
        {4, 1, {64, 64, 32, 32}, {64, 64, 1, 1}},
        {4, 1, {16, 32, 32, 64}, {16, 1, 1, 64}},
        {3, 1, {8, 256, 130}, {8, 1, 130}},
        {2, 1, {64, 16384}, {64, 1}},
    };
    static const float coef[][3] = {
        {2.0f, 0.0f, 0.0f},                       /* dropout, spatial, backward */
        {0.8864053f, 0.7791938f, -1.5583874f},    /* alpha dropout at p = 0.5 */
        {1.5f, 0.0f, -0.0f},
        {1.25f, 0.0f, 3.0f},
    };
    static const int offs[][2] = {{0, 0}, {4, 4}, {1, 3}, {0, 5}};
    const int64_t nmax = df_test_quick() ? 8 * 16384 : (int64_t)64 * 64 * 32 * 32; /* big cases */
    const int64_t pad = 32, total = nmax + 2 * pad + 8;
    float *x = alloc64((size_t)total * 4), *y0 = alloc64((size_t)total * 4);
    float *y1 = alloc64((size_t)total * 4);
    double *xd = alloc64((size_t)total * 8), *yd0 = alloc64((size_t)total * 8);
    double *yd1 = alloc64((size_t)total * 8);
    const uint32_t nan32 = 0x7FC01234u;
    for (int64_t i = 0; i < total; ++i) {
        x[i] = (float)(i % 997) * 0.51f - 200.0f;
        xd[i] = (double)(i % 991) * 0.51 - 200.0;
        if (i % 89 == 3) {
            x[i] = -0.0f;
            xd[i] = -0.0;
        } else if (i % 97 == 5) {
            memcpy(&x[i], &nan32, 4);
            xd[i] = (double)x[i];
        } else if (i % 101 == 7) {
            x[i] = -1.0f / 0.0f;
            xd[i] = 1.0 / 0.0;
        }
    }
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ++ci) {
        if (cases[ci].big && df_test_quick())
            continue;
        const int nd = cases[ci].nd;
        const int64_t *shape = cases[ci].shape, *noise = cases[ci].noise;
        int64_t n = 1, m = 1;
        for (int d = 0; d < nd; ++d) {
            n *= shape[d];
            m *= noise[d];
        }
        const int64_t tot = n + 2 * pad + 8; /* y's guards: pad elements each side */
        /* exactly the mask's bytes (ASan sees any read past them), unused bits set */
        uint8_t *bits = malloc((size_t)(m + 7) / 8);
        for (int64_t i = 0; i < (m + 7) / 8; ++i)
            bits[i] = (uint8_t)((i * 0x9E3779B1u + ci * 77u) >> 13);
        for (size_t k = 0; k < sizeof coef / sizeof *coef; ++k) {
            if (cases[ci].big && k > 1)
                continue;
            const float a = coef[k][0], b = coef[k][1], c = coef[k][2];
            for (size_t oi = 0; oi < sizeof offs / sizeof *offs; ++oi) {
                if (cases[ci].big && oi > 2)
                    continue;
                const int xo = offs[oi][0], yo = offs[oi][1];
                const float *xs = x + pad + xo;
                const double *xds = xd + pad + xo;
                bcast_ref_f32(xs, y0, bits, nd, shape, noise, a, b, c);
                bcast_ref_f64(xds, yd0, bits, nd, shape, noise, a, b, c);
                for (int isa = DF_ISA_SCALAR; isa <= DF_ISA_NEON; ++isa) {
                    if (!df_isa_available((df_isa_t)isa))
                        continue;
                    for (int nt = 1; nt <= (df_test_quick() ? 1 : 3); ++nt) {
                        const df_opts_t o = {nt, isa};
                        fill_guard(y1, 4, tot);
                        CHECK(df_bcast_apply_f32(xs, y1 + pad + yo, bits, nd, shape, noise, a, b,
                                                 c, &o) == DF_OK, "bcast f32 rc");
                        CHECK(memcmp(y0, y1 + pad + yo, (size_t)n * 4) == 0 &&
                                  guards_ok(y1, 4, pad + yo, pad + yo + n, tot),
                              "bcast f32 case %zu coef %zu isa %s nt %d x+%d y+%d", ci, k,
                              df_isa_name((df_isa_t)isa), nt, xo, yo);
                        memcpy(y1 + pad + yo, xs, (size_t)n * 4);
                        df_bcast_apply_f32(y1 + pad + yo, y1 + pad + yo, bits, nd, shape, noise,
                                           a, b, c, &o);
                        CHECK(memcmp(y0, y1 + pad + yo, (size_t)n * 4) == 0,
                              "bcast f32 in place case %zu coef %zu isa %s nt %d y+%d", ci, k,
                              df_isa_name((df_isa_t)isa), nt, yo);
                        if (cases[ci].big && nt != 2)
                            continue;
                        fill_guard(yd1, 8, tot);
                        CHECK(df_bcast_apply_f64(xds, yd1 + pad + yo, bits, nd, shape, noise, a,
                                                 b, c, &o) == DF_OK, "bcast f64 rc");
                        CHECK(memcmp(yd0, yd1 + pad + yo, (size_t)n * 8) == 0 &&
                                  guards_ok(yd1, 8, pad + yo, pad + yo + n, tot),
                              "bcast f64 case %zu coef %zu isa %s nt %d x+%d y+%d", ci, k,
                              df_isa_name((df_isa_t)isa), nt, xo, yo);
                        memcpy(yd1 + pad + yo, xds, (size_t)n * 8);
                        df_bcast_apply_f64(yd1 + pad + yo, yd1 + pad + yo, bits, nd, shape, noise,
                                           a, b, c, &o);
                        CHECK(memcmp(yd0, yd1 + pad + yo, (size_t)n * 8) == 0,
                              "bcast f64 in place case %zu coef %zu isa %s nt %d y+%d", ci, k,
                              df_isa_name((df_isa_t)isa), nt, yo);
                    }
                }
            }
        }
        free(bits);
    }
    free(x); free(y0); free(y1); free(xd); free(yd0); free(yd1);
}

int main(void)
{
    /* Non-temporal stores from 1 MiB on (64 KiB with DF_TEST_QUICK, whose large
     * cases are smaller), whatever this CPU's cache size: the large cases below
     * then take the streaming path (read once, before any call). */
    setenv("DROPOUT_FAST_STREAM_MIN_BYTES", df_test_quick() ? "65536" : "1048576", 1);
    test_kat();
    test_status();
    test_isa_equal();
    test_layouts();
    test_ties();
    test_gaussian();
    test_bcast();
    printf("dropout_fast C tests: %s (isa default %s, openmp %d)\n", failures ? "FAILED" : "ok",
           df_isa_name(df_isa_default()), df_has_openmp());
    return failures ? 1 : 0;
}
