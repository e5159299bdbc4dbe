"""PixelCNN (and the machinery it shares with GatedPixelCNN): causality, exact normalisation,
sampling distribution, windowed sampler, gradients, bad input."""
import itertools

import numpy as np
import pytest
from scipy import stats

import minigen
from devices import on_device, to_host
from minigen.models import GatedPixelCNN, PixelCNN
from minigen.optim import Adam

MODELS = [PixelCNN, GatedPixelCNN]


def make(cls, seed=0, **kwargs):
    minigen.manual_seed(seed)
    kwargs = {"hidden_channels": 8, "n_layers": 3, "kernel_size": 3, **kwargs}
    return cls(**kwargs).double()


def sharpen(model, scale, seed=0):
    """Rescale every weight (and randomise class tables) so conditionals are far from uniform."""
    rng = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        if "class" in name:
            p.data[...] = on_device(rng.standard_normal(p.shape))
        else:
            p.data *= scale
    return model


def all_images(C, H, W, V):
    """Every image of the given shape, (V^(CHW), C, H, W)."""
    return np.array(list(itertools.product(range(V), repeat=C * H * W))).reshape(-1, C, H, W)


def dependence(model, x, r, c, channel, y=None):
    """|d logits[x_{(r,c),channel}] / d input| summed over values: (C, H, W), by one backward pass."""
    h = minigen.tensor(model.one_hot(model.check_x(x)).data, requires_grad=True)
    logits = model.network(h, model.check_y(y, x.shape[0]))
    g = np.zeros(logits.shape)
    g[:, :, channel, r, c] = np.random.default_rng(r * 100 + c).standard_normal(g[:, :, channel, r, c].shape)
    logits.backward(g)
    N, C, H, W = x.shape
    return np.abs(to_host(h.grad)).reshape(N, C, model.n_values, H, W).sum(axis=(0, 2))


def check_causal(model, shape, seed=0):
    """Zero gradient from every (pixel, channel) at or after the output's in the generation order;
    returns the per-pixel dependence maps {(r, c): (H, W)} of channel 0."""
    C, H, W = shape
    x = np.random.default_rng(seed).integers(0, model.n_values, (2,) + shape)
    maps = {}
    for r, c, ch in itertools.product(range(H), range(W), range(C)):
        dep = dependence(model, x, r, c, ch)
        order = np.arange(H * W).reshape(H, W)
        future = (order > r * W + c)[None] | ((order == r * W + c)[None]
                                            & (np.arange(C) >= ch)[:, None, None])
        assert not dep[future].any(), f"pixel ({r},{c}) channel {ch} sees the future"
        if ch == 0:
            maps[(r, c)] = dep.sum(axis=0)
    return maps


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("C, V", [(1, 2), (2, 3)])
def test_causal_end_to_end(cls, C, V):
    check_causal(make(cls, in_channels=C, n_values=V, hidden_channels=8), (C, 4, 5))


def test_plain_pixelcnn_has_a_blind_spot():
    """Receptive field reach 4 in every direction (3x3 mask A + 3 blocks with 3x3 mask B) covers
    the whole 5x5 past, yet pixels up and to the right beyond the diagonal stay unseen."""
    model = make(PixelCNN, n_layers=4)
    maps = check_causal(model, (1, 5, 5))
    dep = maps[(3, 1)]
    assert dep[2, 0] > 0 and dep[2, 2] > 0 and dep[3, 0] > 0  # left, up, up-right 1
    assert dep[2, 3] == 0 and dep[2, 4] == 0 and dep[1, 4] == 0  # blind: (-1,+2), (-1,+3), (-2,+3)
    for (r, c), dep in maps.items():  # every dependence lies in the box the sampler crops
        up, left, right = model.receptive_field
        rows, cols = np.nonzero(dep)
        assert np.all((rows >= r - up) & (cols >= c - left) & (cols <= c + right))


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("C, H, W, V, classes", [(1, 3, 3, 2, None), (1, 2, 2, 3, None),
                                                 (2, 2, 2, 2, 3)])
def test_log_prob_sums_to_one_over_all_images(cls, C, H, W, V, classes):
    model = sharpen(make(cls, in_channels=C, n_values=V, n_classes=classes), 2.0)
    images = all_images(C, H, W, V)
    for y in ([None] if classes is None else range(classes)):
        p = np.exp(model.log_prob(images, y=y).numpy())
        assert p.sum() == pytest.approx(1.0, abs=1e-10)
        assert p.max() > 1.2 / len(images)  # not trivially uniform
    if classes is not None:  # the label changes the distribution
        assert not np.allclose(model.log_prob(images, y=0).numpy(), model.log_prob(images, y=1).numpy())


@pytest.mark.parametrize("cls", MODELS)
def test_samples_follow_the_model_distribution(cls):
    model = sharpen(make(cls), 2.5)
    images = all_images(1, 2, 2, 2)
    p = np.exp(model.log_prob(images).numpy())
    n = 3000
    s = model.sample(n, (2, 2), random_state=1).numpy().reshape(n, 4)
    counts = np.bincount(s @ (2 ** np.arange(3, -1, -1)), minlength=16)
    assert stats.chisquare(counts, p * n).pvalue > 1e-3
    assert stats.chisquare(counts, np.full(16, n / 16)).pvalue < 1e-6  # the test has power


