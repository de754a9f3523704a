/* test_vectors.c: the C library checked without Python against the stored known
 * answers, and from several threads at once.
 *
 * Known answers. tests/data/philox_kat.txt (Philox4x32 evaluations; the first rows
 * are Random123's kat_vectors) and tests/data/stream_vectors.txt (the stream
 * contract: packed keep bits and the float32/float64 outputs of a fixed input) are
 * written from the numpy oracle by tests/data/make_data.py, whose docstring gives
 * their format. Every case goes through df_dropout_mask, df_dropout_fwd_f32/f64
 * (bits and no bits, in place, split at a multiple of 8) and
 * df_dropout_bwd_bits_f32/f64, on every instruction set this CPU runs and 1..3
 * threads. The stored ranges are small, so each case of 16 or more elements is also
 * checked inside a call PAD blocks longer on either side: long enough for 3
 * threads, whose chunk borders then fall around and inside the stored range. The
 * same files are checked on other CPUs (qemu, tests/c/cross_aarch64.sh): the masks
 * of every platform equal the oracle's.
 *
 * Threads. The header promises that every function is safe to call from several
 * threads at once. Before anything else in the process touches the library (so
 * they also race the one-time choice of instruction set and streaming threshold),
 * NTHREADS POSIX threads, released together by a barrier, call the kernels on
 * their own buffers with their own keys and offsets, ITERS times; the same calls
 * made serially afterwards must give the same bytes.
 *
 * Data directory: argv[1], else $DF_TEST_DATA_DIR, else tests/data (the test suite
 * runs programs from the repository root). */
#define _DEFAULT_SOURCE /* pthread_barrier_t under -std=c11 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "df_check.h"
#include "dropout_fast.h"

/* Blocks of padding on each side of a stored range in the long calls: 2 * 8 * PAD
 * elements, more than 3 threads' worth of the library's per-thread minimum (2**14). */
#define PAD 4096

__extension__ typedef unsigned __int128 u128;

static void die(const char *what, const char *path)
{
    printf("FAIL reading %s: %s\n", path, what);
    printf("dropout_fast C tests: FAILED (data)\n");
    exit(1);
}

/* ---- a whitespace tokenizer for the data files; '#' comments to end of line ---- */

typedef struct {
    char *buf;
    char **tok;
    size_t n, pos;
    char path[1024];
} tokens_t;

static void load_tokens(tokens_t *t, const char *dir, const char *name)
{
    snprintf(t->path, sizeof t->path, "%s/%s", dir, name);
    FILE *f = fopen(t->path, "rb");
    if (f == NULL)
        die(strerror(errno), t->path);
    size_t cap = 1 << 16, len = 0;
    t->buf = malloc(cap + 1);
    for (size_t got; (got = fread(t->buf + len, 1, cap - len, f)) > 0;) {
        len += got;
        if (len == cap)
            t->buf = realloc(t->buf, (cap *= 2) + 1);
    }
    fclose(f);
    t->buf[len] = '\0';
    t->tok = malloc((len / 2 + 1) * sizeof *t->tok);
    t->n = t->pos = 0;
    for (char *p = t->buf; *p;) {
        if (*p == '#') {
            while (*p && *p != '\n')
                *p++ = '\0';
        } else if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
            *p++ = '\0';
        } else {
            t->tok[t->n++] = p;
            while (*p && *p != '#' && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
                ++p;
        }
    }
}

static void free_tokens(tokens_t *t)
{
    free(t->buf);
    free(t->tok);
}

static const char *next(tokens_t *t)
{
    if (t->pos >= t->n)
        die("unexpected end of file", t->path);
    return t->tok[t->pos++];
}

static void expect(tokens_t *t, const char *word)
{
    const char *s = next(t);
    if (strcmp(s, word) != 0)
        die(word, t->path);
}

static uint64_t parse_u64(tokens_t *t, int base)
{
    const char *s = next(t);
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, base);
    if (*s == '\0' || *end != '\0' || errno != 0)
        die(s, t->path);
    return (uint64_t)v;
}

