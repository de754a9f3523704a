/* df_simd_driver.h: the instruction-set-independent driver of the SIMD bodies:
 * it makes keep bits a group (64 elements) at a time and writes outputs in runs
 * aligned to y's cache lines, then defines the seven kernels and the table.
 * Included at the end of df_kernels_avx2.c and df_kernels_avx512.c, which
 * define first: DF_TARGET, DF_INLINE, GROUP, BATCH, gen(), emit_full(),
 * emit_part(), the vector types DF_VF / DF_VD with DF_SET1_PS / DF_SET1_PD,
 * DF_SIMD_FN(name) (name_<isa>) and DF_SIMD_ISA; for the broadcast kernels
 * df_coef_t, emit_bc_full(), emit_bc_part() and emit_fill(). No include guard: each
 * translation unit includes it once, with its own definitions. */

/* The ceil(cnt / 8) mask bytes of a group (all 8 when cnt >= 64), and no byte
 * past them: x86 is little-endian, so they are m's first bytes. */
static inline void store_bits(uint8_t *p, uint64_t m, int64_t cnt)
{
    memcpy(p, &m, cnt >= GROUP ? 8 : (size_t)(cnt + 7) >> 3);
}

static inline uint64_t load_bits(const uint8_t *p, int64_t cnt)
{
    uint64_t m = 0;
    memcpy(&m, p, cnt >= GROUP ? 8 : (size_t)(cnt + 7) >> 3);
    return m;
}

/* Bits of the first cnt elements of a group (all 64 when cnt >= 64). */
static inline uint64_t first_bits(int64_t cnt)
{
    return cnt >= GROUP ? ~(uint64_t)0 : ((uint64_t)1 << cnt) - 1u;
}

/* Where the keep bits come from: drawn (forward, mask), read back from a
 * stored mask (backward), or all set (thresh == 2**32: nothing to draw). */
enum { SRC_DRAW, SRC_LOAD, SRC_ALL };

/* The keep bits of ng groups from element i, cnt = elements left (ng == 1
 * when cnt < 64); bits at and after n are 0. */
DF_INLINE void get_bits(int src, const df_ctx_t *c, const uint8_t *in, int64_t i, int ng,
                        int64_t cnt, uint64_t *m)
{
    const uint64_t valid = first_bits(cnt);
    if (src == SRC_DRAW)
        gen(c, (uint64_t)i >> 3, ng, valid, m);
    else
        for (int g = 0; g < ng; ++g)
            m[g] = src == SRC_LOAD ? load_bits(in + (i >> 3) + 8 * g, cnt - GROUP * g)
                                   : ~(uint64_t)0;
    m[0] &= valid;
}

/* Bits [64 - sh, 128 - sh) of the 128-bit (m : prev), sh in [0, 63]. */
static inline uint64_t window(uint64_t m, uint64_t prev, int sh)
{
    return (m << sh) | ((prev >> 1) >> (63 - sh));
}

/* Every kernel's body. Keep bits are made a group (64 elements) at a time;
 * the outputs are written in 64-element runs shifted back by sh elements so
 * that each run starts on a 64-byte line of y whatever y's alignment (numpy's
 * large buffers sit 16 bytes past one): whole-line stores, and non-temporal
 * ones when `stream`. The first group's run, the last group's and the sh
 * elements after it go through emit_part. */
