"""dropout_fast.advise.audit: each rule has a model that triggers it and a
correct one that does not; the CLI's output and exit codes."""
import json
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from dropout_fast.advise import AuditReport, _cli, audit  # noqa: E402
from dropout_fast.examples import models  # noqa: E402


def rules(report, path=None):
    return {f.rule for f in report if path is None or f.path == path}


def severity(report, rule):
    return {f.severity for f in report if f.rule == rule}


def mlp(p_hidden, p_head):
    return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Dropout(p_hidden), nn.Linear(64, 64),
                         nn.ReLU(), nn.Dropout(p_head), nn.Linear(64, 3))


# --- dense rates -----------------------------------------------------------------------------

def test_mlp_in_range_is_clean():
    report = audit(mlp(0.3, 0.5))
    assert rules(report) == {"patchable"}
    assert not report.errors and not report.warnings


def test_dense_rate_above_half_is_an_error():
    report = audit(mlp(0.3, 0.7))
    assert [(f.severity, f.path, f.rule) for f in report.errors] == [("error", "5", "dense-rate")]
    assert "likely to hurt" in report.errors[0].advice
    assert report.errors[0].source == "Srivastava et al. 2014"


def test_dense_rate_outside_the_usual_range_warns():
    report = audit(mlp(0.45, 0.4))                   # intermediate 0.2-0.4
    assert [(f.path, f.rule, f.severity) for f in report if f.rule == "dense-rate"] == [
        ("2", "dense-rate", "warning")]
    low = audit(mlp(0.3, 0.1))                       # head below 0.3: a note, not a warning
    assert [(f.path, f.severity) for f in low if f.rule == "dense-rate"] == [("5", "info")]


def test_input_dropout_range():
    def net(p):
        return nn.Sequential(nn.Dropout(p), nn.Linear(20, 64), nn.ReLU(), nn.Dropout(0.5),
                             nn.Linear(64, 3))

    assert rules(audit(net(0.2))) == {"patchable"}            # Srivastava et al.: keep 80%
    found = [f for f in audit(net(0.3)) if f.rule == "dense-rate"]
    assert [(f.path, f.severity) for f in found] == [("0", "warning")]
    assert "on the inputs" in found[0].found


# --- convolutions ----------------------------------------------------------------------------

def cnn(drop_cls, p1, p2):
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), drop_cls(p1),
                         nn.Conv2d(8, 8, 3), nn.ReLU(), drop_cls(p2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.4), nn.Linear(8, 10))


def test_elementwise_dropout_after_conv_suggests_spatial():
    report = audit(cnn(nn.Dropout, 0.1, 0.2))
    assert {f.path for f in report if f.rule == "spatial"} == {"3", "6"}
    assert "Dropout2d" in next(f for f in report if f.rule == "spatial").advice
    assert "9" not in {f.path for f in report if f.rule == "spatial"}  # flattened: dense


def test_spatial_dropout_after_conv_in_range_is_clean():
    report = audit(cnn(nn.Dropout2d, 0.1, 0.2))
    assert rules(report) == {"patchable"}


def test_conv_rates_early_and_late():
    report = audit(cnn(nn.Dropout2d, 0.2, 0.3))
    found = {(f.path, f.rule) for f in report if f.rule == "conv-rate"}
    assert found == {("3", "conv-rate"), ("6", "conv-rate")}
    assert "early" in next(f for f in report if f.path == "3").advice


# --- residual blocks -------------------------------------------------------------------------

class Block(nn.Module):
    def __init__(self, where, p=0.1, bn=True):
        super().__init__()
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8) if bn else nn.Identity()
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8) if bn else nn.Identity()
        self.drop = nn.Dropout2d(p)
        self.where = where

    def forward(self, x):
        if self.where == "skip":
            return self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))) + self.drop(x)
        h = self.drop(torch.relu(self.bn1(self.conv1(x))))
        return x + self.bn2(self.conv2(h))


class Net(nn.Module):
    def __init__(self, block):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.block = block

    def forward(self, x):
        return self.block(self.stem(x))


def test_dropout_on_the_skip_connection_is_an_error():
    report = audit(Net(Block("skip")))
    assert [(f.path, f.rule) for f in report.errors] == [("block.drop", "skip-path")]


class Projection(nn.Module):
    """A downsampling block: out = branch(x) + shortcut(x), shortcut a 1x1 conv + BN."""

    def __init__(self, where):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16)
        self.conv2, self.bn2 = nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.proj = nn.Sequential(nn.Conv2d(8, 16, 1, stride=2), nn.BatchNorm2d(16))
        self.drop, self.where = nn.Dropout2d(0.1), where

    def forward(self, x):
        branch = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        if self.where == "skip":
            return torch.relu(branch + self.drop(self.proj(x)))
        return torch.relu(self.drop(branch) + self.proj(x))


