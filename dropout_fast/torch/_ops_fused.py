"""Ops with their own masks or fusions: DropBlock, embedding dropout, softmax +
dropout, bias + dropout + residual. Each runs the numpy engine on zero-copy
views of C-ordered tensors (logical order: these masks follow the numpy API's
index exactly) and keeps for backward what the numpy API's mask objects hold.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from dropout_fast import _config
from dropout_fast._dropblock import (DropBlockMask, _seed_probability, _spatial_axes,
                                     drop_block_backward_impl, drop_block_forward_impl)
from dropout_fast._fused import (BiasDropoutAddMask, bias_dropout_add_backward_impl,
                                 bias_dropout_add_forward_impl)
from dropout_fast._softmax import (SoftmaxDropoutMask, _Layout, softmax_backward_impl,
                                   softmax_forward_impl)
from dropout_fast.api import DropoutMask
from dropout_fast.torch._bridge import VIA_FLOAT32, as_kernel_array
from dropout_fast.torch._ops import key_of
from dropout_fast.torch._registry import define
from dropout_fast.torch._rng import numpy_generator


def _arr(t: Optional[Tensor]) -> Optional[np.ndarray]:
    """t as a C-ordered float32/float64 (or bool/int) numpy array, a view when possible."""
    if t is None:
        return None
    if t.dtype.is_floating_point:
        return as_kernel_array(t, list(range(t.dim())))
    return t.detach().contiguous().numpy()


def _tensor(a: np.ndarray, dtype: torch.dtype) -> Tensor:
    """A numpy result as a tensor of `dtype` (zero-copy for float32/float64)."""
    t = torch.from_numpy(a)
    return t.to(dtype) if dtype in VIA_FLOAT32 else t


def _none_grads(n: int):
    return (None,) * n


# --------------------------------------------------------------------------- DropBlock
def _db_fake(x, seed, stream, p, block_size, data_format, eps, keep_bits):
    nb = (x.numel() + 7) // 8 if keep_bits else 0
    return (torch.empty(x.shape, dtype=x.dtype), x.new_empty(nb, dtype=torch.uint8),
            x.new_empty((), dtype=torch.float64))


def _db_setup(ctx, inputs, output):
    ctx.mark_non_differentiable(output[1], output[2])
    ctx.save_for_backward(output[1], output[2], inputs[1])
    ctx.args = inputs[2:7]


def _db_backward(ops, ctx, dy, _b, _s):
    bits, scale, seed = ctx.saved_tensors
    return (ops.drop_block_bwd(dy, bits, scale, seed, *ctx.args),) + _none_grads(7)


@define("drop_block_fwd", _db_fake, _db_setup, _db_backward)
def drop_block_fwd(x: Tensor, seed: Tensor, stream: int, p: float, block_size: int,
                   data_format: str, eps: float, keep_bits: bool
                   ) -> Tuple[Tensor, Tensor, Tensor]:
    """DropBlock (torchvision's geometry) through the numpy engine; returns (y, bits, scale)."""
    y, m = drop_block_forward_impl(_config.kernels, _arr(x), p, block_size, data_format, eps,
                                   numpy_generator(int(seed), stream), None, "bits")
    bits = torch.from_numpy(m.bits) if keep_bits else x.new_empty(0, dtype=torch.uint8)
    return _tensor(y, x.dtype), bits, torch.tensor(m.scale, dtype=torch.float64)


def _db_bwd_fake(dy, bits, scale, seed, stream, p, block_size, data_format, eps):
    return torch.empty(dy.shape, dtype=dy.dtype)


@define("drop_block_bwd", _db_bwd_fake)
def drop_block_bwd(dy: Tensor, bits: Tensor, scale: Tensor, seed: Tensor, stream: int,
                   p: float, block_size: int, data_format: str, eps: float) -> Tensor:
    shape = tuple(dy.shape)
    axes = _spatial_axes(shape, data_format, block_size, "dy")
    gamma = _seed_probability(p, tuple(shape[a] for a in axes), block_size)
    m = DropBlockMask(p, gamma, shape, block_size, data_format, key_of(seed), stream << 64,
                      float(scale), bits.numpy() if bits.numel() else None)
    return _tensor(drop_block_backward_impl(_config.kernels, _arr(dy), m), dy.dtype)


# --------------------------------------------------------------------------- embedding dropout
def _emb_fake(weight, ids, seed, stream, p):
    return (weight.new_empty(tuple(ids.shape) + (weight.shape[1],)),
            weight.new_empty((weight.shape[0] + 7) // 8, dtype=torch.uint8))


def _emb_setup(ctx, inputs, output):
    weight, ids, seed, stream, p = inputs
    ctx.mark_non_differentiable(output[1])
    ctx.save_for_backward(ids, output[1], seed)
    ctx.args = (stream, p, weight.shape[0])


def _emb_backward(ops, ctx, dout, _db):
    ids, bits, seed = ctx.saved_tensors
    return (ops.embedding_bwd(dout, ids, bits, seed, *ctx.args),) + _none_grads(4)


@define("embedding_fwd", _emb_fake, _emb_setup, _emb_backward)
def embedding_fwd(weight: Tensor, ids: Tensor, seed: Tensor, stream: int,
                  p: float) -> Tuple[Tensor, Tensor]:
    """weight[ids] under a row mask of the (V, D) weight; returns (out, row bits)."""
    from dropout_fast.variants import embedding_dropout_forward
    out, m = embedding_dropout_forward(_arr(weight), _arr(ids), p,
                                       rng=numpy_generator(int(seed), stream))
    return _tensor(out, weight.dtype), torch.from_numpy(m.bits)


def _emb_bwd_fake(dout, ids, bits, seed, stream, p, vocab):
    return dout.new_empty((vocab, dout.shape[-1]))


@define("embedding_bwd", _emb_bwd_fake)
def embedding_bwd(dout: Tensor, ids: Tensor, bits: Tensor, seed: Tensor, stream: int, p: float,
                  vocab: int) -> Tensor:
    from dropout_fast.variants import embedding_dropout_backward
    dim = dout.shape[-1]
    m = DropoutMask(p, (vocab, dim), key_of(seed), stream << 64, bits.numpy(), (vocab, 1),
                    "embedding_dropout")
    return _tensor(embedding_dropout_backward(_arr(dout), _arr(ids), m), dout.dtype)


# --------------------------------------------------------------------------- softmax + dropout
def _kernel_shape(shape, dim: int) -> list:
    shape = list(shape)
    return shape[:dim] + shape[dim + 1:] + [shape[dim]]


def _sd_fake(scores, seed, stream, p, dim, attn_mask, is_causal, store):
    kshape = _kernel_shape(scores.shape, dim)
    y = torch.empty(kshape, dtype=scores.dtype).movedim(-1, dim)
    pdtype = torch.float32 if scores.dtype in VIA_FLOAT32 else scores.dtype
    probs = scores.new_empty(kshape if store else [0], dtype=pdtype)
    return y, probs


def _sd_setup(ctx, inputs, output):
    scores, seed, stream, p, dim, attn_mask, is_causal, store = inputs
    ctx.mark_non_differentiable(output[1])
    kept = output[1] if store else scores
    ctx.save_for_backward(kept, seed, attn_mask)
    ctx.args = (stream, p, dim, is_causal, store)


def _sd_backward(ops, ctx, dy, _dp):
    kept, seed, attn_mask = ctx.saved_tensors
    ds = ops.softmax_dropout_bwd(dy, kept, seed, attn_mask, *ctx.args)
    return (ds,) + _none_grads(7)


@define("softmax_dropout_fwd", _sd_fake, _sd_setup, _sd_backward)
def softmax_dropout_fwd(scores: Tensor, seed: Tensor, stream: int, p: float, dim: int,
                        attn_mask: Optional[Tensor], is_causal: bool,
                        store: bool) -> Tuple[Tensor, Tensor]:
    """dropout(softmax(scores + mask)) in one pass; returns (y, P sign-marked or empty)."""
    y, m = softmax_forward_impl(_config.kernels, _arr(scores), p, dim, _arr(attn_mask),
                                is_causal, numpy_generator(int(seed), stream), None,
                                "store" if store else "recompute", False)
    probs = torch.from_numpy(m._probs) if store else scores.new_empty(0)
    return _tensor(y, scores.dtype), probs


def _sd_bwd_fake(dy, kept, seed, attn_mask, stream, p, dim, is_causal, store):
    return torch.empty(_kernel_shape(dy.shape, dim), dtype=dy.dtype).movedim(-1, dim)


@define("softmax_dropout_bwd", _sd_bwd_fake)
def softmax_dropout_bwd(dy: Tensor, kept: Tensor, seed: Tensor, attn_mask: Optional[Tensor],
                        stream: int, p: float, dim: int, is_causal: bool,
                        store: bool) -> Tensor:
    """ds from the stored P (store) or from the scores again (recompute)."""
    g = _arr(dy)
    lay_mask = None
    scores = None
    if not store:
        scores = _arr(kept)
        lay_mask = _Layout(scores, dim, _arr(attn_mask), is_causal).mask
    probs = _arr(kept) if store else None
    m = SoftmaxDropoutMask(p, g.shape, g.dtype, dim, is_causal, "store" if store else "recompute",
                           key_of(seed), stream << 64, None, lay_mask, probs)
    return _tensor(softmax_backward_impl(_config.kernels, g, m, scores, None), dy.dtype)


# --------------------------------------------------------------------------- bias + dropout + add
def _bda_fake(x, bias, residual, seed, stream, p, keep_bits):
    nb = (x.numel() + 7) // 8 if keep_bits else 0
    return torch.empty(x.shape, dtype=x.dtype), x.new_empty(nb, dtype=torch.uint8)


def _bda_setup(ctx, inputs, output):
    x, bias, residual, seed, stream, p, keep_bits = inputs
    ctx.mark_non_differentiable(output[1])
    ctx.save_for_backward(output[1], seed)
    ctx.args = (stream, p, -1 if bias is None else bias.shape[0])
    ctx.residual_shape = residual.shape


def _bda_backward(ops, ctx, dy, _db):
    bits, seed = ctx.saved_tensors
    dx, dbias = ops.bias_dropout_add_bwd(dy, bits, seed, *ctx.args)
    dres = dy if ctx.residual_shape == dy.shape else dy.sum_to_size(ctx.residual_shape)
    return dx, (dbias if ctx.args[2] >= 0 else None), dres, None, None, None, None


@define("bias_dropout_add_fwd", _bda_fake, _bda_setup, _bda_backward)
def bias_dropout_add_fwd(x: Tensor, bias: Optional[Tensor], residual: Tensor, seed: Tensor,
                         stream: int, p: float, keep_bits: bool) -> Tuple[Tensor, Tensor]:
    """residual + dropout(x + bias) in one pass (Megatron-LM's fusion); returns (y, bits)."""
    y, m = bias_dropout_add_forward_impl(_config.kernels, _arr(x), _arr(bias), _arr(residual),
                                         p, numpy_generator(int(seed), stream), None,
                                         "bits" if keep_bits else "recompute")
    bits = torch.from_numpy(m.bits) if keep_bits else x.new_empty(0, dtype=torch.uint8)
    return _tensor(y, x.dtype), bits


def _bda_bwd_fake(dy, bits, seed, stream, p, bias_size):
    return torch.empty(dy.shape, dtype=dy.dtype), dy.new_empty(max(bias_size, 0))


@define("bias_dropout_add_bwd", _bda_bwd_fake)
def bias_dropout_add_bwd(dy: Tensor, bits: Tensor, seed: Tensor, stream: int, p: float,
                         bias_size: int) -> Tuple[Tensor, Tensor]:
    g = _arr(dy)
    m = BiasDropoutAddMask(p, g.shape, key_of(seed), stream << 64,
                           bits.numpy() if bits.numel() else None,
                           None if bias_size < 0 else bias_size, g.shape, g.dtype)
    dx, dbias, _ = bias_dropout_add_backward_impl(_config.kernels, g, m, None)
    dbias_t = _tensor(dbias, dy.dtype) if dbias is not None else dy.new_empty(0)
    return _tensor(dx, dy.dtype), dbias_t


