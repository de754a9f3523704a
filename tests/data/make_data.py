"""Write the known-answer files in this directory from the numpy oracle (tests/oracle.py).

    python tests/data/make_data.py           rewrite philox_kat.txt and stream_vectors.txt
    python tests/data/make_data.py --check   regenerate in memory; exit 1 if a stored file differs

The answers come from the oracle alone, never from a backend, so the C library
and the Numba reference are both checked against them. Both files are plain
text, whitespace-separated tokens; '#' starts a comment that runs to the end
of the line. Integers are hex without 0x unless said otherwise.

philox_kat.txt: one Philox4x32 evaluation per line,
    rounds c0 c1 c2 c3 k0 k1 o0 o1 o2 o3
with rounds in decimal and 32-bit words in hex: out = Philox4x32-rounds(ctr, key).
The first six lines are Random123's kat_vectors (7 and 10 rounds; the oracle
must reproduce them or this script fails); the rest are oracle outputs for
counters of the stream contract (carries, streams) and edge round counts.

stream_vectors.txt: one record per case, each a fixed sequence of tokens:
    case NAME seed SEED block0 HI LO n N p P thresh T scale32 S32 scale64 S64
    bits NB  byte_0 ... byte_{NB-1}
    y32 N  word_0 ... word_{N-1}
    y64 N  word_0 ... word_{N-1}
SEED is the 64-bit seed (key = (SEED & 0xffffffff, SEED >> 32)); block0 is
HI << 64 | LO (HI 32-bit, LO 64-bit); N and NB = (N + 7) / 8 are decimal; P is
the dropout probability as a decimal that strtod and Python's float read
exactly; T = min(floor((1 - P) * 2**32), 2**32); S32 and S64 are the IEEE bit
patterns of scale = 1 / (1 - P) rounded to float32 and float64 (infinity for
P = 1, where nothing is kept). bits are the packed keep bits (bit i % 8 of byte
i / 8, unused high bits 0); y32 and y64 are the IEEE bit patterns of the
outputs y[i] = keep(i) ? x[i] * scale : +0.0 for the input
    x[i] = ((i * 40503) mod 2**24) / 256 - 32768,
which is exact in both float32 and float64. Ties (A == T >> 16, resolved from
stream 1) occur in the cases named tie_*; the comment line above a case says
how many elements it has, and how many of them were kept.
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import oracle  # noqa: E402  (tests/oracle.py, found through the path above)

KAT_FILE = os.path.join(HERE, "philox_kat.txt")
STREAM_FILE = os.path.join(HERE, "stream_vectors.txt")

# Random123 kat_vectors: (counter, key) -> (10 rounds, 7 rounds).
RANDOM123 = [
    ((0, 0, 0, 0), (0, 0),
     (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8),
     (0x5F6FB709, 0x0D893F64, 0x4F121F81, 0x4F730A48)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2,
     (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD),
     (0x5207DDC2, 0x45165E59, 0x4D8EE751, 0x8C52F662)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
     (0x4DFCCABA, 0x190A87F0, 0xC47362BA, 0xB6B5242A)),
]

# Oracle rows: counters (block index words b0 b1 b2, stream) around the carries.
EXTRA_CTRS = [
    (1, 0, 0, 0), (0, 0, 0, 1), (0, 0, 0, 2), (0xFFFFFFFF, 0, 0, 0), (0, 1, 0, 0),
    (0xFFFFFFFF, 0xFFFFFFFF, 0, 0), (0, 0, 1, 0), (0xFFFFFFFF, 0xFFFFFFFF, 0, 1),
    (0, 0, 1, 1), (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0), (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 1),
    (5, 0, 0, 0), (0xFFFFFFFD, 0xFFFFFFFF, 0, 1), (0x12345678, 0x9ABCDEF0, 0x0F1E2D3C, 3),
    (0xFFFFFFFF, 0, 0, 1), (0, 0, 0xFFFFFFFF, 1), (0xFFFFFFFF, 0xFFFFFFFF, 7, 0),
]
EXTRA_KEYS = [(0, 0), (0xFFFFFFFF, 0xFFFFFFFF), (0x89ABCDEF, 0x01234567)]
EDGE_ROUNDS = [0, 1, 2, 16]

SEEDS = [0, 2**64 - 1, 0x0123456789ABCDEF]
OFFSETS = [0, 5, 2**32 - 1, 2**64 - 3]
PS = [0.0, 0.1, 0.5, 0.9, 1.0, 0.3]
SMALL_N = [0, 1, 3, 5, 31]


def x_input(n, dtype):
    """The fixed input: ((i * 40503) mod 2**24) / 256 - 32768, exact in float32 and float64."""
    k = np.arange(n, dtype=np.int64) * 40503 % 2**24
    return (k.astype(dtype) / dtype(256) - dtype(32768)).astype(dtype)


def _find_tie(seed, p, start, kept):
    """The first block >= start holding an element with A == T >> 16 whose
    stream-1 draw B keeps it (kept=True) or drops it (kept=False)."""
    t = oracle.threshold(p)
    span = 2**15
    while True:
        a = oracle.draws(8 * span, seed, start, 0)
        b = oracle.draws(8 * span, seed, start, 1)
        hit = (a == np.uint64(t >> 16)) & ((b < np.uint64(t & 0xFFFF)) == kept)
        if hit.any():
            return start + int(np.argmax(hit)) // 8
        start += span


def cases():
    """(name, seed, block0, n, p) of every stored case, in file order."""
    out = []
    k = 0
    for seed in SEEDS:
        for block0 in OFFSETS:
            for p in PS:
                out.append((f"s{k}", seed, block0, SMALL_N[k % len(SMALL_N)], p))
                k += 1
    out += [
        ("carry32_long", 2**64 - 1, 2**32 - 1, 4099, 0.3),
        ("carry64_long", 0, 2**64 - 3, 1000, 0.1),
        ("hi_word_carry", 2**64 - 1, 7 * 2**64 + 2**64 - 2, 31, 0.9),
        ("top_of_range", 0x0123456789ABCDEF, 2**96 - 4, 32, 0.3),
    ]
    seed = 0x0123456789ABCDEF
    for p in (0.3, 0.1, 0.9):
        for kept in (True, False):
            block0 = _find_tie(seed, p, 1000, kept)
            out.append((f"tie_{'kept' if kept else 'dropped'}_p{p}", seed, block0, 16, p))
    return out


def _words(tokens, per_line):
    lines = [" ".join(tokens[i:i + per_line]) for i in range(0, len(tokens), per_line)]
    return "".join("  " + line + "\n" for line in lines)


def make_kat():
    rows = []
    for ctr, key, r10, r7 in RANDOM123:
        for rounds, expect in ((10, r10), (7, r7)):
            got = tuple(int(v) for v in oracle.philox4x32([ctr], [key], rounds)[0])
            if got != expect:
                raise SystemExit(f"oracle disagrees with Random123 on {ctr} {key} {rounds}")
            rows.append((rounds, ctr, key, got))
    extra = [(10, c, EXTRA_KEYS[i % len(EXTRA_KEYS)]) for i, c in enumerate(EXTRA_CTRS)]
    extra += [(r, RANDOM123[2][0], RANDOM123[2][1]) for r in EDGE_ROUNDS]
    for rounds, ctr, key in extra:
        got = tuple(int(v) for v in oracle.philox4x32([ctr], [key], rounds)[0])
        rows.append((rounds, ctr, key, got))
    text = ("# Philox4x32 known answers: rounds c0 c1 c2 c3 k0 k1 o0 o1 o2 o3 (hex words).\n"
            "# Written by tests/data/make_data.py; the first 6 rows are Random123's "
            "kat_vectors.\n")
    for rounds, ctr, key, got in rows:
        text += f"{rounds:2d} " + " ".join(f"{v:08x}" for v in (*ctr, *key, *got)) + "\n"
    return text


def make_streams():
    text = ("# dropout_fast stream vectors; format in tests/data/make_data.py. "
            "Written by that script from tests/oracle.py.\n")
    for name, seed, block0, n, p in cases():
        t = oracle.threshold(p)
        s32, s64 = oracle.scale_of(p, np.float32), oracle.scale_of(p, np.float64)
        y32, keep = oracle.dropout(x_input(n, np.float32), seed, block0, p)
        y64, _ = oracle.dropout(x_input(n, np.float64), seed, block0, p)
        ties = oracle.tie_count(n, seed, block0, p) if t & 0xFFFF else 0
        bits = oracle.packbits(keep)
        text += f"# {name}: {n} elements, {int(keep.sum())} kept, {ties} ties\n"
        text += (f"case {name} seed {seed:016x} block0 {block0 >> 64:08x} {block0 % 2**64:016x}"
                 f" n {n} p {p!r} thresh {t:09x} scale32 {int(s32.view(np.uint32)):08x}"
                 f" scale64 {int(s64.view(np.uint64)):016x}\n")
        text += f"bits {bits.size}\n" + _words([f"{v:02x}" for v in bits], 32)
        text += f"y32 {n}\n" + _words([f"{v:08x}" for v in y32.view(np.uint32)], 12)
        text += f"y64 {n}\n" + _words([f"{v:016x}" for v in y64.view(np.uint64)], 6)
    return text


def _tokens(path):
    with open(path) as f:
        return [tok for line in f for tok in line.split("#", 1)[0].split()]


def load_kat(path=KAT_FILE):
    """[(rounds, ctr 4-tuple, key 2-tuple, out 4-tuple)] from philox_kat.txt."""
    tok = _tokens(path)
    rows = []
    for i in range(0, len(tok), 11):
        rounds = int(tok[i])
        w = [int(v, 16) for v in tok[i + 1:i + 11]]
        rows.append((rounds, tuple(w[0:4]), tuple(w[4:6]), tuple(w[6:10])))
    return rows


def load_streams(path=STREAM_FILE):
    """[dict(name, seed, block0, n, p, thresh, scale32, scale64, bits, y32, y64)]."""
    tok = _tokens(path)
    out, i = [], 0
    while i < len(tok):
        h = tok[i:i + 17]
        assert h[0] == "case" and h[2] == "seed" and h[4] == "block0" and h[7] == "n", h
        c = dict(name=h[1], seed=int(h[3], 16), block0=int(h[5], 16) << 64 | int(h[6], 16),
                 n=int(h[8]), p=float(h[10]), thresh=int(h[12], 16),
                 scale32=np.array(int(h[14], 16), np.uint32).view(np.float32)[()],
                 scale64=np.array(int(h[16], 16), np.uint64).view(np.float64)[()])
        i += 17
        for key, dtype in (("bits", np.uint8), ("y32", np.uint32), ("y64", np.uint64)):
            assert tok[i] == key, (c["name"], tok[i])
            count = int(tok[i + 1])
            c[key] = np.array([int(v, 16) for v in tok[i + 2:i + 2 + count]], dtype=dtype)
            i += 2 + count
        c["y32"] = c["y32"].view(np.float32)
        c["y64"] = c["y64"].view(np.float64)
        out.append(c)
    return out


def main(argv):
    files = {KAT_FILE: make_kat(), STREAM_FILE: make_streams()}
    if "--check" in argv:
        bad = []
        for path, text in files.items():
            try:
                with open(path) as f:
                    same = f.read() == text
            except OSError:
                same = False
            if not same:
                bad.append(os.path.basename(path))
        if bad:
            print("stale or missing (rerun tests/data/make_data.py):", ", ".join(bad))
            return 1
        print("known-answer files match the oracle")
        return 0
    for path, text in files.items():
        with open(path, "w") as f:
            f.write(text)
        print(f"wrote {path} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
