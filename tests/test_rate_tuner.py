"""dropout_fast.advise.RateTuner follows the rule from practice on synthetic
histories (numpy only: no torch needed)."""
import math

import numpy as np
import pytest

from dropout_fast.advise import RateAdvice, RateTuner


def hist(train, val, n=10):
    return {"train_acc": [train] * n, "val_acc": [val] * n}


def test_large_gap_raises_by_step():
    advice = RateTuner().suggest(hist(0.99, 0.90))
    assert isinstance(advice, RateAdvice)
    assert (advice.action, advice.rate) == ("raise", 0.3)
    assert math.isclose(advice.gap, 0.09) and "overfitting" in advice.reason


def test_low_and_close_lowers_then_removes():
    t = RateTuner(start=0.2)
    advice = t.suggest(hist(0.70, 0.69))
    assert (advice.action, advice.rate) == ("lower", 0.1)
    assert t.suggest(hist(0.70, 0.69), rate=0.1) == RateAdvice(
        0.0, "remove", advice.reason, advice.gap, 10)
    assert t.suggest(hist(0.70, 0.69), rate=0.0).action == "keep"


def test_close_but_good_keeps():
    advice = RateTuner().suggest(hist(0.97, 0.96))     # small gap, training above the target
    assert (advice.action, advice.rate) == ("keep", 0.2)


def test_gap_in_range_keeps():
    advice = RateTuner().suggest(hist(0.95, 0.915))    # 0.02 <= 0.035 <= 0.05
    assert (advice.action, advice.rate) == ("keep", 0.2) and "in range" in advice.reason


def test_never_above_the_cap():
    t = RateTuner(start=0.45)
    assert t.suggest(hist(1.0, 0.8)).rate == 0.5       # capped, not 0.55
    at_cap = t.suggest(hist(1.0, 0.8), rate=0.5)
    assert (at_cap.action, at_cap.rate) == ("keep", 0.5) and "cap" in at_cap.reason
    with pytest.raises(ValueError, match="start"):
        RateTuner(start=0.6)


def test_waits_for_the_window():
    advice = RateTuner(window=15).suggest(hist(1.0, 0.5, n=14))
    assert (advice.action, advice.rate, advice.epochs) == ("wait", 0.2, 14)


def test_update_walks_the_rate():
    t = RateTuner(window=10)
    actions = [t.update(0.99, 0.90).action for _ in range(10)]
    assert actions == ["wait"] * 9 + ["raise"] and t.rate == 0.3
    actions = [t.update(0.97, 0.94).action for _ in range(10)]   # gap 0.03: in range
    assert actions == ["wait"] * 9 + ["keep"] and t.rate == 0.3


def test_losses_and_history_forms():
    t = RateTuner(higher_is_better=False, target=0.3, train_key="loss", val_key="val_loss")
    overfit = t.suggest({"loss": np.full(10, 0.05), "val_loss": np.full(10, 0.40)})
    assert overfit.action == "raise" and math.isclose(overfit.gap, 0.35)
    under = t.suggest([{"loss": 0.9, "val_loss": 0.91}] * 10)           # list of records
    assert under.action == "lower"
    assert RateTuner().suggest(train=[0.99] * 10, val=[0.9] * 10).action == "raise"
    # Only the last `smooth` epochs count: an early gap that closed does not raise.
    closing = {"train_acc": [0.99] * 7 + [0.95] * 3, "val_acc": [0.8] * 7 + [0.93] * 3}
    assert RateTuner().suggest(closing).action == "keep"


class Frame:
    """A pandas-like mapping: columns by key, each with .tolist()."""

    def __init__(self, **cols):
        self.cols = {k: np.asarray(v) for k, v in cols.items()}

    def __getitem__(self, key):
        return self.cols[key]


def test_pandas_like_mapping():
    frame = Frame(train_acc=[0.99] * 12, val_acc=[0.85] * 12)
    assert RateTuner().suggest(frame).action == "raise"


def test_finding_needs_no_torch():
    from dropout_fast.advise import Finding

    f = Finding("error", "head.2", "dense-rate", "Dropout(p=0.7)", "use 0.3-0.5", "Srivastava")
    assert f.to_dict()["rule"] == "dense-rate"


def test_bad_input():
    t = RateTuner()
    with pytest.raises(ValueError, match="history: expected a mapping"):
        t.suggest({"acc": [1.0]})
    with pytest.raises(ValueError, match="equal lengths"):
        t.suggest(train=[0.9] * 10, val=[0.9] * 9)
    with pytest.raises(TypeError, match="train: expected a number"):
        t.suggest(train=["a"] * 10, val=[0.9] * 10)
    with pytest.raises(ValueError, match="finite"):
        t.update(float("nan"), 0.5)
    with pytest.raises(TypeError, match="no metrics"):
        t.suggest()
    with pytest.raises(ValueError, match="target: required"):
        RateTuner(higher_is_better=False)
    with pytest.raises(ValueError, match="gap_low, gap_high"):
        RateTuner(gap_low=0.1, gap_high=0.05)
    with pytest.raises(ValueError, match="window"):
        RateTuner(window=0)


def test_docstring_examples():
    import doctest

    from dropout_fast.advise import _tuner

    result = doctest.testmod(_tuner)
    assert result.failed == 0 and result.attempted > 0


def test_tune_digits_follows_the_rule():
    pytest.importorskip("sklearn")
    from dropout_fast.advise._digits import format_tuning, load_digits, tune_digits

    x, y = load_digits()
    assert x.shape == (1797, 64) and x.dtype == np.float32 and 0 <= x.min() <= x.max() <= 1
    assert sorted(set(y.tolist())) == list(range(10))
    seen = []
    steps = tune_digits(quick=True, seed=1, progress=seen.append)
    assert seen == steps and 1 <= len(steps) <= 4
    rate = 0.2
    for i, s in enumerate(steps, 1):
        assert s.rate == rate and s.epoch == 10 * i
        assert len(s.history["train_acc"]) == len(s.history["val_acc"]) == 10
        assert s.val_acc > 0.8                        # the MLP learns the digits
        expected = RateTuner(window=10).suggest(s.history, rate=s.rate)
        assert s.advice == expected and s.gap == expected.gap
        if s.gap > 0.05 and s.rate < 0.5:
            assert s.advice.action == "raise"
        rate = s.advice.rate
        assert 0.0 <= rate <= 0.5
    assert steps[-1].advice.action == "keep" or len(steps) == 4
    table = format_tuning(steps)
    assert len(table.splitlines()) == len(steps) + 4 and "chosen rate" in table
