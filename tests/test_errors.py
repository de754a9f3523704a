"""Bad input: a clear exception naming the argument, and the input left untouched."""
import numpy as np
import pytest

import dropout_fast as df


@pytest.fixture
def x():
    return np.linspace(-1, 1, 50, dtype=np.float32)


def untouched(x, fn, exc, match):
    before = x.copy()
    with pytest.raises(exc, match=match):
        fn()
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("p", [float("nan"), -0.1, 1.5, float("inf")])
def test_p_out_of_range(x, p):
    untouched(x, lambda: df.dropout(x, p, out=x), ValueError, "p:")
    untouched(x, lambda: df.dropout(x, p, training=False), ValueError, "p:")


@pytest.mark.parametrize("p", ["0.5", None, True, 1j])
def test_p_wrong_type(x, p):
    untouched(x, lambda: df.dropout(x, p), TypeError, "p:")


@pytest.mark.parametrize("dtype", [np.int32, np.float16, np.complex64, bool, object])
def test_non_floating_dtypes(dtype):
    with pytest.raises(TypeError, match="float32 or float64"):
        df.dropout(np.zeros(4, dtype), 0.5)
    with pytest.raises(TypeError, match="float32 or float64"):
        df.dropout_forward(np.zeros(4, dtype), 0.5)


def test_out_wrong_shape_dtype_readonly(x):
    untouched(x, lambda: df.dropout(x, 0.5, out=np.empty(49, np.float32)), ValueError, "out")
    untouched(x, lambda: df.dropout(x, 0.5, out=np.empty(50, np.float64)), TypeError, "out")
    untouched(x, lambda: df.dropout(x, 0.5, out=[0.0] * 50), TypeError, "out")
    ro = np.empty_like(x)
    ro.flags.writeable = False
    untouched(x, lambda: df.dropout(x, 0.5, out=ro), ValueError, "read-only")
    x.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        df.dropout(x, 0.5, out=x)


def test_generator_untouched_on_error(x):
    g = df.Generator(1)
    with pytest.raises(ValueError):
        df.dropout(x, 2.0, rng=g)
    with pytest.raises(ValueError):
        df.dropout(x, 0.5, rng=g, out=np.empty(3, np.float32))
    assert g.offset == 0


def test_bad_mask_mode(x):
    with pytest.raises(ValueError, match="mask"):
        df.dropout_forward(x, 0.5, mask="bytes")
    with pytest.raises(ValueError, match="mask"):
        df.Dropout(0.5, mask="bool")


def test_backward_bad_arguments(x):
    _, m = df.dropout_forward(x, 0.5, rng=0)
    untouched(x, lambda: df.dropout_backward(x[:10], m), ValueError, "dy")
    untouched(x, lambda: df.dropout_backward(x, m.bits), TypeError, "DropoutMask")
    untouched(x, lambda: df.dropout_backward(x, None), TypeError, "DropoutMask")
    untouched(x, lambda: df.dropout_backward(x.astype(np.int64), m), TypeError, "dy")
    untouched(x, lambda: df.dropout_backward(x, m, out=np.empty(3, np.float32)), ValueError,
              "out")


def test_threads_arguments():
    with pytest.raises(ValueError, match="n:"):
        df.set_num_threads(0)
    with pytest.raises(TypeError, match="n:"):
        df.set_num_threads(1.5)
    saved = df.get_num_threads()
    df.set_num_threads(1)
    assert df.get_num_threads() == 1
    df.set_num_threads(saved)


@pytest.mark.parametrize("args, exc, match", [
    (([0.5, 0, 0, 0], [0, 0]), TypeError, "counter"),
    (([0, 0, 0], [0, 0]), ValueError, "counter"),
    (([0, 0, 0, 0], [0, 2**32]), ValueError, "key"),
    (([0, 0, 0, -1], [0, 0]), ValueError, "counter"),
    ((np.zeros((3, 4), np.uint32), np.zeros((2, 2), np.uint32)), ValueError, "broadcast"),
])
def test_philox_bad_arguments(args, exc, match):
    with pytest.raises(exc, match=match):
        df.philox4x32(*args)
    with pytest.raises(ValueError, match="rounds"):
        df.philox4x32([0, 0, 0, 0], [0, 0], rounds=17)
