"""PixelCNN++'s output on PixelCNN and GatedPixelCNN (``n_mixtures``): each conditional is a
discretised logistic mixture over the V levels. Normalised over every image, samples follow the
model, the three samplers agree, gradients check."""
import itertools

import numpy as np
import pytest
import scipy.stats as stats

import minigen
from devices import to_host
from minigen import backend
from minigen.models import GatedPixelCNN, PixelCNN

XP = backend.array_module_for(backend.default_device())
MODELS = [lambda **kw: PixelCNN(hidden_channels=8, n_layers=2, kernel_size=3, **kw),
          lambda **kw: GatedPixelCNN(hidden_channels=4, n_layers=2, kernel_size=3, **kw)]


def all_images(V, C=1, H=2, W=2):
    return XP.asarray(np.array(list(itertools.product(range(V), repeat=C * H * W))).reshape(-1, C, H, W))


@pytest.mark.parametrize("make", MODELS, ids=["PixelCNN", "GatedPixelCNN"])
def test_the_mixture_output_is_normalised_over_every_image(make):
    minigen.manual_seed(0)
    model = make(n_values=4, n_mixtures=2).double()
    images = all_images(4)
    assert model(images[:3]).shape == (3, 6, 1, 2, 2)  # 3K parameters per pixel and channel
    total = float(np.exp(to_host(model.log_prob(images))).sum())
    assert total == pytest.approx(1.0, rel=1e-10)


@pytest.mark.parametrize("make", MODELS, ids=["PixelCNN", "GatedPixelCNN"])
def test_samples_follow_the_mixture_model_and_samplers_agree(make):
    minigen.manual_seed(1)
    model = make(n_values=3, n_mixtures=2).double()
    images = all_images(3)
    probs = np.exp(to_host(model.log_prob(images)))
    draws = to_host(model.sample(6000, (2, 2), generator=5)).reshape(6000, -1)
    index = (draws * 3 ** np.arange(3, -1, -1)).sum(axis=1)  # the row of each draw in all_images
    counts = np.bincount(index, minlength=len(probs))
    keep = probs * len(draws) > 5
    observed = np.append(counts[keep], counts[~keep].sum())
    expected = np.append(probs[keep], probs[~keep].sum()) * len(draws)
    assert stats.chisquare(observed[expected > 0], expected[expected > 0]).pvalue > 1e-3
    runs = [to_host(model.sample(5, (3, 3), generator=9, temperature=0.8, **kw))
            for kw in (dict(window=True), dict(window=False), dict(cached=True))]
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0], runs[2])


def test_mixture_loss_gradients():
    minigen.manual_seed(2)
    model = PixelCNN(n_values=8, n_mixtures=2, hidden_channels=4, n_layers=2, kernel_size=3).double()
    x = XP.asarray(np.random.default_rng(3).integers(0, 8, (2, 1, 3, 3)))
    assert minigen.gradcheck(lambda *ps: model.loss(x), list(model.parameters()))


def test_bad_mixture_setting():
    with pytest.raises(ValueError, match="n_mixtures"):
        PixelCNN(n_mixtures=0)
    with pytest.raises(TypeError, match="n_mixtures"):
        PixelCNN(n_mixtures=1.5)
