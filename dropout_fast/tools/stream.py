"""Write a Philox stream of the stream contract to stdout as raw bytes.

For statistical test suites that read raw random bits, such as Debian's
dieharder (``dieharder -g 200`` reads them from stdin)::

    python -m dropout_fast.tools.stream --seed 1 | dieharder -g 200 -a

Three outputs:

- the default: the 32-bit words of stream ``--stream`` (0 unless given),
  block after block from block ``--offset``: ``w0, w1, w2, w3`` of block
  ``o``, then of block ``o + 1``, ... (each word little-endian). The block
  index is 96 bits, so an offset near ``2**64`` exercises the carry into the
  third counter word.
- ``--mask P``: the packed keep bits that dropout with probability ``P`` uses
  from offset ``--offset`` on (element ``i`` at bit ``i % 8`` of byte
  ``i // 8``, as ``DropoutMask.bits``). Each bit is 1 with probability
  ``1 - P``, so only ``P = 0.5`` gives unbiased bits.
- ``--mask P --debias``: the mask bits after von Neumann's extractor
  (pairs of consecutive bits: ``10`` gives 1, ``01`` gives 0, ``00`` and
  ``11`` give nothing). For independent bits of any bias the output bits are
  independent and unbiased, so a generic battery applies; a failure means the
  mask bits are not independent (or not identically distributed). It keeps
  ``2 P (1 - P)`` output bits per pair of mask bits (0.09 per mask bit at
  ``P = 0.1``).

The output ends after ``--count`` 32-bit words, or never; a reader that closes
the pipe (dieharder when it is done) ends the program quietly.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from typing import BinaryIO

import numba
import numpy as np

from dropout_fast import _config
from dropout_fast.api import threshold

_U64 = 1 << 64
_U96 = 1 << 96
_CHUNK_BLOCKS = 1 << 20          # 16 MiB of words per kernel call
_CHUNK_MASK = 1 << 27            # mask elements per kernel call (16 MiB of bits)


def _key(seed: int) -> tuple[int, int]:
    return seed & 0xFFFFFFFF, seed >> 32


def word_chunks(seed: int, offset: int, stream: int = 0,
                chunk_blocks: int = _CHUNK_BLOCKS) -> Iterator[np.ndarray]:
    """Endless uint32 arrays of the words of `stream`, blocks `offset`, `offset + 1`, ...

    Parameters
    ----------
    seed : int
        The key, in [0, 2**64).
    offset : int
        The first block index, in [0, 2**96); the index wraps modulo 2**96.
    stream : int, default 0
        The counter's fourth word, in [0, 2**32).
    chunk_blocks : int
        Blocks per array (each yields 4 words).

    Yields
    ------
    ndarray of uint32, shape (4 * chunk_blocks,)
    """
    key = np.empty((chunk_blocks, 2), dtype=np.uint32)
    key[:] = _key(seed)
    ctr = np.empty((chunk_blocks, 4), dtype=np.uint32)
    ctr[:, 3] = stream
    out = np.empty((chunk_blocks, 4), dtype=np.uint32)
    steps = np.arange(chunk_blocks, dtype=np.uint64)
    while True:
        lo0, hi0 = offset % _U64, offset >> 64
        lo = np.uint64(lo0) + steps                       # wraps modulo 2**64
        ctr[:, 0] = lo & np.uint64(0xFFFFFFFF)
        ctr[:, 1] = lo >> np.uint64(32)
        ctr[:, 2] = (hi0 + (lo < np.uint64(lo0))) & 0xFFFFFFFF   # the carry into word 2
        _config.kernels.philox4x32(ctr, key, out, 10)
        yield out.reshape(-1)
        offset = (offset + chunk_blocks) % _U96


def mask_chunks(seed: int, offset: int, p: float,
                chunk: int = _CHUNK_MASK) -> Iterator[np.ndarray]:
    """Endless uint8 arrays of the packed keep bits of dropout(p) from block `offset` on.

    Each array holds the bits of `chunk` consecutive elements (a multiple of 8);
    the next array continues at block offset + chunk / 8, as successive calls
    on one Generator do.
    """
    if chunk % 8:
        raise ValueError(f"chunk: expected a multiple of 8, got {chunk}")
    key0, key1 = _key(seed)
    thresh = threshold(p)
    bits = np.empty(chunk // 8, dtype=np.uint8)
    while True:
        _config.kernels.mask(bits, chunk, key0, key1, offset % _U64, offset >> 64, thresh,
                             _config.nthreads, _config.isa)
        yield bits
        offset = (offset + chunk // 8) % _U96


def _vn_tables():
    """For each byte (four bit pairs): how many output bits, and those bits packed."""
    count = np.zeros(256, np.int64)
    value = np.zeros(256, np.int64)
    for byte in range(256):
        for k in range(4):
            b0, b1 = (byte >> 2 * k) & 1, (byte >> 2 * k + 1) & 1
            if b0 != b1:
                value[byte] |= b0 << count[byte]
                count[byte] += 1
    return count, value


_VN_COUNT, _VN_VALUE = _vn_tables()


@numba.njit(cache=False, nogil=True)
def _vn_kernel(packed, out, acc, nacc, count, value):  # pragma: no cover - compiled by Numba
    j = 0
    for byte in packed:
        acc |= value[byte] << nacc
        nacc += count[byte]
        if nacc >= 8:
            out[j] = acc & 0xFF
            j += 1
            acc >>= 8
            nacc -= 8
    return j, acc, nacc


def von_neumann(chunks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """Von Neumann's extractor over a stream of packed bits (bit i % 8 of byte i // 8).

    Consecutive pairs (bit 2k, bit 2k + 1): (1, 0) gives 1, (0, 1) gives 0,
    equal bits give nothing. Output bits are packed the same way; bits that do
    not fill a byte wait for the next chunk.
    """
    acc = nacc = 0
    out = None
    for packed in chunks:
        if out is None or out.size < packed.size // 2:
            out = np.empty(packed.size // 2 + 1, np.uint8)  # at most 4 bits per byte
        n, acc, nacc = _vn_kernel(packed, out, acc, nacc, _VN_COUNT, _VN_VALUE)
        yield out[:n]


def write(chunks: Iterator[np.ndarray], count: int | None, dest: BinaryIO) -> int:
    """Write the chunks' bytes to `dest`, `count` 32-bit words of them (all if None).

    Returns the number of bytes written; stops quietly if the reader closes the pipe.
    """
    left = None if count is None else 4 * count
    done = 0
    try:
        for c in chunks:
            data = c.astype(c.dtype.newbyteorder("<"), copy=False).view(np.uint8)
            if left is not None:
                data = data[:left - done]
            dest.write(memoryview(data))
            done += data.size
            if left is not None and done >= left:
                break
        dest.flush()
    except BrokenPipeError:
        # The reader is done. Point stdout at /dev/null so that the interpreter's
        # final flush does not raise again (Python docs, "Note on SIGPIPE").
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return done


def _int_arg(lo: int, hi: int, name: str):
    def parse(text: str) -> int:
        try:
            v = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}: expected an integer, got {text!r}") from None
        if not lo <= v < hi:
            raise argparse.ArgumentTypeError(f"{name}: expected an integer in [{lo}, {hi:#x}), "
                                             f"got {v}")
        return v
    return parse


def _p_arg(text: str) -> float:
    try:
        p = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--mask: expected a probability, got {text!r}") from None
    if not 0.0 < p < 1.0:
        raise argparse.ArgumentTypeError(f"--mask: expected p in (0, 1), got {p}")
    return p


def main(argv: list[str] | None = None) -> int:
    """The command line: parse `argv` (sys.argv[1:] if None), write the stream; returns 0."""
    ap = argparse.ArgumentParser(
        prog="python -m dropout_fast.tools.stream",
        description="Write raw Philox words, or dropout mask bits, of the stream contract to stdout.")
    ap.add_argument("--seed", type=_int_arg(0, _U64, "--seed"), default=0,
                    help="Generator seed in [0, 2**64) (default 0)")
    ap.add_argument("--offset", type=_int_arg(0, _U96, "--offset"), default=0,
                    help="first block index in [0, 2**96) (default 0)")
    ap.add_argument("--stream", type=_int_arg(0, 1 << 32, "--stream"), default=0,
                    help="stream id of the word output (default 0); not used with --mask")
    ap.add_argument("--mask", type=_p_arg, metavar="P", default=None,
                    help="write the packed keep bits of dropout(P) instead of words")
    ap.add_argument("--debias", action="store_true",
                    help="with --mask: pass the bits through von Neumann's extractor")
    ap.add_argument("--count", type=_int_arg(0, 1 << 62, "--count"), default=None,
                    help="stop after this many 32-bit words (default: never)")
    args = ap.parse_args(argv)
    if args.debias and args.mask is None:
        ap.error("--debias: needs --mask")
    if args.mask is not None and args.stream:
        ap.error("--stream: the mask uses streams 0 and 1 as the contract says; omit --stream")
    if args.mask is None:
        chunks = word_chunks(args.seed, args.offset, args.stream)
    else:
        chunks = mask_chunks(args.seed, args.offset, args.mask)
        if args.debias:
            chunks = von_neumann(chunks)
    write(chunks, args.count, sys.stdout.buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
