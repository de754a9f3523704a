# Cython wrappers of the softmax kernels, included by _core.pyx (shares its helpers _data, _check).
# Attention dropout: the softmax over the last axis fused with dropout (src_c/df_kernels_softmax.c).

cdef extern from "dropout_fast.h" nogil:
    ctypedef enum df_attn_mask_t:
        DF_ATTN_MASK_NONE
        DF_ATTN_MASK_ADD
        DF_ATTN_MASK_BOOL

    ctypedef struct df_attn_t:
        int ndim
        int64_t shape[32]
        int mask_kind
        const void *mask
        int64_t mask_strides[32]
        int causal

    df_status_t df_softmax_dropout_fwd_f32(const float *s, float *y, float *probs, uint8_t *bits,
                                           const df_attn_t *attn, df_key_t key,
                                           df_block_t block0, uint64_t thresh, float scale,
                                           const df_opts_t *opts) noexcept
    df_status_t df_softmax_dropout_fwd_f64(const double *s, double *y, double *probs,
                                           uint8_t *bits, const df_attn_t *attn, df_key_t key,
                                           df_block_t block0, uint64_t thresh, double scale,
                                           const df_opts_t *opts) noexcept
    df_status_t df_softmax_dropout_bwd_f32(const float *dy, float *ds, const float *probs,
                                           const float *s, const uint8_t *bits,
                                           const df_attn_t *attn, df_key_t key,
                                           df_block_t block0, uint64_t thresh, float scale,
                                           const df_opts_t *opts) noexcept
    df_status_t df_softmax_dropout_bwd_f64(const double *dy, double *ds, const double *probs,
                                           const double *s, const uint8_t *bits,
                                           const df_attn_t *attn, df_key_t key,
                                           df_block_t block0, uint64_t thresh, double scale,
                                           const df_opts_t *opts) noexcept


cdef int64_t _attn_fill(df_attn_t *a, tuple shape, object mask, bint causal,
                        int itemsize) except -1:
    """Fill a from the scores' shape and the mask broadcast to it (an ndarray view
    of `shape`: bool, or the scores' float dtype; last stride one element).
    Strides come from a numpy view, so the kernel stays inside the mask's memory.
    Returns the element count."""
    cdef int ndim = len(shape)
    if ndim < 1 or ndim > DF_MAX_DIMS:
        raise ValueError(f"scores: expected 1 to {DF_MAX_DIMS} dimensions, got {ndim}")
    cdef int64_t n = 1
    cdef int d
    a.ndim = ndim
    a.causal = causal
    a.mask_kind = DF_ATTN_MASK_NONE
    a.mask = NULL
    for d in range(ndim):
        a.shape[d] = shape[d]
        a.mask_strides[d] = 0
        n *= a.shape[d]
    if mask is None:
        return n
    if not isinstance(mask, cnp.ndarray) or tuple(mask.shape) != shape:
        raise ValueError(f"attn_mask: expected an ndarray view of shape {shape}")
    cdef cnp.ndarray m = mask
    cdef int esize
    if m.dtype == bool:
        a.mask_kind, esize = DF_ATTN_MASK_BOOL, 1
    elif m.dtype.kind == "f" and m.dtype.itemsize == itemsize:
        a.mask_kind, esize = DF_ATTN_MASK_ADD, itemsize
    else:
        raise TypeError(f"attn_mask: expected bool or the scores' float dtype, got {m.dtype}")
    for d in range(ndim):
        if m.strides[d] % esize:
            raise ValueError("attn_mask: strides must be whole elements")
        a.mask_strides[d] = m.strides[d] // esize
    if shape[ndim - 1] > 1 and a.mask_strides[ndim - 1] != 1:
        raise ValueError("attn_mask: the last axis must be contiguous")
    a.mask = cnp.PyArray_DATA(m)
    return n


