"""masked_conv2d (live taps only) against the plain reference conv2d(x, W * M): values and
gradients, gradcheck, the live-tap counts of PixelCNN masks, bad input."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minigen
import minigen.functional as F
from devices import on_device, to_host
from minigen.gradcheck import gradcheck
from minigen.nn.conv import pixelcnn_mask


@st.composite
def masked_cases(draw):
    """A PixelCNN-masked convolution: kernel (square or 1 x k, odd), mask type, RGB-style
    channel groups, dilation, input size, and a random float64 input, weight and bias."""
    groups = draw(st.sampled_from([1, 3]))
    c_in = groups * draw(st.integers(1, 2))
    c_out = groups * draw(st.integers(1, 3))
    k = draw(st.sampled_from([1, 3, 5, 7]))
    kernel = draw(st.sampled_from([(k, k), (1, k), (k, 1)]))
    mask_type = draw(st.sampled_from(["A", "B"]))
    dilation = draw(st.integers(1, 2))
    n, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2 ** 16))
    rng = np.random.default_rng(seed)
    mask = pixelcnn_mask(c_out, c_in, kernel, mask_type, groups)
    padding = tuple(dilation * (kk // 2) for kk in kernel)
    return (rng.standard_normal((n, c_in, h, w)), rng.standard_normal((c_out, c_in) + kernel),
            mask, rng.standard_normal(c_out), padding, dilation)


def values_and_grads(conv, x, weight, mask, bias, upstream):
    ts = [minigen.tensor(a, requires_grad=True) for a in (x, weight, bias)]
    y = conv(ts[0], ts[1], on_device(mask), ts[2])
    y.backward(minigen.tensor(on_device(upstream)))
    return [to_host(y)] + [to_host(t.grad) for t in ts]


@settings(max_examples=25)
@given(masked_cases())
def test_fast_equals_reference_values_and_gradients(case):
    x, weight, mask, bias, padding, dilation = case

    def fast(x_, w_, m_, b_):
        return F.masked_conv2d(x_, w_, m_, b_, padding=padding, dilation=dilation)

    def reference(x_, w_, m_, b_):
        return F.conv2d(x_, w_ * m_, b_, 1, padding, dilation)

    shape = to_host(reference(x, weight, mask, bias)).shape
    upstream = np.random.default_rng(1).standard_normal(shape)
    got = values_and_grads(fast, x, weight, mask, bias, upstream)
    want = values_and_grads(reference, x, weight, mask, bias, upstream)
    for name, a, b in zip(("y", "dx", "dW", "db"), got, want):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=name)
    # the weight gets no gradient through the taps its mask zeroes
    assert np.all(got[2][mask == 0] == 0)


@settings(max_examples=8)
@given(masked_cases())
def test_gradcheck(case):
    x, weight, mask, bias, padding, dilation = case
    mask = on_device(mask)
    assert gradcheck(lambda x_, w_, b_: F.masked_conv2d(x_, w_, mask, b_, padding, dilation),
                     [x, weight, bias])


@pytest.mark.parametrize("kernel, mask_type, live", [(3, "B", 5), (7, "A", 24), (3, "A", 4),
                                                     ((1, 3), "B", 2), ((1, 7), "A", 3)])
def test_live_taps_of_pixelcnn_masks(kernel, mask_type, live):
    taps = F.live_taps(pixelcnn_mask(2, 2, kernel, mask_type))
    assert len(taps) == live
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    assert all(i < kh // 2 or (i == kh // 2 and j <= kw // 2) for i, j in taps)


def test_all_zero_mask_gives_the_bias():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 3, 4, 4)), rng.standard_normal((5, 3, 3, 3)), rng.standard_normal(5)
    x, w, b = on_device(x), on_device(w), on_device(b)
    y = to_host(F.masked_conv2d(x, w, w * 0, b, padding=1))
    np.testing.assert_array_equal(y, np.broadcast_to(to_host(b).reshape(1, 5, 1, 1), (2, 5, 4, 4)))


@pytest.mark.parametrize("x_shape, w_shape, m_shape, b_shape, match", [
    ((2, 3, 4), (4, 3, 3, 3), (4, 3, 3, 3), None, "4-D input"),
    ((2, 3, 4, 4), (4, 2, 3, 3), (4, 2, 3, 3), None, "input channels"),
    ((2, 3, 4, 4), (4, 3, 3, 3), (4, 3, 1, 3), None, "mask must have the weight's shape"),
    ((2, 3, 4, 4), (4, 3, 3, 3), (4, 3, 3, 3), (3,), "bias must have shape"),
    ((2, 3, 2, 2), (4, 3, 5, 5), (4, 3, 5, 5), None, "larger than the padded input"),
])
def test_bad_input(x_shape, w_shape, m_shape, b_shape, match):
    bias = None if b_shape is None else np.zeros(b_shape)
    with pytest.raises(ValueError, match=match):
        F.masked_conv2d(np.zeros(x_shape), np.zeros(w_shape), np.ones(m_shape), bias)


@settings(max_examples=10)
@given(groups=st.sampled_from([1, 3]), k=st.sampled_from([1, 3, 5]), mask_type=st.sampled_from("AB"),
       dilation=st.integers(1, 2), h=st.integers(1, 6), w=st.integers(1, 6), seed=st.integers(0, 99))
def test_layer_fast_path_equals_its_reference_path(groups, k, mask_type, dilation, h, w, seed):
    """nn.MaskedConv2d's forward (the live taps) against its plain ``reference`` path."""
    minigen.manual_seed(seed)
    layer = minigen.nn.MaskedConv2d(groups, 2 * groups, k, mask_type, dilation=dilation,
                                    channel_groups=groups, dtype="float64")
    x = on_device(np.random.default_rng(seed).standard_normal((2, groups, h, w)))
    upstream = on_device(np.random.default_rng(seed + 1).standard_normal((2, 2 * groups, h, w)))
    results = []
    for path in (layer, layer.reference):
        xt = minigen.tensor(x, requires_grad=True)
        layer.zero_grad()
        y = path(xt)
        y.backward(minigen.tensor(upstream))
        results.append([to_host(y), to_host(xt.grad), to_host(layer.weight.grad), to_host(layer.bias.grad)])
    for name, a, b in zip(("y", "dx", "dW", "db"), *results):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=name)
