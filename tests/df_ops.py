"""Every public op as one callable over fixed inputs, for the concurrency and
memory tests (test_concurrency.py, test_memory.py, memory_soak.py).

``OPS[name](inputs, g)`` runs the op's forward with Generator `g` and, where it
has one, its backward, and returns the arrays it produced (outputs, mask bits,
gradients): the same inputs and Generator state give the same arrays.
"""
import numpy as np

import dropout_fast as df
from dropout_fast.mc import mc_sample


def make_inputs(dtype=np.float32, seed=0, n=4, c=6, h=10, w=12):
    """Arrays for every op: an (N, C, H, W) batch, a sequence, an embedding..."""
    rng = np.random.default_rng(seed)

    def normal(*shape):
        return rng.standard_normal(shape).astype(dtype)
    return {
        "x": normal(n, c, h, w), "dy": normal(n, c, h, w), "res": normal(n, c, h, w),
        "bias": normal(w), "seq": normal(n, h, w), "weight": normal(3 * w, c),
        "ids": rng.integers(0, 3 * w, size=(n, h)), "mlp": normal(w, w),
    }


def _fb(forward, dy, backward=df.backward):
    """[y, the mask's packed bits, backward(dy, mask)] of a (y, mask) pair."""
    y, m = forward
    packed = m.packed() if hasattr(m, "packed") else None
    return [y, packed, backward(dy, m)]


def _softmax(a, g):
    y, m = df.softmax_dropout_forward(a["x"], 0.1, rng=g, is_causal=True)
    yr, mr = df.softmax_dropout_forward(a["x"], 0.1, rng=g, mode="recompute")
    return [y, df.softmax_dropout_backward(a["dy"], m), yr,
            df.softmax_dropout_backward(a["dy"], mr, scores=a["x"])]


def _bias_dropout_add(a, g):
    y, m = df.bias_dropout_add_forward(a["x"], a["bias"], a["res"], 0.1, rng=g)
    dx, dbias, _ = df.bias_dropout_add_backward(a["dy"], m)
    return [y, m.bits, dx, dbias]


def _embedding(a, g):
    out, m = df.embedding_dropout_forward(a["weight"], a["ids"], 0.2, rng=g)
    dout = np.ones_like(out)
    return [out, m.bits, df.embedding_dropout_backward(dout, a["ids"], m)]


def _mc(a, g):
    w = a["mlp"]
    stats = mc_sample(lambda x, rng: df.dropout(x @ w, 0.2, rng=rng), a["seq"][0], 4, rng=g,
                      batch=2)
    return [stats.mean, stats.variance()]


OPS = {
    "dropout": lambda a, g: _fb(df.dropout_forward(a["x"], 0.3, rng=g), a["dy"]),
    "dropout(recompute)": lambda a, g: _fb(df.dropout_forward(a["x"], 0.3, rng=g,
                                                              mask="recompute"), a["dy"]),
    "dropout(noise_shape)": lambda a, g: _fb(df.dropout_forward(
        a["x"], 0.3, rng=g, noise_shape=(a["x"].shape[0], 1, 1, a["x"].shape[3])), a["dy"]),
    "spatial_dropout": lambda a, g: _fb(df.forward("spatial_dropout", a["x"], 0.2, rng=g,
                                                   data_format="channels_last"), a["dy"]),
    "dropout2d": lambda a, g: [df.dropout2d(a["x"], 0.2, rng=g)],
    "variational_dropout": lambda a, g: _fb(df.forward("variational_dropout", a["seq"], 0.25,
                                                       rng=g), a["seq"]),
    "drop_path": lambda a, g: _fb(df.forward("drop_path", a["x"], 0.5, rng=g), a["dy"]),
    "drop_connect": lambda a, g: _fb(df.forward("drop_connect", a["weight"], 0.5, rng=g),
                                     a["weight"]),
    "alpha_dropout": lambda a, g: _fb(df.forward("alpha_dropout", a["x"], 0.1, rng=g), a["dy"]),
    "feature_alpha_dropout": lambda a, g: _fb(df.forward("feature_alpha_dropout", a["x"], 0.1,
                                                         rng=g), a["dy"]),
    "embedding_dropout": _embedding,
    "gaussian_dropout": lambda a, g: _fb(df.gaussian_dropout_forward(a["x"], 0.2, rng=g),
                                         a["dy"]),
    "drop_block": lambda a, g: _fb(df.drop_block_forward(a["x"], 0.2, 3, rng=g), a["dy"]),
    "softmax_dropout": _softmax,
    "softmax": lambda a, g: [df.softmax(a["x"], axis=1)],
    "bias_dropout_add": _bias_dropout_add,
    "mc_sample": _mc,
}


def run_all(inputs, g, rounds=1):
    """Every op in table order, `rounds` times, all from Generator g: the flat list of arrays."""
    out = []
    for _ in range(rounds):
        for op in OPS.values():
            out.extend(op(inputs, g))
    return out
