"""The bounds against the truth: on VAEs with a 1- or 2-dimensional latent, log p(x) is computed by
numerical integration over a grid, and then ELBO <= log p(x) with the gap equal to
KL(q || posterior) for every likelihood (Bernoulli; Gaussian with a fixed, per-pixel or z-dependent
variance), the IWAE bound L_k grows with k on average, and log_likelihood approaches log p(x)
(Burda et al. 2016, Theorem 1); the fixed-variance Gaussian decoder's -log p(x|z) is half the
squared error plus (D/2) log 2 pi."""
import functools

import numpy as np
import pytest

import minigen
from devices import to_host
from minigen import backend
from minigen.models import VAE
from minigen.optim import Adam

XP = backend.array_module_for(backend.default_device())


def logsumexp(a, axis):
    m = a.max(axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.exp(a - m).sum(axis))


def sharp_vae(seed=0, input_dim=6, **kw):
    """A random float64 VAE (1-D latent) whose decoder weights are scaled up so that p(x | z)
    depends strongly on z: its encoder is far from the posterior and the bounds are loose."""
    minigen.manual_seed(seed)
    model = VAE(input_dim, (8,), 1, **kw).double()
    for p in model.decoder.parameters():
        p.data *= 3.0
    if kw.get("decoder_variance") == "per_pixel":
        model.x_logvar.data[...] = XP.asarray(np.linspace(-1.0, 1.0, input_dim))
    return model


def bars(n, input_dim=6, seed=0):
    """Binary images of a bar of 3 pixels at a random position (one latent factor), 10% pixel noise."""
    rng = np.random.default_rng(seed)
    position = rng.integers(0, input_dim - 2, n)
    x = (np.abs(np.arange(input_dim)[None] - position[:, None] - 1) <= 1)
    return (x ^ (rng.random(x.shape) < 0.1)).astype(np.float64)


@functools.lru_cache(maxsize=None)  # shared with test_vae_estimators; no test changes the model
def fitted_vae(latent_dim, seed=0, steps=300):
    """A float64 VAE trained on ``bars`` for a few hundred Adam steps (about a second)."""
    minigen.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = XP.asarray(bars(2000, seed=seed))
    model = VAE(6, (16,), latent_dim).double()
    optimizer = Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        model.loss(x[XP.asarray(rng.integers(0, len(x), 64))]).backward()
        optimizer.step()
    return model


def data(n=5, input_dim=6, seed=1):
    return XP.asarray((np.random.default_rng(seed).random((n, input_dim)) < 0.5).astype(np.float64))


def grid(latent_dim, n_points, half_width=8.0):
    """Points z_g of a regular grid over [-w, w]^L, and log of each cell's volume."""
    axis = np.linspace(-half_width, half_width, n_points)
    points = np.stack(np.meshgrid(*[axis] * latent_dim, indexing="ij"), -1).reshape(-1, latent_dim)
    return points, latent_dim * np.log(axis[1] - axis[0])


def log_joint_on_grid(model, x, points):
    """log p(x, z_g) for every grid point and example: (G, N)."""
    z = np.broadcast_to(points[:, None, :], (len(points), x.shape[0], points.shape[1]))
    log_px = to_host(model.log_px(x, minigen.Tensor(XP.asarray(np.ascontiguousarray(z)))))
    log_pz = (-0.5 * points ** 2 - 0.5 * np.log(2 * np.pi)).sum(1)
    return log_px + log_pz[:, None]


def truth_1d(model, x):
    points, log_cell = grid(1, 4001)
    log_joint = log_joint_on_grid(model, x, points)
    return points, log_joint, logsumexp(log_joint, 0) + log_cell


def real_data(n=5, input_dim=6, seed=1):
    return XP.asarray(np.random.default_rng(seed).normal(size=(n, input_dim)))


@pytest.fixture(scope="module")
def sharp():
    model, x = sharp_vae(), data()
    return (model, x) + truth_1d(model, x)


@pytest.fixture(scope="module")
def fitted():
    model, x = fitted_vae(1), data()
    return (model, x) + truth_1d(model, x)


def gaussian_case(decoder_variance, **kw):
    model, x = sharp_vae(likelihood="gaussian", decoder_variance=decoder_variance, **kw), real_data()
    return (model, x) + truth_1d(model, x)


CASES = {
    "sharp": lambda request: request.getfixturevalue("sharp"),
    "fitted": lambda request: request.getfixturevalue("fitted"),
    "gaussian fixed": lambda request: gaussian_case("fixed", fixed_variance=0.5),
    "gaussian per_pixel": lambda request: gaussian_case("per_pixel"),
    "gaussian from_z": lambda request: gaussian_case("from_z"),
}