def softmax_fwd(cnp.ndarray s, cnp.ndarray y, object probs, object bits, tuple shape,
                object mask, bint causal, uint32_t key0, uint32_t key1, uint64_t block_lo,
                uint32_t block_hi, uint64_t thresh, double scale, int nthreads, int isa):
    """y = dropout(softmax(masked s)) over the last axis of `shape` (s, y, probs
    C-contiguous buffers of that many items); probs (or None) receives P, negated
    where dropped, and bits (or None) the keep bits. thresh == 2**32 with scale 1
    is the plain softmax."""
    cdef df_attn_t a
    cdef int typenum = cnp.PyArray_TYPE(s)
    cdef int itemsize = 4 if typenum == cnp.NPY_FLOAT32 else 8
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise TypeError("scores: expected float32 or float64")
    if cnp.PyArray_TYPE(y) != typenum or (probs is not None and probs.dtype != s.dtype):
        raise TypeError("y, probs: expected the dtype of scores")
    cdef int64_t n = _attn_fill(&a, shape, mask, causal, itemsize)
    cdef void *sp = _data(s, itemsize, n, "scores")
    cdef void *yp = _data(y, itemsize, n, "y")
    cdef void *pp = NULL if probs is None else _data(probs, itemsize, n, "probs")
    cdef uint8_t *b = _bits(bits, n)
    cdef df_key_t key = df_key_t(key0, key1)
    cdef df_block_t block0 = df_block_t(block_lo, block_hi)
    cdef df_opts_t opts = df_opts_t(nthreads, isa)
    cdef df_status_t rc
    with nogil:
        if itemsize == 4:
            rc = df_softmax_dropout_fwd_f32(<float*>sp, <float*>yp, <float*>pp, b, &a, key,
                                            block0, thresh, <float>scale, &opts)
        else:
            rc = df_softmax_dropout_fwd_f64(<double*>sp, <double*>yp, <double*>pp, b, &a, key,
                                            block0, thresh, scale, &opts)
    _check(rc)


def softmax_bwd(cnp.ndarray dy, cnp.ndarray ds, object probs, object s, object bits,
                tuple shape, object mask, bint causal, uint32_t key0, uint32_t key1,
                uint64_t block_lo, uint32_t block_hi, uint64_t thresh, double scale,
                int nthreads, int isa):
    """ds = d(scores) from dy, with P and the mask from the signed probs ("store"),
    or P recomputed from s and mask ("recompute", probs None) and the mask read
    from bits or regenerated."""
    cdef df_attn_t a
    cdef int typenum = cnp.PyArray_TYPE(dy)
    cdef int itemsize = 4 if typenum == cnp.NPY_FLOAT32 else 8
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise TypeError("dy: expected float32 or float64")
    cdef object src = probs if probs is not None else s
    if src is None:
        raise ValueError("probs, s: one of them is needed")
    if cnp.PyArray_TYPE(ds) != typenum or src.dtype != dy.dtype:
        raise TypeError("ds, probs, s: expected the dtype of dy")
    cdef int64_t n = _attn_fill(&a, shape, mask if probs is None else None, causal, itemsize)
    cdef void *gp = _data(dy, itemsize, n, "dy")
    cdef void *dp = _data(ds, itemsize, n, "ds")
    cdef void *pp = NULL
    cdef void *sp = NULL
    if probs is not None:
        pp = _data(probs, itemsize, n, "probs")
    else:
        sp = _data(s, itemsize, n, "s")
    cdef const uint8_t *b = _bits(bits, n)
    cdef df_key_t key = df_key_t(key0, key1)
    cdef df_block_t block0 = df_block_t(block_lo, block_hi)
    cdef df_opts_t opts = df_opts_t(nthreads, isa)
    cdef df_status_t rc
    with nogil:
        if itemsize == 4:
            rc = df_softmax_dropout_bwd_f32(<float*>gp, <float*>dp, <float*>pp, <float*>sp, b,
                                            &a, key, block0, thresh, <float>scale, &opts)
        else:
            rc = df_softmax_dropout_bwd_f64(<double*>gp, <double*>dp, <double*>pp, <double*>sp,
                                            b, &a, key, block0, thresh, scale, &opts)
    _check(rc)
