"""MaskedConv2d (PixelCNN): the mask, causality by gradients (single layers and stacks), errors."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minigen
import minigen.functional as F
import minigen.nn as nn
from devices import on_device, to_host


def masked_layer(c_in, c_out, k, mask_type, groups=1, seed=0, dilation=1):
    layer = nn.MaskedConv2d(c_in, c_out, k, mask_type, dilation=dilation, channel_groups=groups,
                            generator=seed).double()
    layer.bias.data[...] = on_device(np.random.default_rng(seed).standard_normal(c_out))
    return layer


def dependency(net, c_in, size, groups, seed=0):
    """dep[p, k, q, l] = |d out(pixel p, group k) / d in(pixel q, group l)| summed over channels.

    Pixels in raster order (p = row * W + col); one backward pass per (output pixel, group).
    """
    h, w = size
    x = minigen.tensor(np.random.default_rng(seed).standard_normal((1, c_in, h, w)), dtype="float64",
                       requires_grad=True)
    y = net(x)
    c_out = y.shape[1]
    dep = np.zeros((h * w, groups, h * w, groups))
    for p in range(h * w):
        for k in range(groups):
            x.grad = None
            block = slice(k * c_out // groups, (k + 1) * c_out // groups)
            y[0, block, p // w, p % w].sum().backward(retain_graph=True)
            g = np.abs(to_host(x.grad[0])).reshape(groups, c_in // groups, h * w).sum(axis=1)  # (l, q)
            dep[p, k] = g.T
    return dep


def allowed(size, groups, mask_type):
    """allowed[p, k, q, l]: pixel q before p in raster order, or the same pixel and group l < k
    (type A) / l <= k (type B)."""
    n = size[0] * size[1]
    p, k, q, l = np.meshgrid(np.arange(n), np.arange(groups), np.arange(n), np.arange(groups),
                             indexing="ij")
    same = (l < k) if mask_type == "A" else (l <= k)
    return (q < p) | ((q == p) & same)


def test_mask_values_single_group():
    a = to_host(nn.MaskedConv2d(1, 1, 3, "A").mask[0, 0])
    b = to_host(nn.MaskedConv2d(1, 1, 3, "B").mask[0, 0])
    np.testing.assert_array_equal(a, [[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(b, [[1, 1, 1], [1, 1, 0], [0, 0, 0]])
    big = to_host(nn.MaskedConv2d(2, 4, (5, 3), "B").mask)
    assert big.shape == (4, 2, 5, 3)
    assert big[:, :, :2].all() and not big[:, :, 3:].any() and big[:, :, 2, :2].all()


def test_mask_centre_with_rgb_channel_groups():
    """Output channels 0-1 are R, 2-3 G, 4-5 B; input channels R, G, B (van den Oord et al. 2016, 3.4)."""
    a = to_host(nn.MaskedConv2d(3, 6, 3, "A", channel_groups=3).mask[:, :, 1, 1])
    b = to_host(nn.MaskedConv2d(3, 6, 3, "B", channel_groups=3).mask[:, :, 1, 1])
    np.testing.assert_array_equal(a, [[0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 0]])
    np.testing.assert_array_equal(b, [[1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 0], [1, 1, 1], [1, 1, 1]])


def test_mask_is_a_buffer_saved_and_cast():
    layer = nn.MaskedConv2d(2, 3, 3, "B")
    assert "mask" in layer.state_dict() and "mask" not in dict(layer.named_parameters())
    assert layer.mask.dtype == np.float32
    assert layer.double().mask.dtype == np.float64


@settings(max_examples=8)
@given(st.sampled_from("AB"), st.sampled_from([1, 3]), st.sampled_from([3, 5]), st.integers(0, 100))
def test_single_layer_is_causal(mask_type, groups, k, seed):
    layer = masked_layer(groups, 2 * groups, k, mask_type, groups, seed)
    dep = dependency(layer, groups, (4, 5), groups, seed)
    forbidden = ~allowed((4, 5), groups, mask_type)
    assert np.all(dep[forbidden] == 0)  # exactly zero, not merely small
    # ... and it is not trivially zero: the left neighbour and the pixel above are seen
    assert np.all(dep[7, :, 6] != 0) and np.all(dep[7, :, 2] != 0)
    centre = dep[np.arange(20), :, np.arange(20)]  # (p, k, l)
    if mask_type == "B":
        assert np.all(centre[:, np.arange(groups), np.arange(groups)] != 0)


@pytest.mark.parametrize("groups", [1, 3])
def test_stack_of_a_then_b_layers_is_causal(groups):
    layers = [masked_layer(groups, 3 * groups, 5, "A", groups, 1)]
    layers += [masked_layer(3 * groups, 3 * groups, 3, "B", groups, s) for s in (2, 3, 4)]

    def net(x):
        for i, layer in enumerate(layers):
            x = layer(x if i == 0 else F.tanh(x))
        return x
    dep = dependency(net, groups, (5, 5), groups)
    assert np.all(dep[~allowed((5, 5), groups, "A")] == 0)
    # far-away earlier pixels are reached through the stack (receptive field grows)
    assert dep[24, :, 0].sum() > 0


def test_weight_gradient_is_zero_where_masked():
    layer = masked_layer(3, 6, 5, "A", groups=3)
    x = minigen.tensor(np.random.default_rng(0).standard_normal((2, 3, 6, 6)), dtype="float64")
    y = layer(x)
    y.backward(np.random.default_rng(1).standard_normal(y.shape))
    grad, mask = to_host(layer.weight.grad), to_host(layer.mask)
    assert np.all(grad[mask == 0] == 0)
    assert np.all(grad[mask == 1] != 0)


@settings(max_examples=8)
@given(st.sampled_from("AB"), st.sampled_from([1, 3]), st.sampled_from([1, 3, 5]), st.integers(1, 2),
       st.integers(1, 6), st.integers(1, 6), st.integers(0, 99))
def test_gradcheck_through_the_mask(mask_type, groups, k, dilation, h, w, seed):
    layer = masked_layer(groups, 2 * groups, k, mask_type, groups, seed, dilation)
    x = minigen.tensor(np.random.default_rng(seed).standard_normal((2, groups, h, w)), dtype="float64",
                       requires_grad=True)
    assert minigen.gradcheck(lambda x, w, b: layer(x), [x, layer.weight, layer.bias])


def test_output_keeps_the_image_size_and_padding_can_be_given():
    x = minigen.zeros(2, 1, 7, 9)
    assert nn.MaskedConv2d(1, 4, 7, "A")(x).shape == (2, 4, 7, 9)
    assert nn.MaskedConv2d(1, 4, 3, "B", dilation=2)(x).shape == (2, 4, 7, 9)
    assert nn.MaskedConv2d(1, 4, 3, "B", padding=0)(x).shape == (2, 4, 5, 7)


def test_bad_input():
    with pytest.raises(ValueError, match=r"mask_type must be 'A' or 'B', got 'C'"):
        nn.MaskedConv2d(1, 4, 3, "C")
    with pytest.raises(ValueError, match=r"mask_type must be 'A' or 'B', got 'a'"):
        nn.MaskedConv2d(1, 4, 3, "a")
    with pytest.raises(ValueError, match=r"kernel_size must be odd .* got \(4, 4\)"):
        nn.MaskedConv2d(1, 4, 4, "A")
    with pytest.raises(ValueError, match=r"out_channels \(4\) must be divisible by channel_groups \(3\)"):
        nn.MaskedConv2d(3, 4, 3, "A", channel_groups=3)
    with pytest.raises(ValueError, match=r"expected 1 input channels, got 3"):
        nn.MaskedConv2d(1, 4, 3, "A")(minigen.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"4-D input .*got shape \(1, 8, 8\)"):
        nn.MaskedConv2d(1, 4, 3, "A")(minigen.zeros(1, 8, 8))
