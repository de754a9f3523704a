"""The Examples sections of the public docstrings run as doctests."""
import doctest

import pytest

import dropout_fast
from dropout_fast import _dropblock, _fused, _gaussian, _generator, api, layers, mc, variants


@pytest.mark.parametrize(
    "module", [dropout_fast, api, _generator, variants, layers, _dropblock, _gaussian, _fused, mc])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
