"""The benchmark as a product (dropout_fast.bench): its --quick path on tiny
sizes, the JSON's documented fields, bytes moved and roofline % consistent in
every row, missing peers reported as skipped, and the C bandwidth probes
computing what they claim. No timing is asserted: speed lives in bench/."""
import json
import math

import numpy as np
import pytest

from dropout_fast import __main__ as cli_entry
from dropout_fast import _config
from dropout_fast.bench import bandwidth, cli, ops, peers, report

needs_c = pytest.mark.skipif(not bandwidth.available(), reason="needs the C extension")
TINY_OPS = "dropout,spatial_dropout,drop_block,softmax_dropout,bias_dropout_add,mc_dropout"


@pytest.fixture(scope="module")
def quick_json(tmp_path_factory):
    """One --quick run on 2**10 elements, numpy as the only real peer; torch and
    jax blocked, so they must show up as skipped."""
    path = tmp_path_factory.mktemp("bench") / "out.json"
    mp = pytest.MonkeyPatch()
    mp.setenv("DROPOUT_FAST_BENCH_BLOCK", "torch,jax")
    try:
        rc = cli_entry.main(["bench", "--quick", "--sizes", "10", "--ops", TINY_OPS,
                             "--peers", "numpy,torch,torch.compile,jax", "--rounds", "2",
                             "--min-time", "0", "--json", str(path)])
    finally:
        mp.undo()
    assert rc == 0
    with open(path) as f:
        return json.load(f)


def test_json_has_the_documented_fields(quick_json):
    r = quick_json
    assert set(r) >= {"schema", "machine", "settings", "peers", "bandwidth", "rows"}
    assert set(r["machine"]) >= set(report.MACHINE_FIELDS)
    assert r["machine"]["versions"]["dropout_fast"] and r["machine"]["versions"]["numpy"]
    assert r["machine"]["simd"] in ("scalar", "avx2", "avx512", "numba")
    assert r["settings"]["sizes_log2"] == {op: [10] for op in TINY_OPS.split(",")}
    assert r["settings"]["quick"] is True
    assert set(r["peers"]) == set(peers.PEERS)
    for row in r["rows"]:
        assert set(row) == set(report.ROW_FIELDS)
    measured = {(row["op"], row["direction"]) for row in r["rows"] if row["impl"] ==
                "dropout_fast" and row["median_s"]}
    expected = {(op, d) for op in TINY_OPS.split(",") for d in ops.OPS[op].directions}
    assert measured == expected


def test_missing_peers_are_skipped_not_failed(quick_json):
    by_impl = {}
    for row in quick_json["rows"]:
        by_impl.setdefault(row["impl"], []).append(row)
    for name in ("torch", "torch.compile", "jax"):
        assert by_impl[name], name
        assert all(row["skipped"] and "not installed" in row["skipped"] and
                   row["median_s"] is None for row in by_impl[name])
        assert quick_json["peers"][name]["skipped"]
    assert all(row["median_s"] > 0 and not row["skipped"] for row in by_impl["numpy"])
    assert "numba" not in by_impl  # not asked for


def test_rows_bytes_and_roofline_are_consistent(quick_json):
    probes = {(b["nbytes"], b["threads"]): b for b in quick_json["bandwidth"]}
    checked = 0
    for row in quick_json["rows"]:
        if row["skipped"]:
            continue
        n, dt = row["n"], np.dtype(row["dtype"])
        assert row["n"] == math.prod(row["shape"])
        assert row["bytes"] == ops.bytes_moved(row["op"], row["direction"], n, dt)
        assert row["elem_per_ns"] == pytest.approx(n / row["median_s"] / 1e9)
        if row["op"] == "mc_dropout":
            assert row["bytes"] is None and row["roofline_pct"] is None
            continue
        assert row["gb_per_s"] == pytest.approx(row["bytes"] / row["median_s"] / 1e9)
        if probes:
            probe = probes[(n * dt.itemsize, row["threads"])]
            assert row["roofline_gb_per_s"] == probe["roofline"]
            assert probe["roofline"] == max(probe["scale"], probe["scale_nt"])
            assert row["roofline_pct"] == pytest.approx(
                100 * row["bytes"] / row["median_s"] / 1e9 / probe["roofline"])
            checked += 1
    assert checked or not probes


def test_bytes_moved_counts_inputs_outputs_and_mask_bits():
    n, e = 1 << 16, 4
    assert ops.bytes_moved("dropout", "forward", n, np.float32) == 2 * e * n + n // 8
    assert ops.bytes_moved("dropout", "backward", n, np.float64) == 2 * 8 * n + n // 8
    # a channel mask: one bit per (N, C)
    N, C = ops.OPS["spatial_dropout"].shape(n)[:2]
    assert ops.bytes_moved("spatial_dropout", "forward", n, np.float32) == \
        2 * e * n + (N * C + 7) // 8
    assert ops.bytes_moved("softmax_dropout", "forward", n, np.float32) == 3 * e * n
    assert ops.bytes_moved("gaussian_dropout", "backward", n, np.float32) == 2 * e * n
    assert ops.bytes_moved("mc_dropout", "forward", n, np.float32) is None


