"""Rebuild docs/dieharder.md from the raw dieharder outputs in docs/dieharder/*.txt.

Each raw file is what bench/dieharder_full.sh writes: comment lines with the
command and times, then dieharder's table. Run from the repository root:
``python bench/dieharder_report.py``.
"""
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RAW = ROOT / "docs" / "dieharder"
# Every test of `dieharder -a` (dieharder 3.31.1), in its order, for "not reached" rows.
ALL_TESTS = ["diehard_birthdays", "diehard_operm5", "diehard_rank_32x32", "diehard_rank_6x8",
             "diehard_bitstream", "diehard_opso", "diehard_oqso", "diehard_dna",
             "diehard_count_1s_str", "diehard_count_1s_byt", "diehard_parking_lot",
             "diehard_2dsphere", "diehard_3dsphere", "diehard_squeeze", "diehard_sums",
             "diehard_runs", "diehard_craps", "marsaglia_tsang_gcd", "sts_monobit", "sts_runs",
             "sts_serial", "rgb_bitdist", "rgb_minimum_distance", "rgb_permutations",
             "rgb_lagged_sum", "rgb_kstest_test", "dab_bytedistrib", "dab_dct",
             "dab_filltree", "dab_filltree2", "dab_monobit2"]


INTRO = """\
# dieharder on the stream contract

Debian's dieharder 3.31.1 (`apt-get install dieharder`), `dieharder -g 200 -a`
reading raw bytes from `python -m dropout_fast.tools.stream` on stdin. Run
with `bench/dieharder_full.sh NAME ARGS...` (raw outputs in
[dieharder/](dieharder/)); this page is rebuilt from them by
`python bench/dieharder_report.py`. The machine was 2 cores shared with five
other jobs (load average 8 to 15; dieharder got 7% to 25% of a core), so the
times below are wall-clock times under that load, not dieharder's speed, and
the battery was split to fit the session:

- **words**: `-a` from the start of the stream ran every test through
  diehard, sts and rgb up to `rgb_lagged_sum`, whose lag L reads
  `1e6 * 100 * (L + 1)` words (5.6e10 words, 224 GB, for lags 0 to 32). The
  high lags ran in parallel as `-d 203 -n L` (words_lags, words_lags2), and the
  tests after it (`rgb_kstest_test` and the dab tests) as words_tail. Together
  they cover every test of `-a`; lags missing from all three are listed under
  words.
- **mask05**: `-a` was stopped in `diehard_dna` after 42 minutes at 7% of a
  core; the other tests ran one by one (mask05_subset, mask05_rest, and
  mask05_rgb for the rgb tests' ntuples), all but `rgb_lagged_sum`.
- **mask01vn**: 18 of the 31 tests (mask01vn, mask01vn_more). The extractor
  keeps 0.09 bits per mask bit, so the tool feeds dieharder only a few MB/s
  and the data-hungry tests were out of reach in the session.

Each `-d N` run starts the stream again from its first word (seed 20261204,
offset 0), as separate dieharder runs do.

Streams, all with seed 20261204 and block offset 0:

- **words**: the 32-bit words of stream 0 (`w0..w3` of block 0, block 1, ...).
- **mask05**: the packed keep bits of dropout with p = 0.5. Keep iff
  `U < 2**31`, i.e. iff the top bit of draw `A` (stream 0) is 0, so these are
  bits 15 and 31 of every stream-0 word, one per element.
- **mask01vn**: the keep bits of dropout with p = 0.1 through von Neumann's
  extractor (`--debias`). The raw bits are 1 with probability 0.9 by design,
  so every uniform-bit test would fail on them; the extractor turns
  independent bits of any fixed bias into independent unbiased bits, so the
  battery on its output tests the independence of the mask bits (their bias is
  checked by the 5-sigma keep-fraction tests in the suite).

How to read a verdict: each test turns `psamples` runs into p-values and
reports the p-value of a Kolmogorov-Smirnov test of their uniformity. dieharder
calls it WEAK outside [0.005, 0.995] and FAILED outside [1e-6, 1 - 1e-6]. A
perfect generator gets WEAK with probability 1% per result, so about one WEAK
in 100 results is expected, and FAILED about once in 500,000 results; a
FAILED verdict would mean a defect. `-a` does not re-run WEAK tests (`-Y 1`
would). dieharder's own notes rate diehard_sums "Do Not Use" and
diehard_opso, diehard_oqso and diehard_dna "Suspect"; they are kept here as
`-a` runs them.
"""


