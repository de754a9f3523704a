"""MC dropout for torch models (dropout_fast.torch.mc.mc_predict): only dropout
modules sampled (BatchNorm stays in eval, its running statistics untouched),
every module's mode restored, statistics against stacked samples computed
directly, batched against unbatched, reproducibility under torch.manual_seed,
any input rank, and bad input."""
import doctest

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn

from dropout_fast.torch import mc as tmc
from dropout_fast.torch.mc import dropout_modules, mc_dropout_mode, mc_predict


class Net(nn.Module):
    """Linear -> BatchNorm -> ReLU -> Dropout -> Linear, with a nested block holding
    an AlphaDropout, so mode handling covers nested modules."""

    def __init__(self, d=6, h=32, k=4, p=0.5):
        super().__init__()
        self.fc1 = nn.Linear(d, h)
        self.bn = nn.BatchNorm1d(h)
        self.drop = nn.Dropout(p)
        self.block = nn.Sequential(nn.Linear(h, h), nn.Tanh(), nn.AlphaDropout(0.1))
        self.fc2 = nn.Linear(h, k)

    def forward(self, x):
        h = self.drop(torch.relu(self.bn(self.fc1(x))))
        return self.fc2(self.block(h))


def make(seed=0, **kw):
    torch.manual_seed(seed)
    net = Net(**kw)
    with torch.no_grad():  # non-trivial running statistics
        net.bn.running_mean.uniform_(-1, 1)
        net.bn.running_var.uniform_(0.5, 2)
    return net


def stacked(model, x, T):
    """T unbatched passes with only the dropout modules on, stacked (the oracle)."""
    with mc_dropout_mode(model), torch.no_grad():
        return torch.stack([model(x) for _ in range(T)]).double()


def test_only_dropout_modules_train_and_modes_restored():
    net = make()
    net.train()
    net.block.eval()  # a mixed state must come back exactly
    before = {n: m.training for n, m in net.named_modules()}
    seen = {}

    def hook(module, inputs, out, name):
        seen[name] = module.training

    for n, m in net.named_modules():
        if n:
            m.register_forward_hook(lambda mod, i, o, n=n: hook(mod, i, o, n))
    running = net.bn.running_mean.clone(), net.bn.running_var.clone()
    batches = net.bn.num_batches_tracked.clone()
    mc_predict(net, torch.randn(7, 6), samples=5)
    assert seen == {"fc1": False, "bn": False, "drop": True, "block": False, "block.0": False,
                    "block.1": False, "block.2": True, "fc2": False}
    assert {n: m.training for n, m in net.named_modules()} == before
    assert torch.equal(net.bn.running_mean, running[0])
    assert torch.equal(net.bn.running_var, running[1])
    assert torch.equal(net.bn.num_batches_tracked, batches)


