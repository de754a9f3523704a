"""The operations: each op's input shapes at a size, the bytes it must move,
and dropout_fast's own calls (the C kernels, and the same API computed by the
Numba reference backend, the "numba" peer).

Sizes are total elements n (a power of two); each op lays them out the way the
op is used: standard dropout over (n,), channel dropout over (N, 16, 32, 32),
attention scores as rows of 256, and so on (`shape_of`). Forward is the
training call that also keeps what backward needs (the bit mask, the softmax
probabilities), writing into a preallocated output; backward uses it.

Bytes moved are the bytes an op cannot avoid: every input read once, every
output written once, the packed mask at 1 bit per mask element; read-for-
ownership traffic and temporaries are not counted, so a roofline % near 100
means no byte was wasted. Monte Carlo sampling is a loop of whole calls with
statistics in float64, so it has no single bytes figure (roofline % blank).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

import numpy as np

import dropout_fast as df
from dropout_fast import _dropblock, _fused, _gaussian, _softmax, reference

P = 0.5            # drop probability of every benchmarked call
BLOCK = 5          # DropBlock block size
MC_T = 16          # Monte Carlo samples per call


def _nchw(n: int) -> Tuple[int, ...]:
    return (n >> 14, 16, 32, 32) if n >= 1 << 14 else (1, n >> 8, 16, 16)


def _rows(width: int) -> Callable[[int], Tuple[int, ...]]:
    return lambda n: (max(1, n // width), min(n, width))


@dataclass(frozen=True)
class Op:
    name: str
    shape: Callable[[int], Tuple[int, ...]]
    summary: str
    directions: Tuple[str, ...] = ("forward", "backward")


OPS: Dict[str, Op] = {op.name: op for op in [
    Op("dropout", lambda n: (n,), "standard dropout, bit mask kept"),
    Op("spatial_dropout", _nchw, "dropout2d: whole channels of (N, C, H, W)"),
    Op("variational_dropout", lambda n: (max(1, n >> 14), min(64, n >> 8), 256),
       "one mask per sequence of (N, T, F)"),
    Op("drop_path", _nchw, "stochastic depth, one decision per sample"),
    Op("drop_connect", _rows(1024), "element mask on a weight matrix"),
    Op("alpha_dropout", lambda n: (n,), "SELU-preserving dropout"),
    Op("feature_alpha_dropout", _nchw, "alpha dropout of whole channels"),
    Op("gaussian_dropout", lambda n: (n,), "x * N(1, p/(1-p)), noise regenerated"),
    Op("drop_block", _nchw, f"DropBlock, block_size={BLOCK}"),
    Op("embedding_dropout", _rows(256), "whole rows of a (V, 256) table, V ids looked up"),
    Op("softmax_dropout", _rows(256), "dropout(softmax(s)) over rows of 256, P kept"),
    Op("bias_dropout_add", _rows(1024), "residual + dropout(x + bias), bit mask kept"),
    Op("mc_dropout", lambda n: (MC_T, max(1, n // MC_T)),
       f"{MC_T} Monte Carlo dropout samples with streaming mean and variance",
       ("forward",)),
]}

VARIANT_OPTIONS = {
    "spatial_dropout": {}, "variational_dropout": {"time_axis": 1}, "drop_path": {},
    "drop_connect": {}, "alpha_dropout": {}, "feature_alpha_dropout": {},
}


# The flat random arrays of the current (n, dtype, seed): every op at one size
# reshapes the same ones, so a sweep generates them once per size.
_POOL: dict = {}
_KINDS = ("x", "dy", "res", "bias", "ids")


def _flat(kind: str, n: int, dtype, seed: int) -> np.ndarray:
    key = (n, np.dtype(dtype).str, seed)
    if _POOL.get("key") != key:
        _POOL.clear()
        _POOL["key"] = key
    if kind not in _POOL:
        rs = np.random.default_rng([seed, _KINDS.index(kind)])
        _POOL[kind] = (rs.integers(0, max(1, n // 256), max(1, n // 256)) if kind == "ids"
                       else rs.standard_normal(n if kind != "bias" else 1024, dtype=dtype))
    return _POOL[kind]


def release_inputs() -> None:
    """Drop the arrays `inputs` keeps for the next op at the same size."""
    _POOL.clear()


def inputs(op: str, n: int, dtype, seed: int = 0) -> dict:
    """The arrays of one case: x (the op's input), dy (upstream gradient of the
    output), preallocated y and dx, and the op's extra inputs. x, dy and the
    extras are shared by every op at the same (n, dtype, seed): callers must
    not write into them."""
    dtype = np.dtype(dtype)
    shape = OPS[op].shape(n)
    size = int(np.prod(shape))
    if op == "mc_dropout":
        return {"x": _flat("x", n, dtype, seed)[:size // shape[0]].reshape(shape[1:]),
                "shape": shape}
    x = _flat("x", n, dtype, seed)[:size].reshape(shape)
    a = {"x": x, "dy": _flat("dy", n, dtype, seed)[:size].reshape(shape), "y": np.empty_like(x),
         "dx": np.empty_like(x), "shape": shape}
    if op == "embedding_dropout":
        a["weight"], a["ids"] = x, _flat("ids", n, dtype, seed)[:shape[0]]
    if op == "bias_dropout_add":
        a["bias"] = _flat("bias", n, dtype, seed)[:shape[-1]]
        a["res"] = _flat("res", n, dtype, seed)[:size].reshape(shape)
    return a


def mask_elems(op: str, shape: Tuple[int, ...]) -> int:
    """Elements of the op's mask (its bits are moved at 1 bit each)."""
    n = int(np.prod(shape))
    if op in ("spatial_dropout", "feature_alpha_dropout"):
        return shape[0] * shape[1]
    if op == "variational_dropout":
        return shape[0] * shape[2]
    if op == "drop_path":
        return shape[0]
    if op == "embedding_dropout":
        return shape[0]
    if op in ("gaussian_dropout", "softmax_dropout"):
        return 0   # noise regenerated from the counter; the softmax keeps P instead
    return n