/* ---- Philox4x32 known answers ---- */

static void test_philox(const char *dir, int *rows_out)
{
    tokens_t t;
    load_tokens(&t, dir, "philox_kat.txt");
    size_t rows = t.n / 11;
    if (rows == 0 || t.n % 11 != 0)
        die("expected rows of 11 tokens", t.path);
    uint32_t *ctr = malloc(rows * 4 * sizeof *ctr), *key = malloc(rows * 2 * sizeof *key);
    uint32_t *want = malloc(rows * 4 * sizeof *want), *got = malloc(rows * 4 * sizeof *got);
    int *rounds = malloc(rows * sizeof *rounds);
    for (size_t r = 0; r < rows; ++r) {
        rounds[r] = (int)parse_u64(&t, 10);
        for (int j = 0; j < 4; ++j)
            ctr[4 * r + j] = (uint32_t)parse_u64(&t, 16);
        for (int j = 0; j < 2; ++j)
            key[2 * r + j] = (uint32_t)parse_u64(&t, 16);
        for (int j = 0; j < 4; ++j)
            want[4 * r + j] = (uint32_t)parse_u64(&t, 16);
    }
    for (size_t r = 0; r < rows; ++r) {
        CHECK(df_philox4x32(ctr + 4 * r, key + 2 * r, got + 4 * r, 1, rounds[r]) == DF_OK,
              "philox row %zu rc", r);
        CHECK(memcmp(got + 4 * r, want + 4 * r, 4 * sizeof *got) == 0,
              "philox row %zu (%d rounds): got %08x %08x %08x %08x", r, rounds[r], got[4 * r],
              got[4 * r + 1], got[4 * r + 2], got[4 * r + 3]);
    }
    /* The rows of 10 rounds (the generator) as one batched call. */
    size_t m = 0;
    for (size_t r = 0; r < rows; ++r)
        if (rounds[r] == 10) {
            memmove(ctr + 4 * m, ctr + 4 * r, 4 * sizeof *ctr);
            memmove(key + 2 * m, key + 2 * r, 2 * sizeof *key);
            memmove(want + 4 * m, want + 4 * r, 4 * sizeof *want);
            ++m;
        }
    memset(got, 0, rows * 4 * sizeof *got);
    CHECK(df_philox4x32(ctr, key, got, (int64_t)m, 10) == DF_OK, "philox batch rc");
    CHECK(memcmp(got, want, m * 4 * sizeof *got) == 0, "philox batch of %zu rows", m);
    *rows_out = (int)rows;
    free(ctr); free(key); free(want); free(got); free(rounds);
    free_tokens(&t);
}

/* ---- stream vectors ---- */

typedef struct {
    const char *name;
    uint64_t seed;
    df_block_t block0;
    int64_t n, nb;
    double p;
    uint64_t thresh;
    float scale32;
    double scale64;
    uint32_t scale32_bits;
    uint64_t scale64_bits;
    uint8_t *bits;
    uint32_t *y32;
    uint64_t *y64;
} case_t;

