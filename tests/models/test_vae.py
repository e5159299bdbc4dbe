"""VAE / ConvVAE: the ELBO against a hand-written NumPy forward, whole-model gradient checks with
the noise held fixed, the interface's shapes and identities, a short seeded training run on the
bundled digits, the analytic KL against Monte Carlo on trained posteriors, and bad input."""
import numpy as np
import pytest

import minigen
from devices import to_host
from minigen import backend
from minigen.data import DataLoader, binarize_dynamic, load_digits
from minigen.models import VAE, ConvVAE
from minigen.optim import Adam

XP = backend.array_module_for(backend.default_device())


def arr(a):
    return XP.asarray(np.asarray(a))


def binary(rng, shape):
    return (rng.random(shape) < 0.5).astype(np.float64)


def tiny(cls=VAE, seed=0, **kw):
    minigen.manual_seed(seed)
    return cls(**kw).double()


# ---- the ELBO is what the equations say ------------------------------------------------------------

def softplus(a):
    return np.logaddexp(0, a)


def test_elbo_matches_a_numpy_forward_with_fixed_noise():
    rng = np.random.default_rng(0)
    model = tiny(input_dim=6, hidden_dims=(5,), latent_dim=3)
    x, eps = binary(rng, (4, 6)), rng.standard_normal((4, 3))
    W = [to_host(model.encoder[i].weight) for i in (0, 2)] + [to_host(model.decoder[i].weight) for i in (0, 2)]
    b = [to_host(model.encoder[i].bias) for i in (0, 2)] + [to_host(model.decoder[i].bias) for i in (0, 2)]
    h = np.maximum(x @ W[0].T + b[0], 0) @ W[1].T + b[1]
    mu, logvar = h[:, :3], h[:, 3:]
    z = mu + np.exp(0.5 * logvar) * eps                    # standard deviation exp(logvar / 2)
    logits = np.maximum(z @ W[2].T + b[2], 0) @ W[3].T + b[3]
    rec = (x * logits - softplus(logits)).sum(1)
    kl = 0.5 * (np.exp(logvar) + mu ** 2 - 1 - logvar).sum(1)

    out = model.elbo(arr(x), eps=arr(eps))
    np.testing.assert_allclose(to_host(out.reconstruction), rec, rtol=1e-12)
    np.testing.assert_allclose(to_host(out.kl), kl, rtol=1e-12)
    np.testing.assert_allclose(to_host(out.elbo), rec - kl, rtol=1e-12)
    for beta in (1.0, 4.0):
        model.beta = beta
        np.testing.assert_allclose(model.loss(arr(x), eps=arr(eps)).item(), np.mean(beta * kl - rec), rtol=1e-12)
    mu_m, logvar_m = model.encode(arr(x))
    np.testing.assert_allclose(to_host(mu_m), mu, rtol=1e-12)
    np.testing.assert_allclose(to_host(model.decode(arr(z))), logits, rtol=1e-12)


def test_iwae_bound_with_fixed_noise_is_the_log_mean_of_the_weights():
    rng = np.random.default_rng(1)
    model = tiny(input_dim=5, hidden_dims=(4,), latent_dim=2)
    x, eps = binary(rng, (3, 5)), rng.standard_normal((7, 3, 2))
    mu, logvar = (to_host(t) for t in model.encode(arr(x)))
    z = mu + np.exp(0.5 * logvar) * eps
    logits = to_host(model.decode(arr(z.reshape(-1, 2)))).reshape(7, 3, 5)
    log_px = (x * logits - softplus(logits)).sum(-1)
    log_pz = (-0.5 * z ** 2 - 0.5 * np.log(2 * np.pi)).sum(-1)
    log_qz = (-0.5 * eps ** 2 - 0.5 * logvar - 0.5 * np.log(2 * np.pi)).sum(-1)
    log_w = log_px + log_pz - log_qz
    np.testing.assert_allclose(to_host(model.log_weights(arr(x), 7, eps=arr(eps))), log_w, rtol=1e-10)
    expected = np.log(np.mean(np.exp(log_w), axis=0))
    np.testing.assert_allclose(to_host(model.iwae_bound(arr(x), 7, eps=arr(eps))), expected, rtol=1e-10)
    np.testing.assert_allclose(model.iwae_loss(arr(x), 7, eps=arr(eps)).item(), -expected.mean(), rtol=1e-10)


# ---- whole-model gradients, noise fixed --------------------------------------------------------------