DF_INLINE void run(int kind, int src, const void *x, void *y, uint8_t *out, const uint8_t *in,
                   int64_t n, const df_ctx_t *c, float sf, double sd, int stream)
{
    const DF_VF vf = DF_SET1_PS(sf);
    const DF_VD vd = DF_SET1_PD(sd);
    const uintptr_t esize = kind == K_F64 ? 8 : 4, line = 64 / esize;
    int sh = 0, nt = 0;
    if (kind != K_MASK && (uintptr_t)y % esize == 0) {
        sh = (int)((line - ((64 - ((uintptr_t)y & 63)) & 63) / esize) % line);
        nt = stream != 0;
    }
    if (n <= 0)
        return;
    uint64_t m[BATCH];
    int64_t cnt = n < GROUP ? n : GROUP;
    get_bits(src, c, in, 0, 1, cnt, m);
    if (out)
        store_bits(out, m[0], cnt);
    emit_part(kind, x, y, -sh, window(m[0], 0, sh), n, vf, vd);
    uint64_t prev = m[0];
    int64_t i = GROUP;
    for (; i + BATCH * GROUP <= n; i += BATCH * GROUP) {
        get_bits(src, c, in, i, BATCH, BATCH * GROUP, m);
        for (int g = 0; g < BATCH; ++g) {
            if (out)
                store_bits(out + (i >> 3) + 8 * g, m[g], GROUP);
            emit_full(kind, x, y, i + GROUP * g - sh, window(m[g], prev, sh), vf, vd, nt);
            prev = m[g];
        }
    }
    for (; i + GROUP <= n; i += GROUP) {
        get_bits(src, c, in, i, 1, GROUP, m);
        if (out)
            store_bits(out + (i >> 3), m[0], GROUP);
        emit_full(kind, x, y, i - sh, window(m[0], prev, sh), vf, vd, nt);
        prev = m[0];
    }
    if (i < n) {
        cnt = n - i;
        get_bits(src, c, in, i, 1, cnt, m);
        if (out)
            store_bits(out + (i >> 3), m[0], cnt);
        emit_part(kind, x, y, i - sh, window(m[0], prev, sh), n, vf, vd);
        prev = m[0];
        i += GROUP;
    }
    if (sh)
        emit_part(kind, x, y, i - sh, prev >> (64 - sh), n, vf, vd);
    if (nt)
        _mm_sfence(); /* order the non-temporal stores before the caller's next ones */
}

/* The forward kernels: keep everything at thresh == 2**32 (A < 2**16 always),
 * else draw. */
DF_INLINE void fwd(int kind, const void *x, void *y, uint8_t *bits, int64_t n, df_key_t key,
                   df_block_t block0, uint64_t thresh, float sf, double sd, int stream)
{
    df_ctx_t c;
    ctx_init(&c, key, block0, thresh);
    if (thresh >> 32)
        run(kind, SRC_ALL, x, y, bits, NULL, n, &c, sf, sd, stream);
    else
        run(kind, SRC_DRAW, x, y, bits, NULL, n, &c, sf, sd, stream);
}

DF_TARGET static void DF_SIMD_FN(mask)(uint8_t *bits, int64_t n, df_key_t key, df_block_t block0,
                                  uint64_t thresh)
{
    fwd(K_MASK, NULL, NULL, bits, n, key, block0, thresh, 0.0f, 0.0, 0);
}

DF_TARGET static void DF_SIMD_FN(fwd_f32)(const float *x, float *y, uint8_t *bits, int64_t n,
                                     df_key_t key, df_block_t block0, uint64_t thresh,
                                     float scale, int stream)
{
    fwd(K_F32, x, y, bits, n, key, block0, thresh, scale, 0.0, stream);
}

DF_TARGET static void DF_SIMD_FN(fwd_f64)(const double *x, double *y, uint8_t *bits, int64_t n,
                                     df_key_t key, df_block_t block0, uint64_t thresh,
                                     double scale, int stream)
{
    fwd(K_F64, x, y, bits, n, key, block0, thresh, 0.0f, scale, stream);
}

/* The backward kernels read the stored mask: pure bandwidth. */
DF_TARGET static void DF_SIMD_FN(bwd_f32)(const float *dy, float *dx, const uint8_t *bits, int64_t n,
                                     float scale, int stream)
{
    run(K_F32, SRC_LOAD, dy, dx, NULL, bits, n, NULL, scale, 0.0, stream);
}

DF_TARGET static void DF_SIMD_FN(bwd_f64)(const double *dy, double *dx, const uint8_t *bits,
                                     int64_t n, double scale, int stream)
{
    run(K_F64, SRC_LOAD, dy, dx, NULL, bits, n, NULL, 0.0f, scale, stream);
}