static void parse_case(tokens_t *t, case_t *c)
{
    expect(t, "case");
    c->name = next(t);
    expect(t, "seed");
    c->seed = parse_u64(t, 16);
    expect(t, "block0");
    c->block0.hi = (uint32_t)parse_u64(t, 16);
    c->block0.lo = parse_u64(t, 16);
    expect(t, "n");
    c->n = (int64_t)parse_u64(t, 10);
    expect(t, "p");
    const char *ps = next(t);
    char *end;
    c->p = strtod(ps, &end);
    if (*end != '\0')
        die(ps, t->path);
    expect(t, "thresh");
    c->thresh = parse_u64(t, 16);
    expect(t, "scale32");
    c->scale32_bits = (uint32_t)parse_u64(t, 16);
    expect(t, "scale64");
    c->scale64_bits = parse_u64(t, 16);
    memcpy(&c->scale32, &c->scale32_bits, 4);
    memcpy(&c->scale64, &c->scale64_bits, 8);
    c->nb = (c->n + 7) / 8;
    expect(t, "bits");
    if ((int64_t)parse_u64(t, 10) != c->nb)
        die("bits count", t->path);
    c->bits = malloc((size_t)c->nb + 1);
    for (int64_t i = 0; i < c->nb; ++i)
        c->bits[i] = (uint8_t)parse_u64(t, 16);
    expect(t, "y32");
    if ((int64_t)parse_u64(t, 10) != c->n)
        die("y32 count", t->path);
    c->y32 = malloc((size_t)c->n * 4 + 4);
    for (int64_t i = 0; i < c->n; ++i)
        c->y32[i] = (uint32_t)parse_u64(t, 16);
    expect(t, "y64");
    if ((int64_t)parse_u64(t, 10) != c->n)
        die("y64 count", t->path);
    c->y64 = malloc((size_t)c->n * 8 + 8);
    for (int64_t i = 0; i < c->n; ++i)
        c->y64[i] = parse_u64(t, 16);
}

/* The input of every case: ((i * 40503) mod 2**24) / 256 - 32768, exact in both types. */
static float x32_at(int64_t i) { return (float)((i * 40503) % (1 << 24)) / 256.0f - 32768.0f; }
static double x64_at(int64_t i) { return (double)((i * 40503) % (1 << 24)) / 256.0 - 32768.0; }

static df_key_t key_of(uint64_t seed)
{
    df_key_t k = {(uint32_t)(seed & 0xFFFFFFFFu), (uint32_t)(seed >> 32)};
    return k;
}

static u128 blk_u128(df_block_t b) { return (u128)b.hi << 64 | b.lo; }

static df_block_t blk_of(u128 v)
{
    df_block_t b = {(uint64_t)v, (uint32_t)(v >> 64)};
    return b;
}

/* Bytes [0, nb) of a packed mask of n elements equal, ignoring bits past n in the
 * last byte of `got` (a longer call's mask continues there). */
static int bits_equal(const uint8_t *got, const uint8_t *want, int64_t n)
{
    if (memcmp(got, want, (size_t)(n / 8)) != 0)
        return 0;
    if (n % 8 == 0)
        return 1;
    uint8_t m = (uint8_t)((1u << (n % 8)) - 1);
    return (got[n / 8] & m) == want[n / 8];
}

typedef struct {
    float *x, *y;
    double *xd, *yd;
    uint8_t *b;
} bufs_t;

