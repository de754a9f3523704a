"""The main job, ``python -m dropout_fast demo``, runs end to end with --quick:
both trainings (torch's dropout and dropout_fast's) learn digits far above
chance and agree, the dropout layers' memory saved for backward (measured by
saved-tensor hooks) is >= 30 times smaller with dropout_fast, MC dropout ranks
confident predictions first, the RateTuner section chooses a rate, and the PNG
is written."""
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("tqdm")
pytest.importorskip("matplotlib")

from dropout_fast import __main__ as cli  # noqa: E402
from dropout_fast import demo  # noqa: E402
from dropout_fast._demo_mc import retained_accuracy  # noqa: E402


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    import io

    path = tmp_path_factory.mktemp("demo") / "demo.png"
    out = io.StringIO()
    res = demo.run(["--quick", "--no-progress", "--timer", "cpu", "--plot", str(path)], out=out)
    return res, out.getvalue(), path


def test_quick_demo_trains_both_runs_far_above_chance(quick):
    res, text, _ = quick
    for net in ("MLP", "CNN"):
        t, f = res["training"][net]["torch"], res["training"][net]["dropout_fast"]
        assert t["accuracy"] > 0.6 and f["accuracy"] > 0.6  # chance is 0.1
        assert abs(t["accuracy"] - f["accuracy"]) < 0.15
        assert t["steps"] == f["steps"] > 0
        assert res["training"][net]["replaced"] == 3
        assert "agree within noise" in text or "DIFFER" in text
    assert "speedup" in text and "MC dropout on the test set" in text


def test_quick_demo_dropout_memory_for_backward(quick):
    res, _, _ = quick
    for net in ("MLP", "CNN"):
        t, f = res["training"][net]["torch"], res["training"][net]["dropout_fast"]
        assert f["saved"]["dropout"] > 0  # the bits are seen by the hooks, not hidden
        assert t["saved"]["dropout"] >= 30 * f["saved"]["dropout"]


def test_quick_demo_mc_dropout_and_plot(quick):
    res, _, path = quick
    for net in ("MLP", "CNN"):
        for r in res["mc"][net].values():
            assert 0.6 < r["table"][-1] <= r["table"][0] <= 1.0
            assert r["mutual_information"] > 0
    assert res["plot"] == str(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quick_demo_tunes_the_rate(quick):
    """The RateTuner section: rounds with their gaps printed, a rate in [0, 0.5] chosen."""
    res, text, _ = quick
    steps = res["tuning"]
    assert steps and 0.0 <= steps[-1].advice.rate <= 0.5
    assert "Dropout rate tuning" in text and "chosen rate" in text
    for s in steps:
        assert f"{s.gap:+.3f}" in text
        assert s.train_acc > 0.5 and s.val_acc > 0.5


def test_retained_accuracy():
    conf = [0.9, 0.1, 0.8, 0.5]
    correct = [1, 0, 1, 0]
    assert retained_accuracy(conf, correct, [0.25, 0.5, 0.75, 1.0]).tolist() == [
        1.0, 1.0, 2 / 3, 0.5]


def test_command_line_options():
    with pytest.raises(SystemExit) as e:
        cli.main(["demo", "--help"])
    assert e.value.code == 0
    for bad in (["--epochs", "0"], ["--samples", "-1"], ["--batch-size", "0"],
                ["--threads", "0"], ["--epochs", "x"]):
        with pytest.raises(SystemExit) as e:
            demo.parse_args(bad)
        assert e.value.code == 2
    with pytest.raises(SystemExit):
        demo.parse_args(["--timer", "sundial"])
    assert demo.parse_args(["--timer", "cpu"]).timer == "cpu"
    a = demo.parse_args(["--quick", "--epochs", "5"])
    assert (a.epochs, a.samples, a.hidden) == (5, demo.QUICK["samples"], demo.QUICK["hidden"])
