"""The demo's data, networks and paired training (``python -m dropout_fast demo``).

One network is trained twice in lockstep: as built (torch's dropout modules)
and as a deep copy patched with `dropout_fast.torch.patch_model`. Both start
from the same weights, see the same mini-batches in the same order and take
the same number of optimizer steps; each draws its masks from a generator
seeded with the same seed (torch's global one for the torch run, a
``torch.Generator`` given to the twins for the dropout_fast run). The two runs
alternate step by step, each going first on every other step, so load on the
machine and cache effects fall on both alike.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
from torch import nn

from dropout_fast.torch import patch_model
from dropout_fast.torch.mc import dropout_modules

#: the clock of the step timings: wall time (perf_counter) or, with
#: ``use_clock("cpu")``, this process's CPU time (steadier on a busy machine,
#: equal to wall time for a one-thread run on an idle one)
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = [time.perf_counter]


def use_clock(name: str) -> None:
    """Time steps with the wall clock ("wall") or the process CPU clock ("cpu")."""
    if name not in CLOCKS:
        raise ValueError(f"clock: expected one of {tuple(CLOCKS)}, got {name!r}")
    _clock[0] = CLOCKS[name]


__all__ = ["Digits", "load", "mlp", "cnn", "Run", "train_pair", "saved_by_dropout",
           "dropout_layer_time", "accuracy", "use_clock"]


@dataclass
class Digits:
    """scikit-learn's 8x8 digits (1797 images, 10 classes), scaled to [0, 1]."""
    x_train: torch.Tensor  # (n, 64) float32
    y_train: torch.Tensor  # (n,) int64
    x_test: torch.Tensor
    y_test: torch.Tensor

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """(n, 64) -> (n, 1, 8, 8) for the CNN."""
        return x.reshape(-1, 1, 8, 8)


def load(seed: int, test_size: float = 0.25) -> Digits:
    """The digits data set shipped with scikit-learn (no download), stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    xa, xb, ya, yb = train_test_split(x, y, test_size=test_size, stratify=y,
                                      random_state=seed)
    return Digits(torch.from_numpy(xa), torch.from_numpy(ya).long(), torch.from_numpy(xb),
                  torch.from_numpy(yb).long())


def mlp(hidden: int = 1024, p_in: float = 0.2, p_hidden: float = 0.5) -> nn.Module:
    """Srivastava et al. (JMLR 2014) style: dropout 0.2 on the inputs, 0.5 on each of
    two hidden ReLU layers."""
    return nn.Sequential(
        nn.Dropout(p_in), nn.Linear(64, hidden), nn.ReLU(),
        nn.Dropout(p_hidden), nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Dropout(p_hidden), nn.Linear(hidden, 10))


def cnn(width: int = 32, p_spatial: float = 0.1, p_hidden: float = 0.5) -> nn.Module:
    """Two 3x3 conv layers with spatial dropout (whole feature maps, Tompson et al.
    2015: nn.Dropout2d), then a dropout-regularized dense head."""
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.Dropout2d(p_spatial),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Dropout2d(2 * p_spatial), nn.Flatten(),
        nn.Linear(2 * width * 16, 4 * width), nn.ReLU(), nn.Dropout(p_hidden),
        nn.Linear(4 * width, 10))


@dataclass
class Run:
    """One of the two trainings of a pair."""
    name: str
    model: nn.Module
    optimizer: torch.optim.Optimizer
    step_times: List[float] = field(default_factory=list)
    losses: List[float] = field(default_factory=list)

    def step(self, xb: torch.Tensor, yb: torch.Tensor) -> None:
        """One timed training step: forward, loss, backward, optimizer update."""
        clock = _clock[0]
        t0 = clock()
        self.optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(self.model(xb), yb)
        loss.backward()
        self.optimizer.step()
        self.step_times.append(clock() - t0)
        self.losses.append(float(loss.detach()))

    @property
    def median_step(self) -> float:
        return float(np.median(self.step_times))


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Deterministic (eval mode) test accuracy; the model's mode is restored."""
    was = model.training
    model.eval()
    with torch.no_grad():
        acc = float((model(x).argmax(-1) == y).float().mean())
    model.train(was)
    return acc


