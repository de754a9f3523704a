/* df_gaussian_simd.h: the SIMD body of Gaussian dropout, written once for every
 * vector width. Included by df_kernels_gaussian_avx2.c (4 lanes) and
 * df_kernels_gaussian_avx512.c (8 lanes), which first define the vector types
 * vd (GV_LANES doubles), vi (GV_LANES 64-bit integers), vm (a lane mask), the
 * GV_* operations below, GV_TARGET, and gv_store_f32/gv_store_f64.
 *
 * It computes the transform of df_kernels_gaussian.c (the specification) with
 * the same IEEE operations in the same order, lane by lane, so it gives the
 * same bits; what differs is only how the exact steps are done:
 * - Philox4x32-10 on GV_LANES blocks at once, one block per 64-bit lane with its
 *   counter words in the low 32 bits (vpmuludq reads only those; the high
 *   halves hold garbage that nothing reads). The four streams 2..5 of a block
 *   share its counter, so round 0's multiply, round 1's c2 and round 2's second
 *   multiply are computed once for all four (66 multiplies per lane, not 80).
 * - Lanes are blocks: word k of stream 2 + s and of stream 4 + s are w1 and w2
 *   of element h = 4 s + k of every block, so the transform needs no shuffle
 *   before it; gv_store_* transposes the eight result vectors into element order.
 * - Integer-to-double conversions through the bits of 2**20 + w * 2**-32 (or
 *   2**52 + e), then one exact subtraction.
 * - sin and cos as one Horner chain with per-lane coefficients: a lane that
 *   needs sin(t) starts at SIN_C[0] where one that needs cos(t) has done its
 *   first step, so each lane performs exactly the operations of its own series.
 *
 * -ffp-contract=off (setup.py, CMakeLists.txt) keeps the compiler from fusing
 * the multiplies and adds below; the target attributes do not enable FMA. */

#define GV_GROUP (8 * GV_LANES) /* elements per group: GV_LANES blocks */

/* The per-segment constants: keys per round and the parts of rounds 0..2 that
 * depend only on the counter words b1, b2 (fixed within a segment). */
typedef struct {
    uint32_t rk0[10], rk1[10];
    uint32_t x1, x2, x3;
} gv_ctx_t;

static void gv_ctx_init(gv_ctx_t *c, df_key_t key, df_block_t b)
{
    for (int r = 0; r < 10; ++r) {
        c->rk0[r] = key.k0 + (uint32_t)r * DF_PHILOX_W0;
        c->rk1[r] = key.k1 + (uint32_t)r * DF_PHILOX_W1;
    }
    /* Round 0: p1 = M1 * b2 and the new c0 = hi(p1) ^ b1 ^ k0 are constants;
     * round 1: p0 = M0 * c0 = q is one too. */
    const uint64_t p1 = (uint64_t)DF_PHILOX_M1 * b.hi;
    const uint32_t c0 = (uint32_t)(p1 >> 32) ^ (uint32_t)(b.lo >> 32) ^ c->rk0[0];
    const uint64_t q = (uint64_t)DF_PHILOX_M0 * c0;
    c->x1 = (uint32_t)p1 ^ c->rk0[1];         /* round 1: c0 = hi(p1) ^ x1 */
    c->x2 = (uint32_t)(q >> 32) ^ c->rk1[1];  /* round 1: c2 = lo(p0 of round 0) ^ x2 */
    c->x3 = (uint32_t)q ^ c->rk1[2];          /* round 2: c2 = hi(p0) ^ x3 */
}

/* w[s][k] = word k of stream 2 + s for the GV_LANES blocks with low counter
 * words ctr + lane (no carry: the caller splits there). */
