"""Monte Carlo dropout for torch models (Gal & Ghahramani, "Dropout as a
Bayesian approximation", ICML 2016): T stochastic forward passes with only the
dropout layers in training mode, their statistics streamed through
`dropout_fast.mc.MCStats` (Welford's update in the C kernel) so that memory
does not grow with T.

Which modules are switched on
-----------------------------
A well-known pitfall of MC dropout is calling ``model.train()``: BatchNorm
then normalizes with the statistics of the MC batch (and updates its running
averages), so predictions change and the model is silently modified.
`mc_predict` puts every module in eval mode and sets ``training = True`` on
the dropout modules only: torch's (every subclass of
``torch.nn.modules.dropout._DropoutNd``: Dropout, Dropout1d/2d/3d,
AlphaDropout, FeatureAlphaDropout), dropout_fast's (the classes of
`dropout_fast.torch`) and any class passed in ``dropout_types``. Every
module's ``training`` flag is restored afterwards, even on error. Functional
dropout calls (``F.dropout(h, p, training=self.training)`` inside another
module's forward) follow that module's flag, which is eval: use modules.

Batched sampling
----------------
``batched=True`` runs k samples per forward call by repeating x k times along
the batch axis (axis 0), so the network sees k * N rows and the matmuls are
bigger; sample j of the call is output rows [j N, (j+1) N). Every mask
element is an independent draw, so batched samples have the same distribution
as unbatched ones; they are different draws, and equal the unbatched samples
only when the network is deterministic. This needs a network whose rows do not
interact in eval mode (true of Linear, Conv, eval BatchNorm, attention over
its own sequence; false of a layer that mixes the batch).
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Iterator, NamedTuple, Optional, Tuple, Type

import numpy as np
import torch
from torch import nn

from dropout_fast.mc import MCStats, _count

__all__ = ["MCResult", "dropout_modules", "mc_dropout_mode", "mc_predict"]

OUTPUTS = ("logits", "probs", None)
#: rows per forward call that batched=True aims for when chunk is not given
TARGET_ROWS = 4096


class MCResult(NamedTuple):
    """What `mc_predict` returns: float64 CPU tensors, one row per input row.

    ``mean`` and ``variance`` are of the probabilities for output "logits" or
    "probs", of the raw outputs for output None (the entropy fields and
    ``predicted_class`` are None then).
    """
    mean: torch.Tensor                            # (N, ..., K) mean over samples
    variance: torch.Tensor                        # (N, ..., K) variance over samples (ddof 0)
    predictive_entropy: Optional[torch.Tensor]    # (N, ...) H[mean_t p_t], nats
    mutual_information: Optional[torch.Tensor]    # (N, ...) BALD: H[mean p] - mean H[p_t]
    expected_entropy: Optional[torch.Tensor]      # (N, ...) mean_t H[p_t]
    predicted_class: Optional[torch.Tensor]       # (N, ...) int64 argmax of mean
    samples: int                                  # T


def _is_dropout(module: nn.Module, extra: Tuple[Type[nn.Module], ...]) -> bool:
    if isinstance(module, (nn.modules.dropout._DropoutNd, *extra)):
        return True
    # dropout_fast's torch modules (Dropout, SpatialDropout, DropPath, DropBlock2d, ...)
    return type(module).__module__.startswith("dropout_fast.torch")


def _check_types(dropout_types) -> Tuple[Type[nn.Module], ...]:
    if dropout_types is None:
        return ()
    if isinstance(dropout_types, type):
        dropout_types = (dropout_types,)
    try:
        types = tuple(dropout_types)
    except TypeError:
        raise TypeError(f"dropout_types: expected a module class or a tuple of them, "
                        f"got {type(dropout_types).__name__}") from None
    for t in types:
        if not (isinstance(t, type) and issubclass(t, nn.Module)):
            raise TypeError(f"dropout_types: expected nn.Module subclasses, got {t!r}")
    return types


def dropout_modules(model: nn.Module, dropout_types=None) -> list:
    """The modules of `model` that `mc_predict` switches to training mode.

    Parameters
    ----------
    model : torch.nn.Module
    dropout_types : type or tuple of types, optional
        Extra module classes to treat as dropout (e.g. a third-party DropPath).

    Returns
    -------
    list of (str, torch.nn.Module)
        Qualified names and modules, in ``model.named_modules()`` order.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    extra = _check_types(dropout_types)
    return [(n, m) for n, m in model.named_modules() if _is_dropout(m, extra)]


@contextmanager
def mc_dropout_mode(model: nn.Module, dropout_types=None) -> Iterator[list]:
    """Context: every module in eval mode except the dropout modules; restores all flags.

    Parameters
    ----------
    model : torch.nn.Module
    dropout_types : type or tuple of types, optional
        See `dropout_modules`.

    Yields
    ------
    list of (str, torch.nn.Module)
        The dropout modules switched on.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4),
    ...                           torch.nn.Dropout(0.5)).train()
    >>> with mc_dropout_mode(net) as on:
    ...     [n for n, _ in on], net[1].training, net[2].training
    (['2'], False, True)
    >>> net[1].training
    True
    """
    found = dropout_modules(model, dropout_types)
    modes = [(m, m.training) for m in model.modules()]
    try:
        for m, _ in modes:
            m.training = False  # not .eval(): it recurses and may be overridden
        for _, m in found:
            m.training = True
        yield found
    finally:
        for m, flag in modes:
            m.training = flag


