"""``python -m dropout_fast audit package.module:factory``: print the dropout
audit of the model a factory returns.

Exit codes: 0 no errors (warnings and info allowed), 1 errors found,
2 bad usage (arguments, import, factory, model).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional

USAGE_ERROR, FOUND_ERRORS, CLEAN = 2, 1, 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m dropout_fast audit",
        description="Audit the dropout placement and rates of the torch model that "
                    "FACTORY returns. Exit codes: 0 no errors (warnings/info allowed), "
                    "1 errors found, 2 bad usage or a factory that cannot be loaded.")
    p.add_argument("factory", help="package.module:callable returning a torch.nn.Module "
                                   "(or package.module:attribute holding one)")
    p.add_argument("--task", choices=("classification", "regression"), default="classification")
    p.add_argument("--input-shape", default=None, metavar="N,C,...",
                   help="run the model once on torch.randn(shape) for execution order")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    return p


class UsageError(Exception):
    """A problem with the command line's arguments (exit code 2)."""


def load_model(spec: str):
    """The torch.nn.Module named by ``package.module:factory``.

    Raises
    ------
    UsageError
        With a message saying what is wrong with `spec`.
    """
    from torch import nn

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"factory: expected package.module:factory, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:                 # any import-time failure is the user's module
        raise UsageError(f"factory: cannot import {module_name!r} "
                         f"({type(exc).__name__}: {exc})") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"factory: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not isinstance(obj, nn.Module):
        if not callable(obj):
            raise UsageError(f"factory: {spec!r} is a {type(obj).__name__}, not a callable "
                             "or a torch.nn.Module")
        try:
            obj = obj()
        except Exception as exc:
            raise UsageError(f"factory: calling {spec!r} failed "
                             f"({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, nn.Module):
        raise UsageError(f"factory: {spec!r} returned a {type(obj).__name__}, "
                         "not a torch.nn.Module")
    return obj


def _shape(text: Optional[str]):
    if text is None:
        return None
    try:
        shape = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise UsageError(f"--input-shape: expected comma-separated integers, got {text!r}") \
            from None
    if not shape or min(shape) < 1:
        raise UsageError(f"--input-shape: expected positive sizes, got {text!r}")
    return shape


def main(argv=None) -> int:
    """Run the audit command; returns the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:                # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("python -m dropout_fast audit: needs PyTorch (pip install torch)", file=sys.stderr)
        return USAGE_ERROR
    from dropout_fast.advise import audit

    try:
        shape = _shape(args.input_shape)
        model = load_model(args.factory)
        example = None if shape is None else torch.randn(*shape)
        try:
            report = audit(model, task=args.task, example_input=example)
        except Exception as exc:
            if example is None:
                raise
            raise UsageError(f"--input-shape: the model failed on torch.randn{shape} "
                             f"({type(exc).__name__}: {exc})") from None
    except UsageError as exc:
        print(f"python -m dropout_fast audit: {exc}", file=sys.stderr)
        return USAGE_ERROR
    print(report.to_json() if args.json else f"{args.factory} ({report.model})\n{report}")
    return FOUND_ERRORS if report.errors else CLEAN
