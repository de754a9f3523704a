# Cython wrappers of the fused kernels, included by _core.pyx (shares its helpers _data, _check).
# Bias + dropout + residual and the Welford accumulator of Monte Carlo dropout;
# the same signatures as dropout_fast/_ref_fused.py. Policy lives in _fused.py and mc.py.

cdef extern from "dropout_fast.h" nogil:
    df_status_t df_bias_dropout_add_f32(const float *x, const float *bias, const float *residual,
                                        float *y, uint8_t *bits, int64_t n, int64_t c,
                                        df_key_t key, df_block_t block0, uint64_t thresh,
                                        float scale, const df_opts_t *opts) noexcept
    df_status_t df_bias_dropout_add_f64(const double *x, const double *bias,
                                        const double *residual, double *y, uint8_t *bits,
                                        int64_t n, int64_t c, df_key_t key, df_block_t block0,
                                        uint64_t thresh, double scale,
                                        const df_opts_t *opts) noexcept
    df_status_t df_bias_dropout_add_bwd_f32(const float *dy, float *dx, double *dbias,
                                            const uint8_t *bits, int64_t n, int64_t c,
                                            df_key_t key, df_block_t block0, uint64_t thresh,
                                            float scale, const df_opts_t *opts) noexcept
    df_status_t df_bias_dropout_add_bwd_f64(const double *dy, double *dx, double *dbias,
                                            const uint8_t *bits, int64_t n, int64_t c,
                                            df_key_t key, df_block_t block0, uint64_t thresh,
                                            double scale, const df_opts_t *opts) noexcept
    df_status_t df_welford_update_f32(const float *x, int64_t k, double *mean, double *m2,
                                      int64_t len, int64_t count, const df_opts_t *opts) noexcept
    df_status_t df_welford_update_f64(const double *x, int64_t k, double *mean, double *m2,
                                      int64_t len, int64_t count, const df_opts_t *opts) noexcept
    df_status_t df_welford_var(const double *m2, double *var, int64_t len, int64_t count,
                               int64_t ddof, const df_opts_t *opts) noexcept


def bias_dropout_add_fwd(cnp.ndarray x, object bias, cnp.ndarray residual, cnp.ndarray y,
                         object bits, uint32_t key0, uint32_t key1, uint64_t block_lo,
                         uint32_t block_hi, uint64_t thresh, double scale, int nthreads, int isa):
    """y = residual + (keep ? (x + bias[i % C]) * scale : 0) over 1-D buffers of x's
    dtype, C = bias.size (bias may be None); bits (may be None) receives the mask.
    y may be x or residual."""
    cdef int64_t n = cnp.PyArray_SIZE(x)
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef int64_t c = 0
    if cnp.PyArray_TYPE(y) != typenum or cnp.PyArray_TYPE(residual) != typenum:
        raise TypeError("y, residual: expected the dtype of x")
    if bias is not None:
        if cnp.PyArray_TYPE(<cnp.ndarray>bias) != typenum:
            raise TypeError("bias: expected the dtype of x")
        c = cnp.PyArray_SIZE(<cnp.ndarray>bias)
        if c < 1 or n % c != 0:
            raise ValueError(f"bias: {c} entries do not divide the {n} elements of x")
    cdef df_key_t key = df_key_t(key0, key1)
    cdef df_block_t block0 = df_block_t(block_lo, block_hi)
    cdef df_opts_t opts = df_opts_t(nthreads, isa)
    cdef uint8_t *b = _bits(bits, n)
    cdef float *xs
    cdef float *bs = NULL
    cdef float *rs
    cdef float *ys
    cdef double *xd
    cdef double *bd = NULL
    cdef double *rd
    cdef double *yd
    cdef df_status_t rc
    if typenum == cnp.NPY_FLOAT32:
        xs = <float*>_data(x, 4, n, "x")
        rs = <float*>_data(residual, 4, n, "residual")
        ys = <float*>_data(y, 4, n, "y")
        if bias is not None:
            bs = <float*>_data(bias, 4, c, "bias")
        with nogil:
            rc = df_bias_dropout_add_f32(xs, bs, rs, ys, b, n, c, key, block0, thresh,
                                         <float>scale, &opts)
    elif typenum == cnp.NPY_FLOAT64:
        xd = <double*>_data(x, 8, n, "x")
        rd = <double*>_data(residual, 8, n, "residual")
        yd = <double*>_data(y, 8, n, "y")
        if bias is not None:
            bd = <double*>_data(bias, 8, c, "bias")
        with nogil:
            rc = df_bias_dropout_add_f64(xd, bd, rd, yd, b, n, c, key, block0, thresh, scale,
                                         &opts)
    else:
        raise TypeError("x: expected float32 or float64")
    _check(rc)


