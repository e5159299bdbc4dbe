"""GatedPixelCNN: no blind spot, an exactly known receptive field, the gated activation.

Causality, normalisation, sampling, gradchecks and bad input are shared with PixelCNN and tested
for both models in test_pixelcnn.py.
"""
import numpy as np
import pytest

import minigen
from devices import on_device
from minigen.models import GatedPixelCNN
from minigen.models.pixelcnn import gate
from test_pixelcnn import check_causal, make


def test_no_blind_spot_every_past_pixel_is_seen():
    """kernel 3, 4 layers: reach 5 rows up and 4 columns either side, so in a 5x5 image every
    pixel before i (raster order) must influence pixel i's logits, and none after it."""
    model = make(GatedPixelCNN, n_layers=4)
    maps = check_causal(model, (1, 5, 5))
    order = np.arange(25).reshape(5, 5)
    for (r, c), dep in maps.items():
        past = order < r * 5 + c
        assert (dep[past] > 0).all(), f"pixel ({r},{c}) is blind to {np.argwhere(past & (dep == 0))}"


@pytest.mark.parametrize("kernel_size, n_layers", [(3, 2), (5, 1), (5, 3)])
def test_receptive_field_is_the_rectangle_above_plus_the_row_to_the_left(kernel_size, n_layers):
    """Pixel (r, c) sees exactly rows r-up..r-1 within columns c-left..c+right, and row r from
    column c-left to c-1: no blind spot inside, nothing outside (the sampler's crop relies on it)."""
    model = make(GatedPixelCNN, kernel_size=kernel_size, n_layers=n_layers)
    up, left, right = model.receptive_field
    H, W = up + 3, left + right + 5
    maps = check_causal(model, (1, H, W))
    r, c = H - 2, left + 2
    expected = np.zeros((H, W), dtype=bool)
    expected[r - up:r, c - left:c + right + 1] = True
    expected[r, c - left:c] = True
    np.testing.assert_array_equal(maps[(r, c)] > 0, expected)


def test_gate_is_tanh_times_sigmoid_within_each_channel_group():
    a = np.random.default_rng(0).standard_normal((2, 8, 3, 3))
    out = gate(minigen.tensor(a), 2).numpy()
    # group g holds channels 4g..4g+3: the first two pass through tanh, the last two gate them
    for g in range(2):
        f, s = a[:, 4 * g:4 * g + 2], a[:, 4 * g + 2:4 * g + 4]
        np.testing.assert_allclose(out[:, 2 * g:2 * g + 2], np.tanh(f) / (1 + np.exp(-s)), rtol=1e-12)


def test_class_label_enters_every_layer():
    model = make(GatedPixelCNN, n_classes=4)
    names = [name for name, _ in model.named_parameters() if "class" in name]
    assert len(names) == 2 * len(model.layers)  # V_f/V_g tables for both stacks of each layer
    for layer in model.layers:
        weight = layer.class_h.weight
        weight.data[...] = on_device(np.random.default_rng(0).standard_normal(weight.shape))
    x = np.zeros((1, 1, 3, 3), dtype=int)
    assert model.log_prob(x, y=0).item() != pytest.approx(model.log_prob(x, y=3).item())


# -- the fused ops and the fast layer against their plain references

from hypothesis import given, settings, strategies as st  # noqa: E402

from devices import to_host  # noqa: E402
from minigen.gradcheck import gradcheck  # noqa: E402
from minigen.models.pixelcnn import gate_reference, shift_down, shift_down_reference  # noqa: E402

shapes = st.tuples(st.integers(1, 2), st.sampled_from([1, 3]), st.integers(1, 3), st.integers(1, 4),
                   st.integers(1, 4), st.integers(0, 2 ** 16))


def values_and_grad(fn, a, upstream):
    t = minigen.tensor(on_device(a), requires_grad=True)
    out = fn(t)
    out.backward(minigen.tensor(on_device(upstream)))
    return to_host(out), to_host(t.grad)


@settings(max_examples=10)
@given(shapes)
def test_fused_gate_and_shift_equal_their_references_and_pass_gradcheck(shape):
    n, groups, per_group, h, w, seed = shape
    rng = np.random.default_rng(seed)
    a = 3 * rng.standard_normal((n, 2 * groups * per_group, h, w))
    for fast, reference, out_channels in ((lambda t: gate(t, groups), lambda t: gate_reference(t, groups),
                                           groups * per_group),
                                          (shift_down, shift_down_reference, 2 * groups * per_group)):
        upstream = rng.standard_normal((n, out_channels, h, w))
        for got, want in zip(values_and_grad(fast, a, upstream), values_and_grad(reference, a, upstream)):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
        assert gradcheck(fast, [a])


@settings(max_examples=6, deadline=None)
@given(first=st.booleans(), groups=st.sampled_from([1, 3]), kernel_size=st.sampled_from([3, 5]),
       conditioned=st.booleans(), seed=st.integers(0, 99))
def test_gated_layer_fast_path_equals_its_reference(first, groups, kernel_size, conditioned, seed):
    """GatedLayer.forward (masked_conv2d with top-only padding, fused gate and shift) against
    GatedLayer.reference (Conv2d and a slice, the composed gate, pad and slice): both outputs and
    the gradients of the inputs and of every parameter, float64."""
    model = make(GatedPixelCNN, seed=seed, in_channels=groups, hidden_channels=2 * groups,
                 kernel_size=kernel_size, n_layers=2, n_classes=3 if conditioned else None,
                 cond_channels=2 if conditioned else None)
    layer = model.layers[0 if first else 1]
    rng = np.random.default_rng(seed)
    c_in = layer.horizontal.in_channels
    v, h = (on_device(rng.standard_normal((2, c_in, 5, 6))) for _ in range(2))
    y = on_device(np.array([0, 2])) if conditioned else None
    s = minigen.tensor(on_device(rng.standard_normal((2, 2 * groups, 5, 6)))) if conditioned else None
    up_v, up_h = (minigen.tensor(on_device(rng.standard_normal((2, 2 * groups, 5, 6)))) for _ in range(2))
    results = []
    for path in (layer, layer.reference):
        model.zero_grad()
        vt, ht = minigen.tensor(v, requires_grad=True), minigen.tensor(h, requires_grad=True)
        v_out, h_out = path(vt, ht, y, s)
        ((v_out * up_v).sum() + (h_out * up_h).sum()).backward()
        results.append([to_host(v_out), to_host(h_out), to_host(vt.grad), to_host(ht.grad)]
                       + [to_host(p.grad) for p in layer.parameters()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