/* The stored range [0, n) of case c under one (isa, threads) option. */
static void check_case(const case_t *c, const df_opts_t *o, const bufs_t *w)
{
    const int64_t n = c->n, nb = c->nb;
    const df_key_t key = key_of(c->seed);
    const char *isa = df_isa_name((df_isa_t)o->isa);
    const int nt = o->nthreads;
#define CTX c->name, isa, nt

    memset(w->b, 0xA5, (size_t)nb + 1);
    CHECK(df_dropout_mask(w->b, n, key, c->block0, c->thresh, o) == DF_OK, "%s %s/%d mask rc", CTX);
    CHECK(memcmp(w->b, c->bits, (size_t)nb) == 0, "%s %s/%d mask", CTX);
    CHECK(w->b[nb] == 0xA5, "%s %s/%d mask wrote past its last byte", CTX);

    memset(w->b, 0x5A, (size_t)nb + 1);
    memset(w->y, 0xFF, (size_t)n * 4 + 4);
    CHECK(df_dropout_fwd_f32(w->x, w->y, w->b, n, key, c->block0, c->thresh, c->scale32, o) ==
              DF_OK, "%s %s/%d fwd_f32 rc", CTX);
    CHECK(memcmp(w->y, c->y32, (size_t)n * 4) == 0, "%s %s/%d fwd_f32 values", CTX);
    CHECK(memcmp(w->b, c->bits, (size_t)nb) == 0, "%s %s/%d fwd_f32 bits", CTX);
    memcpy(w->y, w->x, (size_t)n * 4);
    df_dropout_fwd_f32(w->y, w->y, NULL, n, key, c->block0, c->thresh, c->scale32, o);
    CHECK(memcmp(w->y, c->y32, (size_t)n * 4) == 0, "%s %s/%d fwd_f32 in place", CTX);
    memset(w->y, 0xFF, (size_t)n * 4);
    CHECK(df_dropout_bwd_bits_f32(w->x, w->y, c->bits, n, c->scale32, o) == DF_OK,
          "%s %s/%d bwd_f32 rc", CTX);
    CHECK(memcmp(w->y, c->y32, (size_t)n * 4) == 0, "%s %s/%d bwd_bits_f32", CTX);

    memset(w->b, 0x5A, (size_t)nb + 1);
    memset(w->yd, 0xFF, (size_t)n * 8 + 8);
    CHECK(df_dropout_fwd_f64(w->xd, w->yd, w->b, n, key, c->block0, c->thresh, c->scale64, o) ==
              DF_OK, "%s %s/%d fwd_f64 rc", CTX);
    CHECK(memcmp(w->yd, c->y64, (size_t)n * 8) == 0, "%s %s/%d fwd_f64 values", CTX);
    CHECK(memcmp(w->b, c->bits, (size_t)nb) == 0, "%s %s/%d fwd_f64 bits", CTX);
    memcpy(w->yd, w->xd, (size_t)n * 8);
    df_dropout_fwd_f64(w->yd, w->yd, NULL, n, key, c->block0, c->thresh, c->scale64, o);
    CHECK(memcmp(w->yd, c->y64, (size_t)n * 8) == 0, "%s %s/%d fwd_f64 in place", CTX);
    memset(w->yd, 0xFF, (size_t)n * 8);
    df_dropout_bwd_bits_f64(w->xd, w->yd, c->bits, n, c->scale64, o);
    CHECK(memcmp(w->yd, c->y64, (size_t)n * 8) == 0, "%s %s/%d bwd_bits_f64", CTX);

    /* Two calls, split at a multiple of 8: the second starts k / 8 blocks later. */
    const int64_t k = n / 2 / 8 * 8;
    const df_block_t b1 = blk_of(blk_u128(c->block0) + (u128)(k / 8));
    memset(w->b, 0x5A, (size_t)nb + 1);
    df_dropout_fwd_f32(w->x, w->y, w->b, k, key, c->block0, c->thresh, c->scale32, o);
    df_dropout_fwd_f32(w->x + k, w->y + k, w->b + k / 8, n - k, key, b1, c->thresh, c->scale32, o);
    CHECK(memcmp(w->y, c->y32, (size_t)n * 4) == 0 && memcmp(w->b, c->bits, (size_t)nb) == 0,
          "%s %s/%d fwd_f32 split at %lld", CTX, (long long)k);
    df_dropout_fwd_f64(w->xd, w->yd, NULL, k, key, c->block0, c->thresh, c->scale64, o);
    df_dropout_fwd_f64(w->xd + k, w->yd + k, NULL, n - k, key, b1, c->thresh, c->scale64, o);
    CHECK(memcmp(w->yd, c->y64, (size_t)n * 8) == 0, "%s %s/%d fwd_f64 split at %lld", CTX,
          (long long)k);
#undef CTX
}

/* Case c as the middle of one longer call: up to PAD blocks before (not below block
 * 0) and after (not past 2**96). The x of the long call is the case's input over
 * the stored range. */
