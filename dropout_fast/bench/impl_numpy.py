"""The numpy peer: what a user would write with numpy alone. Masks come from
``numpy.random.Generator.random`` (PCG64), kept as a float array of
0 / (1/(1-p)) for backward, the way a hand-written numpy network keeps them."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from dropout_fast._variants import SELU_ALPHA_PRIME
from dropout_fast.bench.ops import BLOCK, MC_T, VARIANT_OPTIONS, P

_NOISE = {
    "spatial_dropout": lambda s: s[:2] + (1,) * (len(s) - 2),
    "feature_alpha_dropout": lambda s: s[:2] + (1,) * (len(s) - 2),
    "variational_dropout": lambda s: (s[0], 1, s[2]),
    "drop_path": lambda s: (s[0],) + (1,) * (len(s) - 1),
    "drop_connect": lambda s: s,
    "alpha_dropout": lambda s: s,
}


def _alpha_coefs(dtype):
    """kept = a*x + b, dropped = a*(-alpha') + b (Klambauer et al. 2017; ATen's constants)."""
    alpha = SELU_ALPHA_PRIME
    a = 1.0 / ((alpha * alpha * P + 1.0) * (1.0 - P)) ** 0.5
    return dtype.type(a), dtype.type(alpha * a * P), dtype.type(-alpha)


def _drop_block_mask(rng, shape, dtype):
    """torchvision's drop_block2d in numpy: Bernoulli(gamma) seeds, each one
    dropping the block_size**2 block anchored at it, then numel / kept."""
    n, c, h, w = shape
    gamma = P * h * w / (BLOCK ** 2 * (h - BLOCK + 1) * (w - BLOCK + 1))
    seeds = rng.random((n, c, h - BLOCK + 1, w - BLOCK + 1)) < gamma
    pad = BLOCK - 1
    padded = np.pad(seeds, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dropped = sliding_window_view(padded, (BLOCK, BLOCK), axis=(2, 3)).max(axis=(-1, -2))
    keep = ~dropped[:, :, :h, :w]
    return keep * dtype.type(keep.size / (1e-6 + keep.sum()))


def forward(op: str, a: dict):
    """Forward that keeps what backward needs (returned in a dict `saved`)."""
    x = a.get("x")
    rng = np.random.default_rng(0)
    dtype = x.dtype
    scale = dtype.type(1 / (1 - P))
    saved = a.setdefault("_numpy", {})
    if op == "dropout" or op in ("spatial_dropout", "variational_dropout", "drop_path",
                                 "drop_connect"):
        noise = _NOISE.get(op, lambda s: s)(x.shape)

        def f():
            saved["mask"] = (rng.random(noise, dtype=dtype) >= P) * scale
            return np.multiply(x, saved["mask"], out=a["y"])
        return f
    if op in ("alpha_dropout", "feature_alpha_dropout"):
        noise = _NOISE[op](x.shape)
        ca, cb, alpha = _alpha_coefs(dtype)

        def f():
            keep = rng.random(noise, dtype=dtype) >= P
            saved["mask"] = keep * ca
            return np.add(np.where(keep, x, alpha) * ca, cb, out=a["y"])
        return f
    if op == "gaussian_dropout":
        sigma = (P / (1 - P)) ** 0.5

        def f():
            saved["mask"] = 1 + sigma * rng.standard_normal(x.shape, dtype=dtype)
            return np.multiply(x, saved["mask"], out=a["y"])
        return f
    if op == "drop_block":
        def f():
            saved["mask"] = _drop_block_mask(rng, x.shape, dtype)
            return np.multiply(x, saved["mask"], out=a["y"])
        return f
    if op == "embedding_dropout":
        w, ids = a["weight"], a["ids"]

        def f():
            saved["rows"] = (rng.random((w.shape[0], 1), dtype=dtype) >= P) * scale
            return w[ids] * saved["rows"][ids]
        return f
    if op == "softmax_dropout":
        def f():
            e = np.exp(x - x.max(axis=-1, keepdims=True))
            saved["P"] = e / e.sum(axis=-1, keepdims=True)
            saved["mask"] = (rng.random(x.shape, dtype=dtype) >= P) * scale
            return np.multiply(saved["P"], saved["mask"], out=a["y"])
        return f
    if op == "bias_dropout_add":
        def f():
            saved["mask"] = (rng.random(x.shape, dtype=dtype) >= P) * scale
            return np.add(a["res"], (x + a["bias"]) * saved["mask"], out=a["y"])
        return f
    if op == "mc_dropout":
        def f():
            mean = np.zeros(x.shape)
            sq = np.zeros(x.shape)
            for _ in range(MC_T):
                y = x * ((rng.random(x.shape, dtype=dtype) >= P) * scale)
                mean += y
                sq += np.square(y, dtype=np.float64)
            mean /= MC_T
            return mean, sq / MC_T - mean * mean
        return f
    raise KeyError(op)


def backward(op: str, a: dict):
    fwd = forward(op, a)
    if fwd is None:
        return None
    fwd()
    saved, dy, dx = a["_numpy"], a["dy"], a["dx"]
    if op in ("dropout", "gaussian_dropout", "drop_block") or op in VARIANT_OPTIONS:
        mask = saved["mask"]
        return lambda: np.multiply(dy, mask, out=dx)
    if op == "embedding_dropout":
        rows, ids = saved["rows"], a["ids"]

        def f():
            grad = np.zeros(a["weight"].shape, dy.dtype)
            np.add.at(grad, ids, dy)
            return np.multiply(grad, rows, out=grad)
        return f
    if op == "softmax_dropout":
        probs, mask = saved["P"], saved["mask"]

        def f():
            dp = dy * mask
            return np.multiply(probs, dp - (dp * probs).sum(axis=-1, keepdims=True), out=dx)
        return f
    if op == "bias_dropout_add":
        mask = saved["mask"]

        def f():
            np.multiply(dy, mask, out=dx)
            return dx, dx.sum(axis=0), dy
        return f
    raise KeyError(op)


def impl(op: str, direction: str, a: dict):
    return forward(op, a) if direction == "forward" else backward(op, a)
