"""max_pool2d, avg_pool2d, upsample_nearest: loop references, gradient routing (ties), gradcheck, errors."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minigen
import minigen.functional as F
import minigen.nn as nn
from devices import on_device, to_host


def reference_pool(x, k, s, p, reduce):
    """Pool by loops; max pads with -inf, mean counts the zero padding (count_include_pad)."""
    n_, c_, h, w = x.shape
    fill = -np.inf if reduce is np.max else 0.0
    x_pad = np.full((n_, c_, h + 2 * p, w + 2 * p), fill)
    x_pad[:, :, p:p + h, p:p + w] = x
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    y = np.zeros((n_, c_, oh, ow))
    for n in range(n_):
        for c in range(c_):
            for a in range(oh):
                for b in range(ow):
                    y[n, c, a, b] = reduce(x_pad[n, c, a * s:a * s + k, b * s:b * s + k])
    return y


@st.composite
def pool_cases(draw):
    k = draw(st.integers(1, 3))
    s = draw(st.integers(1, 3))
    p = draw(st.integers(0, k // 2))
    h, w = draw(st.integers(max(1, k - 2 * p), 7)), draw(st.integers(max(1, k - 2 * p), 7))
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    # distinct values at least 0.1 apart: no ties, so finite differences never cross a kink
    x = rng.permutation(n * c * h * w).reshape(n, c, h, w) * 0.1 + rng.uniform(0, 0.01, (n, c, h, w))
    return x, k, s, p


@settings(max_examples=15)
@given(pool_cases())
def test_max_pool_matches_reference_and_gradcheck(case):
    x, k, s, p = case
    xt = minigen.tensor(x, dtype="float64", requires_grad=True)
    np.testing.assert_array_equal(F.max_pool2d(xt, k, s, p).numpy(), reference_pool(x, k, s, p, np.max))
    assert minigen.gradcheck(lambda x: F.max_pool2d(x, k, s, p), [xt])


@settings(max_examples=15)
@given(pool_cases())
def test_avg_pool_matches_reference_and_gradcheck(case):
    x, k, s, p = case
    xt = minigen.tensor(x, dtype="float64", requires_grad=True)
    np.testing.assert_allclose(F.avg_pool2d(xt, k, s, p).numpy(), reference_pool(x, k, s, p, np.mean),
                               atol=1e-12)
    assert minigen.gradcheck(lambda x: F.avg_pool2d(x, k, s, p), [xt])


def test_max_pool_gradient_goes_to_the_maximum():
    x = minigen.tensor([[[[1.0, 5.0, 2.0, 0.0],
                          [3.0, 4.0, 9.0, 8.0]]]], requires_grad=True)
    y = F.max_pool2d(x, 2)
    np.testing.assert_array_equal(y.numpy(), [[[[5.0, 9.0]]]])
    y.backward(on_device(np.array([[[[10.0, 20.0]]]], dtype=np.float32)))
    np.testing.assert_array_equal(to_host(x.grad), [[[[0, 10, 0, 0], [0, 0, 20, 0]]]])


def test_max_pool_ties_go_to_the_first_in_raster_order_and_overlaps_accumulate():
    x = minigen.tensor(np.ones((1, 1, 3, 3)), requires_grad=True)
    y = F.max_pool2d(x, 2, stride=1)  # four overlapping windows, all values tied
    y.sum().backward()
    # each window's top-left element wins: (0,0), (0,1), (1,0), (1,1) once each
    np.testing.assert_array_equal(to_host(x.grad[0, 0]), [[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    again = minigen.tensor(np.ones((1, 1, 3, 3)), requires_grad=True)
    F.max_pool2d(again, 2, stride=1).sum().backward()
    np.testing.assert_array_equal(to_host(again.grad), to_host(x.grad))  # deterministic


def test_max_pool_padding_never_wins():
    x = minigen.tensor(-np.arange(1.0, 10.0).reshape(1, 1, 3, 3), requires_grad=True)
    y = F.max_pool2d(x, 3, stride=1, padding=1)
    assert np.isfinite(y.numpy()).all() and y.numpy().max() == -1.0
    y.sum().backward()
    assert x.grad.sum() == 9


def test_avg_pool_gradient_spreads_evenly():
    x = minigen.tensor(np.arange(16.0).reshape(1, 1, 4, 4), requires_grad=True)
    F.avg_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(to_host(x.grad), np.full((1, 1, 4, 4), 0.25))


@settings(max_examples=10)
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(0, 100))
def test_upsample_nearest(scale, h, w, seed):
    x = np.random.default_rng(seed).standard_normal((2, 3, h, w))
    xt = minigen.tensor(x, dtype="float64", requires_grad=True)
    y = F.upsample_nearest(xt, scale)
    np.testing.assert_array_equal(y.numpy(), x.repeat(scale, axis=2).repeat(scale, axis=3))
    assert minigen.gradcheck(lambda x: F.upsample_nearest(x, scale), [xt])


def test_modules():
    x = minigen.randn(2, 3, 8, 8)
    assert nn.MaxPool2d(2)(x).shape == (2, 3, 4, 4)
    assert nn.MaxPool2d(3, stride=2, padding=1)(x).shape == (2, 3, 4, 4)
    assert nn.AvgPool2d(2, stride=1)(x).shape == (2, 3, 7, 7)
    assert nn.Upsample(scale_factor=3)(x).shape == (2, 3, 24, 24)
    assert nn.MaxPool2d(2)(x).dtype == np.float32


def test_bad_input():
    with pytest.raises(ValueError, match=r"4-D input .*got shape \(3, 8, 8\)"):
        F.max_pool2d(minigen.zeros(3, 8, 8), 2)
    with pytest.raises(ValueError, match=r"4-D input .*got shape \(8, 8\)"):
        nn.AvgPool2d(2)(minigen.zeros(8, 8))
    with pytest.raises(ValueError, match=r"kernel of size 5x5 .*larger than the padded input 4x4"):
        F.max_pool2d(minigen.zeros(1, 1, 4, 4), 5)
    with pytest.raises(ValueError, match=r"padding must be at most half the kernel size, got padding \(2, 2\)"):
        F.avg_pool2d(minigen.zeros(1, 1, 4, 4), 3, padding=2)
    with pytest.raises(ValueError, match=r"scale_factor must be a positive integer, got 1.5"):
        nn.Upsample(scale_factor=1.5)
    with pytest.raises(ValueError, match=r"only mode='nearest'.*got 'bilinear'"):
        nn.Upsample(scale_factor=2, mode="bilinear")
