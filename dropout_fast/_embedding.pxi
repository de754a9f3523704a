# Cython wrappers of the embedding-dropout kernels, included by _core.pyx (shares its
# helpers _data, _check); the same signatures as dropout_fast/_ref_embedding.py.
# Policy (p, the mask, shapes, id dtypes) lives in dropout_fast/_embedding.py.

cdef extern from "dropout_fast.h" nogil:
    df_status_t df_embedding_fwd_f32(const float *weight, int64_t ldw, float *out,
                                     const int64_t *ids, int64_t ntok, int64_t vocab,
                                     int64_t dim, const uint8_t *bits, float scale,
                                     const df_opts_t *opts) noexcept
    df_status_t df_embedding_fwd_f64(const double *weight, int64_t ldw, double *out,
                                     const int64_t *ids, int64_t ntok, int64_t vocab,
                                     int64_t dim, const uint8_t *bits, double scale,
                                     const df_opts_t *opts) noexcept
    df_status_t df_embedding_bwd_f32(const float *dout, int64_t ldd, float *grad,
                                     const int64_t *ids, int64_t ntok, int64_t vocab,
                                     int64_t dim, const uint8_t *bits, float scale,
                                     int64_t *work, const df_opts_t *opts) noexcept
    df_status_t df_embedding_bwd_f64(const double *dout, int64_t ldd, double *grad,
                                     const int64_t *ids, int64_t ntok, int64_t vocab,
                                     int64_t dim, const uint8_t *bits, double scale,
                                     int64_t *work, const df_opts_t *opts) noexcept

import numpy as _np

# The status the kernels return for an id outside [0, vocab) (DF_ERR_INDEX).
cdef df_status_t _ERR_INDEX = <df_status_t>8


def rows_viewable(cnp.ndarray a):
    """Whether 2-D `a` has contiguous rows at a whole-item row stride (what the
    embedding kernels take without a copy)."""
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(a)
    if cnp.PyArray_NDIM(a) != 2:
        return False
    if cnp.PyArray_SIZE(a) == 0:  # numpy gives empty arrays any strides, 0 included
        return True
    return ((a.shape[0] <= 1 or a.strides[0] % item == 0)
            and (a.shape[1] <= 1 or a.strides[1] == item))


cdef int64_t _ld(cnp.ndarray a, str name) except -1:
    """The row stride of 2-D `a` in items; a ValueError unless rows_viewable(a)."""
    if not rows_viewable(a):
        raise ValueError(f"{name}: expected a 2-D array with contiguous rows")
    return 0 if a.size == 0 or a.shape[0] <= 1 else a.strides[0] // cnp.PyArray_ITEMSIZE(a)


cdef const int64_t* _ids(cnp.ndarray ids, int64_t ntok) except? NULL:
    if cnp.PyArray_TYPE(ids) != cnp.NPY_INT64:
        raise TypeError("ids: expected int64 token ids")
    return <const int64_t*>_data(ids, 8, ntok, "ids")


def ids_in_range(cnp.ndarray ids, int64_t vocab):
    """Whether every entry of the C-contiguous int64 vector `ids` lies in [0, vocab)."""
    cdef int64_t n = cnp.PyArray_SIZE(ids), t
    cdef const int64_t *ip = _ids(ids, n)
    cdef uint64_t bad = 0
    with nogil:
        for t in range(n):
            bad |= <uint64_t>ip[t] >= <uint64_t>vocab
    return bad == 0


cdef inline int _check_ids(df_status_t rc, int64_t vocab) except -1:
    if rc == _ERR_INDEX:
        raise ValueError(f"ids: token ids must lie in [0, {vocab}) (the weight's rows)")
    return _check(rc)