GV_INLINE void gv_philox(const gv_ctx_t *c, uint32_t ctr, vi w[4][4])
{
    const vi M0 = GV_SET1_64(DF_PHILOX_M0), M1 = GV_SET1_64(DF_PHILOX_M1);
    const vi p0r0 = GV_MUL32(GV_ADD32(GV_SET1_64(ctr), GV_LANE_IDS), M0);
    const vi c2r1 = GV_XOR(p0r0, GV_SET1_32(c->x2));
    const vi p1r2 = GV_MUL32(c2r1, M1);
    const vi h1r2 = GV_SRLI64(p1r2, 32);
    vi c0[4], c1[4], c2[4], c3[4];
    for (int s = 0; s < 4; ++s) {
        /* round 0: c2 = hi(p0) ^ stream ^ k1; round 1 and 2 */
        const vi d2 = GV_XOR(GV_SRLI64(p0r0, 32), GV_SET1_32((2u + (uint32_t)s) ^ c->rk1[0]));
        const vi p1 = GV_MUL32(d2, M1);
        const vi c0r1 = GV_XOR(GV_SRLI64(p1, 32), GV_SET1_32(c->x1));
        const vi p0 = GV_MUL32(c0r1, M0);
        c0[s] = GV_XOR(h1r2, GV_XOR(p1, GV_SET1_32(c->rk0[2])));
        c1[s] = p1r2;
        c2[s] = GV_XOR(GV_SRLI64(p0, 32), GV_SET1_32(c->x3));
        c3[s] = p0;
    }
    for (int r = 3; r < 10; ++r) {
        const vi k0 = GV_SET1_32(c->rk0[r]), k1 = GV_SET1_32(c->rk1[r]);
        for (int s = 0; s < 4; ++s) {
            const vi x1 = GV_XOR(c1[s], k0), x3 = GV_XOR(c3[s], k1);
            const vi p0 = GV_MUL32(c0[s], M0), p1 = GV_MUL32(c2[s], M1);
            c0[s] = GV_XOR(GV_SRLI64(p1, 32), x1);
            c1[s] = p1;
            c2[s] = GV_XOR(GV_SRLI64(p0, 32), x3);
            c3[s] = p0;
        }
    }
    for (int s = 0; s < 4; ++s) {
        w[s][0] = c0[s];
        w[s][1] = c1[s];
        w[s][2] = c2[s];
        w[s][3] = c3[s];
    }
}

/* The transform runs over the eight vectors of a group a step at a time (each
 * step a loop over them), so that independent chains of dependent multiplies
 * and adds overlap instead of waiting on each other's latency: the two Horner
 * chains (log and cos) of all eight vectors advance together. The divisions
 * of the log are issued first, so the divider works while the cos starts; the
 * square roots come last, overlapping the next group's Philox rounds. */
#define GV_EACH for (int h = 0; h < 8; ++h)

/* The start of the log of the specification (df_gauss_log), w the words w1 of
 * element h: k and s = (m - 1) / (m + 1) of (w + 0.5) * 2**-32 = 2**k * m. */
GV_INLINE void gv_log_start(vi w[4][4], vd k[8], vd s[8])
{
    const vd one = GV_SET1_PD(1.0);
    GV_EACH {
        /* u = (2**20 + w * 2**-32) - (2**20 - 2**-33), exactly (w + 0.5) * 2**-32 */
        const vd u =
            GV_SUB_PD(GV_CAST_PD(GV_BLEND_HI(w[h >> 2][h & 3], GV_SET1_64(0x4130000000000000ull))),
                      GV_SET1_PD(0x1p20 - 0x1p-33));
        const vi bits = GV_CAST_SI(u);
        const vi mant = GV_AND(bits, GV_SET1_64(0x000FFFFFFFFFFFFFull));
        const vm small = GV_LT64(mant, GV_SET1_64(DF_GAUSS_SQRT_HALF_MANT));
        const vd m = GV_CAST_PD(GV_OR(mant, GV_SEL_SI(small, GV_SET1_64(1022ull << 52),
                                                      GV_SET1_64(1023ull << 52))));
        /* k = e - 1022 - small: the bits of 2**52 + (e - small), less 2**52 + 1022 */
        const vi e = GV_DEC64(small, GV_SRLI64(bits, 52));
        k[h] = GV_SUB_PD(GV_CAST_PD(GV_OR(e, GV_SET1_64(0x4330000000000000ull))),
                         GV_SET1_PD(0x1p52 + 1022.0));
        s[h] = GV_DIV_PD(GV_SUB_PD(m, one), GV_ADD_PD(m, one));
    }
}

