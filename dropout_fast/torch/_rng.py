"""Randomness from torch: every dropout call draws its Philox seed from a
torch.Generator, so ``torch.manual_seed`` makes runs reproducible.

The contract (part of the compatibility promise of ``dropout_fast.torch``):

- A call draws one 63-bit integer ``s`` from the generator, exactly as
  ``torch.empty((), dtype=torch.int64).random_(generator=g)`` does (torch's
  default CPU generator when none is given). The mask is the one the numpy API
  draws with ``dropout_fast.Generator(s)`` advanced by ``r * 2**64`` blocks:
  key ``(s & 0xFFFFFFFF, s >> 32)``, counter words ``b0 = b1 = 0`` and
  ``b2 = r``.
- ``r`` is the process's rank in the default ``torch.distributed`` process
  group when one is initialised and rank folding is on (the default), else 0.
  Ranks seeded alike (the usual DDP setup) thus draw the same seeds but use
  disjoint counter ranges: different masks on every rank, guaranteed, not
  merely likely. Inside ``identical_masks()`` (or after
  ``set_rank_folding(False)``) ``r`` is 0 on every rank, so ranks whose
  generators agree draw identical masks, as Megatron-LM's RNG tracker gives for
  tensor-parallel regions.
"""
from __future__ import annotations

import contextlib
from typing import Optional

import torch

from dropout_fast._generator import Generator

__all__ = ["draw_seed", "stream_id", "numpy_generator", "set_rank_folding", "identical_masks",
           "rank_folding"]

_state = {"fold": True}


def set_rank_folding(enabled: bool) -> None:
    """Fold the distributed rank into every mask (True, the default: different masks on
    every rank) or not (False: ranks with equal generator states draw equal masks)."""
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled: expected a bool, got {type(enabled).__name__}")
    _state["fold"] = enabled


def rank_folding() -> bool:
    """Whether the rank is folded into masks now (see `set_rank_folding`)."""
    return _state["fold"]


@contextlib.contextmanager
def identical_masks():
    """Inside the block every rank uses stream 0: ranks whose torch generators agree
    draw identical masks (regions that must agree across tensor-parallel ranks)."""
    saved = _state["fold"]
    _state["fold"] = False
    try:
        yield
    finally:
        _state["fold"] = saved


def stream_id() -> int:
    """The counter word b2 of this process's masks: its rank, or 0 (see the module doc)."""
    if not _state["fold"]:
        return 0
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return 0


def draw_seed(generator: Optional[torch.Generator]) -> torch.Tensor:
    """One 63-bit seed as a 0-d int64 tensor, drawn from `generator` (or torch's default)."""
    if torch.compiler.is_compiling():
        # Traced: the out-of-place draw (the compiled graph may use its own RNG for it,
        # so compiled and eager runs draw different seeds; each is reproducible).
        return torch.randint(0, 2**63 - 1, (), dtype=torch.int64, generator=generator)
    t = torch.empty((), dtype=torch.int64)
    if generator is None:
        return t.random_()
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator or None, "
                        f"got {type(generator).__name__}")
    if generator.device.type != "cpu":
        raise ValueError(f"generator: expected a CPU generator, got one on '{generator.device}'")
    return t.random_(generator=generator)


def numpy_generator(seed: int, stream: int) -> Generator:
    """The numpy API's Generator that draws the same masks as a torch call with this
    seed and stream (bit-for-bit equal outputs)."""
    return Generator(int(seed)).advance(int(stream) << 64)
