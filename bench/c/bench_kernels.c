/* bench_kernels.c: single-thread speed of the dropout_fast kernels per
 * instruction set, in ns per element (median of repeated runs), with memcpy of
 * the same output bytes as the yardstick. Not a test: numbers depend on the
 * machine and its load.
 *
 * Build and run from the repository root:
 *   gcc -std=c11 -O3 -ffp-contract=off -Isrc_c src_c/[a-z]*.c bench/c/bench_kernels.c \
 *       -o /tmp/bench_kernels -lm && /tmp/bench_kernels [y_offset_bytes]
 * y_offset_bytes (default 0) moves x and y that far past a 64-byte boundary;
 * numpy's large buffers sit 16 bytes past one. Each instruction set is timed
 * in turn within every repetition, so load from other processes on a shared
 * machine falls on all of them alike. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dropout_fast.h"

#define REPS 15

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double d = *(const double *)a - *(const double *)b;
    return (d > 0) - (d < 0);
}

enum { OP_FWD32, OP_FWD32_BITS, OP_BWD32, OP_FWD64, OP_MASK, OP_COPY32, OP_COPY64, NOPS };
static const char *op_names[NOPS] = {"fwd_f32",  "fwd_f32+bits", "bwd_bits_f32", "fwd_f64",
                                     "mask",     "memcpy 4n B",  "memcpy 8n B"};

typedef struct {
    float *x, *y;
    double *xd, *yd;
    uint8_t *bits;
} bufs_t;

static void run_op(int op, const bufs_t *b, int64_t n, const df_opts_t *o)
{
    const df_key_t key = {0x12345678u, 0x9abcdef0u};
    const df_block_t b0 = {1000, 0};
    const uint64_t t = df_threshold(0.1);
    switch (op) {
    case OP_FWD32:
        df_dropout_fwd_f32(b->x, b->y, NULL, n, key, b0, t, 1.0f / 0.9f, o);
        break;
    case OP_FWD32_BITS:
        df_dropout_fwd_f32(b->x, b->y, b->bits, n, key, b0, t, 1.0f / 0.9f, o);
        break;
    case OP_BWD32:
        df_dropout_bwd_bits_f32(b->x, b->y, b->bits, n, 1.0f / 0.9f, o);
        break;
    case OP_FWD64:
        df_dropout_fwd_f64(b->xd, b->yd, NULL, n, key, b0, t, 1.0 / 0.9, o);
        break;
    case OP_MASK:
        df_dropout_mask(b->bits, n, key, b0, t, o);
        break;
    case OP_COPY32:
        memcpy(b->y, b->x, (size_t)n * sizeof(float));
        break;
    case OP_COPY64:
        memcpy(b->yd, b->xd, (size_t)n * sizeof(double));
        break;
    }
}

/* One run of op over n elements, repeated so that it lasts at least ~2 ms:
 * ns per element. */
static double sample(int op, const bufs_t *b, int64_t n, const df_opts_t *o, int inner)
{
    const double t0 = now_ns();
    for (int i = 0; i < inner; ++i)
        run_op(op, b, n, o);
    return (now_ns() - t0) / inner / (double)n;
}

/* Medians over REPS samples of op for every instruction set, the sets taken
 * in turn within each repetition so that load from other processes on this
 * shared machine hits them alike. */
static int timed(int op, int isa)
{
    return df_isa_available((df_isa_t)isa) &&
           (isa == DF_ISA_SCALAR || (op != OP_COPY32 && op != OP_COPY64));
}

static void time_op(int op, const bufs_t *b, int64_t n, double out[3])
{
    double r[3][REPS];
    int inner[3];
    for (int isa = 0; isa < 3; ++isa) {
        const df_opts_t o = {1, isa};
        if (!timed(op, isa))
            continue;
        const double one = sample(op, b, n, &o, 1) * (double)n;
        inner[isa] = one > 2e6 ? 1 : (int)(2e6 / (one + 1.0)) + 1;
    }
    for (int k = 0; k < REPS; ++k)
        for (int isa = 0; isa < 3; ++isa) {
            const df_opts_t o = {1, isa};
            if (timed(op, isa))
                r[isa][k] = sample(op, b, n, &o, inner[isa]);
        }
    for (int isa = 0; isa < 3; ++isa) {
        if (timed(op, isa)) {
            qsort(r[isa], REPS, sizeof r[isa][0], cmp_double);
            out[isa] = r[isa][REPS / 2];
        }
    }
}

int main(int argc, char **argv)
{
    const size_t off = argc > 1 ? (size_t)atoi(argv[1]) : 0;
    const int64_t sizes[] = {(int64_t)1 << 16, (int64_t)1 << 20, (int64_t)1 << 24};
    const int64_t nmax = sizes[2];
    const size_t pad = 128;
    char *mem[4];
    for (int k = 0; k < 4; ++k) {
        mem[k] = aligned_alloc(64, (size_t)nmax * 8 + pad);
        memset(mem[k], 0, (size_t)nmax * 8 + pad);
    }
    bufs_t b = {(float *)(mem[0] + off), (float *)(mem[1] + off), (double *)(mem[2] + off),
                (double *)(mem[3] + off), malloc((size_t)nmax / 8)};
    for (int64_t i = 0; i < nmax; ++i) {
        b.x[i] = (float)(i % 1000) - 500.0f;
        b.xd[i] = (double)(i % 1000) - 500.0;
    }
    printf("single thread, ns/element (median of %d), x/y offset %zu bytes from 64-byte alignment\n",
           REPS, off);
    printf("%-14s %-7s %10s %10s %10s\n", "op", "isa", "n=2**16", "n=2**20", "n=2**24");
    double t[NOPS][3][3];
    for (int s = 0; s < 3; ++s)
        for (int op = 0; op < NOPS; ++op) {
            /* bwd reads the bits the forward pass left. */
            if (op == OP_BWD32)
                run_op(OP_FWD32_BITS, &b, sizes[s], NULL);
            time_op(op, &b, sizes[s], t[op][s]);
        }
    for (int op = 0; op < NOPS; ++op)
        for (int isa = DF_ISA_SCALAR; isa <= DF_ISA_AVX512; ++isa) {
            if (!timed(op, isa))
                continue;
            const int is_copy = op == OP_COPY32 || op == OP_COPY64;
            printf("%-14s %-7s", op_names[op], is_copy ? "-" : df_isa_name((df_isa_t)isa));
            for (int s = 0; s < 3; ++s)
                printf(" %10.3f", t[op][s][isa]);
            printf("\n");
        }
    for (int k = 0; k < 4; ++k)
        free(mem[k]);
    free(b.bits);
    return 0;
}
