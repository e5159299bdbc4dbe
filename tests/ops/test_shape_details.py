"""Shape-op conventions beyond the op table: numpy.pad widths, axis arguments, -1 in expand."""
import numpy as np
import pytest

import minigen
import minigen.functional as F


@pytest.mark.parametrize("pad_width", [1, (1,), (1, 2), ((1, 2),), ((0, 1), (2, 0))])
def test_pad_widths_follow_numpy_pad(pad_width):
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(F.pad(minigen.tensor(x), pad_width, value=-1.0).numpy(),
                                  np.pad(x, pad_width, constant_values=-1.0))


def test_axes_may_be_numpy_integers_lists_or_negative():
    x = minigen.tensor(np.arange(24.0).reshape(2, 3, 4))
    assert x.sum(axis=np.int64(1)).shape == (2, 4)
    assert x.max(axis=[0, -1]).shape == (3,)
    assert F.logsumexp(x, axis=(np.int32(-1), 0), keepdims=True).shape == (1, 3, 1)
    assert x.transpose(-1, 0, -2).shape == (4, 2, 3)


def test_expand_keeps_axes_marked_minus_one():
    x = minigen.tensor(np.ones((3, 1)))
    assert x.expand(2, -1, 4).shape == (2, 3, 4)
