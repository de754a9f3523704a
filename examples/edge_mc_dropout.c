/* edge_mc_dropout.c: Monte Carlo dropout inference in plain C with dropout_fast.
 *
 * A small MLP (h = dropout(relu(x W1 + b1), p); logits = h W2 + b2) runs T times
 * with dropout left on (Gal & Ghahramani, "Dropout as a Bayesian approximation",
 * ICML 2016). For each input it prints the predicted class (argmax of the mean
 * probability), that mean probability, the predictive entropy H[mean_t p_t] and
 * the mutual information (BALD: predictive minus expected entropy), the numbers
 * an edge pipeline uses to flag low-confidence predictions.
 *
 *   edge_mc_dropout MODEL [T [SEED [OFFSET]]]        (defaults: T = 100, seed 0, offset 0)
 *
 * MODEL is written by examples/export_digits_mlp.py. Its format (version 1),
 * every field little-endian, no padding:
 *
 *   offset  size           field
 *   0       4              magic "DFMC"
 *   4       4   uint32     version (1)
 *   8       4   uint32     n_in        input features
 *   12      4   uint32     n_hidden    hidden units
 *   16      4   uint32     n_out       classes
 *   20      4   uint32     n_samples   inputs stored after the weights
 *   24      8   float64    p           drop probability of the hidden layer
 *   32      ...            float32 W1 (n_in, n_hidden), b1 (n_hidden),
 *                          W2 (n_hidden, n_out), b2 (n_out), X (n_samples, n_in),
 *                          row-major; then int32 labels (n_samples)
 *
 * The sampling rule is dropout_fast.mc's (module docstring), so the output equals
 * mc_predict(forward, X, T, rng=Generator(SEED).advance(OFFSET), output="logits")
 * in Python: sample t runs the whole batch of inputs with the hidden layer's mask
 * at counter block OFFSET + t * M, M = ceil(n_samples * n_hidden / 8) (what one
 * dropout call over the (n_samples, n_hidden) activations uses), the class
 * probabilities are a softmax in double, and mean and entropies are accumulated
 * by Welford's update (df_welford_update_f64) in sample order. The masks are the
 * same bits on every CPU; the matrix products are float32 sums in a fixed order,
 * so the printed figures agree with numpy's to rounding. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dropout_fast.h"

#define HEADER_BYTES 32
#define FORMAT_VERSION 1u

typedef struct {
    uint32_t n_in, n_hidden, n_out, n_samples;
    double p;
    float *W1, *b1, *W2, *b2, *X; /* views into weights */
    int32_t *labels;
    float *weights;
} model_t;

/* Little-endian readers: the file's byte order whatever the host's. */
static uint32_t rd_u32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t rd_u64(const unsigned char *b)
{
    return (uint64_t)rd_u32(b) | (uint64_t)rd_u32(b + 4) << 32;
}

/* n little-endian 4-byte words at b into dst, by bit pattern (float or int32). */
static void rd_words(void *dst, const unsigned char *b, size_t n)
{
    unsigned char *d = dst;
    for (size_t i = 0; i < n; ++i) {
        const uint32_t w = rd_u32(b + 4 * i);
        memcpy(d + 4 * i, &w, 4);
    }
}

static int fail(const char *path, const char *what)
{
    fprintf(stderr, "edge_mc_dropout: %s: %s\n", path, what);
    return 1;
}

