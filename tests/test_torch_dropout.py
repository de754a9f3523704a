"""dropout_fast.torch: standard dropout against the numpy API, autograd, modes,
inplace semantics and bad inputs."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import dropout_fast as df  # noqa: E402
import dropout_fast.torch as dt  # noqa: E402


def _seed_of_next_call(gen=None):
    """The seed the next call will draw from `gen` (torch's default when None),
    without consuming it."""
    g = gen if gen is not None else torch.default_generator
    state = g.get_state()
    s = int(dt.draw_seed(gen))
    g.set_state(state)
    return s


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(7,), (4, 33), (2, 3, 5, 7), (0, 5)])
@pytest.mark.parametrize("mask", ["bits", "recompute"])
def test_bit_equal_to_numpy_api(dtype, shape, mask):
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=dtype, requires_grad=True)
    dy = torch.randn(shape, dtype=dtype)
    s = _seed_of_next_call()
    y = dt.dropout(x, 0.3, mask=mask)
    y.backward(dy)
    ref, m = df.dropout_forward(x.detach().numpy(), 0.3, rng=dt.numpy_generator(s, 0))
    assert np.array_equal(y.detach().numpy(), ref)
    assert np.array_equal(x.grad.numpy(), df.dropout_backward(dy.numpy(), m))


def test_generator_argument_and_manual_seed():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(64, 64)
    s = _seed_of_next_call(g)
    y = dt.dropout(x, 0.5, generator=g)
    assert np.array_equal(y.numpy(), df.dropout(x.numpy(), 0.5, rng=dt.numpy_generator(s, 0)))
    torch.manual_seed(3)
    a = dt.Dropout(0.4)(x)
    torch.manual_seed(3)
    b = dt.Dropout(0.4)(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, dt.Dropout(0.4)(x))


def test_gradcheck_float64_mask_fixed():
    x = torch.randn(5, 9, dtype=torch.float64, requires_grad=True)
    for mask in ("bits", "recompute"):
        def f(t):
            return dt.dropout(t, 0.3, generator=torch.Generator().manual_seed(7), mask=mask)
        assert torch.autograd.gradcheck(f, (x,))
        assert torch.autograd.gradgradcheck(f, (x,))


def test_eval_returns_input_and_module_modes():
    x = torch.randn(3, 4)
    assert dt.dropout(x, 0.5, training=False) is x
    m = dt.Dropout(0.5)
    assert m.training and m(x) is not x
    m.eval()
    assert m(x) is x
    assert repr(m) == "Dropout(p=0.5, inplace=False)"


def test_keep_fraction_and_scale():
    x = torch.ones(200_000)
    y = dt.dropout(x, 0.25)
    kept = (y != 0).double().mean().item()
    assert abs(kept - 0.75) < 5 * (0.75 * 0.25 / x.numel()) ** 0.5
    assert set(torch.unique(y).tolist()) == {0.0, float(np.float32(1 / 0.75))}


def test_memory_saved_for_backward_is_packed_bits():
    x = torch.randn(256, 1024, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        dt.dropout(x, 0.5)
    assert sum(saved) <= x.numel() // 8 + 64
    saved.clear()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        dt.dropout(x, 0.5, mask="recompute")
    assert sum(saved) <= 64


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_types_via_float32(dtype):
    x = torch.randn(6, 40).to(dtype).requires_grad_()
    s = _seed_of_next_call()
    y = dt.dropout(x, 0.5)
    ref, m = df.dropout_forward(x.detach().float().numpy(), 0.5,
                                rng=dt.numpy_generator(s, 0))
    assert y.dtype == dtype
    assert torch.equal(y.detach(), torch.from_numpy(ref).to(dtype))
    y.backward(torch.ones_like(y))
    assert x.grad.dtype == dtype
    assert torch.equal(x.grad, torch.from_numpy(m.to_bool()).to(dtype) * 2)


def test_channels_last_and_strided_inputs():
    x = torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last).requires_grad_()
    y = dt.dropout(x, 0.5)
    assert y.is_contiguous(memory_format=torch.channels_last)
    y.backward(torch.ones(2, 3, 4, 5))  # a contiguous gradient for a channels_last output
    kept = y.detach() != 0
    assert torch.equal(x.grad, kept.float() * 2.0)
    base = torch.randn(6, 20)
    v = base[:, ::3]
    s = _seed_of_next_call()
    out = dt.dropout(v, 0.5)
    ref = df.dropout(v.numpy(), 0.5, rng=dt.numpy_generator(s, 0))
    assert np.array_equal(out.numpy(), ref)


def test_inplace_semantics_like_torch():
    x = torch.randn(4, 5)
    before = x._version
    y = dt.dropout(x, 0.5, inplace=True)
    assert y is x and x._version > before
    leaf = torch.randn(4, 5, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        torch.nn.functional.dropout(leaf, 0.5, inplace=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        dt.dropout(leaf, 0.5, inplace=True)
    h = leaf * 1.0
    out = dt.Dropout(0.5, inplace=True)(h)
    assert out is h
    out.sum().backward()
    assert torch.equal(leaf.grad, (out.detach() != 0).float() * 2.0)


@pytest.mark.parametrize("context", ["no_grad", "inference_mode"])
def test_inplace_without_autograd_writes_over_the_input(context):
    x = torch.ones(64, 33, requires_grad=context == "no_grad")
    ctx = torch.no_grad() if context == "no_grad" else torch.inference_mode()
    with ctx:
        if context == "inference_mode":
            x = torch.ones(64, 33)
        s = _seed_of_next_call()
        before = x._version if context == "no_grad" else None
        y = dt.dropout(x, 0.5, inplace=True)
    assert y is x
    if before is not None:
        assert x._version > before
    ref = df.dropout(np.ones((64, 33), np.float32), 0.5, rng=dt.numpy_generator(s, 0))
    assert np.array_equal(x.detach().numpy(), ref)


def test_bad_inputs():
    x = torch.randn(3, 4)
    with pytest.raises(ValueError, match="p"):
        dt.dropout(x, 1.5)
    with pytest.raises(ValueError, match="p"):
        dt.Dropout(-0.1)
    with pytest.raises(TypeError, match="input"):
        dt.dropout(torch.ones(3, dtype=torch.int64), 0.5)
    with pytest.raises(TypeError, match="input"):
        dt.dropout(np.ones(3), 0.5)
    with pytest.raises(ValueError, match="device"):
        dt.dropout(torch.empty(3, device="meta"), 0.5)
    with pytest.raises(ValueError, match="4-D"):
        dt.dropout2d(torch.randn(2, 3, 4), 0.5)
    with pytest.raises(ValueError, match="mask"):
        dt.dropout(x, 0.5, mask="nope")
    with pytest.raises(TypeError, match="generator"):
        dt.dropout(x, 0.5, generator=3)


def test_threads_draw_distinct_seeds():
    import threading
    x = torch.ones(1024)
    outs = [None] * 4

    def work(i):
        outs[i] = [dt.dropout(x, 0.5) for _ in range(50)]
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    masks = {tuple((y != 0).nonzero().flatten().tolist()) for o in outs for y in o}
    assert len(masks) == 200