def bytes_moved(op: str, direction: str, n: int, dtype) -> Optional[int]:
    """Bytes the op must move at n elements of dtype (see the module docstring)."""
    if op == "mc_dropout":
        return None
    e = np.dtype(dtype).itemsize
    shape = OPS[op].shape(n)
    n = int(np.prod(shape))
    bits = (mask_elems(op, shape) + 7) // 8
    if op == "softmax_dropout":        # fwd: s in, y and P out; bwd: dy, P in, ds out
        return 3 * e * n
    if op == "bias_dropout_add":       # fwd: x, residual, bias in, y out; bwd: dy in, dx, dbias out
        extra = e * n if direction == "forward" else 0
        return 2 * e * n + extra + e * shape[-1] + bits
    return 2 * e * n + bits


# --------------------------------------------------------------------------- dropout_fast / numba
class _Api:
    """dropout_fast's calls through one backend: the C kernels, or the Numba
    reference computing the same API (the "numba" peer)."""

    def __init__(self, numba: bool):
        self.k = reference if numba else df._config.kernels
        self.numba = numba

    def forward(self, op, a, g):
        x, y, k = a["x"], a.get("y"), self.k
        if op == "dropout":
            f = reference.dropout_forward if self.numba else df.dropout_forward
            return lambda: f(x, P, rng=g, out=y)
        if op in VARIANT_OPTIONS:
            f = reference.forward if self.numba else df.forward
            return lambda: f(op, x, P, rng=g, out=y, **VARIANT_OPTIONS[op])
        if op == "gaussian_dropout":
            return lambda: _gaussian.gaussian_forward_impl(k, x, P, g, y, "recompute")
        if op == "drop_block":
            return lambda: _dropblock.drop_block_forward_impl(k, x, P, BLOCK, rng=g, out=y)
        if op == "embedding_dropout":
            emb = reference if self.numba else df
            return lambda: emb.embedding_dropout_forward(a["weight"], a["ids"], P, rng=g)
        if op == "softmax_dropout":
            return lambda: _softmax.softmax_forward_impl(k, x, P, -1, None, False, g, y,
                                                         "store", False)
        if op == "bias_dropout_add":
            return lambda: _fused.bias_dropout_add_forward_impl(k, x, a["bias"], a["res"], P,
                                                                g, y, "bits")
        if op == "mc_dropout":
            drop = reference.dropout if self.numba else df.dropout
            fn = lambda h, rng: drop(h, P, rng=rng)
            return lambda: df.mc.mc_sample(fn, x[None], MC_T, rng=g, batch=MC_T)
        raise KeyError(op)

    def backward(self, op, a, g):
        fwd = self.forward(op, a, g)
        if fwd is None:
            return None
        m = fwd()[1]
        dy, dx, k = a["dy"], a["dx"], self.k
        if op == "dropout" or op in VARIANT_OPTIONS:
            f = reference.dropout_backward if self.numba else df.backward
            return lambda: f(dy, m, out=dx)
        if op == "gaussian_dropout":
            return lambda: _gaussian.gaussian_backward_impl(k, dy, m, dx)
        if op == "drop_block":
            return lambda: _dropblock.drop_block_backward_impl(k, dy, m, dx)
        if op == "embedding_dropout":
            emb = reference if self.numba else df
            return lambda: emb.embedding_dropout_backward(dy, a["ids"], m)
        if op == "softmax_dropout":
            return lambda: _softmax.softmax_backward_impl(k, dy, m, None, dx)
        if op == "bias_dropout_add":
            return lambda: _fused.bias_dropout_add_backward_impl(k, dy, m, dx)
        raise KeyError(op)


def dropout_fast_impl(op: str, direction: str, a: dict, numba: bool = False):
    """A zero-argument callable running the op, or None where there is none."""
    api = _Api(numba)
    g = df.Generator(0)
    return api.forward(op, a, g) if direction == "forward" else api.backward(op, a, g)


def dropout_fast_alloc(op: str, a: dict):
    """Standard dropout's forward allocating its output, as most callers write it."""
    g = df.Generator(0)
    return lambda: df.dropout_forward(a["x"], P, rng=g)
