"""masked_conv2d (live taps only) against the plain reference conv2d(x, W * M): values and
gradients (PixelCNN masks, arbitrary masks, no mask, one-sided padding, one chunk or many),
gradcheck, the live-tap counts of PixelCNN masks, what backward keeps, bad input."""
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minigen
import minigen.functional as F
from devices import on_device, to_host
from minigen.gradcheck import gradcheck
from minigen.nn.conv import pixelcnn_mask
from minigen.ops import masked_conv


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
@given(masked_cases(), st.booleans())
def test_fast_equals_reference_values_and_gradients(case, relu_input):
    """relu_input: conv2d(relu(x), ...) with the ReLU fused, against F.relu then conv2d."""
    x, weight, mask, bias, padding, dilation = case

    def fast(x_, w_, m_, b_):
        return F.masked_conv2d(x_, w_, m_, b_, padding=padding, dilation=dilation, relu_input=relu_input)

    def reference(x_, w_, m_, b_):
        return F.conv2d(F.relu(x_) if relu_input else x_, w_ * m_, b_, 1, padding, dilation)

    shape = to_host(reference(x, weight, mask, bias)).shape
    upstream = np.random.default_rng(1).standard_normal(shape)
    got = values_and_grads(fast, x, weight, mask, bias, upstream)
    want = values_and_grads(reference, x, weight, mask, bias, upstream)
    for name, a, b in zip(("y", "dx", "dW", "db"), got, want):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=name)
    # the weight gets no gradient through the taps its mask zeroes
    assert np.all(got[2][mask == 0] == 0)


