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


@pytest.mark.parametrize("kernel_size, n_layers", [(3, 4), (5, 3)])
def test_plain_pixelcnn_sees_exactly_what_the_blind_spot_rule_says(kernel_size, n_layers):
    """The module docstring's rule, checked on the whole dependence map: with p = kernel_size // 2
    and L = n_layers - 1 blocks, pixel (r, c) sees (r - a, c + b) for a = 0, -(p + L) <= b <= -1,
    and for 1 <= a <= p + L, -(p + L) <= b <= p + min(a - 1, L). So a 3x3 first layer is blind to
    the pixel one row up and two right, a 5x5 one to the pixel one up and three right."""
    model = make(PixelCNN, kernel_size=kernel_size, n_layers=n_layers, hidden_channels=16)
    p, L = kernel_size // 2, n_layers - 1  # (16 channels: with 8, a dead ReLU can hide a path)
    up, left, right = model.receptive_field
    assert (up, left, right) == (p + L,) * 3
    H, W = up + 2, left + right + 3
    maps = check_causal(model, (1, H, W))
    r, c = H - 1, left + 1
    expected = np.zeros((H, W), dtype=bool)
    expected[r, max(0, c - p - L):c] = True
    for a in range(1, p + L + 1):
        expected[r - a, max(0, c - p - L):c + p + min(a - 1, L) + 1] = True
    np.testing.assert_array_equal(maps[(r, c)] > 0, expected)
    assert not expected[r - 1, c + p + 1]  # the rule has a blind spot inside the box
    for (r, c), dep in maps.items():  # every dependence lies in the box the sampler crops
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
    s = model.sample(n, (2, 2), generator=1).numpy().reshape(n, 4)
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
    out = model.complete(x, n_rows=1, generator=2).numpy()
    assert (out[:, 0, 0] == first).all()
    counts = np.bincount(out[:, 0, 1] @ [2, 1], minlength=4)
    assert stats.chisquare(counts, conditional * n).pvalue > 1e-3


@pytest.mark.parametrize("cls", MODELS)
def test_windowed_sampler_matches_full_recompute(cls):
    model = sharpen(make(cls, n_layers=2, n_classes=2), 1.5)
    a = model.sample(3, (6, 7), y=[0, 1, 1], generator=3).numpy()
    b = model.sample(3, (6, 7), y=[0, 1, 1], generator=3, window=False).numpy()
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
    s = model.sample(5, (3, 3), temperature=1e-6, generator=0).numpy()
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


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_training_fits_a_small_distribution(seed):
    """Maximum likelihood on 4096 draws from a random 2x2 binary distribution (full batch: the
    mean log-likelihood weighted by the 16 images' empirical frequencies). The fit passes when the
    data cannot tell the model from the truth: a G-test of the counts against the model's
    probabilities, G = 2 N KL(empirical || model) ~ chi2(15) when the model is the truth, does
    not reject at 1% (for any seed; the MLE itself, the empirical distribution, has G = 0)."""
    images = all_images(1, 2, 2, 2)
    rng = np.random.default_rng(seed)
    target = rng.dirichlet(np.full(16, 0.5))
    N = 4096
    counts = np.bincount(rng.choice(16, size=N, p=target), minlength=16)
    empirical = counts / N
    minigen.manual_seed(seed)
    model = PixelCNN(hidden_channels=16, n_layers=2, kernel_size=3)
    weights = minigen.tensor(on_device(empirical.astype(np.float32)))
    opt = Adam(model.parameters(), lr=2e-2)
    initial = -(model.log_prob(images) * weights).sum().item()
    for step in range(300):
        opt.zero_grad()
        loss = -(model.log_prob(images) * weights).sum()
        loss.backward()
        opt.step()
    p = np.exp(model.log_prob(images).numpy().astype(np.float64))
    seen = counts > 0
    G = 2 * N * (empirical[seen] * np.log(empirical[seen] / p[seen])).sum()
    assert stats.chi2.sf(G, 15) > 0.01, f"G = {G:.1f}, loss {initial:.3f} -> {loss.item():.3f}"


@pytest.mark.parametrize("cls", MODELS)
def test_gradcheck_parameters(cls):
    model = make(cls, n_values=3, hidden_channels=4, n_layers=2, n_classes=2)
    sharpen(model, 1.0)
    x = np.random.default_rng(0).integers(0, 3, (2, 1, 3, 3))
    params = list(model.parameters())
    assert minigen.gradcheck(lambda *ps: model.log_prob(x, y=[0, 1]), params)


