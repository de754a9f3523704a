"""Train a small MLP on scikit-learn's digits with dropout_fast and export it for
examples/edge_mc_dropout.c.

The network: 64 pixels (scaled to [0, 1]) -> 64 ReLU units -> dropout(p) -> 10
logits, float32, trained by minibatch SGD in plain numpy with the dropout
masks of dropout_fast (`dropout_forward`/`dropout_backward`), so no deep
learning framework is needed. The C example then runs Monte Carlo dropout
(Gal & Ghahramani, ICML 2016) on the exported test inputs with the same masks
as `dropout_fast.mc.mc_predict` would draw in Python.

    python examples/export_digits_mlp.py build/edge_mlp.dfm

The file format (version 1), every field little-endian, no padding:

    offset  size            field
    0       4               magic b"DFMC"
    4       4   uint32      version (1)
    8       4   uint32      n_in        input features
    12      4   uint32      n_hidden    hidden units
    16      4   uint32      n_out       classes
    20      4   uint32      n_samples   test inputs stored after the weights
    24      8   float64     p           drop probability of the hidden layer
    32      ...             float32 W1 (n_in, n_hidden), b1 (n_hidden),
                            W2 (n_hidden, n_out), b2 (n_out),
                            X (n_samples, n_in), all C order;
                            then int32 labels (n_samples)

The forward pass it describes: h = dropout(relu(x @ W1 + b1), p); logits = h @ W2 + b2.
The file is exactly 32 + 4 * (n_in*n_hidden + n_hidden + n_hidden*n_out + n_out
+ n_samples*n_in + n_samples) bytes long.
"""
from __future__ import annotations

import argparse
import struct

import numpy as np

import dropout_fast as df

MAGIC = b"DFMC"
VERSION = 1
HEADER = struct.Struct("<4sIIIIId")  # 32 bytes


def load_data(seed: int = 0):
    """Digits scaled to [0, 1] as float32, split 80/20 by a fixed permutation."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(X))
    cut = int(0.8 * len(X))
    return X[order[:cut]], y[order[:cut]], X[order[cut:]], y[order[cut:]]


def forward(params: dict, x: np.ndarray, p: float, rng) -> np.ndarray:
    """The exported network with dropout on: what the C example computes per sample."""
    h = np.maximum(x @ params["W1"] + params["b1"], np.float32(0))
    h = df.dropout(h, p, rng=rng)
    return h @ params["W2"] + params["b2"]


def train(X: np.ndarray, y: np.ndarray, hidden: int = 64, p: float = 0.25, epochs: int = 40,
          batch: int = 32, lr: float = 0.1, seed: int = 0) -> dict:
    """Minibatch SGD on the softmax cross-entropy; dropout masks from dropout_fast."""
    rng = np.random.default_rng(seed)
    n_in, n_out = X.shape[1], int(y.max()) + 1
    params = {
        "W1": (rng.standard_normal((n_in, hidden)) * np.sqrt(2.0 / n_in)).astype(np.float32),
        "b1": np.zeros(hidden, np.float32),
        "W2": (rng.standard_normal((hidden, n_out)) * np.sqrt(1.0 / hidden)).astype(np.float32),
        "b2": np.zeros(n_out, np.float32),
    }
    gen = df.Generator(seed)
    for _ in range(epochs):
        order = rng.permutation(len(X))
        for start in range(0, len(X), batch):
            idx = order[start:start + batch]
            xb, yb = X[idx], y[idx]
            a = xb @ params["W1"] + params["b1"]
            r = np.maximum(a, np.float32(0))
            h, mask = df.dropout_forward(r, p, rng=gen)
            logits = h @ params["W2"] + params["b2"]
            z = logits - logits.max(axis=1, keepdims=True)
            prob = np.exp(z)
            prob /= prob.sum(axis=1, keepdims=True)
            g = prob
            g[np.arange(len(yb)), yb] -= 1.0
            g /= np.float32(len(yb))
            dh = df.dropout_backward(g @ params["W2"].T, mask)
            da = dh * (a > 0)
            params["W2"] -= lr * (h.T @ g)
            params["b2"] -= lr * g.sum(axis=0)
            params["W1"] -= lr * (xb.T @ da)
            params["b1"] -= lr * da.sum(axis=0)
    return params


def export(path: str, params: dict, p: float, X: np.ndarray, labels: np.ndarray) -> None:
    """Write the version-1 file described in the module docstring."""
    W1, W2 = params["W1"], params["W2"]
    n_in, n_hidden = W1.shape
    n_out = W2.shape[1]
    with open(path, "wb") as f:
        f.write(HEADER.pack(MAGIC, VERSION, n_in, n_hidden, n_out, len(X), p))
        f.writelines(np.ascontiguousarray(a, dtype="<f4").tobytes()
                     for a in (W1, params["b1"], W2, params["b2"], X))
        f.write(np.ascontiguousarray(labels, dtype="<i4").tobytes())


def load(path: str):
    """Read a version-1 file back: (params, p, X, labels)."""
    with open(path, "rb") as f:
        raw = f.read()
    magic, version, n_in, n_hidden, n_out, n_samples, p = HEADER.unpack_from(raw)
    if magic != MAGIC or version != VERSION:
        raise ValueError(f"path: not a version-{VERSION} DFMC file: {path}")
    pos = HEADER.size
    out = []
    for shape in ((n_in, n_hidden), (n_hidden,), (n_hidden, n_out), (n_out,),
                  (n_samples, n_in)):
        count = int(np.prod(shape))
        out.append(np.frombuffer(raw, "<f4", count, pos).reshape(shape).astype(np.float32))
        pos += 4 * count
    labels = np.frombuffer(raw, "<i4", n_samples, pos).astype(np.int32)
    if pos + 4 * n_samples != len(raw):
        raise ValueError(f"path: {len(raw)} bytes, expected {pos + 4 * n_samples}: {path}")
    params = dict(zip(("W1", "b1", "W2", "b2"), out[:4]))
    return params, p, out[4], labels


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("output", help="the model file to write (e.g. build/edge_mlp.dfm)")
    ap.add_argument("--samples", type=int, default=8, help="test inputs stored (default 8)")
    ap.add_argument("--p", type=float, default=0.25, help="hidden-layer drop probability")
    ap.add_argument("--epochs", type=int, default=40)
    args = ap.parse_args(argv)
    Xtr, ytr, Xte, yte = load_data()
    params = train(Xtr, ytr, p=args.p, epochs=args.epochs)
    logits = np.maximum(Xte @ params["W1"] + params["b1"], 0) @ params["W2"] + params["b2"]
    acc = float((logits.argmax(axis=1) == yte).mean())
    export(args.output, params, args.p, Xte[:args.samples], yte[:args.samples])
    print(f"test accuracy (dropout off) {acc:.4f} on {len(Xte)} digits; wrote {args.output} "
          f"with {args.samples} inputs")


if __name__ == "__main__":
    main()
