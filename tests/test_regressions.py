"""Regression tests for bugs found by the property-based tests (test_properties*.py)
and the atheris fuzzer (tests/fuzz/fuzz_api.py), one test per bug."""
import numpy as np
import pytest

import dropout_fast as df


def test_embedding_backward_with_zero_width_rows():
    """embedding_dropout_backward reshaped dout with (-1, D), which numpy refuses
    for D == 0 ("cannot reshape array of size 0"); found by hypothesis."""
    w = np.ones((3, 0), np.float32)
    ids = np.array([[0, 2]])
    out, m = df.embedding_dropout_forward(w, ids, 0.5, rng=0)
    assert out.shape == (1, 2, 0)
    dw = df.embedding_dropout_backward(np.ones((1, 2, 0), np.float32), ids, m)
    assert dw.shape == (3, 0) and dw.dtype == np.float32
    dw = df.embedding_dropout_backward(np.ones((0, 0), np.float32), np.zeros(0, int), m)
    assert dw.shape == (3, 0)


def test_bias_dropout_add_backward_with_empty_last_axis():
    """bias_dropout_add_backward passed C == 0 (x of shape (..., 0) with a bias of
    shape (0,)) to the kernel, which refuses it: a ValueError on valid input; found
    by hypothesis."""
    for shape in [(0,), (3, 0), (0, 4)]:
        x = np.ones(shape, np.float32)
        bias = np.ones(shape[-1:], np.float32)
        _, m = df.bias_dropout_add_forward(x, bias, x, 0.5, rng=0)
        dx, dbias, dres = df.bias_dropout_add_backward(np.ones(shape, np.float32), m)
        assert dx.shape == shape and dres.shape == shape
        assert dbias.shape == shape[-1:] and dbias.dtype == np.float32 and not dbias.any()


def test_mc_sample_of_an_empty_batch():
    """mc_sample on x with no rows raised RuntimeError("forward_fn drew no counter
    blocks ... pass rng=rng"), blaming a forward_fn that does pass it: dropout of an
    empty array draws nothing. Found by the atheris fuzzer."""
    from dropout_fast.mc import mc_sample
    w = np.ones((3, 2), np.float32)
    stats = mc_sample(lambda x, rng: df.dropout(x @ w, 0.5, rng=rng),
                      np.ones((0, 3), np.float32), 4, rng=0)
    assert stats.count == 4 and stats.mean.shape == (0, 2) and stats.stride == 0
    stats = mc_sample(lambda x, rng: df.dropout(x @ w, 0.5, rng=rng),
                      np.ones((0, 3), np.float32), 5, rng=0, batch=2)
    assert stats.count == 5 and stats.variance().shape == (0, 2)


@pytest.mark.parametrize("shape", [(), (5,), (2, 3, 4)])
def test_embedding_dropout_eval_mode_checks_the_weight(shape):
    """embedding_dropout(weight, ids, training=False) looked ids up in a weight of
    any ndim: an IndexError for a 0-d weight, a silent wrong-shaped lookup for a
    3-D one, where training mode raises ValueError. Found by the atheris fuzzer."""
    w = np.ones(shape, np.float32)
    for training in (True, False):
        with pytest.raises(ValueError, match="weight"):
            df.embedding_dropout(w, np.array([0]), 0.1, training=training)
    with pytest.raises(ValueError, match="p"):
        df.embedding_dropout(np.ones((3, 2)), np.array([0]), 1.5, training=False)