@pytest.mark.parametrize("kw", [
    dict(likelihood="bernoulli"),
    dict(likelihood="gaussian"),
    dict(likelihood="bernoulli", n_classes=3, beta=0.5),
])
def test_mlp_vae_gradient_passes_gradcheck(kw):
    rng = np.random.default_rng(2)
    model = tiny(input_dim=6, hidden_dims=(5, 4), latent_dim=2, **kw)
    x, eps = arr(binary(rng, (3, 6))), arr(rng.standard_normal((3, 2)))
    y = arr([0, 2, 1]) if kw.get("n_classes") else None
    params = list(model.parameters())
    assert ("x_logvar" in dict(model.named_parameters())) == (kw["likelihood"] == "gaussian")
    minigen.gradcheck(lambda *ps: model.loss(x, y, eps=eps), params)
    eps_k = arr(rng.standard_normal((4, 3, 2)))
    minigen.gradcheck(lambda *ps: model.iwae_loss(x, 4, y, eps=eps_k), params)


def test_conv_vae_gradient_passes_gradcheck():
    rng = np.random.default_rng(3)
    model = tiny(ConvVAE, in_channels=1, image_size=8, latent_dim=2, hidden_channels=(2, 3), n_classes=2)
    x, eps = arr(binary(rng, (2, 1, 8, 8))), arr(rng.standard_normal((2, 2)))
    minigen.gradcheck(lambda *ps: model.loss(x, arr([1, 0]), eps=eps), list(model.parameters()))


# ---- the interface --------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: VAE((1, 8, 8), (16,), 2, n_classes=10),
    lambda: ConvVAE(1, 8, 2, hidden_channels=(4, 8), n_classes=10),
    lambda: VAE(64, (16,), 2, likelihood="gaussian", n_classes=10),
])
def test_interface_shapes_and_identities(make):
    minigen.manual_seed(0)
    model = make()
    x, labels = load_digits()
    x, y = arr(x[:5]), arr(labels[:5])
    mu, logvar = model.encode(x, y)
    assert mu.shape == logvar.shape == (5, 2)
    assert model.decode(mu, y).shape == (5,) + model.event_shape
    out = model.elbo(x, y)
    assert all(t.shape == (5,) for t in out)
    np.testing.assert_allclose(to_host(out.elbo), to_host(out.reconstruction - out.kl), rtol=1e-6)
    assert np.all(to_host(out.kl) >= 0)
    rec = model.reconstruct(x, y)
    assert rec.shape == x.shape and not rec.requires_grad
    samples = model.sample(7, y=3, generator=0)
    assert samples.shape == (7,) + model.event_shape
    np.testing.assert_array_equal(to_host(samples), to_host(model.sample(7, y=3, generator=0)))
    if model.likelihood == "bernoulli":
        assert np.all((to_host(samples) >= 0) & (to_host(samples) <= 1))
        drawn = to_host(model.sample(7, y=3, generator=0, mean=False))
        assert set(np.unique(drawn)) <= {0.0, 1.0}
    path = model.interpolate(x[:2], x[2:4], steps=5, y=y[:2])
    assert path.shape == (2, 5) + model.event_shape
    ends = to_host(model.reconstruct(x[:2], y[:2])).reshape((2,) + model.event_shape)
    np.testing.assert_allclose(to_host(path[:, 0]), ends, rtol=1e-5, atol=1e-6)
    assert model.log_likelihood(x, 20, y).shape == (5,)


def test_flat_and_image_shaped_inputs_agree():
    model = tiny(input_dim=(1, 2, 3), hidden_dims=(4,), latent_dim=2)
    x, eps = binary(np.random.default_rng(4), (3, 1, 2, 3)), arr(np.ones((3, 2)))
    np.testing.assert_allclose(to_host(model.elbo(arr(x), eps=eps).elbo),
                               to_host(model.elbo(arr(x.reshape(3, 6)), eps=eps).elbo), rtol=1e-12)


def test_gaussian_variance_floor_keeps_the_likelihood_finite():
    model = tiny(input_dim=4, hidden_dims=(3,), latent_dim=1, likelihood="gaussian")
    model.x_logvar.data[...] = -1000.0  # as if a constant pixel had pushed it down
    x = arr(np.zeros((2, 4)))
    rec = to_host(model.elbo(x, eps=arr(np.zeros((2, 1)))).reconstruction)
    assert np.all(np.isfinite(rec))
    assert np.all(to_host(model._likelihood(model.decode(arr(np.zeros((1, 1))))).variance)
                  >= VAE.MIN_X_VAR * (1 - 1e-9))


def test_checkpoint_round_trip(tmp_path):
    model = tiny(input_dim=4, hidden_dims=(3,), latent_dim=2, likelihood="gaussian", n_classes=2)
    x, y, eps = arr(np.ones((2, 4))), arr([0, 1]), arr(np.ones((2, 2)))
    minigen.save({"model": model.state_dict()}, tmp_path / "vae.npz")
    other = tiny(seed=1, input_dim=4, hidden_dims=(3,), latent_dim=2, likelihood="gaussian", n_classes=2)
    other.load_state_dict(minigen.load(tmp_path / "vae.npz")["model"])
    np.testing.assert_array_equal(to_host(other.elbo(x, y, eps).elbo), to_host(model.elbo(x, y, eps).elbo))