def test_dropout_on_a_projection_shortcut_is_an_error():
    assert [(f.path, f.rule) for f in audit(Net(Projection("skip"))).errors] == [
        ("block.drop", "skip-path")]
    assert not audit(Net(Projection("branch"))).errors


def test_dropout_inside_the_residual_branch_is_fine():
    report = audit(Net(Block("branch", p=0.1)))
    assert "skip-path" not in rules(report)
    assert not report.errors and not report.warnings


def test_dropout_before_batchnorm_in_a_residual_net_above_0_1():
    report = audit(Net(Block("branch", p=0.2)))
    assert ("block.drop", "bn-variance-shift") in {(f.path, f.rule) for f in report}
    assert severity(report, "bn-variance-shift") == {"warning"}
    no_bn = audit(Net(Block("branch", p=0.2, bn=False)))
    assert "bn-variance-shift" not in rules(no_bn)
    plain = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Dropout2d(0.2), nn.Conv2d(8, 8, 3),
                          nn.BatchNorm2d(8))   # not residual: Li et al.'s rule is for ResNets
    assert "bn-variance-shift" not in rules(audit(plain))


# --- outputs ---------------------------------------------------------------------------------

def test_dropout_on_a_regression_output_is_an_error():
    bad = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1), nn.Dropout(0.1))
    report = audit(bad, task="regression")
    assert [(f.path, f.rule) for f in report.errors] == [("3", "regression-output")]
    good = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 1))
    assert not audit(good, task="regression").errors
    assert "output" in rules(audit(bad))             # classification: a warning on the logits
    assert not audit(bad).errors


# --- recurrent -------------------------------------------------------------------------------

class Seq(nn.Module):
    def __init__(self, rnn, drop=None):
        super().__init__()
        self.rnn = rnn
        self.drop = drop if drop is not None else nn.Identity()
        self.out = nn.Linear(16, 2)

    def forward(self, x):
        h, _ = self.rnn(x)
        return self.out(self.drop(h)[:, -1])


def test_lstm_between_layer_dropout_points_to_variational():
    report = audit(Seq(nn.LSTM(8, 16, num_layers=2, dropout=0.2, batch_first=True)))
    found = [f for f in report if f.rule == "rnn-dropout"]
    assert [(f.path, f.severity) for f in found] == [("rnn", "info")]
    assert "RecurrentDropout" in found[0].advice and found[0].source == "Gal & Ghahramani 2016"
    with pytest.warns(UserWarning, match="num_layers"):   # torch warns too, at construction
        gru = nn.GRU(8, 16, num_layers=1, dropout=0.2, batch_first=True)
    single = audit(Seq(gru))
    assert severity(single, "rnn-dropout") == {"warning"}    # no effect with one layer
    heavy = audit(Seq(nn.LSTM(8, 16, num_layers=2, dropout=0.5, batch_first=True)))
    assert ("rnn", "recurrent-rate") in {(f.path, f.rule) for f in heavy}


def test_elementwise_dropout_on_a_sequence_warns():
    report = audit(Seq(nn.LSTM(8, 16, batch_first=True), nn.Dropout(0.2)))
    assert ("drop", "recurrent-mask") in {(f.path, f.rule) for f in report}


def test_plain_lstm_is_clean():
    report = audit(Seq(nn.LSTM(8, 16, num_layers=2, batch_first=True)))
    assert rules(report) == set()


# --- transformers ----------------------------------------------------------------------------

def test_transformer_layer_default_rates_are_clean():
    assert rules(audit(nn.TransformerEncoderLayer(16, 2))) == {"patchable"}
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, batch_first=True), 2,
                                enable_nested_tensor=False)
    assert rules(audit(enc)) == {"patchable"}


def test_transformer_layer_unusual_rates_warn():
    report = audit(nn.TransformerEncoderLayer(16, 2, dropout=0.3))
    found = [f for f in report if f.rule == "transformer-rate"]
    assert [(f.path, f.severity) for f in found] == [("", "warning")]
    assert "self_attn.dropout=0.3" in found[0].found and found[0].source == "Vaswani et al. 2017"
    model = models.transformer_encoder()
    paths = {f.path for f in audit(model) if f.rule == "transformer-rate"}
    assert paths == {"encoder.layers.0", "encoder.layers.1"}