def test_modes_restored_after_an_error():
    net = make().train()

    class Boom(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    net.fc2 = Boom()
    with pytest.raises(RuntimeError, match="boom"):
        mc_predict(net, torch.randn(3, 6), samples=2)
    assert all(m.training for m in net.modules())


def test_dropout_modules_finds_torch_classes_and_extra_types():
    class MyDrop(nn.Module):
        def forward(self, x):
            return x

    net = nn.Sequential(nn.Dropout(), nn.Dropout1d(), nn.Dropout2d(), nn.Dropout3d(),
                        nn.AlphaDropout(), nn.FeatureAlphaDropout(), nn.BatchNorm1d(3),
                        nn.ModuleList([nn.Dropout(), MyDrop()]))
    names = [n for n, _ in dropout_modules(net)]
    assert names == ["0", "1", "2", "3", "4", "5", "7.0"]
    assert [n for n, _ in dropout_modules(net, MyDrop)][-1] == "7.1"


@pytest.mark.parametrize("batched", [False, True])
def test_statistics_match_the_stacked_samples(batched):
    """Same global-generator draws in the same order: unbatched sample t is pass t, and
    batched with chunk 1 is the same thing; mean/var/entropies against direct formulas."""
    net, x, T = make(), torch.randn(9, 6), 13
    torch.manual_seed(5)
    r = mc_predict(net, x, samples=T, batched=batched, chunk=1)
    torch.manual_seed(5)
    logits = stacked(net, x, T)
    p = torch.softmax(logits, dim=-1)
    torch.testing.assert_close(r.mean, p.mean(0), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(r.variance, p.var(0, unbiased=False), rtol=1e-9, atol=1e-12)

    def h(q):
        return -(q * torch.log(q)).sum(-1)

    torch.testing.assert_close(r.predictive_entropy, h(p.mean(0)), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(r.expected_entropy, h(p).mean(0), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(r.mutual_information,
                               (h(p.mean(0)) - h(p).mean(0)).clamp(min=0), rtol=1e-7,
                               atol=1e-12)
    assert torch.equal(r.predicted_class, p.mean(0).argmax(-1))
    assert r.samples == T and r.mean.dtype == torch.float64


def test_batched_equals_a_manual_tiled_run():
    """batched=True, chunk=k: call c is the model on x repeated k times; sample j is
    row block j. Checked against doing exactly that by hand (last call partial)."""
    net, x, T, k = make(), torch.randn(5, 6), 11, 4
    torch.manual_seed(3)
    r = mc_predict(net, x, samples=T, chunk=k, output=None)
    torch.manual_seed(3)
    outs = []
    with mc_dropout_mode(net), torch.no_grad():
        for c in range(0, T, k):
            kc = min(k, T - c)
            outs.append(net(x.repeat(kc, 1)).reshape(kc, 5, -1))
    y = torch.cat(outs).double()
    torch.testing.assert_close(r.mean, y.mean(0), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(r.variance, y.var(0, unbiased=False), rtol=1e-9, atol=1e-12)
    assert r.predictive_entropy is None and r.predicted_class is None


def test_batched_equals_unbatched_without_randomness():
    """p = 0: every sample is the deterministic eval output, batched or not, for inputs
    of rank 2, 3 and 4 (a conv net with Dropout2d)."""
    torch.manual_seed(0)
    mlp = make(p=0.0)
    mlp.block[2].p = 0.0
    conv = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Dropout2d(0.0),
                         nn.Flatten(), nn.Linear(4 * 5 * 5, 3))
    seq = nn.Sequential(nn.Linear(6, 8), nn.Dropout(0.0), nn.Linear(8, 3))
    for net, x in [(mlp, torch.randn(7, 6)), (conv.eval(), torch.randn(3, 2, 5, 5)),
                   (seq, torch.randn(4, 10, 6))]:
        a = mc_predict(net, x, samples=6, batched=False)
        b = mc_predict(net, x, samples=6, batched=True, chunk=4)
        with torch.no_grad():
            ref = torch.softmax(net.eval()(x).double(), -1)
        assert a.mean.shape == b.mean.shape == ref.shape
        torch.testing.assert_close(a.mean, ref, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(b.mean, a.mean, rtol=1e-6, atol=1e-7)
        assert float(a.variance.max()) < 1e-12 and float(b.mutual_information.max()) < 1e-9


def test_batched_and_unbatched_agree_statistically():
    """Different draws, same distribution: the MC means agree within 5 standard errors."""
    net, x, T = make(), torch.randn(4, 6), 300
    a = mc_predict(net, x, samples=T, batched=False, seed=1, output=None)
    b = mc_predict(net, x, samples=T, batched=True, seed=2, output=None)
    se = torch.sqrt((a.variance + b.variance) / T)
    assert bool(((a.mean - b.mean).abs() <= 5 * se + 1e-9).all())
    assert not torch.equal(a.mean, b.mean)


def test_reproducible_under_manual_seed_and_seed_argument():
    net, x = make(), torch.randn(6, 6)
    torch.manual_seed(11)
    a = mc_predict(net, x, samples=20)
    torch.manual_seed(11)
    b = mc_predict(net, x, samples=20)
    assert torch.equal(a.mean, b.mean) and torch.equal(a.mutual_information,
                                                       b.mutual_information)
    torch.manual_seed(12)
    c = mc_predict(net, x, samples=20)
    assert not torch.equal(a.mean, c.mean)
    # seed= forks the generator: same result whatever the global state, which it leaves alone
    state = torch.get_rng_state()
    d = mc_predict(net, x, samples=20, seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(99)
    e = mc_predict(net, x, samples=20, seed=7)
    assert torch.equal(d.mean, e.mean)


def test_dropout_fast_modules_are_sampled_and_reproducible():
    """A model patched with patch_model: its dropout_fast twins are the ones switched on
    (and BatchNorm is not); torch.manual_seed reproduces the run."""
    import dropout_fast.torch as dft

    net = make().train()
    report = dft.patch_model(net)
    assert len(report) == 2
    assert [type(m).__module__ for _, m in dropout_modules(net)] == [
        "dropout_fast.torch.modules"] * 2
    x = torch.randn(6, 6)
    torch.manual_seed(4)
    a = dft.mc_predict(net, x, samples=30)
    torch.manual_seed(4)
    b = dft.mc_predict(net, x, samples=30, batched=False)
    torch.manual_seed(4)
    c = dft.mc_predict(net, x, samples=30)
    assert torch.equal(a.mean, c.mean) and not torch.equal(a.mean, b.mean)
    assert float(a.mutual_information.mean()) > 0
    assert all(m.training for m in net.modules())
    torch.manual_seed(4)
    ref = stacked(net, x, 30)
    torch.testing.assert_close(b.mean, torch.softmax(ref, -1).mean(0), rtol=1e-12, atol=1e-12)


def test_probs_output_and_low_precision():
    net = nn.Sequential(nn.Linear(3, 5), nn.Dropout(0.3), nn.Softmax(-1))
    x = torch.randn(4, 3)
    r = mc_predict(net, x, samples=10, output="probs", seed=0)
    torch.testing.assert_close(r.mean.sum(-1), torch.ones(4, dtype=torch.float64))
    half = nn.Sequential(nn.Linear(3, 5), nn.Dropout(0.3)).to(torch.bfloat16)
    r = mc_predict(half, x.to(torch.bfloat16), samples=10, seed=0)
    assert r.mean.dtype == torch.float64 and r.mean.shape == (4, 5)


def test_large_T_streams():
    """T = 5000 with 1-row inputs: chunked calls, memory bounded by one chunk."""
    net = nn.Sequential(nn.Linear(2, 3), nn.Dropout(0.5))
    r = mc_predict(net, torch.ones(1, 2), samples=5000, chunk=1000, seed=0, output=None)
    with torch.no_grad():
        ref = net.eval()(torch.ones(1, 2)).double()
    # E[dropout(h)] = h; Var = h^2 (the p = 0.5 inverted-dropout variance)
    assert bool(((r.mean - ref).abs() <= 5 * ref.abs() / np.sqrt(5000) + 1e-6).all())
    torch.testing.assert_close(r.variance, ref ** 2, rtol=0.1, atol=1e-6)


def test_bad_input():
    net = make().eval()
    x = torch.randn(3, 6)
    with pytest.raises(TypeError, match="model"):
        mc_predict(lambda t: t, x)
    with pytest.raises(TypeError, match="x"):
        mc_predict(net, np.ones((3, 6)))
    with pytest.raises(ValueError, match="x"):
        mc_predict(net, torch.randn(0, 6))
    with pytest.raises(ValueError, match="x"):
        mc_predict(net, torch.tensor(1.0))
    with pytest.raises(ValueError, match="samples"):
        mc_predict(net, x, samples=0)
    with pytest.raises(TypeError, match="samples"):
        mc_predict(net, x, samples=2.5)
    with pytest.raises(TypeError, match="batched"):
        mc_predict(net, x, batched="yes")
    with pytest.raises(ValueError, match="chunk"):
        mc_predict(net, x, chunk=0)
    with pytest.raises(ValueError, match="output"):
        mc_predict(net, x, output="scores")
    with pytest.raises(TypeError, match="seed"):
        mc_predict(net, x, seed=1.5)
    with pytest.raises(TypeError, match="dropout_types"):
        mc_predict(net, x, dropout_types=(int,))
    with pytest.raises(ValueError, match="no dropout modules"):
        mc_predict(nn.Linear(6, 2), x)
    class Ints(nn.Module):
        def forward(self, t):
            return (t > 0).long()

    with pytest.raises(TypeError, match="model"):
        mc_predict(nn.Sequential(nn.Dropout(), Ints()), x)
    with pytest.raises(ValueError, match="rows"):
        mc_predict(nn.Sequential(nn.Dropout(), nn.Flatten(0)), x)
    with pytest.raises(ValueError, match="model: probabilities"):
        mc_predict(net, x, output="probs")
    assert not any(m.training for m in net.modules())  # modes untouched after errors


def test_docstring_examples():
    result = doctest.testmod(tmc, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