static int load_model(const char *path, model_t *m)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return fail(path, "cannot open");
    unsigned char head[HEADER_BYTES];
    if (fread(head, 1, HEADER_BYTES, f) != HEADER_BYTES || memcmp(head, "DFMC", 4) != 0) {
        fclose(f);
        return fail(path, "not a DFMC model file");
    }
    if (rd_u32(head + 4) != FORMAT_VERSION) {
        fclose(f);
        return fail(path, "unsupported format version (this program reads version 1)");
    }
    m->n_in = rd_u32(head + 8);
    m->n_hidden = rd_u32(head + 12);
    m->n_out = rd_u32(head + 16);
    m->n_samples = rd_u32(head + 20);
    uint64_t pbits = rd_u64(head + 24);
    memcpy(&m->p, &pbits, sizeof m->p);
    /* Bounds that keep every size below in 64-bit range. */
    if (m->n_in < 1 || m->n_hidden < 1 || m->n_out < 1 || m->n_in > 1u << 20 ||
        m->n_hidden > 1u << 20 || m->n_out > 1u << 20 || m->n_samples > 1u << 20 ||
        !(m->p >= 0.0 && m->p < 1.0)) {
        fclose(f);
        return fail(path, "header out of range");
    }
    const size_t sizes[6] = {
        (size_t)m->n_in * m->n_hidden, m->n_hidden, (size_t)m->n_hidden * m->n_out, m->n_out,
        (size_t)m->n_samples * m->n_in, m->n_samples};
    size_t words = 0;
    for (int i = 0; i < 6; ++i)
        words += sizes[i];
    unsigned char *raw = malloc(4 * words + 1);
    m->weights = malloc(4 * (words - sizes[5]));
    m->labels = malloc(4 * sizes[5] + 4);
    if (raw == NULL || m->weights == NULL || m->labels == NULL) {
        free(raw), free(m->weights), free(m->labels);
        fclose(f);
        return fail(path, "out of memory");
    }
    size_t got = fread(raw, 1, 4 * words + 1, f); /* one byte more: trailing garbage */
    fclose(f);
    if (got != 4 * words) {
        free(raw), free(m->weights), free(m->labels);
        return fail(path, "file length does not match its header");
    }
    rd_words(m->weights, raw, words - sizes[5]);
    rd_words(m->labels, raw + 4 * (words - sizes[5]), sizes[5]);
    free(raw);
    m->W1 = m->weights;
    m->b1 = m->W1 + sizes[0];
    m->W2 = m->b1 + sizes[1];
    m->b2 = m->W2 + sizes[2];
    m->X = m->b2 + sizes[3];
    return 0;
}

/* y (rows, n) = x (rows, k) W (k, n) + b, in float32: the sum over k in order,
 * then the bias added, as numpy's `x @ W + b` rounds (to its summation order). */
static void affine(const float *x, const float *W, const float *b, float *y, size_t rows,
                   size_t k, size_t n)
{
    for (size_t r = 0; r < rows; ++r) {
        float *yr = y + r * n;
        for (size_t j = 0; j < n; ++j)
            yr[j] = 0.0f;
        for (size_t i = 0; i < k; ++i) {
            const float xi = x[r * k + i];
            const float *Wi = W + i * n;
            for (size_t j = 0; j < n; ++j)
                yr[j] += xi * Wi[j];
        }
        for (size_t j = 0; j < n; ++j)
            yr[j] += b[j];
    }
}

/* -sum p log p over n probabilities, 0 log 0 = 0, clipped below at 0. */
static double entropy(const double *p, size_t n)
{
    double s = 0.0;
    for (size_t k = 0; k < n; ++k)
        if (p[k] > 0.0)
            s += p[k] * log(p[k]);
    return s < 0.0 ? -s : 0.0;
}

