"""Spatial conditioning of PixelCNN and GatedPixelCNN (``cond_channels``): the model stays causal
in x while every output sees the whole conditioning map, p(x | s) is normalised for every map,
samples follow it, the windowed sampler equals the full recompute, gradients are exact."""
import itertools

import numpy as np
import pytest
from scipy import stats

import minigen
from devices import to_host
from minigen.models import GatedPixelCNN, PixelCNN
from test_pixelcnn import all_images, make, sharpen

MODELS = [PixelCNN, GatedPixelCNN]


def conditional(cls, **kwargs):
    return make(cls, cond_channels=2, cond_layers=2, **kwargs)


def maps(n, H, W, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 2, H, W))


@pytest.mark.parametrize("cls", MODELS)
def test_causal_in_x_but_every_output_sees_the_whole_map(cls):
    """On a 3x3 image with two unmasked 3x3 conditioning layers (reach 2 every way): the gradient
    of the logits at (r, c) is zero for every pixel at or after (r, c) in raster order, and a
    change of the map at any single position changes the logits at every position."""
    model = conditional(cls, hidden_channels=8)
    N, H, W = 2, 3, 3
    x = np.random.default_rng(1).integers(0, 2, (N, 1, H, W))
    s = maps(N, H, W)
    order = np.arange(H * W).reshape(H, W)
    feats = model.features(minigen.tensor(s)).detach()
    for r, c in itertools.product(range(H), range(W)):
        h = minigen.tensor(model.one_hot(model.check_x(x)).data, requires_grad=True)
        logits = model.network(h, None, feats)
        g = np.zeros(logits.shape)
        g[:, :, 0, r, c] = np.random.default_rng(r * W + c).standard_normal(g[:, :, 0, r, c].shape)
        logits.backward(g)
        dep = np.abs(to_host(h.grad)).sum(axis=(0, 1))
        assert not dep[order >= r * W + c].any(), f"pixel ({r},{c}) sees the future of x"
        assert dep[order < r * W + c].any() or r == c == 0  # and it does see its past
    base = model(x, cond=s).numpy()
    for i, j in itertools.product(range(H), range(W)):
        moved = s.copy()
        moved[:, :, i, j] += 1.0
        changed = np.abs(model(x, cond=moved).numpy() - base).max(axis=(0, 1, 2)) > 1e-9
        assert changed.all(), f"a change of the map at ({i},{j}) leaves {np.argwhere(~changed)} unchanged"


@pytest.mark.parametrize("cls", MODELS)
def test_conditional_is_normalised_for_every_map_and_depends_on_it(cls):
    model = sharpen(conditional(cls, n_values=3), 2.0)
    images = all_images(1, 2, 2, 3)
    log_p = []
    for seed in range(2):
        s = np.repeat(maps(1, 2, 2, seed), len(images), axis=0)
        log_p.append(model.log_prob(images, cond=s).numpy())
        assert np.exp(log_p[-1]).sum() == pytest.approx(1.0, abs=1e-10)
    assert np.abs(log_p[0] - log_p[1]).max() > 1e-3


@pytest.mark.parametrize("cls", MODELS)
def test_conditional_samples_follow_the_model(cls):
    model = sharpen(conditional(cls), 2.5)
    images = all_images(1, 2, 2, 2)
    s = maps(1, 2, 2, seed=3)
    p = np.exp(model.log_prob(images, cond=np.repeat(s, 16, axis=0)).numpy())
    n = 3000
    out = model.sample(n, (2, 2), cond=np.repeat(s, n, axis=0), generator=4).numpy().reshape(n, 4)
    counts = np.bincount(out @ (2 ** np.arange(3, -1, -1)), minlength=16)
    assert stats.chisquare(counts, p * n).pvalue > 1e-3
    assert stats.chisquare(counts, np.full(16, n / 16)).pvalue < 1e-6  # the test has power


@pytest.mark.parametrize("cls", MODELS)
def test_windowed_sampler_with_a_map_matches_full_recompute(cls):
    model = sharpen(conditional(cls, n_layers=2, n_classes=2), 1.5)
    s = maps(3, 6, 7, seed=5)
    a = model.sample(3, (6, 7), y=[0, 1, 1], cond=s, generator=3).numpy()
    b = model.sample(3, (6, 7), y=[0, 1, 1], cond=s, generator=3, window=False).numpy()
    np.testing.assert_array_equal(a, b)
    x = a.copy()
    x[:, :, 3:] = 0
    c = model.complete(x, 3, y=[0, 1, 1], cond=s, generator=6).numpy()
    d = model.complete(x, 3, y=[0, 1, 1], cond=s, generator=6, window=False).numpy()
    np.testing.assert_array_equal(c, d)
    np.testing.assert_array_equal(c[:, :, :3], a[:, :, :3])


@pytest.mark.parametrize("cls", MODELS)
def test_gradcheck_parameters_and_map(cls):
    model = sharpen(make(cls, n_values=3, hidden_channels=4, n_layers=2, cond_channels=2,
                         cond_layers=1), 1.0)
    x = np.random.default_rng(0).integers(0, 3, (2, 1, 3, 3))
    s = minigen.tensor(maps(2, 3, 3), requires_grad=True)
    params = list(model.parameters())
    assert any("condition" in name for name, _ in model.named_parameters())
    assert minigen.gradcheck(lambda s, *ps: model.log_prob(x, cond=s), [s] + params)