def test_slower_cases_are_the_peer_rows_faster_than_dropout_fast(quick_json):
    rows = quick_json["rows"]
    found = report.slower_cases(rows)
    ours = {(r["op"], r["direction"], r["n"]): r["median_s"] for r in rows
            if r["impl"] == "dropout_fast"}
    want = [r for r in rows if r["impl"] == "numpy" and
            r["median_s"] < ours[(r["op"], r["direction"], r["n"])]]
    assert sorted(map(id, found)) == sorted(map(id, want))
    table = report.slower_table(rows)
    assert table.count("\n") == (len(found) + 1 if found else 0)
    fake = [dict(r, median_s=r["median_s"] / 10, vs_dropout_fast=0.1) if r["impl"] == "numpy"
            and not r["skipped"] else r for r in rows]
    assert "| numpy |" in report.slower_table(fake) and "10.00x" in report.slower_table(fake)


def test_markdown_lists_skipped_peers(quick_json):
    table = report.markdown(quick_json["rows"])
    assert "| torch | skipped: not installed (blocked)" in table
    assert table.count("\n") == len(quick_json["rows"]) + 1


@needs_c
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("nbytes", [4, 64, 4 * 1001, 1 << 16])
def test_bandwidth_probes_compute_copy_and_scale(threads, nbytes):
    x = bandwidth.aligned(nbytes + 4)[1:1 + nbytes // 4]     # also off the line start
    x[:] = np.arange(x.size, dtype=np.float32) - 7.5
    for kernel, want in (("copy", x), ("scale", 0.5 * x)):
        for streaming in (False, True):
            y = np.full_like(x, np.nan)
            secs = _config.kernels.bw_run(kernel, streaming, x, y, 2, threads)
            assert secs >= 0
            np.testing.assert_array_equal(y, want)


@needs_c
def test_bandwidth_measure_reports_each_probe_and_the_roofline():
    b = bandwidth.measure(1 << 14, 1, rounds=2, min_time=0.0)
    assert set(bandwidth.PROBES) <= set(b)
    assert b["roofline"] == max(b["scale"], b["scale_nt"]) > 0
    with pytest.raises(ValueError, match="kernel"):
        _config.kernels.bw_run("add", False, bandwidth.aligned(64), bandwidth.aligned(64), 1, 1)


def test_cli_rejects_bad_filters(capsys):
    for argv in (["--ops", "nope"], ["--dtype", "float16"], ["--sizes", "40"],
                 ["--threads", "0"], ["--peers", "matlab"]):
        with pytest.raises(SystemExit) as exc:
            cli.parse(argv)
        assert exc.value.code == 2
    a = cli.parse(["--sizes", "12:16:2,20", "--threads", "1,2", "--dtype", "float64"])
    assert a.sizes == [12, 14, 16, 20] and a.threads == [1, 2] and a.dtype == ["float64"]


def test_default_sweep_and_slow_peers_not_timed_past_the_cap(monkeypatch):
    a = cli.parse([])
    assert cli.sizes_of(a, "dropout") == list(range(12, 27, 2))
    assert cli.sizes_of(a, "drop_block") == [14, 20, 24] and a.dtype == ["float32", "float64"]
    assert cli.parse(["--quick"]).sizes == list(cli.QUICK_SIZES)
    # A cap of 0 s: every peer is timed at the first size only; dropout_fast always.
    monkeypatch.setattr(cli, "TOO_SLOW_S", 0.0)
    args = cli.parse(["--sizes", "8,10", "--ops", "dropout,spatial_dropout", "--peers", "numpy",
                      "--dtype", "float32", "--threads", "1", "--rounds", "1",
                      "--min-time", "0"])
    rows = cli.run(args, found=peers.detect(check_compile=False), progress=False)["rows"]
    by = {(r["op"], r["direction"], r["n"], r["impl"]): r for r in rows}
    assert len(by) == len(rows) == 2 * 2 * 2 * 2 + 2   # + the alloc row of dropout forward
    for (op, d, n, impl), r in by.items():
        if impl.startswith("dropout_fast") or n == 1 << 8:
            assert r["median_s"] > 0 and not r["skipped"]
        else:
            assert r["median_s"] is None and r["skipped"].startswith("not timed:")
            assert "at 2**8" in r["skipped"]
    # rows come back grouped by op, then size, then direction
    keys = [(r["op"], r["n"], r["direction"]) for r in rows]
    assert keys == sorted(keys, key=lambda k: (list(ops.OPS).index(k[0]), k[1],
                                               ops.OPS[k[0]].directions.index(k[2])))


def test_detect_blocks_a_peer_on_request():
    found = peers.detect(blocked={"numba"}, check_compile=False)
    assert not found["numba"].ok and "not installed" in found["numba"].skipped
    assert found["numpy"].ok and found["dropout_fast"].ok


def test_plot_writes_a_png_or_says_why_not(quick_json, tmp_path):
    from dropout_fast.bench import plot

    path = tmp_path / "bench.png"
    msg = plot.plot(quick_json, str(path))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert msg.startswith("skipped") and "matplotlib" in msg
        return
    assert msg == f"wrote {path}"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_timing_interleaves_rounds_and_samples_slow_calls_less():
    import time as _time

    from dropout_fast.bench.timing import summarize, time_interleaved

    calls = []
    impls = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    out = time_interleaved(impls, rounds=3, min_time=0.0)
    assert calls == ["a", "a", "b", "b"] + ["a", "b"] * 3   # warm-up + calibration, then A/B
    assert [len(out[k].samples) for k in "ab"] == [3, 3]
    slow = time_interleaved({"s": lambda: _time.sleep(0.02)}, rounds=5, min_time=0.0,
                            slow_rounds=2, max_time=0.01)
    assert len(slow["s"].samples) == 2 and slow["s"].median >= 0.02
    t = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert t.median == 3.0 and t.spread > 0