def train_pair(make: Callable[[], nn.Module], x: torch.Tensor, y: torch.Tensor, *,
               epochs: int, batch_size: int, lr: float, seed: int,
               progress: Optional[Callable[[Dict[str, float]], None]] = None) -> list:
    """Train `make()` twice in lockstep, torch's dropout vs dropout_fast's (module doc).

    Returns
    -------
    list of Run
        ``[torch_run, dropout_fast_run]``; the second has ``.report``, what
        patch_model replaced.
    """
    torch.manual_seed(seed)
    base = make()
    twin = copy.deepcopy(base)
    report = patch_model(twin, generator=torch.Generator().manual_seed(seed))
    runs = [Run("torch", base, torch.optim.Adam(base.parameters(), lr=lr)),
            Run("dropout_fast", twin, torch.optim.Adam(twin.parameters(), lr=lr))]
    runs[1].report = report
    for r in runs:
        r.model.train()
    torch.manual_seed(seed)  # the torch run's masks come from the global generator
    order = np.random.default_rng(seed)
    n, step = x.shape[0], 0
    for _ in range(epochs):
        perm = torch.from_numpy(order.permutation(n))
        for start in range(0, n - batch_size + 1, batch_size):  # full batches only
            idx = perm[start:start + batch_size]
            xb, yb = x[idx], y[idx]
            for r in (runs if step % 2 == 0 else runs[::-1]):
                r.step(xb, yb)
            step += 1
            if progress is not None:
                progress({r.name: r.losses[-1] for r in runs})
    return runs


def steps_per_epoch(n: int, batch_size: int) -> int:
    return n // batch_size


def saved_by_dropout(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> Dict[str, int]:
    """Bytes that the dropout layers of `model` keep for backward in one training step.

    Measured, not computed: a ``torch.autograd.graph.saved_tensors_hooks`` pack hook
    sees every tensor autograd saves during one forward pass; those saved while a
    dropout module's forward runs (flagged by forward pre/post hooks) are counted,
    each storage once. They stay alive from the forward until the backward, so their
    sum is the dropout layers' share of the peak memory saved for backward.

    Returns
    -------
    dict
        ``{"dropout": bytes saved by dropout modules, "total": bytes saved by all
        layers, parameters excluded}`` (distinct storages), and ``"inputs"``: the
        (module, shape, dtype, requires_grad) of each dropout call.
    """
    inside = [0]
    seen: Dict[str, dict] = {"dropout": {}, "total": {}}
    inputs = []
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        key = (s.data_ptr(), s.nbytes())
        if key[0] not in params:  # weights are kept anyway, not for backward
            seen["total"][key] = s.nbytes()
        if inside[0]:
            seen["dropout"][key] = s.nbytes()
        return t

    def enter(module, args):
        inside[0] += 1
        inputs.append((module, tuple(args[0].shape), args[0].dtype, args[0].requires_grad))

    def leave(module, args, out):
        inside[0] -= 1

    handles = []
    for _, m in dropout_modules(model):
        handles += [m.register_forward_pre_hook(enter), m.register_forward_hook(leave)]
    was = model.training
    model.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
    finally:
        for h in handles:
            h.remove()
        model.zero_grad(set_to_none=True)
        model.train(was)
    res = {k: sum(v.values()) for k, v in seen.items()}
    res["inputs"] = inputs
    return res


def dropout_layer_time(inputs: list, reps: int = 30) -> float:
    """Median seconds of forward + backward through the dropout layers alone.

    `inputs` lists ``(module, shape, dtype, requires_grad)`` for each dropout call
    of one training step (``saved_by_dropout(...)["inputs"]``); each repetition
    runs every module in training mode on a fresh random input of that shape and
    back-propagates a ones gradient when the step did (the network's input
    dropout gets no backward: the data needs no gradient).
    """
    xs = [(m, torch.randn(shape, dtype=dtype, requires_grad=rg), rg)
          for m, shape, dtype, rg in inputs]
    grads = [torch.ones(x.shape, dtype=x.dtype) for _, x, _ in xs]
    modes = [(m, m.training) for m, _, _ in xs]
    for m, _ in modes:
        m.train()
    times = []
    try:
        for _ in range(reps + 3):  # 3 warm-up repetitions
            t0 = _clock[0]()
            for (m, x, rg), g in zip(xs, grads):
                y = m(x)
                if rg:
                    y.backward(g)
            times.append(_clock[0]() - t0)
    finally:
        for m, flag in modes:
            m.train(flag)
    return float(np.median(times[3:]))
