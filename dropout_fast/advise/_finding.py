"""The record an audit rule returns (no torch needed to read or build one)."""
from __future__ import annotations

from dataclasses import dataclass

SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    """One result of the audit.

    Attributes
    ----------
    severity : {"error", "warning", "info"}
        error: likely to hurt training; warning: outside the usual practice;
        info: a note (nothing wrong).
    path : str
        The module path in the model ("" for the model as a whole).
    rule : str
        The rule id, e.g. "dense-rate".
    found : str
        What the audit saw.
    advice : str
        What to do.
    source : str
        Where the rule comes from.
    """

    severity: str
    path: str
    rule: str
    found: str
    advice: str
    source: str

    def to_dict(self) -> dict:
        """The finding as a JSON-ready dict."""
        return {k: getattr(self, k) for k in ("severity", "path", "rule", "found", "advice",
                                              "source")}
