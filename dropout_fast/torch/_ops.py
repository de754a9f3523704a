"""The ops of the variant table (one broadcast-mask core) and Gaussian dropout.

Every op takes the mask's seed as a 0-d int64 tensor and its stream (the
counter word b2, see _rng.py) as an int, and `perm`, the memory order the
kernels walk (see _bridge.py); the mask's flat index is over the permuted
noise shape, which for a C-contiguous input is the numpy API's logical index.
"""
from __future__ import annotations

import math
from typing import List, Tuple

import numpy as np
import torch
from torch import Tensor

from dropout_fast import _config
from dropout_fast.api import draw_bits, threshold
from dropout_fast.torch._bridge import Output, as_kernel_array, empty_perm, permuted
from dropout_fast.torch._registry import define


def key_of(seed: Tensor) -> Tuple[int, int]:
    s = int(seed)
    return s & 0xFFFFFFFF, s >> 32


def _no_bits(x: Tensor) -> Tensor:
    return x.new_empty(0, dtype=torch.uint8)


# --------------------------------------------------------------------------- the table's core
def _masked_fake(x, seed, stream, p, noise_shape, perm, a, b, c, keep_bits):
    y = empty_perm(x.shape, perm, x.dtype, fake=True)
    nb = (math.prod(noise_shape) + 7) // 8 if keep_bits else 0
    return y, x.new_empty(nb, dtype=torch.uint8)


def _masked_setup(ctx, inputs, output):
    x, seed, stream, p, noise_shape, perm, a, b, c, keep_bits = inputs
    ctx.mark_non_differentiable(output[1])
    ctx.save_for_backward(output[1], seed)
    ctx.args = (stream, p, noise_shape, perm, a)


def _masked_backward(ops, ctx, dy, _dbits):
    bits, seed = ctx.saved_tensors
    dx = ops.masked_bwd(dy, bits, seed, *ctx.args)
    return dx, None, None, None, None, None, None, None, None, None


@define("masked_fwd", _masked_fake, _masked_setup, _masked_backward)
def masked_fwd(x: Tensor, seed: Tensor, stream: int, p: float, noise_shape: List[int],
               perm: List[int], a: float, b: float, c: float,
               keep_bits: bool) -> Tuple[Tensor, Tensor]:
    """y = keep ? a*x + b : c, keep drawn over noise_shape (broadcast), as the numpy
    engine (api.forward_impl) computes it; bits = the packed mask when keep_bits."""
    k, nt, isa = _config.kernels, _config.nthreads, _config.isa
    src = as_kernel_array(x, perm)
    out = Output(x.shape, perm, x.dtype)
    nshape = permuted(noise_shape, perm)
    count = math.prod(nshape)
    key = key_of(seed)
    bits = None
    if nshape == src.shape and b == 0.0 and c == 0.0:
        # The fused pass: mask, scale and the bit write in one sweep.
        bits = np.empty((count + 7) // 8, np.uint8) if keep_bits else None
        if src.size:
            k.fwd(src.reshape(-1), out.array.reshape(-1), bits, key[0], key[1], 0, stream,
                  threshold(p), a, nt, isa)
    else:
        bits = draw_bits(k, key, stream << 64, count, p)
        if src.size:
            k.bcast_apply(src.reshape(-1), out.array.reshape(-1), bits, src.shape, nshape,
                          a, b, c, nt, isa)
    y = out.finish()
    return y, (torch.from_numpy(bits) if keep_bits else _no_bits(x))


def _masked_bwd_fake(dy, bits, seed, stream, p, noise_shape, perm, a):
    return empty_perm(dy.shape, perm, dy.dtype, fake=True)


def _masked_bwd_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[1], inputs[2])
    ctx.args = inputs[3:]


def _masked_bwd_backward(ops, ctx, ddx):
    bits, seed = ctx.saved_tensors
    return ops.masked_bwd(ddx, bits, seed, *ctx.args), None, None, None, None, None, None, None


@define("masked_bwd", _masked_bwd_fake, _masked_bwd_setup, _masked_bwd_backward)
def masked_bwd(dy: Tensor, bits: Tensor, seed: Tensor, stream: int, p: float,
               noise_shape: List[int], perm: List[int], a: float) -> Tensor:
    """dx = keep ? a*dy : 0 with the forward's mask: from `bits`, or regenerated
    from (seed, stream) when bits is empty (recompute mode)."""
    k, nt, isa = _config.kernels, _config.nthreads, _config.isa
    src = as_kernel_array(dy, perm)
    out = Output(dy.shape, perm, dy.dtype)
    nshape = permuted(noise_shape, perm)
    count = math.prod(nshape)
    if src.size:
        s, d = src.reshape(-1), out.array.reshape(-1)
        stored = bits.numel() > 0 or count == 0
        if nshape == src.shape and stored:
            k.bwd_bits(s, d, bits.numpy(), a, nt, isa)
        elif nshape == src.shape:
            key = key_of(seed)
            k.fwd(s, d, None, key[0], key[1], 0, stream, threshold(p), a, nt, isa)
        else:
            b = bits.numpy() if stored else draw_bits(k, key_of(seed), stream << 64, count, p)
            k.bcast_apply(s, d, b, src.shape, nshape, a, 0.0, 0.0, nt, isa)
    return out.finish()


# --------------------------------------------------------------------------- Gaussian dropout
def _gaussian_fake(x, seed, stream, sigma, perm):
    return empty_perm(x.shape, perm, x.dtype, fake=True)


def _gaussian_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[1])
    ctx.args = inputs[2:]


def _gaussian_backward(ops, ctx, dy):
    # y = x * m elementwise, so dx = dy * m: the same op on dy regenerates m.
    (seed,) = ctx.saved_tensors
    return ops.gaussian(dy, seed, *ctx.args), None, None, None, None


@define("gaussian", _gaussian_fake, _gaussian_setup, _gaussian_backward)
def gaussian(x: Tensor, seed: Tensor, stream: int, sigma: float, perm: List[int]) -> Tensor:
    """y = x * (1 + sigma * z), z the normals of streams 2..5 (the stream contract)."""
    src = as_kernel_array(x, perm)
    out = Output(x.shape, perm, x.dtype)
    if src.size:
        if sigma == 0.0:
            np.copyto(out.array, src)
        else:
            key = key_of(seed)
            _config.kernels.gaussian_fwd(src.reshape(-1), out.array.reshape(-1), key[0], key[1],
                                         0, stream, sigma, _config.nthreads, _config.isa)
    return out.finish()
