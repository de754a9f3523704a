"""torch.compile(fullgraph=True): the ops are registered custom ops with fake
and autograd implementations, so a model using every module traces without a
graph break and trains."""
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import dropout_fast.torch as dt  # noqa: E402


class Every(nn.Module):
    """A small model that calls every module and functional op of dropout_fast.torch."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.chain = nn.Sequential(
            dt.Dropout(0.1), dt.Dropout2d(0.1), dt.SpatialDropout(0.1), dt.FeatureAlphaDropout(0.1),
            dt.AlphaDropout(0.1), dt.DropPath(0.1), dt.GaussianDropout(0.1), dt.DropBlock2d(0.1, 3))
        self.d3, self.d1 = dt.Dropout3d(0.1), dt.Dropout1d(0.1)
        self.var = dt.VariationalDropout(0.1)
        self.sm = dt.SoftmaxDropout(0.1, is_causal=True)
        self.bda = dt.BiasDropoutAdd(0.1)
        self.emb = nn.Parameter(torch.randn(10, 8))
        self.bias = nn.Parameter(torch.zeros(8))

    def forward(self, x, ids):
        h = self.chain(self.conv(x))
        h = self.d3(h.unsqueeze(2)).squeeze(2)
        s = self.var(self.d1(h.flatten(2)))                      # (N, 4, 16)
        q = s[:, :, :4].unsqueeze(1)
        a = self.sm(q @ q.transpose(-1, -2))
        e = dt.embedding_dropout(self.emb, ids, 0.1)
        o = self.bda(e, self.bias, e)
        w = dt.drop_connect(self.emb, 0.1)
        return a.sum() + o.sum() + s.sum() + w.sum()


def test_every_module_compiles_fullgraph_and_trains():
    torch.manual_seed(0)
    model = Every()
    x, ids = torch.randn(2, 3, 4, 4), torch.tensor([[1, 2, 3], [4, 5, 1]])
    compiled = torch.compile(model, fullgraph=True, dynamic=False, backend="aot_eager")
    torch.manual_seed(1)
    out = compiled(x, ids)
    out.backward()
    assert model.conv.weight.grad is not None and model.emb.grad.abs().sum() > 0
    torch.manual_seed(1)
    again = compiled(x, ids)
    assert torch.equal(out, again)  # torch.manual_seed reproduces compiled runs too
    model.eval()
    eval_out = torch.compile(model, fullgraph=True, dynamic=False, backend="aot_eager")(x, ids)
    assert not torch.equal(out, eval_out)


def test_inductor_dropout_values_and_gradient():
    def f(t):
        return dt.dropout(t, 0.5) * 3.0

    compiled = torch.compile(f, fullgraph=True)
    x = torch.ones(4096, requires_grad=True)
    y = compiled(x)
    y.sum().backward()
    assert set(torch.unique(y.detach()).tolist()) <= {0.0, 6.0}
    assert abs((y != 0).float().mean().item() - 0.5) < 5 * (0.25 / 4096) ** 0.5
    assert torch.equal(x.grad, y.detach())  # d/dx (3 * keep * 2 * x) = 3 * keep * 2


def _opcheck_cases():
    seed = torch.tensor(12345, dtype=torch.int64)

    def f64(*shape):
        return torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    cl = torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last).requires_grad_()
    return {
        "masked_fwd": (f64(3, 4, 5), seed, 0, 0.3, [3, 4, 1], [0, 1, 2], 1 / 0.7, 0.0, 0.0,
                       True),
        "masked_fwd_channels_last": (cl, seed, 1, 0.3, [2, 3, 1, 1], [0, 2, 3, 1], 1 / 0.7,
                                     0.0, 0.0, True),
        "masked_fwd_bf16": (torch.randn(4, 6).bfloat16().requires_grad_(), seed, 0, 0.5,
                            [4, 6], [0, 1], 2.0, 0.0, 0.0, False),
        "gaussian": (f64(3, 5), seed, 0, 0.5, [0, 1]),
        "drop_block_fwd": (f64(2, 2, 5, 5), seed, 0, 0.2, 3, "channels_first", 1e-6, True),
        "embedding_fwd": (f64(7, 3), torch.tensor([[1, 2, 1]]), seed, 0, 0.3),
        "softmax_dropout_fwd": (f64(2, 4, 4), seed, 0, 0.2, 1, None, False, True),
        "bias_dropout_add_fwd": (f64(3, 4), f64(4), f64(3, 4), seed, 0, 0.3, True),
    }


@pytest.mark.parametrize("case", sorted(_opcheck_cases()))
def test_opcheck(case):
    """torch.library.opcheck: schema, autograd registration, fake tensors (shapes and
    strides), AOT dispatch."""
    from dropout_fast.torch._registry import REGISTRY
    name = case.split("_channels")[0].split("_bf16")[0]
    torch.library.opcheck(REGISTRY[name].compiled, _opcheck_cases()[case])
