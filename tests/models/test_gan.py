"""GAN (Goodfellow et al. 2014): the optimal discriminator, the game's value at it, gradients."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.spatial.distance import jensenshannon
from scipy.stats import norm

import minigen
import minigen.nn as nn
from minigen.models import GAN
from minigen.optim import Adam
from devices import on_device, to_host


class QuadraticLogit(nn.Module):
    """l(x) = w2 x^2 + w1 x + w0 for 1-D x (N, 1): the log-ratio of two Gaussians is of this
    form, so the family contains the optimal discriminator for Gaussian data and generator."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(np.zeros(3, dtype="float32"))

    def forward(self, x):
        x = x.reshape(x.shape[0])
        return self.w[2] * x * x + self.w[1] * x + self.w[0]


def affine_generator(scale, shift):
    g = nn.Linear(1, 1)
    g.weight.data[...] = scale
    g.bias.data[...] = shift
    return g


def test_discriminator_against_a_frozen_generator_approaches_d_star():
    """p_data = N(1, 0.5^2), p_g = N(0, 1) (G(z) = z, frozen): D trained by the discriminator
    loss alone approaches D*(x) = p_data / (p_data + p_g) (Proposition 1)."""
    minigen.manual_seed(0)
    gan = GAN(affine_generator(1.0, 0.0), QuadraticLogit(), latent_dim=1)
    optimizer = Adam(gan.D.parameters(), lr=0.1)
    rng = np.random.default_rng(0)
    for _ in range(250):
        x_real = rng.normal(1.0, 0.5, (512, 1)).astype("float32")
        d_loss, g_loss = gan.train_step(on_device(x_real), optimizer, None, generator=rng)
        assert g_loss is None
    x = np.linspace(-1.0, 2.5, 50)[:, None].astype("float32")
    d = 1 / (1 + np.exp(-to_host(gan.logits(on_device(x)))))
    p_data, p_g = norm.pdf(x[:, 0], 1.0, 0.5), norm.pdf(x[:, 0], 0.0, 1.0)
    np.testing.assert_allclose(d, p_data / (p_data + p_g), atol=0.05)
    np.testing.assert_array_equal(to_host(gan.G.weight), [[1.0]])  # G did not move


@settings(max_examples=10)
@given(st.integers(2, 5).flatmap(lambda k: st.tuples(st.lists(st.integers(1, 6), min_size=k, max_size=k),
                                                     st.lists(st.integers(1, 6), min_size=k, max_size=k))))
def test_value_at_the_optimal_discriminator_is_minus_log_4_plus_twice_the_jsd(counts):
    """Discrete distributions: data and generator samples are one-hot categories in the exact
    proportions (counts), D's logits are log(p_data / p_g), so D = D* and the minibatch value is
    V(D*, G) exactly; Theorem 1 says it equals -log 4 + 2 JSD(p_data || p_g)."""
    data_counts, g_counts = map(np.array, counts)
    k = len(data_counts)
    p_data, p_g = data_counts / data_counts.sum(), g_counts / g_counts.sum()
    eye = np.eye(k)
    x_real, z = np.repeat(eye, data_counts, axis=0), np.repeat(eye, g_counts, axis=0)
    d = nn.Linear(k, 1, bias=False).double()
    d.weight.data[...] = on_device(np.log(p_data / p_g)[None])
    gan = GAN(nn.Sequential(), d, latent_dim=k)  # G(z) = z: the noise is the generator's sample
    value = float(gan.value(x_real, z).item())
    jsd = jensenshannon(p_data, p_g) ** 2  # scipy returns the square root, natural log
    assert value == pytest.approx(-math.log(4) + 2 * jsd, abs=1e-12)
    # D* maximises V: the gradient vanishes there and any other discriminator does worse
    loss = gan.discriminator_loss(x_real, z)
    loss.backward()
    np.testing.assert_allclose(to_host(d.weight.grad), 0, atol=1e-12)
    d.weight.data += on_device(np.random.default_rng(k).normal(0, 0.3, (1, k)))
    assert float(gan.value(x_real, z).item()) < value


def test_minimax_value_is_minus_log_4_when_the_generator_matches_the_data():
    k = 3
    z = np.repeat(np.eye(k), [2, 3, 5], axis=0)
    d = nn.Linear(k, 1, bias=False).double()
    d.weight.data[...] = 0  # D* = 1/2 everywhere
    gan = GAN(nn.Sequential(), d, latent_dim=k)
    assert float(gan.value(z, z).item()) == pytest.approx(-math.log(4), abs=1e-12)


def small_gan(seed):
    minigen.manual_seed(seed)
    g = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 3))
    d = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    return GAN(g, d, latent_dim=2).double()


