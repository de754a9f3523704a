/* df_bandwidth.h: memory-bandwidth probes for `python -m dropout_fast bench`.
 * Private to the benchmark: not part of dropout_fast.h, and src_c/CMakeLists.txt
 * (which compiles only the .c files directly in src_c/) never builds it into
 * the C library. */
#ifndef DF_BANDWIDTH_H
#define DF_BANDWIDTH_H

#include <stdint.h>

enum { DF_BW_COPY = 0, DF_BW_SCALE = 1 };

/* df_bw_run: `passes` passes of y[i] = x[i] (DF_BW_COPY) or y[i] = 0.5f * x[i]
 * (DF_BW_SCALE) over n floats, with plain stores or, when `streaming`, with
 * non-temporal stores (plain where the build has none). nthreads threads (<= 0:
 * the OpenMP default) each take one contiguous chunk, starting on a 64-byte line
 * of y, and run all passes over it without synchronising, so the time is the
 * slowest thread's. x and y must not overlap. Returns the wall-clock seconds of
 * the whole call. */
double df_bw_run(int kernel, int streaming, const float *x, float *y, int64_t n, int passes,
                 int nthreads);

/* df_bw_simd: the vector width the probes use: "avx512", "avx2" or "scalar". */
const char *df_bw_simd(void);

#endif
