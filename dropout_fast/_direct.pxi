# The call-overhead fast path of api.apply: for the common call (a C-contiguous
# input, no out= or a plain one) the kernels take the arrays as they are, with
# no flat views, temporaries or Python-level flag checks. Anything unusual
# returns None and takes the general path, which also raises the errors for a
# bad out= (api.check_out), so this function never decides policy.


def direct_output(cnp.ndarray x, object out):
    """The array a kernel may write x's result to directly, or None.

    A new C-contiguous array of x's shape and dtype when out is None; out itself
    when it is an ndarray of x's dtype (the same descriptor) and shape,
    writeable, C-contiguous, and x itself or disjoint from it. None when x is
    empty or not C-contiguous, or out is anything else.
    """
    if cnp.PyArray_SIZE(x) == 0 or not cnp.PyArray_IS_C_CONTIGUOUS(x):
        return None
    cdef int nd = cnp.PyArray_NDIM(x)
    if out is None:
        return cnp.PyArray_EMPTY(nd, cnp.PyArray_DIMS(x), cnp.PyArray_TYPE(x), 0)
    if not isinstance(out, cnp.ndarray):
        return None
    cdef cnp.ndarray o = <cnp.ndarray>out
    if <void*>cnp.PyArray_DESCR(o) != <void*>cnp.PyArray_DESCR(x) or cnp.PyArray_NDIM(o) != nd \
            or not cnp.PyArray_ISWRITEABLE(o) or not cnp.PyArray_IS_C_CONTIGUOUS(o):
        return None
    cdef cnp.npy_intp *xd = cnp.PyArray_DIMS(x)
    cdef cnp.npy_intp *od = cnp.PyArray_DIMS(o)
    cdef int d
    for d in range(nd):
        if xd[d] != od[d]:
            return None
    if o is x:
        return o
    # Both C-contiguous: each occupies exactly [data, data + nbytes).
    cdef char *xp = <char*>cnp.PyArray_DATA(x)
    cdef char *yp = <char*>cnp.PyArray_DATA(o)
    cdef cnp.npy_intp nbytes = cnp.PyArray_NBYTES(x)
    if xp < yp + nbytes and yp < xp + nbytes:
        return None
    return o


def fwd_into(cnp.ndarray x, cnp.ndarray y, bint want_bits, uint32_t key0, uint32_t key1,
             uint64_t block_lo, uint32_t block_hi, uint64_t thresh, double scale, int nthreads,
             int isa):
    """`fwd` with its bits allocated here: returns a new uint8 array of ceil(n/8)
    bytes holding them when want_bits, else None (no bits written)."""
    cdef cnp.npy_intp nbytes = (cnp.PyArray_SIZE(x) + 7) // 8
    bits = cnp.PyArray_EMPTY(1, &nbytes, cnp.NPY_UINT8, 0) if want_bits else None
    _fwd(x, y, bits, df_key_t(key0, key1), df_block_t(block_lo, block_hi), thresh, scale,
         df_opts_t(nthreads, isa))
    return bits


def mask_new(int64_t n, uint32_t key0, uint32_t key1, uint64_t block_lo, uint32_t block_hi,
             uint64_t thresh, int nthreads, int isa):
    """`mask` into a new uint8 array of ceil(n/8) bytes, which it returns."""
    cdef cnp.npy_intp nbytes = (n + 7) // 8
    bits = cnp.PyArray_EMPTY(1, &nbytes, cnp.NPY_UINT8, 0)
    if n > 0:
        mask(bits, n, key0, key1, block_lo, block_hi, thresh, nthreads, isa)
    return bits
