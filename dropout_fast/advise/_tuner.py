"""The dropout rate rule from practice, as an object.

Start at 0.2; after `window` epochs at a rate, read the training and
validation metric. While the gap (training better than validation) is large,
raise the rate by `step`; when both metrics are low and close (underfitting),
lower it, down to removing dropout; never go above `max_rate` (0.5 for dense
layers: Srivastava et al. 2014). Needs numpy only.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Optional

ACTIONS = ("wait", "keep", "raise", "lower", "remove")


@dataclass(frozen=True)
class RateAdvice:
    """What `RateTuner` advises.

    Attributes
    ----------
    rate : float
        The rate to train with next.
    action : {"wait", "keep", "raise", "lower", "remove"}
        wait: fewer than `window` epochs at this rate; keep: the gap is in
        range (or the rate is at a bound); raise / lower: one `step`; remove:
        lowered to 0.
    reason : str
        Why, with the numbers.
    gap : float or None
        Training minus validation metric (sign-adjusted so that positive means
        overfitting), averaged over the last `smooth` epochs; None while waiting
        with no epochs.
    epochs : int
        Epochs the decision read.
    """

    rate: float
    action: str
    reason: str
    gap: Optional[float]
    epochs: int


def _float(x, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {type(x).__name__}")
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"{name}: expected a finite number, got {x}")
    return x


class RateTuner:
    """Choose the next dropout rate from the training/validation gap.

    Parameters
    ----------
    start : float, default 0.2
        The first rate.
    step : float, default 0.1
        How much one raise or lower changes the rate.
    max_rate : float, default 0.5
        Never advise more (0.5 for dense layers).
    window : int, default 10
        Epochs to train at a rate before deciding (practice: 10-20).
    gap_high : float, default 0.05
        Raise the rate when the gap exceeds this (5 accuracy points).
    gap_low : float, default 0.02
        Lower the rate when the gap is below this and training is under `target`.
    target : float, optional
        The training metric counted as good enough: below it (above, for a loss)
        with a small gap the model underfits. Default 0.9 for
        ``higher_is_better=True`` (accuracy); required for losses.
    higher_is_better : bool, default True
        True for accuracy-like metrics, False for losses.
    smooth : int, default 3
        Average the last `smooth` epochs before comparing.
    train_key, val_key : str, default "train_acc", "val_acc"
        Keys of the history mapping (e.g. "loss", "val_loss" for a Keras
        history with ``higher_is_better=False``).

    Examples
    --------
    >>> tuner = RateTuner()
    >>> advice = tuner.suggest({"train_acc": [0.99] * 10, "val_acc": [0.90] * 10})
    >>> advice.action, advice.rate
    ('raise', 0.3)
    """

    def __init__(self, start: float = 0.2, *, step: float = 0.1, max_rate: float = 0.5,
                 window: int = 10, gap_high: float = 0.05, gap_low: float = 0.02,
                 target: Optional[float] = None, higher_is_better: bool = True,
                 smooth: int = 3, train_key: str = "train_acc", val_key: str = "val_acc"):
        self.max_rate = _float(max_rate, "max_rate")
        if not 0.0 < self.max_rate < 1.0:
            raise ValueError(f"max_rate: expected 0 < max_rate < 1, got {max_rate}")
        self.start = _float(start, "start")
        if not 0.0 <= self.start <= self.max_rate:
            raise ValueError(f"start: expected 0 <= start <= max_rate={self.max_rate:g}, "
                             f"got {start}")
        self.step = _float(step, "step")
        if not 0.0 < self.step < 1.0:
            raise ValueError(f"step: expected 0 < step < 1, got {step}")
        for name, v in (("window", window), ("smooth", smooth)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")
        self.window, self.smooth = int(window), int(smooth)
        self.gap_high, self.gap_low = _float(gap_high, "gap_high"), _float(gap_low, "gap_low")
        if not 0.0 <= self.gap_low < self.gap_high:
            raise ValueError(f"gap_low, gap_high: expected 0 <= gap_low < gap_high, got "
                             f"{gap_low}, {gap_high}")
        self.higher_is_better = bool(higher_is_better)
        if target is None and not self.higher_is_better:
            raise ValueError("target: required when higher_is_better=False (the loss counted "
                             "as good enough)")
        self.target = 0.9 if target is None else _float(target, "target")
        self.train_key, self.val_key = train_key, val_key
        self.rate = self.start
        self._train: list = []
        self._val: list = []

    def __repr__(self) -> str:
        return (f"RateTuner(rate={self.rate:g}, step={self.step:g}, max_rate={self.max_rate:g}, "
                f"window={self.window}, gap_high={self.gap_high:g}, gap_low={self.gap_low:g}, "
                f"target={self.target:g}, higher_is_better={self.higher_is_better})")

    def _series(self, history: Any, train: Any, val: Any) -> tuple:
        if history is not None:
            if train is not None or val is not None:
                raise TypeError("history: give either history or train= and val=, not both")
            if isinstance(history, (list, tuple)) and history and isinstance(history[0], dict):
                train = [h[self.train_key] for h in history]
                val = [h[self.val_key] for h in history]
            else:
                try:
                    train, val = history[self.train_key], history[self.val_key]
                except (KeyError, TypeError, IndexError):
                    raise ValueError(
                        f"history: expected a mapping (dict, DataFrame) or a list of dicts "
                        f"with keys {self.train_key!r} and {self.val_key!r}") from None
        if train is None or val is None:
            raise TypeError("history: no metrics given (pass history, or train= and val=)")
        train = [_float(x, "train") for x in _to_list(train, "train")]
        val = [_float(x, "val") for x in _to_list(val, "val")]
        if len(train) != len(val):
            raise ValueError(f"train, val: expected equal lengths, got {len(train)} and "
                             f"{len(val)}")
        return train, val

    def suggest(self, history: Any = None, *, train: Any = None, val: Any = None,
                rate: Optional[float] = None) -> RateAdvice:
        """Advise the next rate from the epochs trained at `rate` (no state changes).

        Parameters
        ----------
        history : mapping or list of dict, optional
            Per-epoch metrics at the current rate: ``history[train_key]`` and
            ``history[val_key]`` (lists, arrays, pandas columns), or records.
        train, val : sequence of float, optional
            The same as two sequences, instead of `history`.
        rate : float, optional
            The rate these epochs used (default: the tuner's current rate).

        Returns
        -------
        RateAdvice
        """
        train, val = self._series(history, train, val)
        rate = self.rate if rate is None else _float(rate, "rate")
        n = len(train)
        if n < self.window:
            return RateAdvice(rate, "wait", f"{n} of {self.window} epochs at {rate:g}",
                              self._gap(train, val) if n else None, n)
        k = min(self.smooth, n)
        tr, va = sum(train[-k:]) / k, sum(val[-k:]) / k
        gap = tr - va if self.higher_is_better else va - tr
        low = tr < self.target if self.higher_is_better else tr > self.target
        nums = f"train {tr:.3f}, val {va:.3f}, gap {gap:+.3f}"
        if gap > self.gap_high:
            if rate + 1e-9 >= self.max_rate:
                return RateAdvice(rate, "keep", f"{nums} > {self.gap_high:g} but the rate is at "
                                  f"the cap {self.max_rate:g}: regularise otherwise (data, "
                                  "weight decay, a smaller model)", gap, n)
            new = round(min(rate + self.step, self.max_rate), 10)
            return RateAdvice(new, "raise", f"{nums} > {self.gap_high:g}: overfitting", gap, n)
        if gap < self.gap_low and low:
            new = round(max(rate - self.step, 0.0), 10)
            if rate <= 0.0:
                return RateAdvice(0.0, "keep", f"{nums}: underfitting without dropout; the "
                                  "model needs capacity or training, not less dropout", gap, n)
            if new <= 1e-9:
                return RateAdvice(0.0, "remove", f"{nums} < {self.gap_low:g} and train below "
                                  f"{self.target:g}: underfitting", gap, n)
            return RateAdvice(new, "lower", f"{nums} < {self.gap_low:g} and train below "
                              f"{self.target:g}: underfitting", gap, n)
        return RateAdvice(rate, "keep", f"{nums}: in range", gap, n)

    def _gap(self, train, val) -> float:
        k = min(self.smooth, len(train))
        tr, va = sum(train[-k:]) / k, sum(val[-k:]) / k
        return tr - va if self.higher_is_better else va - tr

    def update(self, train: float, val: float) -> RateAdvice:
        """Record one epoch at the current rate and advise.

        When the advice changes the rate, the tuner moves to it and starts
        counting a new window; after a "keep", every further epoch is a new
        decision on the last `smooth` epochs.

        Parameters
        ----------
        train, val : float
            This epoch's training and validation metric.

        Returns
        -------
        RateAdvice
        """
        self._train.append(_float(train, "train"))
        self._val.append(_float(val, "val"))
        advice = self.suggest(train=self._train, val=self._val)
        if advice.action in ("raise", "lower", "remove"):
            self.rate = advice.rate
            self._train, self._val = [], []
        return advice


def _to_list(x: Any, name: str) -> list:
    if hasattr(x, "tolist"):                 # numpy arrays, pandas Series
        x = x.tolist()
    try:
        return list(x)
    except TypeError:
        raise TypeError(f"{name}: expected a sequence of numbers, got {type(x).__name__}") \
            from None