/* ---- The broadcast kernels (df_kernels_bcast.c) ----
 * One call per thread covers its contiguous range of rows, written in
 * 64-element windows that start on y's cache lines whatever the row
 * boundaries (whole-line, non-temporal stores when streaming; only the
 * range's first and last windows are partial), with one fence at the end.
 * Rows that share their mask position form segments (see cursor_t): windows
 * inside a segment take a constant mask (shared rows) or one read of the
 * segment's repeated bit pattern (varying rows), and only windows across
 * segments assemble their bits piece by piece. */

/* Dropped runs at least this long (bytes of output) are filled with c without
 * reading x; shorter ones still read x through a masked multiply. Measured on
 * a Zen 4 (one thread, 32 MiB arrays, p = 0.5, shared rows): with rows of
 * 4 KiB, reading through is ~20% faster than skipping the dropped rows (the
 * hardware prefetchers keep their streams), with 16 KiB rows skipping is ~5%
 * faster, with 32 KiB ~15%, with 256 KiB (DropPath) ~35%. */
#ifndef DF_FILL_MIN_BYTES
#define DF_FILL_MIN_BYTES (32 << 10)
#endif

/* The mask as the bit extraction reads it: 9 bytes from any byte, the last
 * 16 of the mask and zeros after them from a copy (tail[i] = byte tbase + i). */
typedef struct {
    const uint8_t *bits;
    int64_t nbytes, tbase;
    uint8_t tail[32];
} maskrd_t;

static inline void maskrd_init(maskrd_t *r, const df_rows_t *v)
{
    r->bits = v->bits;
    r->nbytes = (v->nbits + 7) >> 3;
    r->tbase = r->nbytes - 16;
    for (int i = 0; i < 32; ++i)
        r->tail[i] = r->tbase + i >= 0 && r->tbase + i < r->nbytes ? v->bits[r->tbase + i] : 0;
}

/* Mask bits [off, off + cnt) (cnt in [1, 64]) from bit 0 up. */
static inline uint64_t mask_bits(const maskrd_t *r, int64_t off, int64_t cnt)
{
    const int64_t byte = off >> 3;
    const int sh = (int)(off & 7);
    const uint8_t *p = byte + 9 <= r->nbytes ? r->bits + byte : r->tail + (byte - r->tbase);
    uint64_t lo;
    memcpy(&lo, p, 8);
    const uint64_t hi = p[8];
    return ((lo >> sh) | ((hi << 1) << (63 - sh))) & first_bits(cnt);
}

/* Where a thread is in its rows: the segment [rs, re) of its range (element
 * offsets from the range's start), and pos the row after it. A segment of
 * varying rows is a maximal run of rows with the same mask position m (each
 * repeats bits m .. m + len - 1); one of shared rows a maximal run with the
 * same decision `keep` (m is its first row's bit): a dropped channel next to
 * a dropped channel is one run. */
typedef struct {
    const df_rows_t *v;
    df_rowpos_t pos;
    int64_t rs, re, n, m;
    int keep;
    maskrd_t rd;
} cursor_t;

static inline void seg_next(cursor_t *c)
{
    const df_rows_t *v = c->v;
    c->rs = c->re;
    c->m = c->pos.m;
    c->re += v->len;
    df_rowpos_next(&c->pos, v);
    if (v->varying) {
        for (; c->re < c->n && c->pos.m == c->m; c->re += v->len)
            df_rowpos_next(&c->pos, v);
    } else {
        c->keep = df_bit(v->bits, c->m);
        for (; c->re < c->n && df_bit(v->bits, c->pos.m) == c->keep; c->re += v->len)
            df_rowpos_next(&c->pos, v);
    }
}

/* The keep bits of the window [p, p + 64): bit e for element p + e, 0
 * outside [0, n); windows are asked for in increasing order. The general
 * case (windows across segments, and the first and last of a range): plain
 * scalar code, out of line, so that the SIMD loops keep their registers. */