@settings(max_examples=5)
@given(st.integers(0, 999))
def test_gradcheck_both_losses(seed):
    gan = small_gan(seed)
    rng = np.random.default_rng(seed)
    x_real = minigen.tensor(rng.standard_normal((5, 3)), requires_grad=True)
    z = minigen.tensor(rng.standard_normal((4, 2)), requires_grad=True)
    d_params, g_params = list(gan.D.parameters()), list(gan.G.parameters())
    # the discriminator's loss as it trains D (G(z) detached), and the full value V(D, G)
    assert minigen.gradcheck(lambda x, *ps: gan.discriminator_loss(x, z), [x_real] + d_params)
    assert minigen.gradcheck(lambda x, zz, *ps: gan.value(x, zz), [x_real, z] + d_params + g_params)
    for non_saturating in (True, False):
        assert minigen.gradcheck(lambda zz, *ps: gan.generator_loss(zz, non_saturating), [z] + g_params + d_params)


def test_non_saturating_loss_keeps_its_gradient_when_d_rejects_the_samples():
    """Goodfellow et al., Sec. 3: early on D(G(z)) ~ 0 and log(1 - D(G(z))) saturates."""
    d = nn.Linear(1, 1).double()
    d.weight.data[...], d.bias.data[...] = 0.0, -8.0  # D(x) = sigmoid(-8) ~ 3e-4 everywhere
    grads = {}
    for non_saturating in (True, False):
        g = affine_generator(1.0, 0.0).double()
        gan = GAN(g, d, latent_dim=1)
        d.weight.data[...] = 1.0
        gan.generator_loss(np.zeros((4, 1)), non_saturating).backward()
        grads[non_saturating] = abs(float(to_host(g.bias.grad)[0]))
    assert grads[True] > 0.99 and grads[False] < 1e-3


def test_train_step_is_algorithm_1_with_k_1():
    """One train_step == a discriminator step on the first noise draw, then a generator step,
    against the updated D, on the second draw (plain SGD, replayed by hand)."""
    gan, replay = small_gan(1), small_gan(1)
    x_real = np.random.default_rng(0).standard_normal((5, 3))
    lr = 0.1
    d_loss, g_loss = gan.train_step(x_real, minigen.optim.SGD(gan.D.parameters(), lr=lr),
                                    minigen.optim.SGD(gan.G.parameters(), lr=lr),
                                    generator=np.random.default_rng(7))
    rng = np.random.default_rng(7)
    z1, z2 = rng.standard_normal((5, 2)), rng.standard_normal((5, 2))
    loss = replay.discriminator_loss(x_real, z1)
    loss.backward()
    assert d_loss == pytest.approx(float(loss.item()))
    for p in replay.D.parameters():
        p.data -= lr * p.grad
    replay.zero_grad()
    loss = replay.generator_loss(z2)
    loss.backward()
    assert g_loss == pytest.approx(float(loss.item()))
    for p in replay.G.parameters():
        p.data -= lr * p.grad
    for (name, a), b in zip(gan.named_parameters(), replay.parameters()):
        np.testing.assert_allclose(to_host(a), to_host(b), rtol=1e-12, err_msg=name)


def test_sample_is_reproducible_and_records_no_graph():
    gan = small_gan(0)
    a, b = gan.sample(6, generator=3), gan.sample(6, generator=3)
    assert a.shape == (6, 3) and not a.requires_grad
    np.testing.assert_array_equal(to_host(a), to_host(b))


@pytest.mark.parametrize("make, error, pattern", [
    (lambda g: GAN(lambda z: z, g.D, 2), TypeError, "generator must be a minigen.nn.Module"),
    (lambda g: GAN(g.G, None, 2), TypeError, "discriminator must be a minigen.nn.Module"),
    (lambda g: GAN(g.G, g.D, 0), ValueError, "latent_dim must be >= 1"),
    (lambda g: g.generator_loss(np.zeros((4, 3))), ValueError, r"noise z of shape \(N, 2\)"),
    (lambda g: g.discriminator_loss(np.full((4, 3), np.nan), np.zeros((4, 2))), ValueError, "NaN or inf"),
    (lambda g: GAN(g.G, nn.Linear(3, 2), 2).discriminator_loss(np.zeros((4, 3)), np.zeros((4, 2))),
     ValueError, "one logit per example"),
    (lambda g: g.sample(0), ValueError, "n must be >= 1"),
])
def test_bad_input(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make(small_gan(0))


def test_save_and_load_round_trip(tmp_path):
    minigen.manual_seed(2)
    gan = GAN(nn.Sequential(nn.Linear(2, 4), nn.Linear(4, 3)), nn.Linear(3, 1), latent_dim=2)
    gan.save(tmp_path / "gan.npz")
    loaded = minigen.load_model(tmp_path / "gan.npz")
    assert isinstance(loaded, GAN) and loaded.latent_dim == 2
    np.testing.assert_array_equal(to_host(loaded.sample(4, generator=1)), to_host(gan.sample(4, generator=1)))
    x, z = np.ones((3, 3)), np.ones((3, 2))
    assert float(loaded.value(x, z).item()) == float(gan.value(x, z).item())