def _as_numpy(y, rows: int, k: int) -> np.ndarray:
    """Output of one call (k * rows, ...) as a float array (k, rows, ...)."""
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"model: expected the forward pass to return a tensor, "
                        f"got {type(y).__name__}")
    if not y.is_floating_point():
        raise TypeError(f"model: expected a real floating point output, got {y.dtype}")
    if y.ndim == 0 or y.shape[0] != k * rows:
        raise ValueError(f"model: expected an output with {k * rows} rows along axis 0 "
                         f"({k} samples of {rows} rows), got shape {tuple(y.shape)}")
    y = y.detach()
    if y.dtype not in (torch.float32, torch.float64):
        y = y.float()  # float16/bfloat16: statistics in float64 from a float32 copy
    return y.cpu().numpy().reshape((k, rows) + tuple(y.shape[1:]))


def mc_predict(model: nn.Module, x: torch.Tensor, samples: int = 100, *,
               batched: bool = True, chunk: Optional[int] = None,
               output: Optional[str] = "logits", seed: Optional[int] = None,
               dropout_types=None, atol: Optional[float] = None) -> MCResult:
    """Monte Carlo dropout prediction of a torch model, streamed over the samples.

    Parameters
    ----------
    model : torch.nn.Module
        The network. Only its dropout modules run in training mode (module
        docstring); every module's mode is restored afterwards.
    x : Tensor of shape (N, ...)
        The input batch, any rank, batch along axis 0.
    samples : int, default 100
        T, the number of stochastic forward passes. Memory does not grow with T:
        only the running mean and sums of squares (float64, the output's shape)
        are kept.
    batched : bool, default True
        Run several samples per forward call by repeating x along axis 0
        (module docstring). False: one call per sample.
    chunk : int, optional
        Samples per forward call when batched; default ``max(1, 4096 // N)``
        capped at T.
    output : {"logits", "probs", None}, default "logits"
        What the model returns along its last axis. "logits" (softmax taken in
        float64) and "probs" give class-probability statistics, entropies and
        mutual information; None gives mean and variance of the raw outputs
        (regression).
    seed : int, optional
        Run under ``torch.manual_seed(seed)`` inside ``torch.random.fork_rng``,
        leaving torch's global CPU generator untouched. Default: draw from the
        global generator as it stands (so ``torch.manual_seed`` before the call
        reproduces it). Dropout modules given their own ``generator=`` draw
        from it, not from the global one, whatever `seed` is.
    dropout_types : type or tuple of types, optional
        Extra module classes to switch on as dropout.
    atol : float, optional
        Tolerance on probability rows summing to 1 (output "probs").

    Returns
    -------
    MCResult
        ``(mean, variance, predictive_entropy, mutual_information,
        expected_entropy, predicted_class, samples)`` as float64 CPU tensors
        (``predicted_class`` int64).

    Raises
    ------
    TypeError
        model not a Module, x not a tensor, samples/chunk not integers, a
        forward pass that does not return a real floating point tensor.
    ValueError
        x without rows, samples or chunk < 1, unknown output, a model without
        dropout modules, outputs whose rows do not match the input's.

    Examples
    --------
    >>> import torch
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(),
    ...                           torch.nn.Dropout(0.5), torch.nn.Linear(16, 3))
    >>> r = mc_predict(net, torch.randn(5, 4), samples=200, seed=1)
    >>> r.mean.shape, r.predicted_class.shape, bool((r.mutual_information >= 0).all())
    (torch.Size([5, 3]), torch.Size([5]), True)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"x: expected a batch of shape (N, ...) with N >= 1, "
                         f"got shape {tuple(x.shape)}")
    T = _count(samples, "samples")
    if not isinstance(batched, (bool, np.bool_)):
        raise TypeError(f"batched: expected a bool, got {type(batched).__name__}")
    if output not in OUTPUTS:
        raise ValueError(f"output: expected one of {OUTPUTS}, got {output!r}")
    n = x.shape[0]
    if chunk is not None:
        chunk = _count(chunk, "chunk")
    k = min(chunk or max(1, TARGET_ROWS // n), T) if batched else 1
    extra = _check_types(dropout_types)
    if seed is not None:
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed: expected an integer or None, got {type(seed).__name__}")
        seed = int(seed)

    with mc_dropout_mode(model, extra) as found:
        if not found:
            raise ValueError("model: has no dropout modules to sample with (torch's, "
                             "dropout_fast's, or a class given in dropout_types)")
        rng = torch.random.fork_rng(devices=[]) if seed is not None else nullcontext()
        with rng, torch.no_grad():
            if seed is not None:
                torch.manual_seed(seed)
            xk = x.repeat((k,) + (1,) * (x.ndim - 1)) if k > 1 else x
            stats = None
            done = 0
            while done < T:
                kc = min(k, T - done)
                y = _as_numpy(model(xk if kc == k else xk[:kc * n]), n, kc)
                if stats is None:
                    stats = MCStats(y.shape[1:], output, seed=seed, stride=0, batch=k,
                                    atol=atol)
                try:
                    stats.add(y)
                except ValueError as e:  # MCStats names its caller forward_fn
                    raise ValueError(str(e).replace("forward_fn", "model", 1)) from None
                done += kc

    def t(a):
        return None if a is None else torch.from_numpy(np.array(a))

    probs = output is not None
    return MCResult(
        mean=t(stats.mean), variance=t(stats.variance()),
        predictive_entropy=t(stats.predictive_entropy) if probs else None,
        mutual_information=t(stats.mutual_information) if probs else None,
        expected_entropy=t(stats.expected_entropy) if probs else None,
        predicted_class=t(stats.predicted_class) if probs else None,
        samples=T)