class PreNormBlock(nn.Module):
    """A hand-written pre-norm transformer block: residual dropout after attention and MLP."""

    def __init__(self, p):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(16), nn.LayerNorm(16)
        self.attn = nn.MultiheadAttention(16, 2, dropout=0.1, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(16, 64), nn.GELU(), nn.Linear(64, 16))
        self.d1, self.d2 = nn.Dropout(p), nn.Dropout(p)

    def forward(self, x):
        h = self.ln1(x)
        x = x + self.d1(self.attn(h, h, h, need_weights=False)[0])
        return x + self.d2(self.mlp(self.ln2(x)))


def test_hand_written_transformer_residual_dropout():
    assert rules(audit(nn.Sequential(PreNormBlock(0.1), PreNormBlock(0.1)))) == {"patchable"}
    found = {(f.path, f.rule) for f in audit(PreNormBlock(0.3)) if f.severity == "warning"}
    assert found == {("d1", "residual-rate"), ("d2", "residual-rate")}


def test_embedding_rate():
    report = audit(models.transformer_encoder())
    assert ("embed_drop", "embedding-rate") in {(f.path, f.rule) for f in report}
    assert "embedding-rate" not in rules(audit(models.fixed_transformer_encoder()))


def test_standalone_attention_rate():
    class Attn(nn.Module):
        def __init__(self, p):
            super().__init__()
            self.attn = nn.MultiheadAttention(16, 2, dropout=p, batch_first=True)

        def forward(self, x):
            return self.attn(x, x, x)[0]

    found = [(f.path, f.severity) for f in audit(Attn(0.5)) if f.rule == "transformer-rate"]
    assert found == [("attn", "warning")]
    assert not audit(Attn(0.1))


class Functional(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.conv, self.fc, self.p = nn.Conv2d(3, 8, 3), nn.Linear(8, 4), p

    def forward(self, x):
        h = nn.functional.dropout(torch.relu(self.conv(x)), 0.2, self.training)
        h = h.mean(dim=(2, 3))
        return self.fc(nn.functional.dropout(h, p=self.p, training=self.training))


def test_functional_dropout_calls_are_sites():
    report = audit(Functional(0.8))
    got = {(f.path.split(" ")[1], f.rule, f.severity) for f in report}
    assert ("(F.dropout)", "spatial", "warning") in got
    assert ("(F.dropout)", "dense-rate", "error") in got
    assert "patchable" not in rules(report)                  # no modules to swap
    assert not audit(Functional(0.4)).errors


# --- patchable, fallback, bad input ----------------------------------------------------------

def test_patchable_note_names_patch_model():
    report = audit(mlp(0.3, 0.5))
    note = next(f for f in report if f.rule == "patchable")
    assert note.severity == "info" and "dropout_fast.torch.patch_model" in note.advice
    assert "Dropout x2" in note.found
    assert "patchable" not in rules(audit(nn.Sequential(nn.Linear(4, 4))))


def test_a_patched_model_gets_the_same_advice():
    patch = pytest.importorskip("dropout_fast.torch").patch_model
    for factory in (models.small_resnet, models.transformer_encoder, models.fixed_small_resnet):
        before = audit(factory())
        model = factory()
        assert len(patch(model)) > 0
        after = audit(model)
        assert [f for f in before if f.rule != "patchable"] == list(after)


class Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.drop, self.fc2 = nn.Linear(8, 32), nn.Dropout(0.8), nn.Linear(32, 3)

    def forward(self, x):
        if x.sum() > 0:                              # data-dependent control flow: fx fails
            x = -x
        return self.fc2(self.drop(torch.relu(self.fc1(x))))


def test_untraceable_model_gets_module_order_rules_and_a_note():
    report = audit(Untraceable())
    assert report.placement == "module-order"
    note = next(f for f in report if f.rule == "trace-fallback")
    assert note.severity == "info" and "module order" in note.advice
    assert [(f.path, f.rule) for f in report.errors] == [("drop", "dense-rate")]
    run = audit(Untraceable(), example_input=torch.randn(2, 8))
    assert run.placement == "execution-order"
    assert [(f.path, f.rule) for f in run.errors] == [("drop", "dense-rate")]


def test_bad_input_messages():
    with pytest.raises(TypeError, match="model: expected a torch.nn.Module, got list"):
        audit([nn.Linear(2, 2)])
    with pytest.raises(ValueError, match="task: expected one of"):
        audit(nn.Linear(2, 2), task="segmentation")


def test_report_table_and_json():
    report = audit(models.small_resnet())
    assert isinstance(report, AuditReport) and isinstance(report, list)
    table = str(report)
    assert table.splitlines()[0].split() == ["severity", "path", "rule", "finding", "/", "advice"]
    assert "skip-path" in table and "[He et al. 2016]" in table
    data = json.loads(report.to_json())
    assert data["placement"] == "fx" and len(data["findings"]) == len(report)
    assert set(data["findings"][0]) == {"severity", "path", "rule", "found", "advice", "source"}


def test_example_models():
    bad = audit(models.small_resnet())
    assert {(f.path, f.rule) for f in bad.errors} == {("block1.skip_drop", "skip-path"),
                                                    ("head.3", "dense-rate")}
    assert {"spatial", "conv-rate", "bn-variance-shift"} <= rules(bad)
    for fixed in (models.fixed_small_resnet(), models.fixed_transformer_encoder()):
        assert rules(audit(fixed)) == {"patchable"}
    assert [(f.path, f.rule) for f in audit(models.transformer_encoder()).errors] == [
        ("head_drop", "dense-rate")]


# --- command line ----------------------------------------------------------------------------

def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "dropout_fast", "audit", *args],
                          capture_output=True, text=True, timeout=120)


