"""The demo's Monte Carlo dropout evaluation: accuracy of the most confident
predictions versus the fraction retained, and its PNG plot."""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
import torch

from dropout_fast.torch.mc import mc_predict

__all__ = ["FRACTIONS", "retained_accuracy", "mc_evaluate", "plot"]

#: the fractions the demo's table reports
FRACTIONS = (0.5, 0.8, 1.0)
#: the fractions its plot draws
CURVE = tuple(np.round(np.linspace(0.05, 1.0, 20), 2))


def retained_accuracy(confidence: np.ndarray, correct: np.ndarray,
                      fractions: Sequence[float]) -> np.ndarray:
    """Accuracy over the ceil(f * n) most confident predictions, for each fraction f.

    Ties in confidence are broken by input order (a stable sort), so the result
    is deterministic.
    """
    confidence, correct = np.asarray(confidence), np.asarray(correct, dtype=np.float64)
    order = np.argsort(-confidence, kind="stable")
    hits = np.cumsum(correct[order])
    n = len(order)
    keep = [max(1, int(np.ceil(f * n - 1e-9))) for f in fractions]
    return np.array([hits[k - 1] / k for k in keep])


def mc_evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, samples: int,
                seed: int) -> Dict[str, object]:
    """MC dropout on the test set: accuracy of the MC mean, confidence = the mean
    probability of the predicted class, retained-fraction accuracies, time taken."""
    from dropout_fast._demo_train import _clock

    clock = _clock[0]  # the demo's --timer
    t0 = clock()
    r = mc_predict(model, x, samples=samples, seed=seed)
    seconds = clock() - t0
    conf = r.mean.max(-1).values.numpy()
    correct = (r.predicted_class == y).numpy()
    return {"accuracy": float(correct.mean()),
            "table": retained_accuracy(conf, correct, FRACTIONS),
            "curve": retained_accuracy(conf, correct, CURVE),
            "mutual_information": float(r.mutual_information.mean()),
            "seconds": seconds}


def plot(results: Dict[str, Dict[str, dict]], path: str, *, samples: int,
         extra=None) -> str:
    """Accuracy versus retained fraction, one panel per network, one line per run.

    `results` maps network -> run name -> `mc_evaluate` output. `extra`, when
    given, is called as ``extra(figure, subplot_spec)`` to draw the last column
    (the rate tuner's). Writes a PNG at `path` and returns it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = len(results) + (1 if extra is not None else 0)
    fig = plt.figure(figsize=(5 * ncols, 4.5))
    grid = fig.add_gridspec(1, ncols)
    for i, (net, runs) in enumerate(results.items()):
        ax = fig.add_subplot(grid[0, i])
        for (name, res), style in zip(runs.items(), ("o-", "s--")):
            ax.plot(CURVE, res["curve"], style, label=name, markersize=4)
        ax.set_title(f"{net}: MC dropout, T={samples}")
        ax.set_xlabel("fraction of test predictions retained (most confident first)")
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
    if extra is not None:
        extra(fig, grid[0, len(results)])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
