"""The PyTorch peers: eager (``torch.nn.functional`` where it has the op, else
the code people write: timm's drop_path, AWD-LSTM's embedded_dropout,
torchvision's drop_block2d) with autograd's backward, and ``torch.compile`` of
the very same functions (inductor generates one fused loop per graph, its own
random numbers included).

Forward runs with requires_grad inputs, so it saves what backward needs, as in
training; backward is ``torch.autograd.grad`` on a graph built once
(retain_graph=True), which runs exactly the backward kernels.
"""
from __future__ import annotations

import math

from dropout_fast.bench.ops import BLOCK, MC_T, P

_COMPILED: dict = {}   # op -> torch.compile of its function, shared by every case of a run


def _compiled(torch, op, fn):
    """One torch.compile per op, with dynamic shapes from the start: sizes then
    reuse the graph; dynamo recompiles by itself when the dtype or the thread
    count (a guard) changes."""
    if op not in _COMPILED:
        # retain_graph=True (one graph, backward replayed) needs donated buffers off;
        # they only let backward reuse saved tensors' memory.
        import torch._functorch.config as functorch_config

        functorch_config.donated_buffer = False
        _COMPILED[op] = torch.compile(fn, dynamic=True)
    return _COMPILED[op]


def _functions(torch):
    F = torch.nn.functional
    q = 1 - P

    def drop_path(x):
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(q)
        return x * keep.div_(q)

    def variational(x):
        keep = x.new_empty((x.shape[0], 1, x.shape[2])).bernoulli_(q)
        return x * keep.div_(q)

    def drop_block(x):
        n, c, h, w = x.shape
        gamma = P * h * w / (BLOCK ** 2 * ((h - BLOCK + 1) * (w - BLOCK + 1)))
        noise = x.new_empty((n, c, h - BLOCK + 1, w - BLOCK + 1)).bernoulli_(gamma)
        noise = F.pad(noise, [BLOCK // 2] * 4, value=0)
        noise = F.max_pool2d(noise, stride=(1, 1), kernel_size=(BLOCK, BLOCK),
                             padding=BLOCK // 2)
        noise = 1 - noise
        return x * noise * (noise.numel() / (1e-6 + noise.sum()))

    def embedding(weight, ids):
        mask = weight.new_empty((weight.shape[0], 1)).bernoulli_(q) / q
        return F.embedding(ids, mask * weight)

    sigma = math.sqrt(P / (1 - P))
    return {
        "dropout": lambda x: F.dropout(x, P, True),
        "spatial_dropout": lambda x: F.dropout2d(x, P, True),
        "variational_dropout": variational,
        "drop_path": drop_path,
        "drop_connect": lambda w: F.dropout(w, P, True),
        "alpha_dropout": lambda x: F.alpha_dropout(x, P, True),
        "feature_alpha_dropout": lambda x: F.feature_alpha_dropout(x, P, True),
        "gaussian_dropout": lambda x: x * (1 + sigma * torch.randn_like(x)),
        "drop_block": drop_block,
        "embedding_dropout": embedding,
        "softmax_dropout": lambda s: F.dropout(F.softmax(s, -1), P, True),
        "bias_dropout_add": lambda x, b, r: r + F.dropout(x + b, P, True),
    }


def _args(torch, op, a, grad: bool):
    t = lambda v: torch.from_numpy(v).requires_grad_(grad)
    if op == "embedding_dropout":
        return [t(a["weight"]), torch.from_numpy(a["ids"])], 1
    if op == "bias_dropout_add":
        return [t(a["x"]), t(a["bias"]), t(a["res"])], 3
    return [t(a["x"])], 1


def impl(op: str, direction: str, a: dict, compiled: bool = False):
    import torch

    F = torch.nn.functional
    if op == "mc_dropout":
        x = torch.from_numpy(a["x"])

        def mc(x):
            ys = torch.stack([F.dropout(x, P, True) for _ in range(MC_T)])
            return ys.mean(0), ys.var(0, unbiased=False)
        fn = _compiled(torch, op, mc) if compiled else mc

        def f():
            with torch.no_grad():
                return fn(x)
        return f
    fn = _functions(torch)[op]
    if compiled:
        fn = _compiled(torch, op, fn)
    args, ngrad = _args(torch, op, a, True)
    if direction == "forward":
        return lambda: fn(*args)
    y = fn(*args)
    dy = torch.from_numpy(a["dy"])
    return lambda: torch.autograd.grad(y, args[:ngrad], dy, retain_graph=True)
