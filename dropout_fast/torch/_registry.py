"""One definition, two entry points: every op is a plain function over tensors
(the implementation), registered as a ``torch.library`` custom op with a fake
(meta) implementation and an autograd formula for ``torch.compile``, and also
wrapped in a ``torch.autograd.Function`` that eager mode calls directly (the
custom-op dispatcher costs microseconds per call, which small tensors notice).
Both run the same implementation, so they give the same bits.
"""
from __future__ import annotations

from typing import Callable

import torch

NAMESPACE = "dropout_fast"


class Op:
    """An implementation with its custom op (`compiled`) and eager Function (`eager`).

    `setup(ctx, inputs, output)` saves what backward needs; `backward(ops, ctx,
    *grads)` computes the input gradients, calling other ops through `ops`, which
    is the custom-op namespace when compiled and the plain implementations in
    eager mode.
    """

    def __init__(self, name: str, impl: Callable, fake: Callable,
                 setup: Callable = None, backward: Callable = None):
        self.name, self.impl = name, impl
        self.compiled = torch.library.custom_op(f"{NAMESPACE}::{name}", mutates_args=())(impl)
        self.compiled.register_fake(fake)
        self.eager = None
        if backward is not None:
            self.compiled.register_autograd(
                lambda ctx, *g: backward(COMPILED, ctx, *g), setup_context=setup)
            # The classic forward(ctx, ...) form: the setup_context form binds the
            # arguments with inspect.signature on every call (tens of microseconds).
            def forward(ctx, *args):
                out = impl(*args)
                setup(ctx, args, out)
                return out
            self.eager = type(f"{name}_function", (torch.autograd.Function,), {
                "forward": staticmethod(forward),
                "backward": staticmethod(lambda ctx, *g: backward(EAGER, ctx, *g)),
            })

    def __call__(self, *args):
        """Run the op: traced as the custom op under torch.compile, else eagerly
        (through the autograd Function when a gradient may be needed)."""
        if torch.compiler.is_compiling():
            return self.compiled(*args)
        if self.eager is not None and torch.is_grad_enabled() and any(
                isinstance(a, torch.Tensor) and a.requires_grad for a in args):
            return self.eager.apply(*args)
        return self.impl(*args)


class _Namespace:
    """Ops by name: ``EAGER.masked_bwd(...)`` calls the implementation (through its
    autograd Function when there is one), ``COMPILED.masked_bwd(...)`` the custom op."""

    def __init__(self, compiled: bool):
        self._compiled = compiled

    def __getattr__(self, name: str):
        op = REGISTRY[name]
        return op.compiled if self._compiled else op


REGISTRY: dict = {}
EAGER, COMPILED = _Namespace(False), _Namespace(True)


def define(name: str, fake: Callable, setup: Callable = None, backward: Callable = None):
    """Decorator: register `impl` as op `name` (see Op)."""
    def wrap(impl: Callable) -> Op:
        op = Op(name, impl, fake, setup, backward)
        REGISTRY[name] = op
        return op
    return wrap
