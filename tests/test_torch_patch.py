"""patch_model / unpatch_model and the nn.Module drop-ins."""
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import dropout_fast.torch as dt  # noqa: E402


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.Dropout2d(0.1),
            nn.Sequential(nn.BatchNorm2d(4), nn.Dropout3d(0.1)),
        )
        self.heads = nn.ModuleList([nn.Sequential(nn.Flatten(), nn.Dropout(0.2)),
                                    nn.AlphaDropout(0.1)])
        self.extra = nn.ModuleDict({"a": nn.FeatureAlphaDropout(0.3), "b": nn.Dropout1d(0.4)})
        self.shared = nn.Dropout(0.5, inplace=True)
        self.again = self.shared
        self.fc = nn.Linear(4 * 5 * 5, 3)

    def forward(self, x):
        h = self.body[1](self.body[0](x))
        h = self.heads[0](self.body[2][0](h))
        return self.fc(self.shared(h))


def test_patch_replaces_every_torch_dropout_and_keeps_state_dict():
    torch.manual_seed(0)
    net = Net()
    keys = list(net.state_dict())
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    net.eval()
    report = dt.patch_model(net)
    names = {r.name for r in report}
    assert names == {"body.1", "body.2.1", "heads.0.1", "heads.1", "extra.a", "extra.b",
                     "shared", "again"}
    kinds = {type(m).__module__ for m in net.modules()
             if isinstance(m, (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
                               nn.AlphaDropout, nn.FeatureAlphaDropout))}
    assert kinds == set()
    assert net.shared is net.again and net.shared.inplace and net.shared.p == 0.5
    assert not net.body[1].training  # the training flag is carried over
    assert list(net.state_dict()) == keys
    net.load_state_dict(sd)
    x = torch.randn(2, 3, 5, 5)
    assert net(x).shape == (2, 3)
    net.train()
    net(x).sum().backward()
    back = dt.unpatch_model(net)
    assert len(back) == len(report)
    assert type(net.body[1]) is nn.Dropout2d and type(net.extra["b"]) is nn.Dropout1d
    assert list(net.state_dict()) == keys
    assert "replaced 8 module(s)" in str(report)


def test_patch_rejects_non_modules_and_bare_dropout():
    with pytest.raises(TypeError, match="model"):
        dt.patch_model(3)
    with pytest.raises(ValueError, match="model"):
        dt.patch_model(nn.Dropout())
    assert len(dt.patch_model(nn.Linear(2, 2))) == 0


def test_patched_model_trains_and_reproduces_under_manual_seed():
    def run():
        torch.manual_seed(1)
        net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 1))
        dt.patch_model(net)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        x, t = torch.randn(64, 8), torch.randn(64, 1)
        losses = []
        for _ in range(20):
            opt.zero_grad()
            loss = ((net(x) - t) ** 2).mean()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses
    a, b = run(), run()
    assert a == b
    assert a[-1] < a[0]


@pytest.mark.parametrize("name", ["functional", "modules", "patch"])
def test_docstring_examples(name):
    import doctest
    import importlib
    module = importlib.import_module(f"dropout_fast.torch.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
