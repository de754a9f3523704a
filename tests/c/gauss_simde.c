/* gauss_simde.c: the AVX-512 Gaussian-dropout body against the scalar
 * specification, on any x86-64 CPU. Built by tests/test_gaussian_simde.py with
 * -DDF_GAUSS_SIMDE, which compiles df_kernels_gaussian_avx512.c against SIMDe's
 * portable AVX-512 (https://github.com/simd-everywhere/simde) instead of
 * immintrin.h: the same source, lane for lane, without the instructions. Odd
 * lengths, counter starts just before the carries out of the low 32 and 64
 * bits of the block index, and both dtypes; exits nonzero on a mismatch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "df_gaussian.h"
#include "dropout_fast.h"

int main(void)
{
    const df_key_t keys[] = {{0xdeadbeefu, 0x01234567u}, {0u, 0u}};
    const df_block_t starts[] = {{0, 0}, {0xFFFFFFF0ull, 0}, {0xFFFFFFFFFFFFFFFDull, 7},
                                 {0x1FFFFFFFEull, 0xFFFFFFFFu}};
    const int64_t ns[] = {1, 7, 8, 63, 64, 65, 127, 200, 1029, 4101};
    const df_opts_t scalar = {1, DF_ISA_SCALAR};
    int bad = 0, runs = 0;
    for (int kk = 0; kk < 2; ++kk)
        for (int s = 0; s < 4; ++s)
            for (int k = 0; k < 10; ++k) {
                const int64_t n = ns[k];
                float *x = malloc(n * sizeof *x), *a = malloc(n * sizeof *a),
                      *b = malloc(n * sizeof *b);
                double *xd = malloc(n * sizeof *xd), *ad = malloc(n * sizeof *ad),
                       *bd = malloc(n * sizeof *bd);
                for (int64_t i = 0; i < n; ++i) {
                    x[i] = 0.5f + (float)(i % 9);
                    xd[i] = -1.5 + (double)(i % 11);
                }
                df_gaussian_fwd_f32(x, a, n, keys[kk], starts[s], 0.8, &scalar);
                df_gauss_f32_avx512(x, b, n, keys[kk], starts[s], 0.8);
                df_gaussian_fwd_f64(xd, ad, n, keys[kk], starts[s], 1.3, &scalar);
                df_gauss_f64_avx512(xd, bd, n, keys[kk], starts[s], 1.3);
                if (memcmp(a, b, n * sizeof *a) || memcmp(ad, bd, n * sizeof *ad)) {
                    ++bad;
                    printf("mismatch: key %d start %d n %lld\n", kk, s, (long long)n);
                }
                ++runs;
                free(x), free(a), free(b), free(xd), free(ad), free(bd);
            }
    printf("%d of %d cases bit-identical\n", runs - bad, runs);
    return bad != 0;
}
