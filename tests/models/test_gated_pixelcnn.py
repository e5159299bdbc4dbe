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
