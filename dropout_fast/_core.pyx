# Typed wrappers over the C kernels: check the buffers, release the GIL, map
# status codes to exceptions. Policy (p, thresholds, shapes, out=) lives in
# api.py; this module only refuses calls that could touch memory out of bounds.
# The kernel functions have the same signatures as those in reference.py.
cimport numpy as cnp
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t

from dropout_fast._c cimport *

cnp.import_array()

ISA_CODES = {"scalar": DF_ISA_SCALAR, "avx2": DF_ISA_AVX2, "avx512": DF_ISA_AVX512,
             "neon": DF_ISA_NEON}


class KernelError(RuntimeError):
    """A C kernel returned an error status (a bug in the wrapper if seen)."""


cdef inline int _check(df_status_t rc) except -1:
    if rc != DF_OK:
        raise KernelError(f"dropout_fast C kernel: {df_status_str(rc).decode()} (status {rc})")
    return 0


def version():
    """The C library's run-time version string."""
    return df_version().decode()


def isa_available(str name):
    """Whether this CPU and build can run the instruction set `name`."""
    return name in ISA_CODES and bool(df_isa_available(ISA_CODES[name]))


def isa_default():
    """The instruction set the kernels use when none is forced."""
    return df_isa_name(df_isa_default()).decode()


def has_openmp():
    return bool(df_has_openmp())


def max_threads():
    return df_max_threads()


def threshold(double p):
    return df_threshold(p)


# Element-wise calls below this size keep the GIL: their kernel takes about a
# microsecond or less (AVX2 forward ~0.4 ns, backward ~0.1 ns an element), and
# releasing and re-taking the GIL costs ~0.06 us a call, measurable there.
# Larger calls release it, so other Python threads run while they compute.
cdef int64_t NOGIL_MIN = 2048


cdef inline void* _data(cnp.ndarray a, int itemsize, int64_t n, str name) except? NULL:
    if not cnp.PyArray_IS_C_CONTIGUOUS(a) or cnp.PyArray_ITEMSIZE(a) != itemsize \
            or cnp.PyArray_SIZE(a) < n:
        raise ValueError(f"{name}: expected a C-contiguous buffer of {n} items of {itemsize} bytes")
    return cnp.PyArray_DATA(a)