static void check_long(const case_t *c, const df_opts_t *o, const bufs_t *w)
{
    const u128 b0 = blk_u128(c->block0), top = (u128)1 << 96;
    const u128 end = b0 + (u128)c->nb;
    const int64_t pre = b0 >= PAD ? PAD : (int64_t)b0;
    const int64_t post = top - end >= PAD ? PAD : (int64_t)(top - end);
    const int64_t off = 8 * pre, len = off + 8 * c->nb + 8 * post;
    const df_key_t key = key_of(c->seed);
    const df_block_t start = blk_of(b0 - (u128)pre);
    const char *isa = df_isa_name((df_isa_t)o->isa);

    for (int64_t i = 0; i < len; ++i) {
        w->x[i] = i >= off && i < off + c->n ? x32_at(i - off) : 1.0f;
        w->xd[i] = i >= off && i < off + c->n ? x64_at(i - off) : 1.0;
    }
    CHECK(df_dropout_mask(w->b, len, key, start, c->thresh, o) == DF_OK, "long mask rc");
    CHECK(bits_equal(w->b + pre, c->bits, c->n), "%s %s/%d long mask (%lld elements)", c->name,
          isa, o->nthreads, (long long)len);
    df_dropout_fwd_f32(w->x, w->y, NULL, len, key, start, c->thresh, c->scale32, o);
    CHECK(memcmp(w->y + off, c->y32, (size_t)c->n * 4) == 0, "%s %s/%d long fwd_f32", c->name,
          isa, o->nthreads);
    df_dropout_fwd_f64(w->xd, w->yd, NULL, len, key, start, c->thresh, c->scale64, o);
    CHECK(memcmp(w->yd + off, c->y64, (size_t)c->n * 8) == 0, "%s %s/%d long fwd_f64", c->name,
          isa, o->nthreads);
}

static void test_streams(const char *dir, int *ncases, int *nlong)
{
    tokens_t t;
    load_tokens(&t, dir, "stream_vectors.txt");
    int64_t cap = 0;
    size_t ncap = 16, count = 0;
    case_t *cases = malloc(ncap * sizeof *cases);
    while (t.pos < t.n) {
        if (count == ncap)
            cases = realloc(cases, (ncap *= 2) * sizeof *cases);
        parse_case(&t, &cases[count]);
        if (cases[count].n > cap)
            cap = cases[count].n;
        ++count;
    }
    if (count == 0)
        die("no cases", t.path);
    cap += 16 * PAD + 8;
    bufs_t w = {malloc((size_t)cap * 4), malloc((size_t)cap * 4 + 4), malloc((size_t)cap * 8),
                malloc((size_t)cap * 8 + 8), malloc((size_t)cap / 8 + 2)};
    *nlong = 0;
    for (size_t ci = 0; ci < count; ++ci) {
        const case_t *c = &cases[ci];
        CHECK(df_threshold(c->p) == c->thresh, "%s threshold of p = %.17g", c->name, c->p);
        if (c->p < 1.0) {
            /* scale = 1 / (1 - p) in double, rounded once to the dtype (the contract). */
            const double s = 1.0 / (1.0 - c->p);
            const float s32 = (float)s;
            CHECK(memcmp(&s32, &c->scale32_bits, 4) == 0 && memcmp(&s, &c->scale64_bits, 8) == 0,
                  "%s scale of p = %.17g", c->name, c->p);
        }
        for (int64_t i = 0; i < c->n; ++i) {
            w.x[i] = x32_at(i);
            w.xd[i] = x64_at(i);
        }
        for (int isa = DF_ISA_SCALAR; isa <= DF_ISA_NEON; ++isa) {
            if (!df_isa_available((df_isa_t)isa))
                continue;
            for (int nt = 1; nt <= 3; ++nt) {
                const df_opts_t o = {nt, isa};
                check_case(c, &o, &w);
            }
        }
    }
    /* Long calls after the short ones: they overwrite the inputs of w. */
    for (size_t ci = 0; ci < count; ++ci) {
        const case_t *c = &cases[ci];
        if (c->n < 16)
            continue;
        ++*nlong;
        for (int isa = DF_ISA_SCALAR; isa <= DF_ISA_NEON; ++isa) {
            if (!df_isa_available((df_isa_t)isa))
                continue;
            for (int nt = 1; nt <= 3; ++nt) {
                const df_opts_t o = {nt, isa};
                check_long(c, &o, &w);
            }
        }
    }
    for (size_t ci = 0; ci < count; ++ci) {
        free(cases[ci].bits);
        free(cases[ci].y32);
        free(cases[ci].y64);
    }
    free(cases);
    free(w.x); free(w.y); free(w.xd); free(w.yd); free(w.b);
    free_tokens(&t);
    *ncases = (int)count;
}

