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


def test_gated_model_is_refused_by_name():
    minigen.manual_seed(0)
    model = GatedPixelCNN(hidden_channels=4, n_layers=2, kernel_size=3)
    with pytest.raises(NotImplementedError, match="GatedPixelCNN"):
        model.sample(1, (3, 3), cached=True)