def parse(path: Path) -> dict:
    info = {"name": path.stem, "rows": [], "command": "?", "start": "?", "end": None,
            "elapsed": None, "rate": "?", "notes": []}
    for line in path.read_text().splitlines():
        if line.startswith("# command:"):
            info["command"] = line.split(":", 1)[1].strip()
        elif line.startswith("# start:"):
            info["start"] = line.split(":", 1)[1].strip()
        elif line.startswith("# end:"):
            end, _, elapsed = line.split(":", 1)[1].partition("elapsed_s:")
            info["end"], info["elapsed"] = end.strip(), int(elapsed)
        elif line.startswith("# note:"):
            info["notes"].append(line.split(":", 1)[1].strip())
        elif line.startswith("stdin_input_raw|"):
            info["rate"] = line.split("|")[1].strip()
        else:
            cols = [c.strip() for c in line.split("|")]
            if len(cols) == 6 and cols[5] in ("PASSED", "WEAK", "FAILED"):
                info["rows"].append(cols)
    return info


def section(info: dict) -> str:
    counts = Counter(r[5] for r in info["rows"])
    seen = {r[0] for r in info["rows"]}
    missing = [t for t in ALL_TESTS if t not in seen]
    subset = "-d N" in info["command"]
    if info["end"] is None:
        status = "**still running when recorded**"
    elif subset:
        status = f"ended {info['end']} after {info['elapsed']} s (a subset of the battery)"
    elif missing:
        status = f"ended {info['end']} after {info['elapsed']} s, **incomplete**"
    else:
        status = f"ended {info['end']} after {info['elapsed']} s ({info['elapsed'] / 3600:.1f} h)"
    out = [f"### {info['name']}", "",
           f"`{info['command']}`", "",
           (f"Started {info['start']}, {status}; dieharder read {info['rate']} words/s. "
           f"Verdicts: {counts['PASSED']} PASSED, {counts['WEAK']} WEAK, "
           f"{counts['FAILED']} FAILED of {len(info['rows'])} results."), "",
           *[f"Note: {n}\n" for n in info["notes"]],
           "| test | ntup | tsamples | psamples | p-value | verdict |",
           "|---|---|---|---|---|---|"]
    out += ["| " + " | ".join(r) + " |" for r in info["rows"]]
    if missing:
        label = "Not in the subset" if subset and info["end"] else "Not reached"
        out += ["", f"{label}: " + ", ".join(missing) + "."]
    return "\n".join(out) + "\n"


def main() -> int:
    runs = [parse(p) for p in sorted(RAW.glob("*.txt"))]
    summary = ["| run | results | PASSED | WEAK | FAILED | wall time |", "|---|---|---|---|---|---|"]
    for info in runs:
        c = Counter(r[5] for r in info["rows"])
        wall = "running" if info["elapsed"] is None else f"{info['elapsed'] / 60:.0f} min"
        summary.append(f"| [{info['name']}](#{info['name']}) | {len(info['rows'])} | "
                       f"{c['PASSED']} | {c['WEAK']} | {c['FAILED']} | {wall} |")
    streams: dict = {}
    for info in runs:  # words, words_tail, ... are runs on the stream "words"
        streams.setdefault(info["name"].split("_")[0], []).append(info)
    combined = ["| stream | runs | distinct results | PASSED | WEAK | FAILED | tests of -a not run |",
                "|---|---|---|---|---|---|---|"]
    for name, group in streams.items():
        # Runs that overlap (the same test on the same stream) give identical rows: count once.
        rows = list(dict.fromkeys(tuple(r) for info in group for r in info["rows"]))
        c = Counter(r[5] for r in rows)
        seen = {r[0] for r in rows}
        missing = [t for t in ALL_TESTS if t not in seen]
        lags = {int(r[1]) for r in rows if r[0] == "rgb_lagged_sum"}
        if lags and len(lags) < 33:  # -a runs lags 0 to 32
            missing.append("rgb_lagged_sum lags " + ", ".join(
                str(lag) for lag in range(33) if lag not in lags))
        missing = ", ".join(missing) or "none"
        combined.append(f"| {name} | {len(group)} | {len(rows)} | {c['PASSED']} | {c['WEAK']} | "
                        f"{c['FAILED']} | {missing} |")
    text = (INTRO + "\n## Summary\n\n" + "\n".join(combined) + "\n\nBy run:\n\n"
            + "\n".join(summary) + "\n\n## Results\n\n"
            + "\n".join(section(info) for info in runs))
    (ROOT / "docs" / "dieharder.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
