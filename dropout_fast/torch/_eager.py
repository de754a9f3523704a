"""The eager fast path of the variant table for C-contiguous float32/float64
tensors: the same kernels and arguments as ``_ops.masked_fwd``/``masked_bwd``
(so the same bits), minus the generic layout and dtype handling and the
custom-op dispatch, whose per-call Python cost small tensors would notice.
"""
from __future__ import annotations

import math
import threading

import numpy as np
import torch

from dropout_fast import _config
from dropout_fast.api import draw_bits, threshold
from dropout_fast.torch._bridge import NUMPY_ALLOC_BYTES

_LOCAL = threading.local()  # one scratch seed tensor per thread: calls may run concurrently


def draw_seed_int(generator) -> int:
    """As _rng.draw_seed, returned as a Python int (one draw into a reused tensor, read
    through its numpy view, which is much cheaper than Tensor.__int__)."""
    if generator is None:
        slot = getattr(_LOCAL, "seed", None)
        if slot is None:
            t = torch.empty((), dtype=torch.int64)
            slot = _LOCAL.seed = (t, t.numpy())
        slot[0].random_()
        return int(slot[1])
    from dropout_fast.torch._rng import draw_seed
    return int(draw_seed(generator))


def _new(like: np.ndarray):
    """(tensor, its numpy view), a new array like `like`: numpy's (huge pages) from
    NUMPY_ALLOC_BYTES up, torch's allocator below, as _bridge.empty decides."""
    if like.nbytes >= NUMPY_ALLOC_BYTES:
        a = np.empty(like.shape, like.dtype)
        return torch.from_numpy(a), a
    t = torch.empty(like.shape, dtype=_TORCH_DTYPE[like.dtype.char])
    return t, t.numpy()


_TORCH_DTYPE = {"f": torch.float32, "d": torch.float64}


def forward(xa: np.ndarray, seed: int, stream: int, p: float, nshape: tuple, a: float,
            b: float, c: float, keep_bits: bool, out: np.ndarray = None):
    """(y tensor or None, bits or None) for a C-contiguous array xa; see _ops.masked_fwd.
    `out` may be xa itself (the kernels allow that alias); y is then None."""
    k, nt, isa = _config.kernels, _config.nthreads, _config.isa
    yt, y = _new(xa) if out is None else (None, out)
    count = math.prod(nshape)
    k0, k1 = seed & 0xFFFFFFFF, seed >> 32
    if nshape == xa.shape and b == 0.0 and c == 0.0:
        bits = np.empty((count + 7) // 8, np.uint8) if keep_bits else None
        if xa.size:
            k.fwd(xa, y, bits, k0, k1, 0, stream, threshold(p), a, nt,
                  isa)
    else:
        bits = draw_bits(k, (k0, k1), stream << 64, count, p)
        if xa.size:
            k.bcast_apply(xa, y, bits, xa.shape, nshape, a, b, c, nt,
                          isa)
        if not keep_bits:
            bits = None
    return yt, bits


def backward(da: np.ndarray, bits, seed: int, stream: int, p: float, nshape: tuple,
             a: float) -> np.ndarray:
    """dx (a tensor) for a C-contiguous gradient; see _ops.masked_bwd."""
    k, nt, isa = _config.kernels, _config.nthreads, _config.isa
    dxt, dx = _new(da)
    if da.size:
        s, d = da, dx  # the kernels take any C-contiguous array
        if nshape == da.shape and bits is not None:
            k.bwd_bits(s, d, bits, a, nt, isa)
        elif nshape == da.shape:
            k.fwd(s, d, None, seed & 0xFFFFFFFF, seed >> 32, 0, stream, threshold(p), a, nt, isa)
        else:
            if bits is None:
                bits = draw_bits(k, (seed & 0xFFFFFFFF, seed >> 32), stream << 64,
                                 math.prod(nshape), p)
            k.bcast_apply(s, d, bits, da.shape, nshape, a, 0.0, 0.0, nt, isa)
    return dxt


class TableFunction(torch.autograd.Function):
    """Autograd for the fast path; saves the packed bits as a uint8 tensor (visible to
    saved_tensors_hooks) or, in recompute mode, nothing. The options travel as one
    tuple: Function.apply costs time per argument."""

    @staticmethod
    def forward(ctx, x, spec):
        seed, stream, p, nshape, a, b, c, keep_bits = spec
        y, bits = forward(x.detach().numpy(), seed, stream, p, nshape, a, b, c, keep_bits)
        if bits is not None:
            ctx.save_for_backward(torch.from_numpy(bits))
        ctx.spec = spec
        return y

    @staticmethod
    def backward(ctx, dy):
        seed, stream, p, nshape, a, b, c, stored = ctx.spec
        if torch.is_grad_enabled():  # double backward: dx is linear in dy with the same mask
            bits_t = ctx.saved_tensors[0] if stored else torch.empty(0, dtype=torch.uint8)
            return TableBackward.apply(dy, bits_t, ctx.spec), None
        bits = ctx.saved_tensors[0].numpy() if stored else None
        if not dy.is_contiguous():
            dy = dy.contiguous()
        return backward(dy.numpy(), bits, seed, stream, p, nshape, a), None


class TableBackward(torch.autograd.Function):
    """dx = keep ? a*dy : 0 as a differentiable function of dy (for double backward)."""

    @staticmethod
    def forward(ctx, dy, bits_t, spec):
        ctx.save_for_backward(bits_t)
        ctx.spec = spec
        seed, stream, p, nshape, a = spec[:5]
        bits = bits_t.numpy() if bits_t.numel() else None
        return backward(dy.detach().contiguous().numpy(), bits, seed, stream, p, nshape, a)

    @staticmethod
    def backward(ctx, ddx):
        (bits_t,) = ctx.saved_tensors
        return TableBackward.apply(ddx, bits_t, ctx.spec), None, None


# torch.autograd.Function.apply is a Python wrapper around the C++ apply that only
# matters under functorch transforms (vmap, grad) or with a setup_context staticmethod
# (TableFunction has none); outside transforms calling the C++ apply directly saves
# several microseconds per call, which is most of a small tensor's dropout.
_C_APPLY = super(torch.autograd.Function, TableFunction).apply


def run(x, generator, stream: int, p: float, nshape: tuple, a: float, b: float, c: float,
        mask: str, inplace: bool):
    """The table variant on a C-contiguous float32/float64 tensor, eagerly. In place
    without autograd the kernel writes over x itself (and bumps its version)."""
    seed = draw_seed_int(generator)
    if torch.is_grad_enabled() and x.requires_grad:
        spec = (seed, stream, p, nshape, a, b, c, mask == "bits")
        y = (TableFunction.apply(x, spec) if torch._C._are_functorch_transforms_active()
             else _C_APPLY(x, spec))
        return x.copy_(y) if inplace else y  # torch's in-place rules (leaf error, versions)
    xa = x.detach().numpy()
    if inplace:
        forward(xa, seed, stream, p, nshape, a, b, c, False, out=xa)
        if not x.is_inference():  # inference tensors have no version counter
            torch.autograd.graph.increment_version(x)
        return x
    return forward(xa, seed, stream, p, nshape, a, b, c, False)[0]
