"""python -m dropout_fast.tools.stream: its bytes are the stream contract's, and a
fast subset of dieharder passes on them (the full battery is in docs/dieharder.md).
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import oracle
import pytest

import dropout_fast as df
from dropout_fast.tools import stream

ROOT = str(Path(df.__file__).resolve().parent.parent)


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def _tool(*args):
    return [sys.executable, "-m", "dropout_fast.tools.stream", *map(str, args)]


def _take(chunks, n):
    """The first n elements of an iterator of arrays, concatenated."""
    got, total = [], 0
    for c in chunks:
        got.append(c.copy())
        total += c.size
        if total >= n:
            break
    return np.concatenate(got)[:n]


@pytest.mark.parametrize("offset", [0, 2**32 - 3, 2**64 - 5, 2**96 - 2])
@pytest.mark.parametrize("stream_id", [0, 1, 7])
def test_words_are_philox_blocks(offset, stream_id):
    seed = 0x0123456789ABCDEF
    words = _take(stream.word_chunks(seed, offset, stream_id, chunk_blocks=4), 4 * 12)
    blocks = [(offset + j) % 2**96 for j in range(12)]
    ctr = [[b & 0xFFFFFFFF, (b >> 32) & 0xFFFFFFFF, b >> 64, stream_id] for b in blocks]
    expect = oracle.philox4x32(ctr, [[seed & 0xFFFFFFFF, seed >> 32]] * 12)
    np.testing.assert_array_equal(words, expect.reshape(-1))


@pytest.mark.parametrize("p", [0.5, 0.1])
@pytest.mark.parametrize("offset", [3, 2**64 - 2])
def test_mask_bits_are_dropouts(p, offset):
    """Successive chunks are the bits that successive dropout calls on one Generator give."""
    g = df.Generator(99)
    g.advance(offset)
    expect = [df.dropout_forward(np.zeros(64, np.float32), p, rng=g)[1].bits for _ in range(3)]
    got = _take(stream.mask_chunks(99, offset, p, chunk=64), 24)
    np.testing.assert_array_equal(got, np.concatenate(expect))
    keep = oracle.mask_bool(192, 99, offset, p)
    np.testing.assert_array_equal(got, oracle.packbits(keep))


def test_von_neumann():
    rng = np.random.default_rng(1)
    chunks = [rng.integers(0, 256, n, dtype=np.uint8) for n in (1, 7, 1000, 3)]
    got = np.concatenate([c.copy() for c in stream.von_neumann(iter(chunks))])
    b = np.unpackbits(np.concatenate(chunks), bitorder="little")
    first, second = b[0::2], b[1::2]
    bits = first[first != second]                    # 10 -> 1, 01 -> 0
    np.testing.assert_array_equal(got, np.packbits(bits[: bits.size // 8 * 8], bitorder="little"))


def test_von_neumann_unbiases():
    """p = 0.1 mask bits are 90% ones; after the extractor, half are ones (5 sigma)."""
    bits = _take(stream.von_neumann(stream.mask_chunks(3, 0, 0.1, chunk=1 << 20)), 20000)
    n = bits.size * 8
    ones = int(np.unpackbits(bits).sum())
    assert abs(ones - n / 2) < 5 * np.sqrt(n / 4)


def test_cli_count_and_args():
    out = subprocess.run(_tool("--seed", 5, "--offset", 2**64 - 1, "--count", 9),
                         capture_output=True, env=_env(), check=True).stdout
    assert len(out) == 36
    words = np.frombuffer(out, "<u4")
    np.testing.assert_array_equal(words, _take(stream.word_chunks(5, 2**64 - 1), 9))
    out = subprocess.run(_tool("--seed", 5, "--mask", 0.5, "--count", 2), capture_output=True,
                         env=_env(), check=True).stdout
    np.testing.assert_array_equal(np.frombuffer(out, np.uint8), _take(stream.mask_chunks(5, 0, 0.5), 8))


@pytest.mark.parametrize("bad", [["--seed", "-1"], ["--offset", str(2**96)], ["--mask", "1.5"],
                                 ["--mask", "x"], ["--debias"], ["--mask", "0.5", "--stream", "2"]])
def test_cli_bad_arguments(bad, capsys):
    with pytest.raises(SystemExit) as e:
        stream.main(bad)
    assert e.value.code == 2 and "usage" in capsys.readouterr().err


def test_cli_quiet_when_reader_closes():
    """head closes the pipe after 1000 bytes: no traceback, exit status 0."""
    producer = subprocess.Popen(_tool("--seed", 1), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=_env())
    head = producer.stdout.read(1000)
    producer.stdout.close()
    assert producer.wait(timeout=60) == 0
    assert len(head) == 1000 and producer.stderr.read() == b""
    producer.stderr.close()


# --------------------------------------------------------------------------- dieharder
# A fast subset (under a minute on a loaded core): fixed seeds, so each verdict is
# reproducible. WEAK (p outside [0.005, 0.995]) happens to 1% of good tests and
# passes; FAILED (p < 1e-6 or > 1 - 1e-6) fails.
DIEHARDER_CASES = [
    ("words", (), (0, 8, 100, 202)),
    ("mask p=0.5", ("--mask", 0.5), (0, 8)),
    ("mask p=0.1 debiased", ("--mask", 0.1, "--debias"), (0,)),
]


def _dieharder():
    exe = shutil.which("dieharder")
    if exe is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("dieharder is not installed (.ci/run installs it with apt-get)")
        pytest.skip("dieharder is not installed (apt-get install dieharder)")
    return exe


def _verdicts(text):
    rows = []
    for line in text.splitlines():
        cols = [c.strip() for c in line.split("|")]
        if len(cols) == 6 and cols[5] in ("PASSED", "WEAK", "FAILED"):
            rows.append((cols[0], cols[1], float(cols[4]), cols[5]))
    return rows


@pytest.mark.parametrize("name,args,tests", DIEHARDER_CASES, ids=[c[0] for c in DIEHARDER_CASES])
def test_dieharder_subset(name, args, tests):
    exe = _dieharder()
    rows = []
    for d in tests:
        producer = subprocess.Popen(_tool("--seed", 20261204, *args), stdout=subprocess.PIPE,
                                    env=_env())
        try:
            r = subprocess.run([exe, "-g", "200", "-d", str(d)], stdin=producer.stdout, check=False,
                               capture_output=True, text=True, timeout=300)
        finally:
            producer.stdout.close()
            producer.kill()
            producer.wait()
        got = _verdicts(r.stdout)
        assert r.returncode == 0 and got, f"dieharder -d {d} gave no verdict:\n{r.stdout}{r.stderr}"
        rows += got
    failed = [row for row in rows if row[3] == "FAILED"]
    assert not failed, f"{name}: dieharder FAILED: {failed} (all: {rows})"