static __attribute__((noinline)) uint64_t window_bits(cursor_t *c, int64_t p)
{
    const int64_t end = p + GROUP < c->n ? p + GROUP : c->n, len = c->v->len;
    uint64_t word = 0;
    for (int64_t q = p < 0 ? 0 : p; q < end;) {
        while (q >= c->re)
            seg_next(c);
        const int64_t e = c->re < end ? c->re : end;
        if (!c->v->varying) {
            word |= (c->keep ? first_bits(e - q) : 0) << (q - p);
            q = e;
            continue;
        }
        const int64_t ph = (q - c->rs) % len, k = e - q < len - ph ? e - q : len - ph;
        word |= mask_bits(&c->rd, c->m + ph, k) << (q - p);
        q += k;
    }
    return word;
}

/* The bits of a varying segment repeated: pat bit i = mask bit m + i % len for
 * i in [0, len + 64), so that any 64 consecutive bits of the segment, from
 * phase ph in [0, len), are one unaligned read at ph. For len <= DF_PAT_BITS
 * (a 1 KiB stack buffer); longer rows read the mask itself. In a merged view
 * the axis outside a varying row is broadcast, so every segment has at least
 * two rows: channels-last maps (N, H, W, C) repeat C bits H * W times,
 * variational (N, T, F) repeat F bits T times. */
#define DF_PAT_BITS 8192
#define DF_PAT_WORDS (DF_PAT_BITS / 64 + 2)

static __attribute__((noinline)) void make_pattern(uint64_t *pat, const maskrd_t *rd, int64_t m,
                                                   int64_t len)
{
    memset(pat, 0, DF_PAT_WORDS * sizeof *pat);
    for (int64_t d = 0, ph = 0; d < len + GROUP;) {
        const int64_t room = GROUP - (d & 63), k = room < len - ph ? room : len - ph;
        pat[d >> 6] |= mask_bits(rd, m + ph, k) << (d & 63);
        d += k;
        ph = ph + k == len ? 0 : ph + k;
    }
}

static inline uint64_t pattern_bits(const uint64_t *pat, int64_t ph)
{
    const int sh = (int)(ph & 63);
    return (pat[ph >> 6] >> sh) | ((pat[(ph >> 6) + 1] << 1) << (63 - sh));
}

/* Rows [r0, r1) of v: the body of every bcast kernel. Windows inside a
 * segment are a loop of constant-mask passes (shared rows) or of pattern
 * reads (varying rows); the others take window_bits. */