def test_cli_exit_codes_and_table(capsys):
    clean = run_cli("dropout_fast.examples.models:fixed_small_resnet")   # the real entry point
    assert clean.returncode == 0, clean.stderr
    assert "severity" in clean.stdout and "0 errors" in clean.stdout
    assert _cli.main(["dropout_fast.examples.models:small_resnet", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["model"] == "SmallResNet"


def test_cli_user_module_and_regression_task(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_models.py").write_text(
        "from torch import nn\n"
        "def regressor():\n"
        "    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1), nn.Dropout(0.1))\n"
        "broken = None\n")
    (tmp_path / "raises_on_import.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _cli.main(["my_models:regressor"]) == 0              # logits: only a warning
    assert "output" in capsys.readouterr().out
    assert _cli.main(["my_models:regressor", "--task", "regression"]) == 1
    assert "regression-output" in capsys.readouterr().out
    assert _cli.main(["raises_on_import:x"]) == 2
    assert "cannot import 'raises_on_import' (RuntimeError: boom)" in capsys.readouterr().err
    assert _cli.main(["my_models:broken"]) == 2
    assert "is a NoneType, not a callable" in capsys.readouterr().err


def test_cli_bad_input(capsys):
    cases = [
        (["no_such_module_xyz:factory"], "cannot import 'no_such_module_xyz'"),
        (["dropout_fast.examples.models"], "expected package.module:factory"),
        (["dropout_fast.examples.models:nope"], "has no attribute 'nope'"),
        (["dropout_fast.examples.models:__all__"], "not a callable or a torch.nn.Module"),
        (["dropout_fast.examples.models:__doc__"], "not a callable or a torch.nn.Module"),
        (["json:dumps"], "calling 'json:dumps' failed"),
        (["dropout_fast.advise:AuditReport"], "returned a AuditReport, not a torch.nn.Module"),
        (["dropout_fast.examples.models:small_resnet", "--input-shape", "2,x"],
         "--input-shape: expected comma-separated integers"),
    ]
    for argv, message in cases:
        assert _cli.main(argv) == 2, argv
        assert message in capsys.readouterr().err, argv
    assert _cli.main(["--task", "nope", "dropout_fast.examples.models:small_resnet"]) == 2
    capsys.readouterr()
    assert _cli.main(["dropout_fast.examples.models:small_resnet", "--input-shape",
                      "2,3,32,32"]) == 1
    assert "placement from fx" in capsys.readouterr().out


def test_docstring_examples():
    import doctest

    import dropout_fast.advise

    result = doctest.testmod(dropout_fast.advise)
    assert result.failed == 0 and result.attempted > 0


# --- README ----------------------------------------------------------------------------------

README = __import__("pathlib").Path(__file__).resolve().parents[1] / "README.md"


def test_readme_audit_tables_are_the_cli_output(capsys):
    import re

    blocks = re.findall(r"```text\n\$ python -m dropout_fast audit (\S+)\n(.*?)```",
                        README.read_text(), flags=re.S)
    assert {spec.rsplit(":", 1)[1] for spec, _ in blocks} >= {"small_resnet",
                                                             "transformer_encoder"}
    for spec, shown in blocks:
        code = _cli.main([spec])
        assert capsys.readouterr().out == shown, f"README table of {spec} is stale"
        assert code == (0 if spec.rsplit(":", 1)[1].startswith("fixed_") else 1)


def test_readme_torch_examples_run():
    import re

    blocks = re.findall(r"```py\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks
    for i, code in enumerate(blocks):
        exec(compile(code, f"README.md py block {i}", "exec"), {})
