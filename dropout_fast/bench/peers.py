"""The peers: which other implementations are installed, their versions, and
how to give each the same thread count.

A peer that cannot be imported (or fails its smoke check) is reported as
skipped with the reason; it never fails the run.
"""
from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np

# Column order of the tables. "dropout_fast" is the package itself.
PEERS = ("dropout_fast", "numpy", "numba", "torch", "torch.compile", "jax", "tensorflow")


@dataclass
class Peer:
    name: str
    version: Optional[str]
    skipped: Optional[str] = None   # why the peer is not measured, or None

    @property
    def ok(self) -> bool:
        return self.skipped is None


def _import(module: str):
    try:
        return importlib.import_module(module), None
    except ImportError:
        return None, "not installed"
    except Exception as exc:  # a broken install raising anything else
        return None, f"import failed ({type(exc).__name__})"


def _compile_ok(torch) -> Optional[str]:
    """torch.compile needs a working inductor C++ toolchain: try a tiny graph."""
    try:
        f = torch.compile(lambda t: t * 2, dynamic=False)
        f(torch.ones(8))
        return None
    except Exception as exc:  # no compiler, unsupported platform
        return f"torch.compile unavailable ({type(exc).__name__})"


def detect(blocked=(), check_compile: bool = True) -> Dict[str, Peer]:
    """Peer name -> Peer. `blocked` names peers to treat as missing (tests use it
    to simulate an absent install; DROPOUT_FAST_BENCH_BLOCK=jax,torch does the same)."""
    blocked = set(blocked) | set(filter(None, os.environ.get("DROPOUT_FAST_BENCH_BLOCK",
                                                             "").split(",")))
    import dropout_fast

    found: Dict[str, Peer] = {
        "dropout_fast": Peer("dropout_fast", dropout_fast.__version__),
        "numpy": Peer("numpy", np.__version__),
    }
    for name, module in (("numba", "numba"), ("torch", "torch"), ("jax", "jax"),
                         ("tensorflow", "tensorflow")):
        if name in blocked:
            found[name] = Peer(name, None, "not installed (blocked)")
            continue
        mod, why = _import(module)
        found[name] = Peer(name, getattr(mod, "__version__", None), why)
    torch_peer = found["torch"]
    if "torch.compile" in blocked or not torch_peer.ok:
        why = "not installed (blocked)" if "torch.compile" in blocked else torch_peer.skipped
        found["torch.compile"] = Peer("torch.compile", None, why)
    else:
        why = _compile_ok(sys.modules["torch"]) if check_compile else None
        found["torch.compile"] = Peer("torch.compile", torch_peer.version, why)
    if "numpy" in blocked:
        found["numpy"].skipped = "blocked"
    return {name: found[name] for name in PEERS}


def versions(peers: Dict[str, Peer]) -> Dict[str, Optional[str]]:
    out = {name: p.version for name, p in peers.items()}
    if peers.get("jax") is not None and peers["jax"].ok:
        try:
            import jaxlib

            out["jaxlib"] = jaxlib.__version__
        except ImportError:
            pass
    return out


def set_threads(threads: int, peers: Dict[str, Peer]) -> None:
    """The same thread count for every implementation that has one."""
    import dropout_fast as df

    df.set_num_threads(threads)
    if peers["numba"].ok:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    if peers["torch"].ok:
        import torch

        torch.set_num_threads(threads)
    if peers["tensorflow"].ok:
        # Only takes effect before TensorFlow's runtime starts; noted in the JSON.
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
        except RuntimeError:
            pass