@st.composite
def general_cases(draw):
    """Any kernel (kh, kw) (even sizes and the Gated PixelCNN's (k//2 + 1, k) included), an
    arbitrary 0/1 mask (whole taps and single entries dead) or none, padding (top, bottom),
    (left, right) drawn side by side, dilation; float64 input, weight and bias."""
    c_in, c_out = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    k = draw(st.sampled_from([1, 3, 5]))
    kernel = draw(st.sampled_from([(k, k), (k // 2 + 1, k), (draw(st.integers(1, 4)), draw(st.integers(1, 4)))]))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2))
    span = [d * (kk - 1) + 1 for d, kk in zip(dilation, kernel)]
    n = draw(st.integers(1, 2))
    h = draw(st.integers(max(1, span[0] - sum(padding[0])), 10))
    w = draw(st.integers(max(1, span[1] - sum(padding[1])), 10))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    mask = None
    if draw(st.booleans()):
        mask = (rng.random((c_out, c_in) + kernel) < 0.7) * (rng.random(kernel) < 0.6)
    return (rng.standard_normal((n, c_in, h, w)), rng.standard_normal((c_out, c_in) + kernel),
            mask, rng.standard_normal(c_out), padding, dilation)


@settings(max_examples=25)
@given(general_cases(), st.booleans())
def test_any_mask_padding_and_chunking_equals_reference(case, small_chunks):
    """Against zero padding (F.pad) then conv2d with W * M over every tap; with small_chunks the
    stacked slices are built 64 columns at a time (many chunks)."""
    x, weight, mask, bias, padding, dilation = case
    mask_or_ones = np.ones(weight.shape) if mask is None else mask
    pad_width = ((0, 0), (0, 0)) + padding

    def fast(x_, w_, m_, b_):
        return F.masked_conv2d(x_, w_, None if mask is None else m_, b_, padding, dilation)

    def reference(x_, w_, m_, b_):
        return F.conv2d(F.pad(x_, pad_width), w_ * m_, b_, 1, 0, dilation)

    shape = to_host(reference(x, weight, mask_or_ones, bias)).shape
    upstream = np.random.default_rng(2).standard_normal(shape)
    with mock.patch.object(masked_conv, "CHUNK_BYTES", 1 if small_chunks else masked_conv.CHUNK_BYTES):
        got = values_and_grads(fast, x, weight, mask_or_ones, bias, upstream)
    want = values_and_grads(reference, x, weight, mask_or_ones, bias, upstream)
    for name, a, b in zip(("y", "dx", "dW", "db"), got, want):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=name)


@settings(max_examples=8)
@given(general_cases())
def test_gradcheck_any_mask_and_padding(case):
    x, weight, mask, bias, padding, dilation = case
    mask = None if mask is None else on_device(mask)
    assert gradcheck(lambda x_, w_, b_: F.masked_conv2d(x_, w_, mask, b_, padding, dilation),
                     [x, weight, bias])


def test_gradient_of_weight_alone_and_of_input_alone():
    """Each gradient is computed on its own path (the input layer needs no input gradient)."""
    rng = np.random.default_rng(3)
    x, w = on_device(rng.standard_normal((2, 2, 5, 5))), on_device(rng.standard_normal((4, 2, 3, 3)))
    mask = on_device(pixelcnn_mask(4, 2, 3, "B"))
    upstream = minigen.tensor(on_device(rng.standard_normal((2, 4, 5, 5))))
    grads = {}
    for which in ("x", "w", "both"):
        xt = minigen.tensor(x, requires_grad=which in ("x", "both"))
        wt = minigen.tensor(w, requires_grad=which in ("w", "both"))
        F.masked_conv2d(xt, wt, mask, None, 1).backward(upstream)
        grads[which] = (xt.grad, wt.grad)
    np.testing.assert_allclose(to_host(grads["x"][0]), to_host(grads["both"][0]), rtol=1e-12)
    np.testing.assert_allclose(to_host(grads["w"][1]), to_host(grads["both"][1]), rtol=1e-12)
    assert grads["x"][1] is None and grads["w"][0] is None


@pytest.mark.parametrize("kernel, mask_type", [(3, "B"), (7, "A"), (1, "B")])
def test_backward_keeps_only_the_input_and_weight_sized_arrays(kernel, mask_type):
    """The graph holds no padded or stacked copy of the input (T times its size): backward
    rebuilds what it needs from x, which the graph keeps anyway."""
    x = minigen.tensor(on_device(np.ones((2, 4, 9, 9))), requires_grad=True)
    w = minigen.tensor(on_device(np.ones((4, 4, kernel, kernel))), requires_grad=True)
    y = F.masked_conv2d(x, w, on_device(pixelcnn_mask(4, 4, kernel, mask_type)), None, kernel // 2)
    saved = [a for a in vars(y._creator).values() if hasattr(a, "nbytes") and hasattr(a, "shape")]
    assert any(a is x.data for a in saved)
    assert all(a.size <= w.data.size for a in saved if a is not x.data)
    y.backward(minigen.tensor(on_device(np.ones(y.shape))))
    assert x.grad is not None and w.grad is not None


@settings(max_examples=8)
@given(masked_cases(), st.booleans())
def test_gradcheck(case, relu_input):
    x, weight, mask, bias, padding, dilation = case
    mask = on_device(mask)
    assert gradcheck(lambda x_, w_, b_: F.masked_conv2d(x_, w_, mask, b_, padding, dilation, relu_input),
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


@pytest.mark.parametrize("x_shape, w_shape, m_shape, b_shape, padding, error, match", [
    ((2, 3, 4), (4, 3, 3, 3), (4, 3, 3, 3), None, 0, ValueError, "4-D input"),
    ((2, 3, 4, 4), (4, 2, 3, 3), (4, 2, 3, 3), None, 0, ValueError, "input channels"),
    ((2, 3, 4, 4), (4, 3, 3, 3), (4, 3, 1, 3), None, 0, ValueError, "mask must have the weight's shape"),
    ((2, 3, 4, 4), (4, 3, 3, 3), (4, 3, 3, 3), (3,), 0, ValueError, "bias must have shape"),
    ((2, 3, 2, 2), (4, 3, 5, 5), (4, 3, 5, 5), None, 0, ValueError, "larger than the padded input"),
    ((2, 3, 4, 4), (4, 3, 3, 3), (4, 3, 3, 3), None, ((1, -1), (1, 1)), ValueError, "padding must be >= 0"),
    ((2, 3, 4, 4), (4, 3, 3, 3), (4, 3, 3, 3), None, ((1, 1, 1), (1, 1)), TypeError, "padding must be"),
    ((2, 3, 4, 4), (4, 3, 3, 3), (4, 3, 3, 3), None, "same", TypeError, "padding must be"),
])
def test_bad_input(x_shape, w_shape, m_shape, b_shape, padding, error, match):
    bias = None if b_shape is None else np.zeros(b_shape)
    with pytest.raises(error, match=match):
        F.masked_conv2d(np.zeros(x_shape), np.zeros(w_shape), np.ones(m_shape), bias, padding)


@settings(max_examples=10)
@given(groups=st.sampled_from([1, 3]), k=st.sampled_from([1, 3, 5]), mask_type=st.sampled_from("AB"),
       dilation=st.integers(1, 2), h=st.integers(1, 6), w=st.integers(1, 6), seed=st.integers(0, 99))
def test_layer_fast_path_equals_its_reference_path(groups, k, mask_type, dilation, h, w, seed):
    """nn.MaskedConv2d's forward (the live taps) against its plain ``reference`` path, with and
    without the fused input ReLU."""
    minigen.manual_seed(seed)
    layer = minigen.nn.MaskedConv2d(groups, 2 * groups, k, mask_type, dilation=dilation,
                                    channel_groups=groups, dtype="float64")
    x = on_device(np.random.default_rng(seed).standard_normal((2, groups, h, w)))
    upstream = on_device(np.random.default_rng(seed + 1).standard_normal((2, 2 * groups, h, w)))
    relu_input = seed % 2 == 1
    results = []
    for path in (layer, layer.reference):
        xt = minigen.tensor(x, requires_grad=True)
        layer.zero_grad()
        y = path(xt, relu_input=relu_input)
        y.backward(minigen.tensor(upstream))
        results.append([to_host(y), to_host(xt.grad), to_host(layer.weight.grad), to_host(layer.bias.grad)])
    for name, a, b in zip(("y", "dx", "dW", "db"), *results):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=name)
