# The memory-bandwidth probes of the benchmark (src_c/bench/df_bandwidth.c):
# private to `python -m dropout_fast bench`, not part of the C library's API.
cdef extern from "bench/df_bandwidth.h" nogil:
    double df_bw_run(int kernel, int streaming, const float *x, float *y, int64_t n,
                     int passes, int nthreads) noexcept
    const char *df_bw_simd() noexcept

BW_KERNELS = {"copy": 0, "scale": 1}


def bw_run(str kernel, bint streaming, cnp.ndarray x, cnp.ndarray y, int passes, int nthreads):
    """Seconds for `passes` passes of copy (y = x) or scale (y = 0.5 x) over
    x.nbytes bytes, with plain or streaming stores, on nthreads threads."""
    if kernel not in BW_KERNELS:
        raise ValueError(f"kernel: expected 'copy' or 'scale', got {kernel!r}")
    if passes < 1:
        raise ValueError(f"passes: expected a positive integer, got {passes}")
    cdef int64_t n = cnp.PyArray_NBYTES(x) // 4
    if cnp.PyArray_NBYTES(y) < 4 * n:
        raise ValueError("y: expected at least x.nbytes bytes")
    cdef const float *xp = <float*>_data(x, cnp.PyArray_ITEMSIZE(x), cnp.PyArray_SIZE(x), "x")
    cdef float *yp = <float*>_data(y, cnp.PyArray_ITEMSIZE(y), cnp.PyArray_SIZE(y), "y")
    cdef int k = BW_KERNELS[kernel]
    cdef double secs
    with nogil:
        secs = df_bw_run(k, streaming, xp, yp, n, passes, nthreads)
    return secs


def bw_simd():
    """The vector width of the bandwidth probes."""
    return df_bw_simd().decode()