/* A decimal command-line integer in [least, 2**64), or exit with a message. */
static uint64_t parse_arg(const char *s, const char *name, uint64_t least)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s < '0' || *s > '9' || *end != '\0' || errno != 0 || v < least) {
        fprintf(stderr, "edge_mc_dropout: %s: expected an integer >= %llu, got '%s'\n", name,
                (unsigned long long)least, s);
        exit(2);
    }
    return (uint64_t)v;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 5) {
        fprintf(stderr, "usage: %s MODEL [T [SEED [OFFSET]]]\n", argv[0]);
        return 2;
    }
    const uint64_t T = argc > 2 ? parse_arg(argv[2], "T", 1) : 100;
    const uint64_t seed = argc > 3 ? parse_arg(argv[3], "SEED", 0) : 0;
    const uint64_t offset = argc > 4 ? parse_arg(argv[4], "OFFSET", 0) : 0;
    model_t m;
    if (load_model(argv[1], &m) != 0)
        return 1;
    const size_t N = m.n_samples, H = m.n_hidden, K = m.n_out;
    const int64_t nh = (int64_t)(N * H), nk = (int64_t)(N * K);
    const df_key_t key = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    const uint64_t thresh = df_threshold(m.p);
    const float scale = (float)(1.0 / (1.0 - m.p)); /* rounded once, as in Python */
    const uint64_t stride = (uint64_t)(nh + 7) / 8; /* counter blocks per sample */

    float *a = malloc((size_t)nh * sizeof *a), *h = malloc((size_t)nh * sizeof *h);
    float *logits = malloc((size_t)nk * sizeof *logits);
    double *prob = malloc((size_t)nk * sizeof *prob), *ent = malloc(N * sizeof *ent);
    double *mean = calloc((size_t)nk, sizeof *mean), *m2 = calloc((size_t)nk, sizeof *m2);
    double *emean = calloc(N, sizeof *emean), *em2 = calloc(N, sizeof *em2);
    if (!a || !h || !logits || !prob || !ent || !mean || !m2 || !emean || !em2) {
        fprintf(stderr, "edge_mc_dropout: out of memory\n");
        return 1;
    }

    /* The layer below dropout is the same in every sample: computed once. */
    affine(m.X, m.W1, m.b1, a, N, m.n_in, H);
    for (int64_t i = 0; i < nh; ++i)
        a[i] = a[i] > 0.0f ? a[i] : 0.0f;
    for (uint64_t t = 0; t < T; ++t) {
        /* Sample t's mask: counter blocks [offset + t * stride, ... + stride). */
        const df_block_t block0 = {offset + t * stride, 0};
        df_status_t rc = df_dropout_fwd_f32(a, h, NULL, nh, key, block0, thresh, scale, NULL);
        if (rc != DF_OK) {
            fprintf(stderr, "edge_mc_dropout: df_dropout_fwd_f32: %s\n", df_status_str(rc));
            return 1;
        }
        affine(h, m.W2, m.b2, logits, N, H, K);
        for (size_t r = 0; r < N; ++r) { /* softmax in double, then the entropy */
            const float *l = logits + r * K;
            double *q = prob + r * K, mx = l[0], sum = 0.0;
            for (size_t k = 1; k < K; ++k)
                mx = l[k] > mx ? l[k] : mx;
            for (size_t k = 0; k < K; ++k)
                sum += q[k] = exp((double)l[k] - mx);
            for (size_t k = 0; k < K; ++k)
                q[k] /= sum;
            ent[r] = entropy(q, K);
        }
        rc = df_welford_update_f64(prob, 1, mean, m2, nk, (int64_t)t, NULL);
        if (rc == DF_OK)
            rc = df_welford_update_f64(ent, 1, emean, em2, (int64_t)N, (int64_t)t, NULL);
        if (rc != DF_OK) {
            fprintf(stderr, "edge_mc_dropout: df_welford_update_f64: %s\n", df_status_str(rc));
            return 1;
        }
    }

    printf("dropout_fast %s (%s), p = %g, T = %llu, seed %llu, offset %llu\n", df_version(),
           df_isa_name(df_isa_default()), m.p, (unsigned long long)T, (unsigned long long)seed,
           (unsigned long long)offset);
    for (size_t r = 0; r < N; ++r) {
        const double *q = mean + r * K;
        size_t best = 0;
        for (size_t k = 1; k < K; ++k)
            best = q[k] > q[best] ? k : best; /* the first on ties, as numpy's argmax */
        const double pe = entropy(q, K), mi = pe - emean[r];
        printf("input %zu: label %d class %zu mean_prob %.6f entropy %.6f mutual_info %.6f\n", r,
               (int)m.labels[r], best, q[best], pe, mi > 0.0 ? mi : 0.0);
    }
    free(a), free(h), free(logits), free(prob), free(ent), free(mean), free(m2), free(emean);
    free(em2), free(m.weights), free(m.labels);
    return 0;
}