def test_completion_samples_the_conditional_of_the_missing_rows():
    model = sharpen(make(PixelCNN), 2.5)
    images = all_images(1, 2, 2, 2)
    p = np.exp(model.log_prob(images).numpy())
    first = np.array([1, 0])
    keep = (images[:, 0, 0] == first).all(axis=1)
    conditional = p[keep] / p[keep].sum()  # p(row 1 | row 0 = first)
    n = 2000
    x = np.zeros((n, 1, 2, 2), dtype=int)
    x[:, 0, 0] = first
    out = model.complete(x, n_rows=1, random_state=2).numpy()
    assert (out[:, 0, 0] == first).all()
    counts = np.bincount(out[:, 0, 1] @ [2, 1], minlength=4)
    assert stats.chisquare(counts, conditional * n).pvalue > 1e-3


@pytest.mark.parametrize("cls", MODELS)
def test_windowed_sampler_matches_full_recompute(cls):
    model = sharpen(make(cls, n_layers=2, n_classes=2), 1.5)
    a = model.sample(3, (6, 7), y=[0, 1, 1], random_state=3).numpy()
    b = model.sample(3, (6, 7), y=[0, 1, 1], random_state=3, window=False).numpy()
    np.testing.assert_array_equal(a, b)
    # and the crop gives the same logits as the whole image at the cropped pixel
    x = np.random.default_rng(0).integers(0, 2, (2, 1, 9, 9))
    full = model(x, y=1).numpy()
    up, left, right = model.receptive_field
    r, c = 7, 4
    crop = model(x[:, :, r - up:r + 1, c - left:c + right + 1], y=1).numpy()
    np.testing.assert_allclose(crop[..., up, left], full[..., r, c], rtol=1e-12, atol=1e-12)


def test_low_temperature_gives_the_greedy_image():
    model = sharpen(make(PixelCNN), 1.5)
    s = model.sample(5, (3, 3), temperature=1e-6, random_state=0).numpy()
    assert (s == s[0]).all()
    x = s[:1].copy()
    logits = model(x).numpy()  # each pixel is the argmax of its conditional given the others
    np.testing.assert_array_equal(logits.argmax(axis=1), x)


def test_loss_and_bits_per_dim_agree_with_log_prob():
    model = make(PixelCNN, n_values=4)
    x = np.random.default_rng(0).integers(0, 4, (3, 1, 4, 4))
    lp = model.log_prob(x).numpy()
    assert model.loss(x).item() == pytest.approx(-lp.mean())
    np.testing.assert_allclose(model.bits_per_dim(x).numpy(), -lp / (16 * np.log(2)))
    float_binary = np.random.default_rng(1).integers(0, 2, (2, 1, 3, 3)).astype(np.float32)
    assert make(PixelCNN).log_prob(float_binary).shape == (2,)  # 0/1 floats are fine


def test_training_fits_a_small_distribution():
    """Maximum likelihood on a 2x2 binary distribution: the fitted p approaches the data's."""
    images = all_images(1, 2, 2, 2)
    target = np.random.default_rng(0).dirichlet(np.full(16, 0.5))
    data = images[np.random.default_rng(1).choice(16, size=4096, p=target)]
    empirical = np.bincount(data.reshape(-1, 4) @ (2 ** np.arange(3, -1, -1)), minlength=16) / 4096
    minigen.manual_seed(0)
    model = PixelCNN(hidden_channels=16, n_layers=2, kernel_size=3)
    opt = Adam(model.parameters(), lr=1e-2)
    for step in range(150):
        batch = data[(step * 256) % 4096:(step * 256) % 4096 + 256]
        opt.zero_grad()
        model.loss(batch).backward()
        opt.step()
    p = np.exp(model.log_prob(images).numpy())
    kl = (empirical * np.log(empirical / p)).sum()
    assert kl < 0.01


@pytest.mark.parametrize("cls", MODELS)
def test_gradcheck_parameters(cls):
    model = make(cls, n_values=3, hidden_channels=4, n_layers=2, n_classes=2)
    sharpen(model, 1.0)
    x = np.random.default_rng(0).integers(0, 3, (2, 1, 3, 3))
    params = list(model.parameters())
    assert minigen.gradcheck(lambda *ps: model.log_prob(x, y=[0, 1]), params)


@pytest.mark.parametrize("cls", MODELS)
def test_bad_input_is_rejected(cls):
    model = make(cls)
    good = np.zeros((2, 1, 3, 3), dtype=int)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        model.log_prob(good + 2)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        model.log_prob(good - 1)
    with pytest.raises(ValueError, match="whole numbers"):
        model.log_prob(good + 0.5)
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        model.log_prob(np.zeros((2, 3, 3), dtype=int))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        model.log_prob(np.zeros((2, 2, 3, 3), dtype=int))
    with pytest.raises(ValueError, match="unconditional"):
        model.log_prob(good, y=[0, 1])
    with pytest.raises(ValueError, match="temperature"):
        model.sample(1, (2, 2), temperature=0)
    with pytest.raises(ValueError, match="shape"):
        model.sample(1, (2, 2, 2, 2))
    with pytest.raises(ValueError, match="n_rows"):
        model.complete(good, n_rows=4)
    conditional = make(cls, n_classes=3)
    with pytest.raises(ValueError, match="labels"):
        conditional.log_prob(good)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        conditional.log_prob(good, y=[0, 3])
    with pytest.raises(ValueError, match="shape"):
        conditional.log_prob(good, y=[0, 1, 2])
    with pytest.raises(ValueError, match="hidden_channels"):
        cls(in_channels=3, hidden_channels=8)
    with pytest.raises(ValueError, match="n_values"):
        cls(n_values=1)
