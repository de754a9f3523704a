"""Swap torch's dropout modules for their dropout_fast twins in a model, in place."""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import nn

from dropout_fast.torch import modules as M

__all__ = ["patch_model", "unpatch_model", "PatchReport", "Replacement", "TWINS"]

# Exact classes only: a user's subclass of nn.Dropout may override forward.
TWINS = {
    nn.Dropout: M.Dropout,
    nn.Dropout1d: M.Dropout1d,
    nn.Dropout2d: M.Dropout2d,
    nn.Dropout3d: M.Dropout3d,
    nn.AlphaDropout: M.AlphaDropout,
    nn.FeatureAlphaDropout: M.FeatureAlphaDropout,
}
_BACK = {v: k for k, v in TWINS.items()}
_HOOKS = ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
          "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_backward_hooks",
          "_backward_pre_hooks")


class Replacement(NamedTuple):
    """One swapped module: its qualified name in the model and the two classes."""

    name: str
    old: str
    new: str


class PatchReport(list):
    """The list of `Replacement`s a `patch_model`/`unpatch_model` call made."""

    def __str__(self) -> str:
        if not self:
            return "no dropout modules replaced"
        w = max(len(r.name) for r in self)
        lines = [f"{r.name:<{w}}  {r.old} -> {r.new}" for r in self]
        return f"replaced {len(self)} module(s):\n" + "\n".join(lines)


def _swap(model: nn.Module, table: dict, make) -> PatchReport:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if type(model) in table:
        raise ValueError(f"model: is itself a {type(model).__name__}; there is no parent to "
                         "replace it in (construct the twin directly)")
    report, done = PatchReport(), {}
    for prefix, parent in list(model.named_modules(remove_duplicate=False)):
        for child_name, child in list(parent._modules.items()):
            if child is None or type(child) not in table:
                continue
            twin = done.get(id(child))
            if twin is None:  # a module shared by several parents gets one twin
                twin = done[id(child)] = make(child, table[type(child)])
            parent._modules[child_name] = twin
            name = f"{prefix}.{child_name}" if prefix else child_name
            report.append(Replacement(name, type(child).__name__,
                                      f"{type(twin).__module__}.{type(twin).__name__}"))
    return report


def _copy_state(old: nn.Module, new: nn.Module) -> nn.Module:
    new.train(old.training)
    for attr in _HOOKS:
        if hasattr(old, attr):
            setattr(new, attr, getattr(old, attr))
    return new


def patch_model(model: nn.Module, *, generator: Optional[torch.Generator] = None,
                mask: str = "bits") -> PatchReport:
    """Replace every torch dropout module of `model` (at any depth: Sequential,
    ModuleList, ModuleDict, attributes) by its dropout_fast twin, in place.

    The twins keep p, inplace, the training flag and any hooks; there are no
    parameters or buffers, so ``state_dict()`` keys are unchanged.

    Parameters
    ----------
    model : torch.nn.Module
    generator : torch.Generator, optional
        Given to every twin (default: torch's default CPU generator).
    mask : {"bits", "recompute"}, default "bits"
        Given to every twin: what is kept for backward.

    Returns
    -------
    PatchReport
        A list of ``Replacement(name, old, new)``; ``print(report)`` shows a table.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.1))
    >>> print(patch_model(net))
    replaced 1 module(s):
    1  Dropout -> dropout_fast.torch.modules.Dropout
    """
    def make(old, cls):
        return _copy_state(old, cls(old.p, old.inplace, generator=generator, mask=mask))
    return _swap(model, TWINS, make)


def unpatch_model(model: nn.Module) -> PatchReport:
    """Undo `patch_model`: put torch's own classes back (same p and inplace)."""
    def make(old, cls):
        return _copy_state(old, cls(old.p, old.inplace))
    return _swap(model, _BACK, make)
