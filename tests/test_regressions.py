"""Regression tests for bugs found by the property-based tests (test_properties*.py)
and the atheris fuzzer (tests/fuzz/fuzz_api.py), one test per bug."""
import numpy as np

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