/* mult[h] = 1 + sigma * (r * c): the rest of the log (the atanh series from k
 * and s, r = sqrt(-2 log)) and c = cos(2 pi w / 2**32) of the words w2 of
 * element h (df_gauss_cos2pi of the specification). The cos runs sin and cos
 * as one Horner chain q with per-lane coefficients; p is the log's chain. */
GV_INLINE void gv_finish(vi w[4][4], const vd k[8], const vd s[8], vd sigma, vd mult[8])
{
    vd s2[8], p[8];
    vi v[8];
    vd t[8], t2[8], q[8];
    vm odd[8];
    GV_EACH {
        v[h] = GV_ADD32(w[2 + (h >> 2)][h & 3], GV_SET1_32(0x20000000u));
        /* d * 2**-32 = (2**20 + (v & 0x3FFFFFFF) * 2**-32) - (2**20 + 2**-3), exactly */
        const vi a =
            GV_OR(GV_AND(v[h], GV_SET1_64(0x3FFFFFFFull)), GV_SET1_64(0x4130000000000000ull));
        const vd d = GV_SUB_PD(GV_CAST_PD(a), GV_SET1_PD(0x1p20 + 0x1p-3));
        t[h] = GV_MUL_PD(d, GV_SET1_PD(DF_GAUSS_TWO_PI));
        t2[h] = GV_MUL_PD(t[h], t[h]);
        /* odd quarter turn (bit 30 of v, moved to the sign bit): the sin series */
        odd[h] = GV_SIGN_MASK(GV_SLLI64(v[h], 33));
        q[h] = GV_ADD_PD(GV_MUL_PD(GV_SET1_PD(DF_GAUSS_COS_C[0]), t2[h]),
                         GV_SET1_PD(DF_GAUSS_COS_C[1]));
        q[h] = GV_SEL_PD(odd[h], q[h], GV_SET1_PD(DF_GAUSS_SIN_C[0]));
        s2[h] = GV_MUL_PD(s[h], s[h]);
        p[h] = GV_ADD_PD(GV_MUL_PD(GV_SET1_PD(DF_GAUSS_LOG_C[0]), s2[h]),
                         GV_SET1_PD(DF_GAUSS_LOG_C[1]));
    }
    for (int j = 2; j < 8; ++j) {
        const vd c = GV_SET1_PD(DF_GAUSS_LOG_C[j]);
        const vd cc = GV_SET1_PD(DF_GAUSS_COS_C[j]), sc = GV_SET1_PD(DF_GAUSS_SIN_C[j - 1]);
        GV_EACH {
            p[h] = GV_ADD_PD(GV_MUL_PD(p[h], s2[h]), c);
            q[h] = GV_ADD_PD(GV_MUL_PD(q[h], t2[h]), GV_SEL_PD(odd[h], cc, sc));
        }
    }
    GV_EACH {
        p[h] = GV_ADD_PD(GV_MUL_PD(p[h], s2[h]), GV_SET1_PD(1.0));
        const vd ln = GV_ADD_PD(GV_MUL_PD(k[h], GV_SET1_PD(DF_GAUSS_LN2)),
                                GV_MUL_PD(GV_MUL_PD(GV_SET1_PD(2.0), s[h]), p[h]));
        const vd r = GV_SQRT_PD(GV_MUL_PD(GV_SET1_PD(-2.0), ln));
        /* cos: 1 + t2 * C; sin: t + (t * t2) * S */
        const vd a0 = GV_SEL_PD(odd[h], GV_SET1_PD(1.0), t[h]);
        const vd a1 = GV_SEL_PD(odd[h], t2[h], GV_MUL_PD(t[h], t2[h]));
        const vd cr = GV_ADD_PD(a0, GV_MUL_PD(a1, q[h]));
        /* negate for quarter turns 1 and 2: bit 31 ^ bit 30 of v, to the sign bit */
        const vi neg = GV_AND(GV_SLLI64(GV_XOR(v[h], GV_SLLI32(v[h], 1)), 32),
                              GV_SET1_64(0x8000000000000000ull));
        const vd cs = GV_XOR_PD(cr, GV_CAST_PD(neg));
        mult[h] = GV_ADD_PD(GV_SET1_PD(1.0), GV_MUL_PD(sigma, GV_MUL_PD(r, cs)));
    }
}

