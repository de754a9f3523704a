"""The demo's dropout-rate section: `dropout_fast.advise.RateTuner` choosing the
rate of an MLP on the digits data (`dropout_fast.advise.tune_digits`), with the
train/validation gap of every round in the output and every epoch in the plot."""
from __future__ import annotations

from typing import Callable, Optional

__all__ = ["run_tuner", "print_tuning", "tuning_panel"]


def run_tuner(*, quick: bool, seed: int,
              progress: Optional[Callable[[object], None]] = None) -> list:
    """`tune_digits` rounds (list of TuningStep), each reported to `progress`."""
    from dropout_fast.advise import tune_digits

    return tune_digits(quick=quick, seed=seed, progress=progress)


def print_tuning(steps: list, out) -> None:
    from dropout_fast.advise import format_tuning

    print("\nDropout rate tuning (dropout_fast.advise.RateTuner on digits: a numpy MLP "
          "64-256-256-10 with dropout_fast.Dropout, 300 training images so that it can "
          "overfit; after each round the tuner reads the train/validation gap and sets "
          "the next rate)", file=out)
    print(format_tuning(steps), file=out)


def tuning_panel(steps: list, tuner=None) -> Callable:
    """A function ``draw(figure, subplot_spec)`` drawing the tuning run in two stacked
    panels: train and validation accuracy per epoch (each round shaded and labelled
    with its rate), and below it their gap with the tuner's thresholds."""

    def draw(fig, spec) -> None:
        from dropout_fast.advise import RateTuner

        rule = tuner or RateTuner()
        top, bottom = spec.subgridspec(2, 1, height_ratios=(3, 2), hspace=0.08).subplots(
            sharex=True)
        train, val, rounds = [], [], []
        for s in steps:
            start = len(train)
            train += s.history["train_acc"]
            val += s.history["val_acc"]
            rounds.append((start, len(train), s.rate))
        epochs = range(1, len(train) + 1)
        gap = [a - b for a, b in zip(train, val)]
        top.plot(epochs, train, "-", label="train")
        top.plot(epochs, val, "-", label="validation")
        bottom.plot(epochs, gap, "k.-", markersize=3, label="train - validation")
        bottom.axhline(rule.gap_high, color="C3", ls="--", lw=1,
                       label=f"raise above {rule.gap_high:g}")
        bottom.axhline(rule.gap_low, color="C2", ls="--", lw=1,
                       label=f"lower below {rule.gap_low:g}")
        for i, (a, b, rate) in enumerate(rounds):
            for ax in (top, bottom):
                ax.axvspan(a + 0.5, b + 0.5, color="0.88" if i % 2 else "0.96", zorder=0)
            top.text((a + b + 1) / 2, 0.06, f"p={rate:.2f}", ha="center",
                     transform=top.get_xaxis_transform())
        chosen = steps[-1].advice.rate if steps else float("nan")
        top.set_title(f"RateTuner on digits: chosen p={chosen:.2f}")
        top.set_ylabel("accuracy (no dropout)")
        top.legend(loc="center right", fontsize=8)
        bottom.set_ylabel("gap")
        bottom.set_xlabel("epoch")
        bottom.legend(loc="upper right", fontsize=7)
        for ax in (top, bottom):
            ax.grid(alpha=0.3)

    return draw