@pytest.mark.parametrize("setup", list(CASES))
def test_elbo_is_below_log_px_by_exactly_kl_to_the_posterior(setup, request):
    model, x, points, log_joint, log_px = CASES[setup](request)
    mu, logvar = model.encode(x)
    q = minigen.distributions.Normal(mu, logvar=logvar)
    log_q = to_host(q.log_prob(minigen.Tensor(XP.asarray(points[:, None, :])))).sum(-1)  # (G, N)
    w = np.exp(log_q - logsumexp(log_q, 0))                                          # q on the grid
    elbo = (w * (log_joint - log_q)).sum(0)                                          # E_q[log p(x,z) - log q(z)]
    kl_to_posterior = (w * (log_q - (log_joint - log_px))).sum(0)
    assert np.all(elbo < log_px - 1e-4)            # a real gap: q is not the posterior
    np.testing.assert_allclose(elbo + kl_to_posterior, log_px, rtol=1e-9)
    # the model's ELBO, averaged over many draws, estimates the same number
    draws = to_host(model.elbo(x, n_samples=20_000, generator=0).elbo)
    reps = 200
    blocks = to_host(model.elbo(XP.tile(x, (reps, 1)), n_samples=100, generator=1).elbo).reshape(reps, -1)
    se = blocks.std(0) / np.sqrt(reps)             # the same 20,000 draws' standard error, from 200 blocks
    assert np.all(np.abs(draws - elbo) <= 5 * se), (draws, elbo, se)
    assert np.all(np.abs(blocks.mean(0) - elbo) <= 5 * se), (blocks.mean(0), elbo, se)


def test_fixed_unit_variance_is_half_the_squared_error_plus_a_constant():
    model = sharp_vae(likelihood="gaussian", decoder_variance="fixed")
    x, z = real_data(4), XP.asarray(np.random.default_rng(2).normal(size=(4, 1)))
    x_hat = to_host(model.decode(z).mean)
    D = x.shape[1]
    expected = 0.5 * ((to_host(x) - x_hat) ** 2).sum(1) + 0.5 * D * np.log(2 * np.pi)
    np.testing.assert_allclose(-to_host(model.log_px(x, z)), expected, rtol=1e-14)
    assert "x_logvar" not in dict(model.named_parameters())  # no variance to learn


def test_iwae_bound_increases_with_k_towards_log_px(sharp):
    model, x, _, _, log_px = sharp
    n_total = 1 << 15
    means, ses = [], []
    for k in (1, 4, 16, 64, 256):
        log_w = to_host(model.log_weights(x, n_total, generator=k)).reshape(n_total // k, k, -1)
        bounds = logsumexp(log_w, 1) - np.log(k)          # (repeats, N): independent draws of L_k
        means.append(bounds.mean(0))
        ses.append(bounds.std(0) / np.sqrt(len(bounds)))
    means, ses = np.array(means), np.array(ses)
    assert np.all(np.diff(means, axis=0) > -3 * (ses[1:] + ses[:-1])), means   # E[L_k] <= E[L_4k] ...
    assert np.all(means[-1] - means[0] > 0.1)                                  # ... and much higher
    assert np.all(means <= log_px + 3 * ses + 1e-9)                            # never above log p(x)
    assert np.all(log_px - means[-1] < 0.5 * (log_px - means[0]))              # the gap closes


def test_log_likelihood_approaches_log_px(fitted):
    model, x, _, _, log_px = fitted
    np.testing.assert_allclose(to_host(model.log_likelihood(x, 5000, generator=0)), log_px, atol=0.02)
    chunked = to_host(model.log_likelihood(x, 5000, batch_size=64, generator=1))  # 79 passes per example
    np.testing.assert_allclose(chunked, log_px, atol=0.02)


def test_log_likelihood_with_a_2d_latent_matches_grid_integration():
    model, x = fitted_vae(2, seed=3), data(3, seed=4)
    points, log_cell = grid(2, 241)
    log_px = logsumexp(log_joint_on_grid(model, x, points), 0) + log_cell
    elbo = to_host(model.elbo(XP.tile(x, (5000, 1)), generator=0).elbo).reshape(5000, -1).mean(0)
    assert np.all(elbo < log_px)
    np.testing.assert_allclose(to_host(model.log_likelihood(x, 5000, generator=0)), log_px, atol=0.02)


def test_log_likelihood_is_stable_in_float32_for_many_samples():
    minigen.manual_seed(0)
    model = VAE(64, (16,), 2)                   # float32
    x = XP.asarray((np.random.default_rng(0).random((2, 64)) < 0.5).astype(np.float32))
    log_p = to_host(model.log_likelihood(x, 3000, batch_size=1000, generator=0))
    assert np.all(np.isfinite(log_p)) and np.all(log_p < 0)
    assert np.all(log_p >= to_host(model.elbo(x, generator=0).elbo) - 5)  # same order as the ELBO, no overflow