def bias_dropout_add_bwd(cnp.ndarray dy, cnp.ndarray dx, object dbias, object bits, int64_t c,
                         uint32_t key0, uint32_t key1, uint64_t block_lo, uint32_t block_hi,
                         uint64_t thresh, double scale, int nthreads, int isa):
    """dx = keep ? dy * scale : 0 (keep from bits, or regenerated when bits is None);
    dbias (float64 of c entries, or None) = dx summed over rows in row order, in double."""
    cdef int64_t n = cnp.PyArray_SIZE(dy)
    cdef int typenum = cnp.PyArray_TYPE(dy)
    if cnp.PyArray_TYPE(dx) != typenum:
        raise TypeError("dx: expected the dtype of dy")
    cdef double *db = NULL
    if dbias is not None:
        if c < 1 or n % c != 0:
            raise ValueError(f"c: {c} does not divide the {n} elements of dy")
        if cnp.PyArray_TYPE(<cnp.ndarray>dbias) != cnp.NPY_FLOAT64:
            raise TypeError("dbias: expected float64")
        db = <double*>_data(dbias, 8, c, "dbias")
    cdef const uint8_t *b = _bits(bits, n)
    cdef df_key_t key = df_key_t(key0, key1)
    cdef df_block_t block0 = df_block_t(block_lo, block_hi)
    cdef df_opts_t opts = df_opts_t(nthreads, isa)
    cdef float *xs
    cdef float *ys
    cdef double *xd
    cdef double *yd
    cdef df_status_t rc
    if typenum == cnp.NPY_FLOAT32:
        xs = <float*>_data(dy, 4, n, "dy")
        ys = <float*>_data(dx, 4, n, "dx")
        with nogil:
            rc = df_bias_dropout_add_bwd_f32(xs, ys, db, b, n, c, key, block0, thresh,
                                             <float>scale, &opts)
    elif typenum == cnp.NPY_FLOAT64:
        xd = <double*>_data(dy, 8, n, "dy")
        yd = <double*>_data(dx, 8, n, "dx")
        with nogil:
            rc = df_bias_dropout_add_bwd_f64(xd, yd, db, b, n, c, key, block0, thresh, scale,
                                             &opts)
    else:
        raise TypeError("dy: expected float32 or float64")
    _check(rc)


def welford_update(cnp.ndarray x, cnp.ndarray mean, cnp.ndarray m2, int64_t count, int nthreads,
                   int isa):
    """Add the k = x.size // mean.size samples held one after another in x (float32 or
    float64) to the running float64 mean and m2 of `count` samples (Welford)."""
    cdef int64_t length = cnp.PyArray_SIZE(mean)
    cdef int64_t total = cnp.PyArray_SIZE(x)
    if count < 0:
        raise ValueError(f"count: expected a non-negative integer, got {count}")
    if cnp.PyArray_TYPE(mean) != cnp.NPY_FLOAT64 or cnp.PyArray_TYPE(m2) != cnp.NPY_FLOAT64:
        raise TypeError("mean, m2: expected float64")
    if (length == 0 and total != 0) or (length > 0 and total % length != 0):
        raise ValueError(f"x: {total} elements are not whole samples of {length}")
    cdef int64_t k = total // length if length else 0
    cdef double *mp = <double*>_data(mean, 8, length, "mean")
    cdef double *mq = <double*>_data(m2, 8, length, "m2")
    cdef df_opts_t opts = df_opts_t(nthreads, isa)
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef float *xs
    cdef double *xd
    cdef df_status_t rc
    if typenum == cnp.NPY_FLOAT32:
        xs = <float*>_data(x, 4, total, "x")
        with nogil:
            rc = df_welford_update_f32(xs, k, mp, mq, length, count, &opts)
    elif typenum == cnp.NPY_FLOAT64:
        xd = <double*>_data(x, 8, total, "x")
        with nogil:
            rc = df_welford_update_f64(xd, k, mp, mq, length, count, &opts)
    else:
        raise TypeError("x: expected float32 or float64")
    _check(rc)


def welford_var(cnp.ndarray m2, cnp.ndarray var, int64_t count, int64_t ddof, int nthreads,
                int isa):
    """var = m2 / (count - ddof) over float64 buffers; var may be m2."""
    cdef int64_t length = cnp.PyArray_SIZE(m2)
    if ddof < 0 or count - ddof < 1:
        raise ValueError(f"ddof: needs 0 <= ddof < count = {count}, got {ddof}")
    if cnp.PyArray_TYPE(m2) != cnp.NPY_FLOAT64 or cnp.PyArray_TYPE(var) != cnp.NPY_FLOAT64:
        raise TypeError("m2, var: expected float64")
    cdef const double *mq = <double*>_data(m2, 8, length, "m2")
    cdef double *vp = <double*>_data(var, 8, length, "var")
    cdef df_opts_t opts = df_opts_t(nthreads, isa)
    cdef df_status_t rc
    with nogil:
        rc = df_welford_var(mq, vp, length, count, ddof, &opts)
    _check(rc)