/* The multipliers 1 + sigma * z of the GV_GROUP elements of the blocks with low
 * counter words ctr + lane: mult[h] lane j is element 8 j + h. */
GV_INLINE void gv_group(const gv_ctx_t *c, uint32_t ctr, vd sigma, vd mult[8])
{
    vi w[4][4];
    vd k[8], s[8];
    gv_philox(c, ctr, w);
    gv_log_start(w, k, s);
    gv_finish(w, k, s, sigma, mult);
}

/* y = x * mult over one segment (no carry out of the low 32 bits of the block
 * index), a group at a time; the last part goes through a buffer (its
 * multipliers times ones, exact), by the same code so that it is not compiled
 * twice. The lanes of the last group past n may wrap the low counter word;
 * they are not stored. */
#define GV_DEFINE_SEGMENT(NAME, T, STORE)                                                  \
    GV_TARGET static void NAME(const T *x, T *y, int64_t n, const gv_ctx_t *c,             \
                               uint32_t ctr, double sigma)                                 \
    {                                                                                      \
        const vd sg = GV_SET1_PD(sigma);                                                   \
        T ones[GV_GROUP], m[GV_GROUP];                                                     \
        vd mult[8];                                                                        \
        for (int64_t i = 0; i < n; i += GV_GROUP, ctr += GV_LANES) {                       \
            const int whole = n - i >= GV_GROUP;                                           \
            if (!whole)                                                                    \
                for (int h = 0; h < GV_GROUP; ++h)                                         \
                    ones[h] = 1;                                                           \
            gv_group(c, ctr, sg, mult);                                                    \
            STORE(whole ? x + i : ones, whole ? y + i : m, mult);                          \
            if (!whole)                                                                    \
                for (int64_t h = 0; i + h < n; ++h)                                        \
                    y[i + h] = x[i + h] * m[h];                                            \
        }                                                                                  \
    }

GV_DEFINE_SEGMENT(gv_segment_f32, float, gv_store_f32)
GV_DEFINE_SEGMENT(gv_segment_f64, double, gv_store_f64)

/* The range functions of df_gaussian.h: one segment per run of blocks with the
 * same high counter words (b1, b2). */
#define GV_DEFINE_RANGE(NAME, T, SEGMENT)                                                  \
    GV_TARGET void NAME(const T *x, T *y, int64_t n, df_key_t key, df_block_t b,           \
                        double sigma)                                                      \
    {                                                                                      \
        while (n > 0) {                                                                    \
            const uint64_t room = ((uint64_t)1 << 32) - (uint32_t)b.lo; /* blocks */       \
            const int64_t seg = (uint64_t)n > 8 * room ? (int64_t)(8 * room) : n;          \
            gv_ctx_t c;                                                                    \
            gv_ctx_init(&c, key, b);                                                       \
            SEGMENT(x, y, seg, &c, (uint32_t)b.lo, sigma);                                 \
            x += seg;                                                                      \
            y += seg;                                                                      \
            n -= seg;                                                                      \
            b = df_block_add(b, room);                                                     \
        }                                                                                  \
    }
