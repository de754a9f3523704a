"""Functional forms of the ops with their own masks or fusions: DropBlock,
embedding dropout, softmax + dropout, bias + dropout + residual (re-exported by
`dropout_fast.torch.functional`)."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import Tensor

from dropout_fast._dropblock import _validate
from dropout_fast._fused import check_inputs
from dropout_fast._softmax import _Layout
from dropout_fast.api import check_p
from dropout_fast.torch import _ops_fused as ops
from dropout_fast.torch._bridge import FLOATS, check_tensor
from dropout_fast.torch._rng import draw_seed, stream_id
from dropout_fast.torch.functional import _check_flag, _check_mask, _result, table_variant

__all__ = ["drop_block2d", "drop_block3d", "drop_block", "embedding_dropout",
           "softmax_dropout", "bias_dropout_add"]


def _proxy(t: Optional[Tensor]) -> Optional[np.ndarray]:
    """A zero-byte numpy stand-in of t's shape (float32 for every float dtype) so
    that the numpy API's validators can check shapes without touching data.
    Callers skip it under torch.compile (numpy is not traced there): the ops run
    the same validators on the real data when the graph runs."""
    if t is None:
        return None
    dtype = np.float32 if t.dtype in FLOATS else (np.bool_ if t.dtype == torch.bool
                                                     else np.int64)
    return np.broadcast_to(np.zeros((), dtype), tuple(t.shape))


def drop_block(input: Tensor, p: float, block_size: int, training: bool = True,
               inplace: bool = False, *, data_format: str = "channels_first",
               eps: float = 1e-6, generator: Optional[torch.Generator] = None,
               mask: str = "bits") -> Tensor:
    """DropBlock (Ghiasi et al. 2018) with torchvision's geometry on a 4-D or 5-D input.

    Seeds drop with ``gamma = p*H*W / (bs**2 (H-bs+1)(W-bs+1))``, each seed drops
    the block anchored at it, survivors are scaled by ``numel / (eps + kept)``.
    A block larger than the map is a ValueError.

    Parameters
    ----------
    input : Tensor of shape (N, C, H, W) or (N, C, D, H, W), or channels last
    p : float
        Drop probability in [0, 1].
    block_size : int
        Edge of the dropped square (cube).
    training, inplace, generator
        As in `dropout`.
    data_format : {"channels_first", "channels_last"}
    eps : float, default 1e-6
    mask : {"bits", "recompute"}, default "bits"
        Keep 1 bit per element for backward, or regenerate the mask.

    Returns
    -------
    Tensor of input's shape and dtype
    """
    check_tensor(input, "input")
    if not torch.compiler.is_compiling():
        _validate(_proxy(input), p, block_size, data_format, eps, "input")
    _check_flag(training, "training")
    _check_flag(inplace, "inplace")
    _check_mask(mask)
    if not training:
        return input
    keep_bits = mask == "bits" and input.requires_grad and torch.is_grad_enabled()
    y = ops.drop_block_fwd(input, draw_seed(generator), stream_id(), float(p), int(block_size),
                           data_format, float(eps), keep_bits)[0]
    return _result(input, y, inplace)


def _torchvision(k: int, name: str):
    def fn(input: Tensor, p: float, block_size: int, inplace: bool = False, eps: float = 1e-6,
           training: bool = True, *, generator: Optional[torch.Generator] = None,
           mask: str = "bits") -> Tensor:
        check_tensor(input, "input")
        if input.dim() != k + 2:
            raise ValueError(f"input: {name} expects a {k + 2}-D input, got shape "
                             f"{tuple(input.shape)}")
        return drop_block(input, p, block_size, training, inplace, eps=eps,
                          generator=generator, mask=mask)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (f"As ``torchvision.ops.{name}(input, p, block_size, inplace, eps, "
                  f"training)``: `drop_block` of a {k + 2}-D channels-first input.")
    return fn


drop_block2d = _torchvision(2, "drop_block2d")
drop_block3d = _torchvision(3, "drop_block3d")


def embedding_dropout(weight: Tensor, ids: Optional[Tensor] = None, p: float = 0.1,
                      training: bool = True, *, generator: Optional[torch.Generator] = None
                      ) -> Tensor:
    """Word-level embedding dropout (AWD-LSTM): drop whole rows of a (V, D) weight.

    Parameters
    ----------
    weight : Tensor of shape (V, D)
        The embedding matrix; it gets the gradient.
    ids : integer Tensor of any shape, optional
        Token ids in [0, V).
    p : float, default 0.1
        Probability of dropping a row (a token id everywhere it occurs).
    training, generator
        As in `dropout`.

    Returns
    -------
    Tensor of shape ids.shape + (D,)
        ``weight[ids]`` under the row mask, survivors scaled by 1/(1-p); without
        `ids`, the masked (V, D) matrix. Backward keeps one bit per row.
    """
    check_tensor(weight, "weight")
    if weight.dim() != 2:
        raise ValueError(f"weight: expected a 2-D embedding matrix (V, D), got shape "
                         f"{tuple(weight.shape)}")
    p = check_p(p)
    _check_flag(training, "training")
    if ids is None:
        return table_variant("embedding_dropout", weight, p, training, False, generator, "bits",
                             name="weight")
    if not isinstance(ids, Tensor) or ids.dtype.is_floating_point or ids.dtype == torch.bool \
            or ids.dtype.is_complex:
        raise TypeError("ids: expected an integer tensor of token ids")
    if not training:
        return weight[ids]
    return ops.embedding_fwd(weight, ids, draw_seed(generator), stream_id(), p)[0]


def softmax_dropout(input: Tensor, p: float, dim: int = -1, training: bool = True, *,
                    attn_mask: Optional[Tensor] = None, is_causal: bool = False,
                    mode: str = "store", generator: Optional[torch.Generator] = None) -> Tensor:
    """``dropout(softmax(input + attn_mask, dim), p)`` in one pass (attention probabilities).

    Parameters
    ----------
    input : Tensor of shape (..., Lq, Lk)
        Attention scores.
    p : float
        Drop probability in [0, 1].
    dim : int, default -1
        The softmax axis.
    training : bool, default True
        When False, the plain softmax.
    attn_mask : Tensor, optional
        Additive (the input's dtype; -inf excludes a key) or boolean (True = attend),
        broadcastable, as in ``scaled_dot_product_attention``; it gets no gradient.
    is_causal : bool, default False
        Mask keys after the query (needs dim=-1).
    mode : {"store", "recompute"}, default "store"
        "store" keeps P for backward (input.numel() floats, the mask in its sign
        bits); "recompute" keeps the scores (no new memory) and recomputes P.
    generator : torch.Generator, optional

    Returns
    -------
    Tensor of input's shape and dtype
    """
    check_tensor(input, "input")
    p = check_p(p)
    _check_flag(training, "training")
    if mode not in ("store", "recompute"):
        raise ValueError(f"mode: expected 'store' or 'recompute', got {mode!r}")
    if attn_mask is not None:
        if not isinstance(attn_mask, Tensor):
            raise TypeError(f"attn_mask: expected a tensor, got {type(attn_mask).__name__}")
        if attn_mask.dtype != torch.bool and attn_mask.dtype != input.dtype:
            raise TypeError(f"attn_mask: expected a bool tensor or the input's dtype "
                            f"{input.dtype}, got {attn_mask.dtype}")
        attn_mask = attn_mask.detach()
    if torch.compiler.is_compiling():
        axis = dim % input.dim()
    else:
        axis = _Layout(_proxy(input), dim, _proxy(attn_mask), is_causal).axis
    if not training:
        p = 0.0
    return ops.softmax_dropout_fwd(input, draw_seed(generator) if training else
                                   torch.zeros((), dtype=torch.int64), stream_id(), p,
                                   axis, attn_mask, bool(is_causal), mode == "store")[0]


def bias_dropout_add(x: Tensor, bias: Optional[Tensor], residual: Tensor, p: float,
                     training: bool = True, *, generator: Optional[torch.Generator] = None,
                     mask: str = "bits") -> Tensor:
    """``residual + dropout(x + bias, p)`` in one pass (Megatron-LM's fusion).

    Parameters
    ----------
    x : Tensor of shape (..., C)
    bias : Tensor of shape (C,), or None
    residual : Tensor broadcastable to x's shape
    p : float
        Drop probability in [0, 1].
    training : bool, default True
        When False, ``residual + (x + bias)``.
    generator : torch.Generator, optional
    mask : {"bits", "recompute"}, default "bits"
        Keep 1 bit per element of x for backward, or nothing.

    Returns
    -------
    Tensor of x's shape and dtype
        Gradients flow to x, bias and residual.
    """
    check_tensor(x, "x")
    check_tensor(residual, "residual")
    if bias is not None:
        check_tensor(bias, "bias")
    for name, t in (("bias", bias), ("residual", residual)):
        if t is not None and t.dtype != x.dtype:
            raise TypeError(f"{name}: expected x's dtype {x.dtype}, got {t.dtype}")
    if not torch.compiler.is_compiling():
        check_inputs(_proxy(x), _proxy(bias), _proxy(residual))
    p = check_p(p)
    _check_flag(training, "training")
    _check_mask(mask)
    if not training:
        return residual + (x if bias is None else x + bias)
    needs = any(t is not None and t.requires_grad for t in (x, bias, residual))
    keep_bits = mask == "bits" and needs and torch.is_grad_enabled()
    return ops.bias_dropout_add_fwd(x, bias, residual, draw_seed(generator), stream_id(), p,
                                    keep_bits)[0]