def embedding_fwd(cnp.ndarray weight, cnp.ndarray ids, cnp.ndarray bits, double scale,
                  cnp.ndarray out, int nthreads, int isa):
    """out[t] = keep(ids[t]) ? weight[ids[t]] * scale : 0: weight (V, D) with contiguous
    rows, ids int64 C-contiguous (ntok,), out C-contiguous (ntok, D) of weight's dtype,
    bits the V row bits. A ValueError naming ids for an id outside [0, V)."""
    cdef int64_t ldw = _ld(weight, "weight")
    cdef int64_t vocab = weight.shape[0], dim = weight.shape[1]
    cdef int64_t ntok = cnp.PyArray_SIZE(ids)
    cdef int typenum = cnp.PyArray_TYPE(weight)
    if cnp.PyArray_TYPE(out) != typenum:
        raise TypeError("out: expected the dtype of weight")
    if cnp.PyArray_NDIM(out) != 2 or out.shape[0] != ntok or out.shape[1] != dim:
        raise ValueError(f"out: expected shape ({ntok}, {dim})")
    cdef const int64_t *ip = _ids(ids, ntok)
    cdef const uint8_t *bp = <uint8_t*>_data(bits, 1, (vocab + 7) // 8, "bits")
    cdef df_opts_t opts = df_opts_t(nthreads, isa)
    cdef df_status_t rc
    cdef float *ws
    cdef float *os
    cdef double *wd
    cdef double *od
    if typenum == cnp.NPY_FLOAT32:
        ws = <float*>cnp.PyArray_DATA(weight)
        os = <float*>_data(out, 4, ntok * dim, "out")
        with nogil:
            rc = df_embedding_fwd_f32(ws, ldw, os, ip, ntok, vocab, dim, bp, <float>scale, &opts)
    elif typenum == cnp.NPY_FLOAT64:
        wd = <double*>cnp.PyArray_DATA(weight)
        od = <double*>_data(out, 8, ntok * dim, "out")
        with nogil:
            rc = df_embedding_fwd_f64(wd, ldw, od, ip, ntok, vocab, dim, bp, scale, &opts)
    else:
        raise TypeError("weight: expected float32 or float64")
    _check_ids(rc, vocab)


def embedding_bwd(cnp.ndarray dout, cnp.ndarray ids, cnp.ndarray bits, double scale,
                  cnp.ndarray grad, int nthreads, int isa):
    """grad[r] = keep(r) ? (sum of dout[t] over ids[t] == r, in token order, from +0)
    * scale : 0 (rows without a kept token +0): dout (ntok, D) with contiguous rows,
    ids int64 C-contiguous (ntok,), grad C-contiguous (V, D) of dout's dtype, bits
    the V row bits. A ValueError naming ids for an id outside [0, V)."""
    cdef int64_t ldd = _ld(dout, "dout")
    cdef int64_t ntok = dout.shape[0], dim = dout.shape[1]
    cdef int typenum = cnp.PyArray_TYPE(dout)
    if cnp.PyArray_TYPE(grad) != typenum:
        raise TypeError("grad: expected the dtype of dout")
    if cnp.PyArray_NDIM(grad) != 2 or grad.shape[1] != dim:
        raise ValueError(f"grad: expected shape (V, {dim})")
    cdef int64_t vocab = grad.shape[0]
    cdef const int64_t *ip = _ids(ids, ntok)
    cdef const uint8_t *bp = <uint8_t*>_data(bits, 1, (vocab + 7) // 8, "bits")
    cdef cnp.ndarray work = _np.empty(vocab + ntok + 1, _np.int64)
    cdef int64_t *wk = <int64_t*>cnp.PyArray_DATA(work)
    cdef df_opts_t opts = df_opts_t(nthreads, isa)
    cdef df_status_t rc
    cdef float *ds
    cdef float *gs
    cdef double *dd
    cdef double *gd
    if typenum == cnp.NPY_FLOAT32:
        ds = <float*>cnp.PyArray_DATA(dout)
        gs = <float*>_data(grad, 4, vocab * dim, "grad")
        with nogil:
            rc = df_embedding_bwd_f32(ds, ldd, gs, ip, ntok, vocab, dim, bp, <float>scale, wk,
                                      &opts)
    elif typenum == cnp.NPY_FLOAT64:
        dd = <double*>cnp.PyArray_DATA(dout)
        gd = <double*>_data(grad, 8, vocab * dim, "grad")
        with nogil:
            rc = df_embedding_bwd_f64(dd, ldd, gd, ip, ntok, vocab, dim, bp, scale, wk, &opts)
    else:
        raise TypeError("dout: expected float32 or float64")
    _check_ids(rc, vocab)