# ---- training on the bundled digits ------------------------------------------------------------------------

HELD_OUT = 297
ELBO_BAR = -24.3  # reference run (seed 0): -23.82 nats; independent-pixel Bernoulli: -26.40


@pytest.fixture(scope="module")
def trained():
    """VAE 64-64-4 trained for 15 epochs (about half a second) with dynamic binarisation."""
    images, _ = load_digits()
    train, test = images[:-HELD_OUT], images[-HELD_OUT:]
    test = (np.random.default_rng(0).random(test.shape) < test).astype(np.float32)  # fixed binarisation
    minigen.manual_seed(0)
    model = VAE((1, 8, 8), (64,), 4)
    optimizer = Adam(model.parameters(), lr=2e-3)
    epoch_losses = []
    for epoch in range(15):
        total = 0.0
        for xb in DataLoader(train, batch_size=50, shuffle=True, seed=epoch, device=backend.default_device(),
                             transform=binarize_dynamic):  # the global generator, seeded above
            optimizer.zero_grad()
            loss = model.loss(xb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(xb)
        epoch_losses.append(total / len(train))
    return model, arr(test), np.array(epoch_losses)


def test_training_decreases_the_loss_and_reaches_the_held_out_bar(trained):
    model, test, losses = trained
    block_means = losses.reshape(5, 3).mean(1)  # monotone on average: every 3-epoch mean is lower
    assert np.all(np.diff(block_means) < 0), losses
    assert losses[-1] < losses[0] - 10
    held_out = to_host(model.elbo(test, generator=0).elbo).mean()
    assert held_out >= ELBO_BAR, held_out
    nll_bound = -to_host(model.log_likelihood(test, 200, generator=0)).mean()
    assert nll_bound <= -held_out + 0.05  # L_200 >= ELBO, up to Monte-Carlo error


def test_analytic_kl_matches_monte_carlo_on_trained_posteriors(trained):
    model, test, _ = trained
    q = model.posterior(test[:50])
    z = q.sample((4000,), generator=1)
    terms = to_host((q.log_prob(z) - model.prior().log_prob(z)).sum(-1))  # (4000, 50)
    estimate, se = terms.mean(0), terms.std(0) / np.sqrt(len(terms))
    analytic = to_host(model.elbo(test[:50], generator=0).kl)
    assert np.all(np.abs(estimate - analytic) <= 5 * se), np.abs(estimate - analytic) / se
    assert analytic.mean() > 1.0  # the trained posteriors really differ from the prior


# ---- bad input --------------------------------------------------------------------------------------------

def test_bad_input_raises_clear_errors():
    model = tiny(input_dim=(1, 8, 8), hidden_dims=(4,), latent_dim=2, n_classes=10)
    x = arr(np.zeros((2, 1, 8, 8)))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\].*255"):
        model.loss(x + 255.0, arr([0, 1]))
    with pytest.raises(ValueError, match=r"expected x of shape \(N, 1, 8, 8\) or \(N, 64\), got shape \(2, 28, 28\)"):
        model.loss(arr(np.zeros((2, 28, 28))), arr([0, 1]))
    with pytest.raises(ValueError, match=r"labels y must lie in \[0, 10\).*\[0, 10\]"):
        model.loss(x, arr([0, 10]))
    with pytest.raises(ValueError, match="class-conditional.*pass the labels y"):
        model.loss(x)
    with pytest.raises(ValueError, match="expected 2 labels"):
        model.loss(x, arr([0, 1, 2]))
    with pytest.raises(TypeError, match="integers"):
        model.sample(2, y=1.5)
    with pytest.raises(ValueError, match=r"expected z of shape \(N, 2\)"):
        model.decode(arr(np.zeros((2, 3))), arr([0, 1]))
    plain = tiny(input_dim=4, hidden_dims=(), latent_dim=1)
    with pytest.raises(ValueError, match="without n_classes"):
        plain.loss(arr(np.zeros((1, 4))), arr([0]))
    gaussian = tiny(input_dim=2, hidden_dims=(), latent_dim=1, likelihood="gaussian")
    gaussian.loss(arr([[3.0, -2.0]]))  # any real data is fine for a Gaussian likelihood
    with pytest.raises(ValueError, match="NaN"):
        gaussian.loss(arr([[np.nan, 0.0]]))
    with pytest.raises(ValueError, match="likelihood must be one of"):
        VAE(4, (3,), 2, likelihood="poisson")
    with pytest.raises(ValueError, match="latent_dim must be >= 1"):
        VAE(4, (3,), 0)
    with pytest.raises(ValueError, match="beta must be >= 0"):
        VAE(4, (3,), 2, beta=-1.0)
    with pytest.raises(ValueError, match="divisible by 2 \\*\\* len"):
        ConvVAE(1, 10, 2, hidden_channels=(4, 8))