GOOD = np.zeros((2, 1, 3, 3), dtype=int)
MAP = np.zeros((2, 2, 3, 3))
BAD_INPUT = [  # (name, call(cls), exception, message pattern); make(cls) has kernel 3, 3 layers
    ("value too large", lambda cls: make(cls).log_prob(GOOD + 2), ValueError, r"\[0, 2\)"),
    ("negative value", lambda cls: make(cls).log_prob(GOOD - 1), ValueError, r"\[0, 2\)"),
    ("fractional value", lambda cls: make(cls).log_prob(GOOD + 0.5), ValueError, "whole numbers"),
    ("NaN pixel", lambda cls: make(cls).log_prob(np.where(GOOD == 0, np.nan, 0.0)), ValueError,
     "finite"),
    ("infinite pixel", lambda cls: make(cls).loss(np.full((1, 1, 2, 2), np.inf)), ValueError, "finite"),
    ("3-D x", lambda cls: make(cls).log_prob(np.zeros((2, 3, 3), dtype=int)), ValueError,
     r"\(N, 1, H, W\)"),
    ("wrong channels", lambda cls: make(cls).log_prob(np.zeros((2, 2, 3, 3), dtype=int)), ValueError,
     r"\(N, 1, H, W\)"),
    ("0x0 image", lambda cls: make(cls).log_prob(np.zeros((2, 1, 0, 0), dtype=int)), ValueError,
     r"H, W >= 1.*\(2, 1, 0, 0\)"),
    ("empty batch", lambda cls: make(cls).log_prob(np.zeros((0, 1, 3, 3), dtype=int)), ValueError,
     r"N, H, W >= 1"),
    ("x is None", lambda cls: make(cls).log_prob(None), TypeError, "numeric array.*NoneType"),
    ("x is a string", lambda cls: make(cls).loss("abc"), TypeError, "numeric array.*str"),
    ("ragged list", lambda cls: make(cls).log_prob([[[[0, 1]], [[0]]]]), ValueError, "ragged"),
    ("y for an unconditional model", lambda cls: make(cls).log_prob(GOOD, y=[0, 1]), ValueError,
     "unconditional"),
    ("zero temperature", lambda cls: make(cls).sample(1, (2, 2), temperature=0), ValueError,
     "temperature"),
    ("NaN temperature", lambda cls: make(cls).sample(1, (2, 2), temperature=float("nan")),
     ValueError, "temperature"),
    ("infinite temperature", lambda cls: make(cls).sample(1, (2, 2), temperature=float("inf")),
     ValueError, "temperature"),
    ("sample(1, 5): shape not a tuple", lambda cls: make(cls).sample(1, 5), TypeError,
     r"shape must be a tuple of ints.*got 5"),
    ("4-D sample shape", lambda cls: make(cls).sample(1, (2, 2, 2, 2)), ValueError, "shape"),
    ("zero-size sample shape", lambda cls: make(cls).sample(1, (0, 2)), ValueError, "positive"),
    ("n = 0 samples", lambda cls: make(cls).sample(0, (2, 2)), ValueError, "n must be >= 1"),
    ("n_rows beyond the height", lambda cls: make(cls).complete(GOOD, n_rows=4), ValueError, "n_rows"),
    ("labels missing", lambda cls: make(cls, n_classes=3).log_prob(GOOD), ValueError, "labels"),
    ("label out of range", lambda cls: make(cls, n_classes=3).log_prob(GOOD, y=[0, 3]), ValueError,
     r"\[0, 3\)"),
    ("too many labels", lambda cls: make(cls, n_classes=3).log_prob(GOOD, y=[0, 1, 2]), ValueError,
     "shape"),
    ("cond for a model without", lambda cls: make(cls).log_prob(GOOD, cond=MAP), ValueError,
     "cond_channels=None"),
    ("cond missing", lambda cls: make(cls, cond_channels=2).log_prob(GOOD), ValueError,
     r"pass cond of shape \(N, 2, H, W\)"),
    ("cond of the wrong size", lambda cls: make(cls, cond_channels=2).log_prob(GOOD, cond=MAP[:, :, :2]),
     ValueError, r"cond must have shape \(2, 2, 3, 3\)"),
    ("NaN in cond", lambda cls: make(cls, cond_channels=2).log_prob(GOOD, cond=MAP + np.nan),
     ValueError, "finite"),
    ("cond for sample of the wrong size", lambda cls: make(cls, cond_channels=2).sample(3, (3, 3), cond=MAP),
     ValueError, r"\(3, 2, 3, 3\)"),
    ("hidden_channels not a multiple", lambda cls: cls(in_channels=3, hidden_channels=8), ValueError,
     "hidden_channels"),
    ("n_values 1", lambda cls: cls(n_values=1), ValueError, "n_values"),
    ("kernel_size -1", lambda cls: cls(kernel_size=-1), ValueError, "kernel_size must be >= 1, got -1"),
    ("kernel_size even", lambda cls: cls(kernel_size=4), ValueError, "kernel_size must be odd"),
    ("kernel_size a float", lambda cls: cls(kernel_size=3.0), TypeError, "kernel_size must be an integer"),
    ("n_layers 0", lambda cls: cls(n_layers=0), ValueError, "n_layers"),
    ("cond_channels 0", lambda cls: cls(cond_channels=0), ValueError, "cond_channels"),
    ("cond_layers -1", lambda cls: cls(cond_channels=2, cond_layers=-1), ValueError, "cond_layers"),
]


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("call, error, match", [row[1:] for row in BAD_INPUT],
                         ids=[row[0] for row in BAD_INPUT])
def test_bad_input_is_rejected(cls, call, error, match):
    with pytest.raises(error, match=match):
        call(cls)


def test_bits_per_dim_records_no_graph():
    model = make(PixelCNN)
    assert not model.bits_per_dim(GOOD).requires_grad
    assert model.log_prob(GOOD).requires_grad  # log_prob is what training differentiates
