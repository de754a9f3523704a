/* df_simd_driver.h: the instruction-set-independent driver of the SIMD bodies:
 * it makes keep bits a group (64 elements) at a time and writes outputs in runs
 * aligned to y's cache lines, then defines the five kernels and the table.
 * Included at the end of df_kernels_avx2.c and df_kernels_avx512.c, which
 * define first: DF_TARGET, DF_INLINE, GROUP, BATCH, gen(), emit_full(),
 * emit_part(), the vector types DF_VF / DF_VD with DF_SET1_PS / DF_SET1_PD,
 * DF_SIMD_FN(name) (name_<isa>) and DF_SIMD_ISA. No include guard: each
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

const df_kernels_t DF_SIMD_FN(df_kernels) = {
    DF_SIMD_ISA,        DF_SIMD_FN(mask),    DF_SIMD_FN(fwd_f32),
    DF_SIMD_FN(fwd_f64), DF_SIMD_FN(bwd_f32), DF_SIMD_FN(bwd_f64),
};