cdef inline uint8_t* _bits(object bits, int64_t n) except? NULL:
    if bits is None:
        return NULL
    return <uint8_t*>_data(bits, 1, (n + 7) // 8, "bits")


def philox4x32(cnp.ndarray ctr, cnp.ndarray key, cnp.ndarray out, int rounds):
    """out[j] = Philox4x32-rounds(ctr[j], key[j]) on uint32 arrays (n, 4), (n, 2), (n, 4)."""
    cdef int64_t n = cnp.PyArray_SIZE(out) // 4
    cdef const uint32_t *c = <uint32_t*>_data(ctr, 4, 4 * n, "ctr")
    cdef const uint32_t *k = <uint32_t*>_data(key, 4, 2 * n, "key")
    cdef uint32_t *o = <uint32_t*>_data(out, 4, 4 * n, "out")
    cdef df_status_t rc
    with nogil:
        rc = df_philox4x32(c, k, o, n, rounds)
    _check(rc)


def mask(cnp.ndarray bits, int64_t n, uint32_t key0, uint32_t key1, uint64_t block_lo,
         uint32_t block_hi, uint64_t thresh, int nthreads, int isa):
    """Packed keep bits of n elements at block offset (block_hi << 64) | block_lo."""
    cdef uint8_t *b = <uint8_t*>_data(bits, 1, (n + 7) // 8, "bits")
    cdef df_key_t key = df_key_t(key0, key1)
    cdef df_block_t block0 = df_block_t(block_lo, block_hi)
    cdef df_opts_t opts = df_opts_t(nthreads, isa)
    cdef df_status_t rc
    with nogil:
        rc = df_dropout_mask(b, n, key, block0, thresh, &opts)
    _check(rc)


def fwd(cnp.ndarray x, cnp.ndarray y, object bits, uint32_t key0, uint32_t key1,
        uint64_t block_lo, uint32_t block_hi, uint64_t thresh, double scale, int nthreads,
        int isa):
    """y = keep ? x * scale : 0 over 1-D float32/float64 buffers; y may be x."""
    _fwd(x, y, bits, df_key_t(key0, key1), df_block_t(block_lo, block_hi), thresh, scale,
         df_opts_t(nthreads, isa))


cdef int _fwd(cnp.ndarray x, cnp.ndarray y, object bits, df_key_t key, df_block_t block0,
              uint64_t thresh, double scale, df_opts_t opts) except -1:
    cdef int64_t n = cnp.PyArray_SIZE(x)
    cdef int typenum = cnp.PyArray_TYPE(x)
    if cnp.PyArray_TYPE(y) != typenum:
        raise TypeError("y: expected the dtype of x")
    cdef uint8_t *b = _bits(bits, n)
    cdef float *xs
    cdef float *ys
    cdef double *xd
    cdef double *yd
    cdef df_status_t rc
    if typenum == cnp.NPY_FLOAT32:
        xs = <float*>_data(x, 4, n, "x")
        ys = <float*>_data(y, 4, n, "y")
        if n < NOGIL_MIN:
            rc = df_dropout_fwd_f32(xs, ys, b, n, key, block0, thresh, <float>scale, &opts)
        else:
            with nogil:
                rc = df_dropout_fwd_f32(xs, ys, b, n, key, block0, thresh, <float>scale, &opts)
    elif typenum == cnp.NPY_FLOAT64:
        xd = <double*>_data(x, 8, n, "x")
        yd = <double*>_data(y, 8, n, "y")
        if n < NOGIL_MIN:
            rc = df_dropout_fwd_f64(xd, yd, b, n, key, block0, thresh, scale, &opts)
        else:
            with nogil:
                rc = df_dropout_fwd_f64(xd, yd, b, n, key, block0, thresh, scale, &opts)
    else:
        raise TypeError("x: expected float32 or float64")
    return _check(rc)


def bwd_bits(cnp.ndarray dy, cnp.ndarray dx, cnp.ndarray bits, double scale, int nthreads,
             int isa):
    """dx = bit ? dy * scale : 0 over 1-D float32/float64 buffers; dx may be dy."""
    cdef int64_t n = cnp.PyArray_SIZE(dy)
    cdef int typenum = cnp.PyArray_TYPE(dy)
    if cnp.PyArray_TYPE(dx) != typenum:
        raise TypeError("dx: expected the dtype of dy")
    cdef df_opts_t opts = df_opts_t(nthreads, isa)
    cdef const uint8_t *b = <uint8_t*>_data(bits, 1, (n + 7) // 8, "bits")
    cdef float *xs
    cdef float *ys
    cdef double *xd
    cdef double *yd
    cdef df_status_t rc
    if typenum == cnp.NPY_FLOAT32:
        xs = <float*>_data(dy, 4, n, "dy")
        ys = <float*>_data(dx, 4, n, "dx")
        if n < NOGIL_MIN:
            rc = df_dropout_bwd_bits_f32(xs, ys, b, n, <float>scale, &opts)
        else:
            with nogil:
                rc = df_dropout_bwd_bits_f32(xs, ys, b, n, <float>scale, &opts)
    elif typenum == cnp.NPY_FLOAT64:
        xd = <double*>_data(dy, 8, n, "dy")
        yd = <double*>_data(dx, 8, n, "dx")
        if n < NOGIL_MIN:
            rc = df_dropout_bwd_bits_f64(xd, yd, b, n, scale, &opts)
        else:
            with nogil:
                rc = df_dropout_bwd_bits_f64(xd, yd, b, n, scale, &opts)
    else:
        raise TypeError("dy: expected float32 or float64")
    _check(rc)


def bcast_apply(cnp.ndarray x, cnp.ndarray y, cnp.ndarray bits, tuple shape, tuple noise_shape,
                double a, double b, double c, int nthreads, int isa):
    """y = keep ? a * x + b : c, keep broadcast from the bits of noise_shape (C-contiguous x, y)."""
    cdef int ndim = len(shape)
    if ndim > DF_MAX_DIMS or len(noise_shape) != ndim:
        raise ValueError(f"shape: at most {DF_MAX_DIMS} dimensions, noise_shape of the same ndim")
    cdef int64_t dims[32]
    cdef int64_t ndims[32]
    cdef int64_t n = 1, m = 1
    cdef int d
    for d in range(ndim):
        dims[d] = shape[d]
        ndims[d] = noise_shape[d]
        n *= dims[d]
        m *= ndims[d]
    cdef int typenum = cnp.PyArray_TYPE(x)
    if cnp.PyArray_TYPE(y) != typenum:
        raise TypeError("y: expected the dtype of x")
    cdef df_opts_t opts = df_opts_t(nthreads, isa)
    cdef const uint8_t *bp = <uint8_t*>_data(bits, 1, (m + 7) // 8, "bits")
    cdef float *xs
    cdef float *ys
    cdef double *xd
    cdef double *yd
    cdef df_status_t rc
    if typenum == cnp.NPY_FLOAT32:
        xs = <float*>_data(x, 4, n, "x")
        ys = <float*>_data(y, 4, n, "y")
        with nogil:
            rc = df_bcast_apply_f32(xs, ys, bp, ndim, dims, ndims, <float>a, <float>b, <float>c,
                                    &opts)
    elif typenum == cnp.NPY_FLOAT64:
        xd = <double*>_data(x, 8, n, "x")
        yd = <double*>_data(y, 8, n, "y")
        with nogil:
            rc = df_bcast_apply_f64(xd, yd, bp, ndim, dims, ndims, a, b, c, &opts)
    else:
        raise TypeError("x: expected float32 or float64")
    _check(rc)


def gaussian_fwd(cnp.ndarray x, cnp.ndarray y, uint32_t key0, uint32_t key1, uint64_t block_lo,
                 uint32_t block_hi, double sigma, int nthreads, int isa):
    """y = x * (1 + sigma * z) over 1-D float32/float64 buffers, z the Gaussian
    deviates of streams 2..5 at block offset (block_hi << 64) | block_lo; y may be x."""
    cdef int64_t n = cnp.PyArray_SIZE(x)
    cdef int typenum = cnp.PyArray_TYPE(x)
    if cnp.PyArray_TYPE(y) != typenum:
        raise TypeError("y: expected the dtype of x")
    cdef df_key_t key = df_key_t(key0, key1)
    cdef df_block_t block0 = df_block_t(block_lo, block_hi)
    cdef df_opts_t opts = df_opts_t(nthreads, isa)
    cdef float *xs
    cdef float *ys
    cdef double *xd
    cdef double *yd
    cdef df_status_t rc
    if typenum == cnp.NPY_FLOAT32:
        xs = <float*>_data(x, 4, n, "x")
        ys = <float*>_data(y, 4, n, "y")
        with nogil:
            rc = df_gaussian_fwd_f32(xs, ys, n, key, block0, sigma, &opts)
    elif typenum == cnp.NPY_FLOAT64:
        xd = <double*>_data(x, 8, n, "x")
        yd = <double*>_data(y, 8, n, "y")
        with nogil:
            rc = df_gaussian_fwd_f64(xd, yd, n, key, block0, sigma, &opts)
    else:
        raise TypeError("x: expected float32 or float64")
    _check(rc)


# Kernel families kept in their own files (same module, same helpers).
include "_softmax.pxi"
include "_fused.pxi"
include "_bandwidth.pxi"
include "_embedding.pxi"
include "_direct.pxi"