/* ---- concurrent calls ---- */

#define NTHREADS 4
#define ITERS 3
/* (N, C, HW): a channel mask of N * C bits over the structured-dropout pass. */
#define DN 4
#define DC 8
#define DHW 1537
#define NELEM ((int64_t)DN * DC * DHW)
#define NBYTES ((NELEM + 7) / 8)

/* The outputs of one run of the sequence of calls. */
typedef struct {
    float y32[NELEM], bwd32[NELEM], bc32[NELEM], g32[NELEM];
    double y64[NELEM];
    uint8_t bits[NBYTES], mask[NBYTES], chan[(DN * DC + 7) / 8];
    uint32_t philox[4 * 64];
    int rc;
} result_t;

typedef struct {
    int id;
    const float *x;
    const double *xd;
    result_t *first, *again; /* the first iteration, and the later ones */
    int mismatches;
} job_t;

static pthread_barrier_t start;

/* Thread 0 passes NULL options (the default ISA, OpenMP's default thread count),
 * odd threads ask for 2 OpenMP threads (a parallel region inside a POSIX thread),
 * thread 3 for the scalar body. */
static df_opts_t opts_of(int id)
{
    df_opts_t o = {1 + id % 2, id == 3 ? DF_ISA_SCALAR : DF_ISA_AUTO};
    return o;
}

/* Every call of one thread; inputs shared read-only, outputs in r. */
static void run_calls(int id, const float *x, const double *xd, result_t *r)
{
    const df_opts_t o = opts_of(id);
    const df_opts_t *op = id == 0 ? NULL : &o;
    const df_key_t key = {0x9E3779B9u * (uint32_t)(id + 1), 0x85EBCA6Bu + (uint32_t)id};
    const df_block_t b0 = {0xFFFFFFFFu - 1000u * (uint64_t)id, 0}; /* across a 32-bit carry */
    const uint64_t thresh = df_threshold(0.1 + 0.2 * id);
    const float s32 = (float)(1.0 / (0.9 - 0.2 * id));
    const double s64 = 1.0 / (0.9 - 0.2 * id);
    const int64_t shape[3] = {DN, DC, DHW}, noise[3] = {DN, DC, 1};
    uint32_t ctr[4 * 64], pkey[2 * 64];
    int rc = 0;
    for (int j = 0; j < 64; ++j) {
        ctr[4 * j] = (uint32_t)j;
        ctr[4 * j + 1] = ctr[4 * j + 2] = 0;
        ctr[4 * j + 3] = (uint32_t)id;
        pkey[2 * j] = key.k0;
        pkey[2 * j + 1] = key.k1;
    }
    rc |= df_dropout_fwd_f32(x, r->y32, r->bits, NELEM, key, b0, thresh, s32, op);
    rc |= df_dropout_fwd_f64(xd, r->y64, NULL, NELEM, key, b0, thresh, s64, op);
    rc |= df_dropout_mask(r->mask, NELEM, key, b0, thresh, op);
    rc |= df_dropout_bwd_bits_f32(x, r->bwd32, r->bits, NELEM, s32, op);
    rc |= df_dropout_mask(r->chan, DN * DC, key, b0, thresh, op);
    rc |= df_bcast_apply_f32(x, r->bc32, r->chan, 3, shape, noise, s32, 0.0f, 0.0f, op);
    rc |= df_gaussian_fwd_f32(x, r->g32, NELEM, key, b0, 0.5, op);
    rc |= df_philox4x32(ctr, pkey, r->philox, 64, 10);
    r->rc = rc;
}

static void *worker(void *arg)
{
    job_t *j = arg;
    pthread_barrier_wait(&start);
    run_calls(j->id, j->x, j->xd, j->first);
    for (int it = 1; it < ITERS; ++it) {
        run_calls(j->id, j->x, j->xd, j->again);
        j->mismatches += memcmp(j->first, j->again, sizeof *j->first) != 0;
    }
    return NULL;
}

