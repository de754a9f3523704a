"""Tensors in and out of the kernels: checks, memory order, allocation, dtypes.

Zero-copy both ways: a dense CPU tensor is read through ``tensor.numpy()`` (a
view) and outputs are numpy buffers wrapped by ``torch.from_numpy`` (no copy).
A dense tensor in any memory order (contiguous, channels_last, a transpose) is
processed in its memory order: the kernels see it as the C-contiguous array
``x.permute(perm)``, where `perm` lists the dimensions by decreasing stride.
Other strides (slices with steps, expanded views) are copied to C order first.
bfloat16 and float16 go through a float32 pass: the input is converted to
float32, the float32 kernel runs (so the mask is the one a float32 tensor of the
same values gets) and the result is rounded to the input's dtype.
"""
from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import numpy as np
import torch

NATIVE = (torch.float32, torch.float64)
VIA_FLOAT32 = (torch.bfloat16, torch.float16)
FLOATS = NATIVE + VIA_FLOAT32

# Fresh outputs of at least this many bytes are numpy allocations wrapped with
# torch.from_numpy: numpy asks the kernel for transparent huge pages there (it
# calls madvise(MADV_HUGEPAGE) for allocations of 4 MiB and more), so writing a
# new buffer takes 512 times fewer page faults than torch.empty's. Below it
# torch.empty is as fast and skips numpy's wrapper. Measured by
# bench/bench_torch.py --alloc (see the README's PyTorch section).
NUMPY_ALLOC_BYTES = 4 << 20


def check_tensor(x, name: str) -> torch.Tensor:
    """x if it is a floating CPU tensor, else a TypeError/ValueError naming `name`."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_cpu:
        raise ValueError(f"{name}: dropout_fast.torch runs on CPU tensors, got a tensor on "
                         f"device '{x.device}' (use torch's own dropout there)")
    if x.dtype not in FLOATS:
        raise TypeError(f"{name}: expected a float32, float64, bfloat16 or float16 tensor, "
                        f"got dtype {x.dtype}")
    return x


def memory_perm(x: torch.Tensor) -> List[int]:
    """Dimensions by decreasing stride when x is dense (no gaps, no overlap), so that
    ``x.permute(perm)`` is C-contiguous; the identity otherwise (x is then copied)."""
    nd = x.dim()
    if nd < 2 or x.is_contiguous():
        return list(range(nd))
    shape, stride = x.shape, x.stride()
    perm = sorted(range(nd), key=lambda d: (-stride[d], d))
    expected = 1
    for d in reversed(perm):
        if shape[d] != 1 and stride[d] != expected:
            return list(range(nd))
        expected *= shape[d]
    return perm


def inverse(perm: Sequence[int]) -> List[int]:
    inv = [0] * len(perm)
    for i, d in enumerate(perm):
        inv[d] = i
    return inv


def permuted(shape: Sequence[int], perm: Sequence[int]) -> Tuple[int, ...]:
    return tuple(shape[d] for d in perm)


def empty(shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    """A new C-contiguous CPU tensor; large ones from numpy (huge pages), see above."""
    shape = tuple(shape)
    if dtype in NATIVE and math.prod(shape) * (4 if dtype == torch.float32 else 8) \
            >= NUMPY_ALLOC_BYTES:
        return torch.from_numpy(np.empty(shape, np.float32 if dtype == torch.float32
                                         else np.float64))
    return torch.empty(shape, dtype=dtype)


def empty_perm(shape: Sequence[int], perm: Sequence[int], dtype: torch.dtype,
               fake: bool = False) -> torch.Tensor:
    """A new tensor of `shape` whose memory order is `perm` (x.permute(perm) contiguous)."""
    pshape = permuted(shape, perm)
    buf = torch.empty(pshape, dtype=dtype) if fake else empty(pshape, dtype)
    return buf if list(perm) == list(range(len(perm))) else buf.permute(inverse(perm))


def as_kernel_array(t: torch.Tensor, perm: Sequence[int]) -> np.ndarray:
    """t (no autograd history needed) as the C-contiguous numpy array the kernels read:
    ``t.permute(perm)`` in float32/float64, a view when t's memory order is perm."""
    t = t.detach()
    if list(perm) != list(range(t.dim())):
        t = t.permute(perm)
    if t.dtype in VIA_FLOAT32:
        t = t.float()
    return t.contiguous().numpy()


class Output:
    """Where a kernel writes: the numpy view of a new tensor in memory order `perm`,
    or a float32 scratch buffer that `finish()` rounds into a bfloat16/float16 tensor."""

    __slots__ = ("tensor", "array", "_scratch", "_perm")

    def __init__(self, shape: Sequence[int], perm: Sequence[int], dtype: torch.dtype):
        self.tensor = empty_perm(shape, perm, dtype)
        self._perm = list(perm)
        if dtype in VIA_FLOAT32:
            self._scratch = np.empty(permuted(shape, perm), np.float32)
            self.array = self._scratch
        else:
            self._scratch = None
            self.array = (self.tensor if list(perm) == list(range(len(perm)))
                          else self.tensor.permute(perm)).numpy()

    def finish(self) -> torch.Tensor:
        if self._scratch is not None:
            self.tensor.permute(self._perm).copy_(torch.from_numpy(self._scratch))
        return self.tensor
