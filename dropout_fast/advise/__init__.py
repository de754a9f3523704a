"""Dropout advice as software: audit a torch model's dropout placement and
rates (`audit`), and tune the rate from the train/validation gap (`RateTuner`).

`RateTuner` needs only numpy; `audit` needs torch (imported on first use);
`tune_digits` (the tuner on scikit-learn's digits data) needs scikit-learn.
"""
from __future__ import annotations

import json
import textwrap
from typing import Any

from dropout_fast.advise._digits import TuningStep, format_tuning, tune_digits
from dropout_fast.advise._finding import Finding
from dropout_fast.advise._tuner import RateAdvice, RateTuner

__all__ = ["AuditReport", "Finding", "RateAdvice", "RateTuner", "TuningStep", "audit",
           "format_tuning", "tune_digits"]

TASKS = ("classification", "regression")


class AuditReport(list):
    """The findings of `audit`: a list of `Finding`, plus how placement was read.

    Attributes
    ----------
    placement : str
        "fx" (from a torch.fx graph), "execution-order" (forward hooks on the
        example input), "module-order" (registration order), or "module-tree"
        (the model is itself a transformer/attention/recurrent layer).
    model : str
        The model's class name.
    """

    def __init__(self, findings=(), *, placement: str = "fx", model: str = ""):
        super().__init__(findings)
        self.placement = placement
        self.model = model

    @property
    def errors(self) -> list:
        """The findings of severity "error"."""
        return [f for f in self if f.severity == "error"]

    @property
    def warnings(self) -> list:
        """The findings of severity "warning"."""
        return [f for f in self if f.severity == "warning"]

    def to_dict(self) -> dict:
        """model, placement and the findings as JSON-ready dicts."""
        return {"model": self.model, "placement": self.placement,
                "findings": [f.to_dict() for f in self]}

    def to_json(self, indent: int = 2) -> str:
        """The report as JSON (see `to_dict`)."""
        return json.dumps(self.to_dict(), indent=indent)

    def table(self, width: int = 100) -> str:
        """A fixed-width table: severity, path, rule, then what was found,
        the advice (after "->") and the source in brackets, wrapped to `width`."""
        rows = [(f.severity, f.path or "(model)", f.rule) for f in self]
        w = [max([len(h)] + [len(r[i]) for r in rows])
             for i, h in enumerate(("severity", "path", "rule"))]
        indent = sum(w) + 6
        text_w = max(30, width - indent)
        lines = [f"{'severity':<{w[0]}}  {'path':<{w[1]}}  {'rule':<{w[2]}}  finding / advice",
                 "-" * min(width, indent + text_w)]
        for f, r in zip(self, rows):
            body = textwrap.wrap(f.found, text_w) + textwrap.wrap(
                f"-> {f.advice} [{f.source}]", text_w, subsequent_indent="   ")
            lines.append(f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:<{w[2]}}  {body[0]}".rstrip())
            lines += [" " * indent + b for b in body[1:]]
        counts = {s: sum(f.severity == s for f in self) for s in ("error", "warning", "info")}
        def n(k, word):
            return f"{k} {word}{'' if k == 1 else 's'}"

        lines.append(f"{n(len(self), 'finding')} ({n(counts['error'], 'error')}, "
                     f"{n(counts['warning'], 'warning')}, {counts['info']} info); "
                     f"placement from {self.placement}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return f"AuditReport({list.__repr__(self)}, placement={self.placement!r})"


def audit(model: Any, *, task: str = "classification", example_input: Any = None
          ) -> AuditReport:
    """Check a torch model's dropout placement and rates against practice.

    Parameters
    ----------
    model : torch.nn.Module
        The model to audit (not run unless `example_input` is given).
    task : {"classification", "regression"}, default "classification"
        A regression model must not drop its output.
    example_input : Tensor or tuple of Tensor, optional
        Run once (eval mode, no grad) to get the execution order and the rank
        of each dropout's input, used when the model does not trace.

    Returns
    -------
    AuditReport
        A list of `Finding` (severity, path, rule, found, advice, source);
        ``.table()`` / ``str()`` print it, ``.to_json()`` serialises it.

    Raises
    ------
    TypeError
        If `model` is not a torch.nn.Module.
    ValueError
        If `task` is not one of the two tasks.

    Notes
    -----
    Placement (what comes before and after each dropout, residual adds, the
    output) is read from a torch.fx graph; transformer layers, attention and
    recurrent modules stay leaves and their rates are read from the module
    tree. When tracing fails the module order is used and an info finding
    says so: rules that need the graph (skip connections, BatchNorm in
    residual networks) cannot fire then.

    Examples
    --------
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Dropout(0.7), nn.Linear(64, 3))
    >>> report = audit(model)
    >>> [(f.severity, f.path, f.rule) for f in report]
    [('error', '2', 'dense-rate'), ('info', '', 'patchable')]
    """
    try:
        from torch import nn
    except ImportError:                      # pragma: no cover - torch is an extra
        raise ImportError("dropout_fast.advise.audit needs PyTorch (pip install torch)") from None
    from dropout_fast.advise import _rules
    from dropout_fast.advise._placement import analyse
    from dropout_fast.advise._sites import LEAF_TYPES

    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if task not in TASKS:
        raise ValueError(f"task: expected one of {TASKS}, got {task!r}")
    placement = analyse(model, example_input)
    findings = []
    if placement.note is not None:
        findings.append(Finding(
            "info", "", "trace-fallback", f"torch.fx could not trace the model "
            f"({placement.note})", f"placement read from the {placement.method.replace('-', ' ')}"
            "; skip-connection and residual BatchNorm rules need a traceable model",
            "dropout_fast"))
    for site in placement.sites:
        findings += _rules.rule_dense_rate(site)
        findings += _rules.rule_conv_rate(site)
        findings += _rules.rule_spatial(site)
        findings += _rules.rule_skip(site)
        findings += _rules.rule_batchnorm(site, placement)
        findings += _rules.rule_output(site, task)
        findings += _rules.rule_recurrent_site(site)
        findings += _rules.rule_embedding(site)
        findings += _rules.rule_residual_rate(site)
    for path, m in model.named_modules():
        if isinstance(m, LEAF_TYPES):
            findings += _rules.rule_rnn_module(path, m)
            findings += _rules.rule_transformer(path, m)
    findings += _rules.rule_patchable(model)
    return AuditReport(findings, placement=placement.method, model=type(model).__name__)
