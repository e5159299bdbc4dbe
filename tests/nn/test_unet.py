"""UNet: output size = input size, gradients, and skip connections that carry information."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minigen
import minigen.nn as nn
from devices import to_host


def t64(a, grad=False):
    return minigen.tensor(a, dtype="float64", requires_grad=grad)


@settings(max_examples=10)
@given(st.integers(0, 2), st.integers(0, 9), st.integers(0, 9), st.booleans(), st.integers(1, 3))
def test_output_has_the_input_size(depth, extra_h, extra_w, timed, out_channels):
    minigen.manual_seed(0)
    h, w = 2 ** depth + extra_h, 2 ** depth + extra_w  # divisible by 2^depth or not
    net = nn.UNet(2, out_channels, base_channels=4, depth=depth, time_embedding_dim=8 if timed else None)
    x = minigen.randn(3, 2, h, w)
    y = net(x, np.array([0, 5, 99]) if timed else None)
    assert y.shape == (3, out_channels, h, w)


def test_channels_double_down_and_halve_up_as_in_the_lecture():
    net = nn.UNet(1, 2, base_channels=4, depth=3)
    assert [block.conv1.out_channels for block in net.down] == [4, 8, 16, 32]
    assert [up.out_channels for up in net.up] == [16, 8, 4]
    assert [block.conv1.in_channels for block in net.up_blocks] == [32, 16, 8]  # after concatenation
    assert all(conv.kernel_size == (3, 3) for block in net.down for conv in (block.conv1, block.conv2))
    assert all(up.kernel_size == (2, 2) and up.stride == 2 for up in net.up)


@settings(max_examples=3)
@given(st.integers(0, 999), st.booleans())
def test_gradcheck_tiny_unet_float64(seed, timed):
    """Input and every parameter; the timed variant also runs through GroupNorm, SiLU and the embedding."""
    minigen.manual_seed(seed)
    net = nn.UNet(1, 2, base_channels=2, depth=1, time_embedding_dim=4 if timed else None).double()
    x = t64(np.random.default_rng(seed).standard_normal((2, 1, 4, 5)), grad=True)
    t = np.array([3, 17]) if timed else None
    params = list(net.parameters())
    assert minigen.gradcheck(lambda x, *ps: net(x, t), [x] + params)


def test_skip_connection_carries_the_pixel_to_the_same_location():
    """Cut the deeper path (zero the shallowest up-convolution): the output must still depend on
    the input pixel at the same place, only through the skip, and no longer on far pixels."""
    minigen.manual_seed(0)
    net = nn.UNet(1, 1, base_channels=4, depth=2).double()
    x = t64(np.random.default_rng(0).standard_normal((1, 1, 16, 16)), grad=True)

    def jacobian_row(i, j):
        x.grad = None
        net(x)[0, 0, i, j].backward()
        return to_host(x.grad)[0, 0]

    before = jacobian_row(8, 8)
    assert np.count_nonzero(before[:, 0]) > 0  # intact: the deep path sees far pixels (column 0)
    shallowest_up = net.up[-1]
    shallowest_up.weight.data[...] = 0
    shallowest_up.bias.data[...] = 0
    for i, j in [(8, 8), (3, 12), (0, 0)]:
        g = jacobian_row(i, j)
        assert g[i, j] != 0, f"output ({i}, {j}) does not see input ({i}, {j}) through the skip"
        far = np.ones_like(g, dtype=bool)
        far[max(i - 4, 0):i + 5, max(j - 4, 0):j + 5] = False  # four 3x3 convolutions: radius 4
        assert not g[far].any()


@pytest.mark.parametrize("make, error, pattern", [
    (lambda: nn.UNet(0, 1), ValueError, "in_channels must be >= 1"),
    (lambda: nn.UNet(1, 1, depth=-1), ValueError, "depth must be >= 0"),
    (lambda: nn.UNet(1, 1, base_channels=2.0), TypeError, "base_channels must be an integer"),
    (lambda: nn.UNet(1, 1, time_embedding_dim=5), ValueError, "time_embedding_dim must be even"),
    (lambda: nn.UNet(1, 1, base_channels=2, depth=2)(minigen.zeros(1, 1, 3, 8)), ValueError, "at least 4x4"),
    (lambda: nn.UNet(2, 1, base_channels=2)(minigen.zeros(1, 1, 8, 8)), ValueError, "expected 2 input channels"),
    (lambda: nn.UNet(1, 1, base_channels=2)(minigen.zeros(1, 1, 8, 8), np.array([1])), ValueError,
     "without time_embedding_dim"),
    (lambda: nn.UNet(1, 1, base_channels=2, time_embedding_dim=4)(minigen.zeros(1, 1, 8, 8)), ValueError,
     "pass t"),
    (lambda: nn.UNet(1, 1, base_channels=2, time_embedding_dim=4)(minigen.zeros(2, 1, 8, 8), np.array([1, 2, 3])),
     ValueError, r"t of shape \(2,\)"),
])
def test_bad_input(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()
