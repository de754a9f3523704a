"""Every variant and fusion of dropout_fast.torch: outputs and gradients
bit-equal to the numpy API for the same seed, gradcheck in float64 with the mask
held fixed, eval mode, channels_last."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import dropout_fast as df  # noqa: E402
import dropout_fast.torch as dt  # noqa: E402


def _gen(seed=11):
    return torch.Generator().manual_seed(seed)


def _numpy_rng(seed=11):
    """The numpy Generator matching the first call on _gen(seed)."""
    return dt.numpy_generator(int(dt.draw_seed(_gen(seed))), 0)


# (torch function of x, numpy forward of x -> (y, m), numpy backward (dy, m) -> dx, shape)
TABLE = {
    "dropout1d": (lambda x, g: dt.dropout1d(x, 0.4, generator=g),
                  lambda x, r: df.forward("spatial_dropout", x, 0.4, rng=r), (3, 5, 7)),
    "dropout2d": (lambda x, g: dt.dropout2d(x, 0.4, generator=g),
                  lambda x, r: df.forward("spatial_dropout", x, 0.4, rng=r), (2, 5, 3, 4)),
    "dropout3d": (lambda x, g: dt.dropout3d(x, 0.4, generator=g),
                  lambda x, r: df.forward("spatial_dropout", x, 0.4, rng=r), (2, 3, 2, 3, 4)),
    "spatial_last": (lambda x, g: dt.spatial_dropout(x, 0.3, data_format="channels_last",
                                                     generator=g),
                     lambda x, r: df.forward("spatial_dropout", x, 0.3, rng=r,
                                             data_format="channels_last"), (2, 3, 4, 6)),
    "alpha": (lambda x, g: dt.alpha_dropout(x, 0.2, True, generator=g),
              lambda x, r: df.forward("alpha_dropout", x, 0.2, rng=r), (4, 9)),
    "feature_alpha": (lambda x, g: dt.feature_alpha_dropout(x, 0.2, True, generator=g),
                      lambda x, r: df.forward("feature_alpha_dropout", x, 0.2, rng=r),
                      (3, 4, 5)),
    "variational": (lambda x, g: dt.variational_dropout(x, 0.3, time_axis=1, generator=g),
                    lambda x, r: df.forward("variational_dropout", x, 0.3, rng=r, time_axis=1),
                    (3, 6, 5)),
    "drop_path": (lambda x, g: dt.drop_path(x, 0.5, generator=g),
                  lambda x, r: df.forward("drop_path", x, 0.5, rng=r), (8, 3, 2)),
    "drop_connect": (lambda x, g: dt.drop_connect(x, 0.5, generator=g),
                     lambda x, r: df.forward("drop_connect", x, 0.5, rng=r), (6, 7)),
    "embedding_rows": (lambda x, g: dt.embedding_dropout(x, None, 0.5, generator=g),
                       lambda x, r: df.forward("embedding_dropout", x, 0.5, rng=r), (9, 4)),
    "gaussian": (lambda x, g: dt.gaussian_dropout(x, 0.3, generator=g),
                 lambda x, r: df.gaussian_dropout_forward(x, 0.3, rng=r), (5, 11)),
    "drop_block2d": (lambda x, g: dt.drop_block2d(x, 0.3, 3, generator=g),
                     lambda x, r: df.drop_block_forward(x, 0.3, 3, rng=r), (2, 2, 5, 6)),
    "drop_block3d": (lambda x, g: dt.drop_block3d(x, 0.3, 2, generator=g),
                     lambda x, r: df.drop_block_forward(x, 0.3, 2, rng=r), (2, 2, 4, 4, 4)),
    "softmax_dropout": (lambda x, g: dt.softmax_dropout(x, 0.2, is_causal=True, generator=g),
                        lambda x, r: df.softmax_dropout_forward(x, 0.2, is_causal=True, rng=r),
                        (2, 3, 5, 5)),
    "softmax_dim1_recompute": (lambda x, g: dt.softmax_dropout(x, 0.2, dim=1, mode="recompute",
                                                               generator=g),
                               lambda x, r: df.softmax_dropout_forward(x, 0.2, axis=1, rng=r),
                               (2, 4, 3)),
}


def _numpy_backward(name, dy, m, x):
    if name == "softmax_dim1_recompute":
        return df.softmax_dropout_backward(dy, m)
    return df.backward(dy, m)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(TABLE))
def test_bit_equal_to_numpy_api(name, dtype):
    fn, ref_fwd, shape = TABLE[name]
    x = torch.randn(shape, dtype=dtype, generator=_gen(1)).requires_grad_()
    dy = torch.randn(shape, dtype=dtype, generator=_gen(2))
    y = fn(x, _gen())
    y.backward(dy)
    ref, m = ref_fwd(x.detach().numpy().copy(), _numpy_rng())
    assert np.array_equal(y.detach().numpy(), ref)
    assert np.array_equal(x.grad.numpy(), _numpy_backward(name, dy.numpy(), m, x))


@pytest.mark.parametrize("name", sorted(TABLE))
def test_gradcheck_float64(name):
    fn, _, shape = TABLE[name]
    x = torch.randn(shape, dtype=torch.float64, generator=_gen(3)).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: fn(t, _gen()), (x,), atol=1e-6)


def test_embedding_lookup_matches_numpy_and_gradchecks():
    w = torch.randn(12, 4, dtype=torch.float64, generator=_gen(4)).requires_grad_()
    ids = torch.tensor([[1, 5, 1, 7], [0, 11, 5, 5]])
    out = dt.embedding_dropout(w, ids, 0.4, generator=_gen())
    dout = torch.randn(out.shape, dtype=torch.float64, generator=_gen(5))
    out.backward(dout)
    ref, m = df.embedding_dropout_forward(w.detach().numpy(), ids.numpy(), 0.4, rng=_numpy_rng())
    assert np.array_equal(out.detach().numpy(), ref)
    assert np.array_equal(w.grad.numpy(), df.embedding_dropout_backward(dout.numpy(),
                                                                        ids.numpy(), m))
    assert torch.autograd.gradcheck(
        lambda t: dt.embedding_dropout(t, ids, 0.4, generator=_gen()), (w,))


@pytest.mark.parametrize("bias_shape", [(6,), None])
def test_bias_dropout_add_matches_numpy_and_gradchecks(bias_shape):
    x = torch.randn(4, 6, dtype=torch.float64, generator=_gen(6)).requires_grad_()
    bias = None if bias_shape is None else \
        torch.randn(bias_shape, dtype=torch.float64).requires_grad_()
    res = torch.randn(4, 6, dtype=torch.float64).requires_grad_()
    y = dt.bias_dropout_add(x, bias, res, 0.3, generator=_gen())
    dy = torch.randn(4, 6, dtype=torch.float64)
    y.backward(dy)
    b_np = None if bias is None else bias.detach().numpy()
    ref, m = df.bias_dropout_add_forward(x.detach().numpy(), b_np, res.detach().numpy(), 0.3,
                                         rng=_numpy_rng())
    assert np.array_equal(y.detach().numpy(), ref)
    dx, db, dr = df.bias_dropout_add_backward(dy.numpy(), m)
    assert np.array_equal(x.grad.numpy(), dx) and np.array_equal(res.grad.numpy(), dr)
    if bias is not None:
        assert np.array_equal(bias.grad.numpy(), db)
    args = (x, res) if bias is None else (x, bias, res)

    def f(*t):
        if bias is None:
            return dt.bias_dropout_add(t[0], None, t[1], 0.3, generator=_gen())
        return dt.bias_dropout_add(t[0], t[1], t[2], 0.3, generator=_gen())
    assert torch.autograd.gradcheck(f, args)


def test_eval_mode_is_identity_for_every_module():
    x = torch.randn(2, 3, 4, 4)
    mods = [dt.Dropout(), dt.Dropout1d(), dt.Dropout3d(), dt.Dropout2d(), dt.AlphaDropout(),
            dt.FeatureAlphaDropout(), dt.SpatialDropout(), dt.DropPath(0.2),
            dt.GaussianDropout(0.2), dt.VariationalDropout(), dt.DropBlock2d(0.2, 3)]
    for m in mods:
        xin = x[0] if isinstance(m, dt.Dropout1d) else x
        assert m.eval()(xin) is xin, type(m).__name__
    sm = dt.SoftmaxDropout(0.3).eval()
    assert torch.allclose(sm(x), torch.softmax(x, -1), atol=1e-6)
    bda = dt.BiasDropoutAdd(0.3).eval()
    b = torch.randn(4)
    assert torch.equal(bda(x, b, x), x + (x + b))


def test_channels_last_channel_masks_are_zero_copy_and_equal_numpy():
    x = torch.randn(2, 6, 5, 5).to(memory_format=torch.channels_last).requires_grad_()
    y = dt.dropout2d(x, 0.5, generator=_gen())
    assert y.is_contiguous(memory_format=torch.channels_last)
    ref, m = df.forward("spatial_dropout", x.detach().contiguous().numpy(), 0.5, rng=_numpy_rng())
    assert np.array_equal(y.detach().contiguous().numpy(), ref)
    y.backward(torch.ones_like(y))
    assert np.array_equal(x.grad.contiguous().numpy(), df.backward(np.ones(x.shape, np.float32),
                                                                   m))


def test_variant_bad_inputs():
    with pytest.raises(ValueError, match="block_size"):
        dt.DropBlock2d(0.1, 0)
    with pytest.raises(ValueError, match="input"):
        dt.drop_block2d(torch.randn(2, 3, 4), 0.1, 3)
    with pytest.raises(ValueError, match="data_format"):
        dt.SpatialDropout(0.1, data_format="nhwc")
    with pytest.raises(ValueError, match="p"):
        dt.GaussianDropout(1.0)
    with pytest.raises(TypeError, match="ids"):
        dt.embedding_dropout(torch.randn(4, 2), torch.tensor([0.5]), 0.1)
    with pytest.raises(ValueError, match="residual"):
        dt.bias_dropout_add(torch.randn(3, 4), None, torch.randn(5), 0.1)
    with pytest.raises(TypeError, match="bias"):
        dt.bias_dropout_add(torch.randn(3, 4), torch.randn(4, dtype=torch.float64),
                            torch.randn(3, 4), 0.1)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_strided_input_bit_equal_to_numpy_api(name):
    """A non-dense view (every other element of the last axis) takes the generic
    layout path: copied to C order, the mask over the logical index as in numpy."""
    fn, ref_fwd, shape = TABLE[name]
    big = torch.randn(shape[:-1] + (2 * shape[-1],), dtype=torch.float64, generator=_gen(7))
    x = big[..., ::2].requires_grad_()
    dy = torch.randn(shape, dtype=torch.float64, generator=_gen(8))
    y = fn(x, _gen())
    y.backward(dy)
    ref, m = ref_fwd(x.detach().numpy().copy(), _numpy_rng())
    assert np.array_equal(y.detach().numpy(), ref)
    assert np.array_equal(x.grad.numpy(), _numpy_backward(name, dy.numpy(), m, x))


@pytest.mark.parametrize("name", ["dropout2d", "alpha", "drop_path", "variational"])
def test_half_precision_variants_follow_the_float32_pass(name):
    fn, ref_fwd, shape = TABLE[name]
    x = torch.randn(shape, generator=_gen(9)).to(torch.bfloat16)
    y = fn(x, _gen())
    ref, _ = ref_fwd(x.float().numpy(), _numpy_rng())
    assert y.dtype == torch.bfloat16 and torch.equal(y, torch.from_numpy(ref).to(torch.bfloat16))
