"""The cached PixelCNN sampler (Ramachandran et al. 2017): the same images as the windowed and
the naive samplers for the same seed, the same completions, the model's distribution."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats

import minigen
from minigen.models import GatedPixelCNN, PixelCNN
from minigen.models.pixelcnn_fast_sampling import sample_cached


def tiny(seed=0, scale=1.5, **kwargs):
    """A tiny PixelCNN with sharpened weights (conditionals far from uniform), float64."""
    minigen.manual_seed(seed)
    model = PixelCNN(**{"hidden_channels": 8, "n_layers": 3, "kernel_size": 5, **kwargs}).double()
    rng = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        if "class" in name:
            p.data[...] = rng.standard_normal(p.shape)
        else:
            p.data *= scale
    return model


@settings(max_examples=6)
@given(seed=st.integers(0, 100), channels=st.sampled_from([(1, 2), (3, 4)]),
       kernel=st.sampled_from([3, 5]), h=st.integers(1, 6), w=st.integers(1, 6),
       temperature=st.sampled_from([1.0, 0.7]))
def test_cached_sampler_gives_the_samples_of_the_full_recompute(seed, channels, kernel, h, w,
                                                                temperature):
    in_channels, n_values = channels
    model = tiny(seed, in_channels=in_channels, n_values=n_values, kernel_size=kernel,
                 hidden_channels=4 * in_channels)
    kwargs = dict(temperature=temperature, generator=seed)
    cached = sample_cached(model, 3, (h, w), **kwargs).numpy()
    np.testing.assert_array_equal(cached, model.sample(3, (h, w), **kwargs).numpy())
    np.testing.assert_array_equal(cached, model.sample(3, (h, w), window=False, **kwargs).numpy())
    assert len(np.unique(cached)) > 1 or h * w == 1  # not a degenerate draw


def test_cached_sampler_with_labels_and_a_map_and_completion():
    model = tiny(n_classes=2, cond_channels=2, cond_layers=1)
    s = np.random.default_rng(5).standard_normal((3, 2, 6, 7))
    y = [0, 1, 1]
    a = model.sample(3, (6, 7), y=y, cond=s, generator=3, cached=True).numpy()
    np.testing.assert_array_equal(a, model.sample(3, (6, 7), y=y, cond=s, generator=3).numpy())
    x = a.copy()
    x[:, :, 3:] = 0
    c = model.complete(x, 3, y=y, cond=s, generator=6, cached=True).numpy()
    np.testing.assert_array_equal(c, model.complete(x, 3, y=y, cond=s, generator=6,
                                                    window=False).numpy())
    np.testing.assert_array_equal(c[:, :, :3], a[:, :, :3])


def test_cached_samples_follow_the_model_distribution():
    model = tiny(scale=2.5, kernel_size=3)
    images = np.array(np.meshgrid(*[[0, 1]] * 4, indexing="ij")).reshape(4, -1).T.reshape(-1, 1, 2, 2)
    p = np.exp(model.log_prob(images).numpy())
    n = 3000
    s = sample_cached(model, n, (2, 2), generator=1).numpy().reshape(n, 4)
    counts = np.bincount(s @ (2 ** np.arange(3, -1, -1)), minlength=16)
    assert stats.chisquare(counts, p * n).pvalue > 1e-3
    assert stats.chisquare(counts, np.full(16, n / 16)).pvalue < 1e-6  # the test has power


@pytest.mark.parametrize("cls", [PixelCNN, GatedPixelCNN])
@pytest.mark.parametrize("options", [{}, {"in_channels": 3, "n_values": 4, "hidden_channels": 12},
                                     {"n_classes": 2, "cond_channels": 2, "cond_layers": 1}])
def test_teacher_forced_cached_logits_equal_the_network(cls, options, monkeypatch):
    """The exactness claim itself: with the draws forced to a given image x, every logit the
    cached sampler computes equals the full network's logit on x (float64)."""
    minigen.manual_seed(0)
    model = cls(**{"hidden_channels": 8, "n_layers": 3, "kernel_size": 5, **options}).double()
    C, V, (N, H, W) = model.in_channels, model.n_values, (2, 5, 6)
    rng = np.random.default_rng(0)
    x = rng.integers(0, V, (N, C, H, W))
    y = [0, 1] if "n_classes" in options else None
    s = rng.standard_normal((N, 2, H, W)) if "cond_channels" in options else None
    seen = []

    class ForcedDraw:  # records the logits, returns x's value at the pixel being drawn
        def __init__(self, logits):
            seen.append(logits.numpy().copy())

        def sample(self, generator=None):
            r, c, ch = np.unravel_index(len(seen) - 1, (H, W, C))
            return minigen.tensor(x[:, ch, r, c])
    monkeypatch.setattr(model, "pixel_distribution", lambda params, temperature=1.0: ForcedDraw(params / temperature))
    out = model.sample(N, (C, H, W), y=y, cond=s, cached=True).numpy()
    np.testing.assert_array_equal(out, x)
    got = np.stack(seen).reshape(H, W, C, N, V).transpose(3, 4, 2, 0, 1)  # (N, V, C, H, W)
    np.testing.assert_allclose(got, model(x, y=y, cond=s).numpy(), rtol=1e-9, atol=1e-11)


def test_gated_cached_sampler_gives_the_samples_of_the_full_recompute():
    minigen.manual_seed(1)
    model = GatedPixelCNN(hidden_channels=6, n_layers=2, kernel_size=3, in_channels=3,
                          n_values=3).double()
    a = model.sample(2, (4, 5), generator=7, cached=True).numpy()
    np.testing.assert_array_equal(a, model.sample(2, (4, 5), generator=7, window=False).numpy())
    x = a.copy()
    x[:, :, 2:] = 0
    np.testing.assert_array_equal(model.complete(x, 2, generator=8, cached=True).numpy(),
                                  model.complete(x, 2, generator=8).numpy())
