"""The Philox4x32-10 Generator: a key and a block offset, nothing more.

A Generator hands out disjoint ranges of counter blocks: a call that needs an
n-element mask reserves ceil(n/8) blocks under a lock, then computes without
it. Any mask can therefore be regenerated from (key, offset) alone, which is
what backward-by-recomputation and Monte Carlo sample replay rely on.
"""
from __future__ import annotations

import operator
import secrets
import threading
from typing import Any, Optional, Union

import numpy as np

__all__ = ["Generator", "manual_seed", "default_generator", "RNGLike"]

ALGORITHM = "philox4x32-10"
SEED_LIMIT = 1 << 64
OFFSET_LIMIT = 1 << 96  # the counter's block index is 96 bits wide


def _as_int(value: Any, name: str) -> int:
    """An exact Python int from an int-like (numpy integers too), or TypeError."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected an integer, got bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}") from None


def _check_seed(seed: Any) -> int:
    seed = _as_int(seed, "seed")
    if not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"seed: expected an integer in [0, 2**64), got {seed}")
    return seed


def _check_offset(offset: Any, name: str = "offset") -> int:
    offset = _as_int(offset, name)
    if not 0 <= offset < OFFSET_LIMIT:
        raise ValueError(f"{name}: expected an integer in [0, 2**96), got {offset}")
    return offset


class Generator:
    """Philox4x32-10 counter-based generator for dropout masks.

    Parameters
    ----------
    seed : int or None
        An integer in [0, 2**64). The key is ``(seed & 0xFFFFFFFF, seed >> 32)``.
        None draws a seed from the operating system's entropy.

    Attributes
    ----------
    seed : int
        The seed; the key follows from it.
    key : tuple of two int
        The Philox key words ``(k0, k1)``, each a uint32.
    offset : int
        The next free counter block. A call that draws an n-element mask uses
        blocks ``[offset, offset + ceil(n/8))`` and advances it by ``ceil(n/8)``.

    Examples
    --------
    >>> g = Generator(42)
    >>> g.key, g.offset
    ((42, 0), 0)
    >>> g.advance(3).offset
    3
    """

    __slots__ = ("_seed", "_key", "_offset", "_lock", "_spawn_key", "_n_children", "_entropy")

    def __init__(self, seed: Optional[int] = None) -> None:
        seed = secrets.randbits(64) if seed is None else _check_seed(seed)
        self._lock = threading.Lock()
        self._set(seed, 0, seed, (), 0)

    def _set(self, seed: int, offset: int, entropy: int, spawn_key: tuple, n_children: int):
        self._seed = seed
        self._key = (seed & 0xFFFFFFFF, seed >> 32)
        self._offset = offset
        self._entropy = entropy
        self._spawn_key = spawn_key
        self._n_children = n_children

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def key(self) -> tuple:
        return self._key

    @property
    def offset(self) -> int:
        return self._offset

    def _reserve(self, blocks: int) -> int:
        """Atomically take `blocks` counter blocks; returns the first one."""
        # acquire/release rather than `with`: the same lock, ~0.13 us less per call.
        lock = self._lock
        lock.acquire()
        try:
            first = self._offset
            end = first + blocks
            if end > OFFSET_LIMIT:
                raise OverflowError("Generator offset would pass 2**96 counter blocks")
            self._offset = end
        finally:
            lock.release()
        return first

    def advance(self, blocks: int) -> "Generator":
        """Skip `blocks` counter blocks (8 mask elements each); returns self."""
        blocks = _as_int(blocks, "blocks")
        if blocks < 0:
            raise ValueError(f"blocks: expected a non-negative integer, got {blocks}")
        self._reserve(blocks)
        return self

    def spawn(self, n: int) -> list:
        """Return `n` new, statistically independent generators.

        Child keys come from numpy's ``SeedSequence`` over this generator's root
        entropy and a spawn key, as ``numpy.random.Generator.spawn`` does, so
        repeated calls never give the same child twice.
        """
        n = _as_int(n, "n")
        if n < 0:
            raise ValueError(f"n: expected a non-negative integer, got {n}")
        with self._lock:
            first = self._n_children
            self._n_children += n
        children = []
        for i in range(first, first + n):
            key = self._spawn_key + (i,)
            seq = np.random.SeedSequence(self._entropy, spawn_key=key)
            child = Generator.__new__(Generator)
            child._lock = threading.Lock()
            child._set(int(seq.generate_state(1, np.uint64)[0]), 0, self._entropy, key, 0)
            children.append(child)
        return children

    @property
    def state(self) -> dict:
        """A dict that fully describes the generator; assignable and picklable."""
        with self._lock:
            return {
                "algorithm": ALGORITHM,
                "seed": self._seed,
                "offset": self._offset,
                "entropy": self._entropy,
                "spawn_key": tuple(self._spawn_key),
                "n_children": self._n_children,
            }

    @state.setter
    def state(self, value: dict) -> None:
        if not isinstance(value, dict):
            raise TypeError(f"state: expected a dict, got {type(value).__name__}")
        missing = {"algorithm", "seed", "offset"} - value.keys()
        if missing:
            raise ValueError(f"state: missing keys {sorted(missing)}")
        if value["algorithm"] != ALGORITHM:
            raise ValueError(f"state: algorithm must be {ALGORITHM!r}, got {value['algorithm']!r}")
        seed = _check_seed(value["seed"])
        offset = _check_offset(value["offset"], "state['offset']")
        entropy = _check_seed(value.get("entropy", seed))
        spawn_key = value.get("spawn_key", ())
        if not isinstance(spawn_key, (tuple, list)):
            raise TypeError("state['spawn_key']: expected a tuple of non-negative integers")
        spawn_key = tuple(_as_int(k, "state['spawn_key']") for k in spawn_key)
        if any(k < 0 for k in spawn_key):
            raise ValueError("state['spawn_key']: expected non-negative integers")
        n_children = _as_int(value.get("n_children", 0), "state['n_children']")
        if n_children < 0:
            raise ValueError("state['n_children']: expected a non-negative integer")
        with self._lock:
            self._set(seed, offset, entropy, spawn_key, n_children)

    def __reduce__(self):
        return (_from_state, (self.state,))

    def __repr__(self) -> str:
        return f"Generator(seed={self._seed}, offset={self._offset})"


def _from_state(state: dict) -> Generator:
    g = Generator(0)
    g.state = state
    return g


_default = Generator()


def default_generator() -> Generator:
    """The module's default Generator, used when ``rng=None``."""
    return _default


def manual_seed(seed: int) -> Generator:
    """Reset the default generator to `seed` with offset 0; returns it."""
    _default.state = {"algorithm": ALGORITHM, "seed": _check_seed(seed), "offset": 0}
    return _default


RNGLike = Union[Generator, int, None]


def resolve_rng(rng: RNGLike) -> Generator:
    """A Generator from ``rng=``: a Generator, an int seed (offset 0), or None."""
    if rng is None:
        return _default
    if isinstance(rng, Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, (bool, np.bool_)):
        return Generator(rng)
    raise TypeError(f"rng: expected a dropout_fast.Generator, an int seed or None, "
                    f"got {type(rng).__name__}")
