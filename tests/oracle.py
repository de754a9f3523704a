"""A plain-numpy oracle for the dropout_fast stream contract.

Written from the contract in src_c/dropout_fast.h alone and sharing no code
with the C library or the Numba backend (dropout_fast.reference): the tests
compare both against it. Simplicity over speed: every word lives in a uint64
array (so 32x32-bit products fit without overflow), stream 1 is computed for
every element, and nothing is skipped for the common case.

Philox4x32: Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as
1, 2, 3", SC'11; constants from Random123's philox.h.
"""
import numpy as np

M0 = 0xD2511F53
M1 = 0xCD9E8D57
W0 = 0x9E3779B9
W1 = 0xBB67AE85
_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)


def philox4x32(ctr, key, rounds=10):
    """Philox4x32-R of each row: ctr (..., 4) and key (..., 2) -> uint32 (..., 4)."""
    ctr = np.asarray(ctr, dtype=np.uint64)
    key = np.asarray(key, dtype=np.uint64)
    c0, c1, c2, c3 = (ctr[..., j] & _MASK32 for j in range(4))
    k0, k1 = key[..., 0] & _MASK32, key[..., 1] & _MASK32
    for r in range(rounds):
        if r > 0:
            k0 = (k0 + np.uint64(W0)) & _MASK32
            k1 = (k1 + np.uint64(W1)) & _MASK32
        p0 = np.uint64(M0) * c0
        p1 = np.uint64(M1) * c2
        c0, c1, c2, c3 = ((p1 >> _SHIFT32) ^ c1 ^ k0, p1 & _MASK32,
                          (p0 >> _SHIFT32) ^ c3 ^ k1, p0 & _MASK32)
    return np.stack([c0, c1, c2, c3], axis=-1).astype(np.uint32)


def threshold(p):
    """The keep threshold T = min(floor((1 - p) * 2**32), 2**32), clamped at 0."""
    t = np.floor((1.0 - float(p)) * 4294967296.0)
    return int(min(max(t, 0.0), 4294967296.0))


def draws(n, seed, block0, stream):
    """The first n 16-bit draws of `stream` starting at block block0 (uint64 array)."""
    nblocks = (n + 7) // 8
    # 96-bit block indices block0 + j (mod 2**96): the low 64 bits wrap in uint64
    # arithmetic and the top word takes the carry.
    lo0 = block0 % 2**64
    lo = np.uint64(lo0) + np.arange(nblocks, dtype=np.uint64)
    hi = ((block0 >> 64) + (lo < np.uint64(lo0)).astype(np.uint64)) & _MASK32
    ctr = np.stack([lo & _MASK32, lo >> _SHIFT32, hi,
                    np.full(nblocks, stream, dtype=np.uint64)], axis=-1)
    key = np.array([seed & 0xFFFFFFFF, seed >> 32], dtype=np.uint64)
    w = philox4x32(ctr, np.broadcast_to(key, (nblocks, 2))).astype(np.uint64)
    halves = np.stack([w & np.uint64(0xFFFF), w >> np.uint64(16)], axis=-1)  # (blocks, 4, 2)
    return halves.reshape(-1)[:n]


def uniform32(n, seed, block0):
    """U = A << 16 | B for the first n elements (uint64), A from stream 0, B from stream 1."""
    return (draws(n, seed, block0, 0) << np.uint64(16)) | draws(n, seed, block0, 1)


def mask_bool(n, seed, block0, p):
    """keep(i) = U(i) < T for i in [0, n)."""
    return uniform32(n, seed, block0) < np.uint64(threshold(p))


def tie_count(n, seed, block0, p):
    """How many of the first n elements have A == T >> 16: the ties that stream 1
    resolves when T & 0xFFFF != 0."""
    return int(np.count_nonzero(draws(n, seed, block0, 0) == np.uint64(threshold(p) >> 16)))


def scale_of(p, dtype):
    """1 / (1 - p) rounded once to dtype (inf for p == 1, where nothing is kept)."""
    return np.dtype(dtype).type(np.inf if p == 1 else 1.0 / (1.0 - p))


def apply_mask(x, keep, p):
    """keep ? x * scale : +0.0 in x's dtype, with scale = scale_of(p, x.dtype)."""
    x = np.asarray(x)
    with np.errstate(over="ignore", invalid="ignore"):
        y = np.where(keep, x * scale_of(p, x.dtype), x.dtype.type(0))
    return y.astype(x.dtype, copy=False)


def dropout(x, seed, block0, p):
    """(y, keep): y = keep ? x * scale : +0.0 in x's dtype, keep over the flat C-order index."""
    x = np.asarray(x)
    keep = mask_bool(x.size, seed, block0, p).reshape(x.shape)
    return apply_mask(x, keep, p), keep


def packbits(keep):
    """Packed mask bytes: bit i % 8 of byte i // 8."""
    return np.packbits(np.asarray(keep, dtype=bool).reshape(-1), bitorder="little")