static void test_threads(void)
{
    float *x = malloc(NELEM * sizeof *x);
    double *xd = malloc(NELEM * sizeof *xd);
    for (int64_t i = 0; i < NELEM; ++i) {
        x[i] = (float)(i % 1009) * 0.25f - 126.0f;
        xd[i] = (double)(i % 1013) * 0.25 - 126.0;
    }
    /* calloc: padding bytes of result_t compare equal too. */
    result_t *first = calloc(NTHREADS, sizeof *first), *again = calloc(NTHREADS, sizeof *again);
    result_t *serial = calloc(1, sizeof *serial);
    job_t jobs[NTHREADS];
    pthread_t tid[NTHREADS];
    pthread_barrier_init(&start, NULL, NTHREADS);
    for (int t = 0; t < NTHREADS; ++t) {
        jobs[t] = (job_t){t, x, xd, &first[t], &again[t], 0};
        CHECK(pthread_create(&tid[t], NULL, worker, &jobs[t]) == 0, "pthread_create %d", t);
    }
    for (int t = 0; t < NTHREADS; ++t)
        pthread_join(tid[t], NULL);
    pthread_barrier_destroy(&start);

    for (int t = 0; t < NTHREADS; ++t) {
        memset(serial, 0, sizeof *serial);
        run_calls(t, x, xd, serial);
        CHECK(serial->rc == DF_OK && first[t].rc == DF_OK, "thread %d status", t);
        CHECK(jobs[t].mismatches == 0, "thread %d: %d iterations differ from its first", t,
              jobs[t].mismatches);
        CHECK(memcmp(first[t].y32, serial->y32, sizeof serial->y32) == 0, "thread %d fwd_f32", t);
        CHECK(memcmp(first[t].bits, serial->bits, sizeof serial->bits) == 0, "thread %d bits", t);
        CHECK(memcmp(first[t].y64, serial->y64, sizeof serial->y64) == 0, "thread %d fwd_f64", t);
        CHECK(memcmp(first[t].mask, serial->mask, sizeof serial->mask) == 0, "thread %d mask", t);
        CHECK(memcmp(first[t].bwd32, serial->bwd32, sizeof serial->bwd32) == 0,
              "thread %d bwd_bits_f32", t);
        CHECK(memcmp(first[t].bc32, serial->bc32, sizeof serial->bc32) == 0,
              "thread %d bcast_apply_f32", t);
        CHECK(memcmp(first[t].g32, serial->g32, sizeof serial->g32) == 0,
              "thread %d gaussian_fwd_f32", t);
        CHECK(memcmp(first[t].philox, serial->philox, sizeof serial->philox) == 0,
              "thread %d philox4x32", t);
        CHECK(memcmp(first[t].mask, first[t].bits, sizeof serial->bits) == 0,
              "thread %d mask equals forward bits", t);
    }
    printf("test_vectors: %d POSIX threads x %d iterations equal serial calls\n", NTHREADS,
           ITERS);
    free(x); free(xd); free(first); free(again); free(serial);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : getenv("DF_TEST_DATA_DIR");
    if (dir == NULL || *dir == '\0')
        dir = "tests/data";
    int rows = 0, ncases = 0, nlong = 0;
    test_threads(); /* first: its threads make the library's first calls */
    test_philox(dir, &rows);
    test_streams(dir, &ncases, &nlong);
    printf("test_vectors: %d Philox rows, %d stream cases (%d also inside long calls) from %s;"
           " isas", rows, ncases, nlong, dir);
    for (int isa = DF_ISA_SCALAR; isa <= DF_ISA_NEON; ++isa)
        if (df_isa_available((df_isa_t)isa))
            printf(" %s", df_isa_name((df_isa_t)isa));
    printf(", threads 1..3, openmp %d\n", df_has_openmp());
    printf("dropout_fast C tests: %s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
