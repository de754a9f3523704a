"""RateTuner choosing a dropout rate on scikit-learn's digits data.

A numpy MLP (64 -> 256 -> 256 -> 10, ReLU, dropout_fast.Dropout after each
hidden layer) trains in rounds of `window` epochs; after each round the tuner
reads the train/validation accuracy (eval mode, no dropout) and sets the rate
for the next round. Training continues from the current weights, as it would
in practice. Needs scikit-learn (for the data) and numpy only.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

import dropout_fast as df
from dropout_fast.advise._tuner import RateAdvice, RateTuner


@dataclass
class TuningStep:
    """One round of `tune_digits`.

    Attributes
    ----------
    rate : float
        The dropout rate this round trained with.
    epoch : int
        Epochs trained in total at the end of the round.
    train_acc, val_acc : float
        Accuracy on the training and validation sets (no dropout), end of round.
    gap : float
        The tuner's gap (train - val, averaged over its last `smooth` epochs).
    advice : RateAdvice
        What the tuner decided for the next round.
    history : dict
        Per-epoch "train_acc" and "val_acc" of this round.
    """

    rate: float
    epoch: int
    train_acc: float
    val_acc: float
    gap: float
    advice: RateAdvice
    history: dict = field(default_factory=dict)


class _MLP:
    """Two hidden ReLU layers with dropout, softmax cross-entropy, SGD + momentum."""

    def __init__(self, sizes, rng: np.random.Generator, seed: int):
        self.W = [(rng.standard_normal((a, b)) * np.sqrt(2.0 / a)).astype(np.float32)
                  for a, b in zip(sizes[:-1], sizes[1:])]
        self.b = [np.zeros(b, np.float32) for b in sizes[1:]]
        self.vW = [np.zeros_like(w) for w in self.W]
        self.vb = [np.zeros_like(b) for b in self.b]
        gen = df.Generator(seed)
        self.drops = [df.Dropout(0.0, rng=gen) for _ in sizes[1:-1]]

    def set_rate(self, p: float) -> None:
        for d in self.drops:
            d.p = float(p)

    def forward(self, x, train: bool):
        acts = [x]
        for i, (w, b) in enumerate(zip(self.W, self.b)):
            z = acts[-1] @ w + b
            if i < len(self.drops):
                d = self.drops[i].train(train)
                z = d.forward(np.maximum(z, 0))
            acts.append(z)
        return acts

    def step(self, x, y, lr: float, momentum: float = 0.9) -> None:
        acts = self.forward(x, True)
        logits = acts[-1]
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(y)), y] -= 1.0
        g = p / len(y)
        for i in range(len(self.W) - 1, -1, -1):
            gW, gb = acts[i].T @ g, g.sum(axis=0)
            if i > 0:
                g = self.drops[i - 1].backward(g @ self.W[i].T)
                g = g * (acts[i] > 0)
            self.vW[i] = momentum * self.vW[i] - lr * gW
            self.vb[i] = momentum * self.vb[i] - lr * gb
            self.W[i] += self.vW[i]
            self.b[i] += self.vb[i]

    def accuracy(self, x, y) -> float:
        return float((self.forward(x, False)[-1].argmax(axis=1) == y).mean())


def load_digits() -> tuple:
    """scikit-learn's digits (1797 8x8 images): x scaled to [0, 1] as float32, y as int64.

    Reads the CSV that ships inside scikit-learn (what ``sklearn.datasets.load_digits``
    reads) without importing scikit-learn and SciPy, which takes seconds.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise ImportError("tune_digits needs scikit-learn for the digits data "
                          "(pip install scikit-learn)")
    path = os.path.join(os.path.dirname(spec.origin), "datasets", "data", "digits.csv.gz")
    if os.path.exists(path):
        data = np.loadtxt(path, delimiter=",")
        flat, target = data[:, :-1], data[:, -1]
    else:                                    # a future layout: the public loader
        from sklearn.datasets import load_digits as sk_load_digits

        flat, target = sk_load_digits(return_X_y=True)
    return (flat / 16.0).astype(np.float32), target.astype(np.int64)


def tune_digits(*, quick: bool = False, seed: int = 0,
                progress: Optional[Callable[[TuningStep], None]] = None,
                tuner: Optional[RateTuner] = None) -> list:
    """Let `RateTuner` pick the dropout rate of an MLP on the digits data.

    Parameters
    ----------
    quick : bool, default False
        4 rounds of 10 epochs (about a second) instead of up to 8 rounds of 15.
    seed : int, default 0
        Seeds the split, the weights, the batches and the dropout masks.
    progress : callable, optional
        Called with each `TuningStep` as it completes.
    tuner : RateTuner, optional
        Default: ``RateTuner(window=10 if quick else 15)`` (start 0.2, step 0.1,
        cap 0.5, raise above a 0.05 gap, lower below 0.02 when training < 0.9).

    Returns
    -------
    list of TuningStep
        One per round; the last step's ``advice.rate`` is the chosen rate.
        Stops early when the tuner keeps the rate.
    """
    if tuner is None:
        tuner = RateTuner(window=10 if quick else 15)
    x, y = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    n_train = 300                            # a small training set, so the MLP can overfit
    tr, va = order[:n_train], order[n_train:]
    net = _MLP([64, 256, 256, 10], rng, seed)
    with _one_blas_thread():                 # 32-row matmuls: threads only add overhead
        return _rounds(net, tuner, x, y, tr, va, rng, 4 if quick else 8, progress)


def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:                      # pragma: no cover - ships with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _rounds(net, tuner, x, y, tr, va, rng, rounds, progress) -> list:
    rate, epoch, steps = tuner.rate, 0, []
    for _ in range(rounds):
        net.set_rate(rate)
        hist = {"train_acc": [], "val_acc": []}
        for _ in range(tuner.window):
            perm = rng.permutation(tr)
            for i in range(0, len(perm), 32):
                b = perm[i:i + 32]
                net.step(x[b], y[b], lr=0.02)
            epoch += 1
            hist["train_acc"].append(net.accuracy(x[tr], y[tr]))
            hist["val_acc"].append(net.accuracy(x[va], y[va]))
        advice = tuner.suggest(hist, rate=rate)
        step = TuningStep(rate, epoch, hist["train_acc"][-1], hist["val_acc"][-1],
                          float(advice.gap), advice, hist)
        steps.append(step)
        if progress is not None:
            progress(step)
        if advice.action == "keep":
            break
        rate = advice.rate
    return steps


def format_tuning(steps: list) -> str:
    """A table of `tune_digits` steps: round, rate, epoch, accuracies, gap, decision."""
    lines = [f"{'round':>5}  {'rate':>4}  {'epoch':>5}  {'train':>6}  {'val':>6}  {'gap':>6}  "
             "decision",
             "-" * 72]
    for i, s in enumerate(steps, 1):
        lines.append(f"{i:>5}  {s.rate:>4.2f}  {s.epoch:>5}  {s.train_acc:>6.3f}  "
                     f"{s.val_acc:>6.3f}  {s.gap:>+6.3f}  {s.advice.action} -> "
                     f"{s.advice.rate:.2f}")
    lines.append("train, val: the round's last epoch (no dropout); "
                 "gap: train - val as the tuner reads it (smoothed)")
    if steps:
        lines.append(f"chosen rate: {steps[-1].advice.rate:.2f} ({steps[-1].advice.reason})")
    return "\n".join(lines)