DF_INLINE void rows(int kind, int aff, const void *x0, void *y0, const df_rows_t *v, int64_t r0,
                    int64_t r1, const df_coef_t *k, int stream)
{
    const uintptr_t esize = kind == K_F64 ? 8 : 4, line = 64 / esize;
    const char *x = (const char *)x0 + (size_t)(r0 * v->len) * esize;
    char *y = (char *)y0 + (size_t)(r0 * v->len) * esize;
    int sh = 0, nt = 0;
    if ((uintptr_t)y % esize == 0) {
        sh = (int)((line - ((64 - ((uintptr_t)y & 63)) & 63) / esize) % line);
        nt = stream != 0;
    }
    cursor_t c;
    c.v = v;
    c.rs = c.re = c.m = 0;
    c.n = (r1 - r0) * v->len;
    c.keep = 0;
    df_rowpos_init(&c.pos, v, r0);
    if (v->varying)
        maskrd_init(&c.rd, v);
    const int64_t n = c.n, len = v->len, fill_min = DF_FILL_MIN_BYTES / (int64_t)esize;
    const int64_t step = GROUP % len; /* a window's phase advance in a varying segment */
    uint64_t pat[DF_PAT_WORDS];
    int64_t pat_m = -1;
    int64_t p = 0;
    if (sh) {
        emit_bc_part(kind, aff, x, y, -sh, window_bits(&c, -sh), n, k);
        p = GROUP - sh;
    }
    while (p + GROUP <= n) {
        while (p >= c.re)
            seg_next(&c);
        if (p + GROUP > c.re) { /* a window across segments */
            emit_bc_full(kind, aff, x, y, p, window_bits(&c, p), k, nt);
            p += GROUP;
            continue;
        }
        const int64_t end = p + (c.re - p) / GROUP * GROUP; /* whole windows of one segment */
        if (v->varying && len <= DF_PAT_BITS) {
            if (pat_m != c.m) {
                make_pattern(pat, &c.rd, c.m, len);
                pat_m = c.m;
            }
            for (int64_t ph = (p - c.rs) % len; p < end; p += GROUP) {
                emit_bc_full(kind, aff, x, y, p, pattern_bits(pat, ph), k, nt);
                ph += step;
                ph -= ph >= len ? len : 0;
            }
        } else if (v->varying) { /* long rows: read the mask, windows across rows aside */
            for (int64_t ph = (p - c.rs) % len; p < end; p += GROUP) {
                emit_bc_full(kind, aff, x, y, p,
                             ph + GROUP <= len ? mask_bits(&c.rd, c.m + ph, GROUP)
                                               : window_bits(&c, p),
                             k, nt);
                ph += step;
                ph -= ph >= len ? len : 0;
            }
        } else if (!c.keep && c.re - c.rs >= fill_min) {
            for (; p < end; p += GROUP)
                emit_fill(kind, y, p, k, nt);
        } else {
            uint64_t s = c.keep ? ~(uint64_t)0 : 0;
            /* Opaque to the compiler: a constant 0 would let it drop the loads
             * of x that keep the prefetchers streaming. */
            __asm__("" : "+r"(s));
            for (; p < end; p += GROUP)
                emit_bc_full(kind, aff, x, y, p, s, k, nt);
        }
    }
    if (p < n)
        emit_bc_part(kind, aff, x, y, p, window_bits(&c, p), n, k);
    if (nt)
        _mm_sfence(); /* order the non-temporal stores before the caller's next ones */
}

DF_TARGET static void DF_SIMD_FN(bcast_f32)(const float *x, float *y, const df_rows_t *v,
                                       int64_t r0, int64_t r1, float a, float b, float c,
                                       int flags)
{
    const df_coef_t k = {DF_SET1_PS(a), DF_SET1_PS(b), DF_SET1_PS(c),
                         DF_SET1_PD(0.0), DF_SET1_PD(0.0), DF_SET1_PD(0.0)};
    if (flags & DF_BC_AFFINE)
        rows(K_F32, 1, x, y, v, r0, r1, &k, flags & DF_BC_STREAM);
    else
        rows(K_F32, 0, x, y, v, r0, r1, &k, flags & DF_BC_STREAM);
}

DF_TARGET static void DF_SIMD_FN(bcast_f64)(const double *x, double *y, const df_rows_t *v,
                                       int64_t r0, int64_t r1, double a, double b, double c,
                                       int flags)
{
    const df_coef_t k = {DF_SET1_PS(0.0f), DF_SET1_PS(0.0f), DF_SET1_PS(0.0f),
                         DF_SET1_PD(a), DF_SET1_PD(b), DF_SET1_PD(c)};
    if (flags & DF_BC_AFFINE)
        rows(K_F64, 1, x, y, v, r0, r1, &k, flags & DF_BC_STREAM);
    else
        rows(K_F64, 0, x, y, v, r0, r1, &k, flags & DF_BC_STREAM);
}

const df_kernels_t DF_SIMD_FN(df_kernels) = {
    DF_SIMD_ISA,          DF_SIMD_FN(mask),     DF_SIMD_FN(fwd_f32),  DF_SIMD_FN(fwd_f64),
    DF_SIMD_FN(bwd_f32),  DF_SIMD_FN(bwd_f64),  DF_SIMD_FN(bcast_f32), DF_SIMD_FN(bcast_f64),
};
