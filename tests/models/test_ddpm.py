"""DDPM (Ho et al. 2020): the forward process, its posterior, the variational bound with the
discretised decoder, the simple loss's gradients, and Algorithm 2."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.stats import kstest, norm

import minigen
import minigen.nn as nn
from minigen.autograd import Tensor
from minigen.models import DDPM
from minigen.models.ddpm import discretized_gaussian_log_likelihood, make_beta_schedule
from devices import on_device, to_host

GRID = -1 + 2 * np.arange(256) / 255  # the 8-bit values in [-1, 1]


class OptimalGaussianDenoiser(nn.Module):
    """E[eps | x_t] for x_0 ~ N(mu, var) (1-D): with x_t = a x_0 + b eps, a = sqrt(abar_t),
    b = sqrt(1 - abar_t), it is b (x_t - a mu) / (a^2 var + b^2): linear in x_t."""

    def __init__(self, mu, var):
        super().__init__()
        self.mu, self.var, self.alpha_bar = mu, var, None

    def forward(self, x, t):
        a, b = np.sqrt(self.alpha_bar[t])[:, None], np.sqrt(1 - self.alpha_bar[t])[:, None]
        return Tensor(on_device(b * (to_host(x) - a * self.mu) / (a * a * self.var + b * b)))


def gaussian_ddpm(mu, var, timesteps, schedule):
    model = DDPM(OptimalGaussianDenoiser(mu, var), (1,), timesteps, schedule)
    model.denoiser.alpha_bar = model.alpha_bar
    return model


def tiny_unet_ddpm(timesteps=20, schedule="linear"):
    minigen.manual_seed(0)
    return DDPM(nn.UNet(1, 1, base_channels=2, depth=1, time_embedding_dim=4), (1, 4, 4), timesteps, schedule)


@settings(max_examples=10)
@given(st.sampled_from(["linear", "cosine"]), st.integers(1, 60), st.data())
def test_closed_form_q_equals_iterated_one_step_noising(schedule, timesteps, data):
    """q(x_t | x_0) from Eq. 4 == the mean and variance after t steps of q(x_s | x_{s-1}) (Eq. 2)."""
    t = data.draw(st.integers(0, timesteps - 1))
    x0 = np.array([[data.draw(st.floats(-1, 1))]])
    model = gaussian_ddpm(0.0, 1.0, timesteps, schedule)
    mean, var = x0.copy(), 0.0
    for beta in make_beta_schedule(schedule, timesteps)[:t + 1]:  # 0-based t: t + 1 steps
        mean, var = math.sqrt(1 - beta) * mean, (1 - beta) * var + beta
    closed_mean = to_host(model.q_sample(x0, [t], noise=np.zeros((1, 1))))
    closed_std = to_host(model.q_sample(x0, [t], noise=np.ones((1, 1)))) - closed_mean
    np.testing.assert_allclose(closed_mean, mean, atol=1e-12)
    np.testing.assert_allclose(closed_std ** 2, var, rtol=1e-10)


def test_closed_form_q_matches_simulated_chain():
    """Sampling the chain step by step (20000 paths) gives x_t with the closed form's moments."""
    rng = np.random.default_rng(0)
    model = gaussian_ddpm(0.0, 1.0, 50, "cosine")
    x = np.full((20000, 1), 0.7)
    for beta in model.betas[:30]:
        x = math.sqrt(1 - beta) * x + math.sqrt(beta) * rng.standard_normal(x.shape)
    closed = to_host(model.q_sample(np.full((20000, 1), 0.7), np.full(20000, 29), generator=1))
    assert abs(x.mean() - closed.mean()) < 4 * math.sqrt(2 / 20000) * x.std()
    assert abs(x.var() / closed.var() - 1) < 0.05


@settings(max_examples=10)
@given(st.sampled_from(["linear", "cosine"]), st.integers(2, 100), st.data())
def test_q_posterior_is_bayes_rule_for_scalar_gaussians(schedule, timesteps, data):
    """q(x_{t-1} | x_t, x_0) ∝ q(x_t | x_{t-1}) q(x_{t-1} | x_0): its mean and variance by
    quadrature of that product on a grid, against the closed form of Eq. 7."""
    t = data.draw(st.integers(1, timesteps - 1))
    x0, xt = data.draw(st.floats(-1, 1)), data.draw(st.floats(-2, 2))
    model = gaussian_ddpm(0.0, 1.0, timesteps, schedule)
    beta, ab_prev = model.betas[t], model.alpha_bar[t - 1]
    prior_mean, prior_std = math.sqrt(ab_prev) * x0, math.sqrt(1 - ab_prev)
    step_std = math.sqrt(beta)
    post_std_guess = min(prior_std, step_std / math.sqrt(1 - beta))
    centre = xt / math.sqrt(1 - beta) if step_std < prior_std else prior_mean
    grid = np.linspace(centre - 40 * post_std_guess, centre + 40 * post_std_guess, 200001)
    density = (norm.pdf(grid, prior_mean, prior_std)
               * norm.pdf(xt, math.sqrt(1 - beta) * grid, step_std))
    density /= np.trapezoid(density, grid)
    mean = np.trapezoid(grid * density, grid)
    var = np.trapezoid((grid - mean) ** 2 * density, grid)
    got_mean, got_var = model.q_posterior(np.array([[x0]]), np.array([[xt]]), [t])
    np.testing.assert_allclose(to_host(got_mean)[0, 0], mean, atol=1e-6 * (1 + abs(mean)))
    np.testing.assert_allclose(to_host(got_var)[0, 0], var, rtol=1e-5)


def test_q_posterior_at_the_first_step_is_the_point_mass_at_x0():
    model = gaussian_ddpm(0.0, 1.0, 10, "linear")
    mean, var = model.q_posterior(np.array([[0.3]]), np.array([[-1.2]]), [0])
    assert to_host(mean)[0, 0] == pytest.approx(0.3) and to_host(var)[0, 0] == 0


@settings(max_examples=15)
@given(st.floats(-3, 3), st.floats(1e-4, 3.0))
def test_decoder_masses_sum_to_one_over_the_256_bins(mean, scale):
    log_p = to_host(discretized_gaussian_log_likelihood(on_device(GRID), mean, scale))
    assert np.all(log_p <= 0)
    assert math.isclose(np.exp(log_p).sum(), 1.0, rel_tol=1e-9)
    i = 100  # an inner bin against scipy directly
    lo, hi = GRID[i] - 1 / 255, GRID[i] + 1 / 255
    if GRID[i] > mean:  # upper tail: a difference of survival functions, free of cancellation
        expected = norm.sf(lo, mean, scale) - norm.sf(hi, mean, scale)
    else:
        expected = norm.cdf(hi, mean, scale) - norm.cdf(lo, mean, scale)
    assert math.isclose(np.exp(log_p[i]), expected, rel_tol=1e-6, abs_tol=1e-300)


def test_decoder_is_finite_and_exact_far_in_the_tails():
    """A bin 30 standard deviations from the mean: log mass from the mirrored log-CDFs, not log(0)."""
    log_p = to_host(discretized_gaussian_log_likelihood(on_device(GRID[200:201]), -0.5, 0.02))
    z_lo, z_hi = (GRID[200] - 1 / 255 + 0.5) / 0.02, (GRID[200] + 1 / 255 + 0.5) / 0.02
    expected = norm.logsf(z_lo) + math.log(-math.expm1(norm.logsf(z_hi) - norm.logsf(z_lo)))
    assert np.isfinite(log_p[0]) and math.isclose(log_p[0], expected, rel_tol=1e-8)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_bound_terms_are_nonnegative_and_the_prior_term_is_the_closed_form_kl(schedule):
    model = tiny_unet_ddpm(20, schedule)
    x0 = GRID[np.random.default_rng(0).integers(0, 256, (3, 1, 4, 4))]
    terms = to_host(model.nll_bound_terms(x0, generator=0))
    assert terms.shape == (3, 21) and np.all(np.isfinite(terms)) and np.all(terms >= 0)
    ab = model.alpha_bar[-1]
    prior_kl = 0.5 * (ab * x0 ** 2 + (1 - ab) - 1 - math.log(1 - ab)).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(terms[:, -1], prior_kl, rtol=1e-5, atol=1e-6)  # float32 model
    np.testing.assert_allclose(to_host(model.nll_bound(x0, generator=0)), terms.sum(axis=1), rtol=1e-6)
    np.testing.assert_allclose(to_host(model.bits_per_dim(x0, generator=0)),
                               terms.sum(axis=1) / (16 * math.log(2)), rtol=1e-6)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_bound_with_the_optimal_denoiser_is_above_and_close_to_the_true_nll(schedule):
    """1-D data: a Gaussian N(0.1, 0.4^2) discretised to the 256 bins, so the true NLL of each
    value is -log P(bin). With the exact (linear) optimal noise predictor the bound must lie
    above the true NLL on average, and not far above (T = 100 here)."""
    mu, s = 0.1, 0.4
    edges = np.concatenate([[-np.inf], GRID[:-1] + 1 / 255, [np.inf]])
    P = np.diff(norm.cdf(edges, mu, s))
    data_mean = (P * GRID).sum()
    model = gaussian_ddpm(data_mean, (P * (GRID - data_mean) ** 2).sum(), 100, schedule)
    n = 20000
    index = np.random.default_rng(0).choice(256, size=n, p=P)
    gap = to_host(model.nll_bound(GRID[index][:, None], generator=1)) + np.log(P[index])
    standard_error = gap.std() / math.sqrt(n)
    assert gap.mean() > -3 * standard_error, "the bound fell below the true NLL"
    assert gap.mean() < 0.1, f"bound {gap.mean():.3f} nats above the true NLL"
    # a poor denoiser (predicting no noise) gives a far looser bound: the test can tell
    model.denoiser.var = 1e-6
    loose = to_host(model.nll_bound(GRID[index[:2000]][:, None], generator=1)) + np.log(P[index[:2000]])
    assert loose.mean() > gap.mean() + 1.0


def test_samples_from_the_optimal_denoiser_follow_the_data():
    """Algorithm 2 with the exact noise predictor for N(0.3, 1) data returns that Gaussian
    (KS test). Unit data variance is where sigma_t^2 = beta_t is the exact reverse variance (Ho
    et al., Sec. 3.2); for narrower data it is the upper choice and samples come out wider."""
    model = gaussian_ddpm(0.3, 1.0, 100, "linear")
    x = to_host(model.sample(4000, generator=0, clip_denoised=False))[:, 0]  # data beyond [-1, 1]
    assert kstest(x, norm(0.3, 1.0).cdf).pvalue > 0.01
    narrow = to_host(gaussian_ddpm(0.3, 0.04, 100, "linear").sample(4000, generator=0, clip_denoised=False))[:, 0]
    assert 1.0 < narrow.std() / 0.2 < 1.1
    x0, trajectory = model.sample(5, generator=3, return_trajectory=True)
    assert trajectory.shape == (101, 5, 1)
    np.testing.assert_array_equal(to_host(trajectory[-1]), to_host(x0))
    np.testing.assert_array_equal(to_host(model.sample(5, generator=3)), to_host(x0))  # reproducible


@settings(max_examples=10)
@given(st.sampled_from(["linear", "cosine"]), st.integers(2, 200), st.data())
def test_reverse_mean_is_eq_11_and_the_clip_keeps_x0_in_range(schedule, timesteps, data):
    """mu~(x0_hat, x_t) with x0_hat from Eq. 15 is Eq. 11: (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t)."""
    t = data.draw(st.integers(0, timesteps - 1))
    xt = np.array([[data.draw(st.floats(-3, 3))]])
    model = gaussian_ddpm(data.draw(st.floats(-0.5, 0.5)), data.draw(st.floats(0.05, 2.0)), timesteps, schedule)
    eps = to_host(model(Tensor(on_device(xt)), np.array([t])))
    beta, ab = model.betas[t], model.alpha_bar[t]
    eq11 = (xt - beta / math.sqrt(1 - ab) * eps) / math.sqrt(1 - beta)
    mean, var = model.p_mean_variance(xt, [t], clip_denoised=False)
    np.testing.assert_allclose(to_host(mean), eq11, rtol=1e-7, atol=1e-9 / math.sqrt(ab))
    assert to_host(var)[0, 0] == pytest.approx(beta)
    clipped, _ = model.p_mean_variance(xt, [t])  # the mean of a clipped x0_hat in [-1, 1]
    q_lo, _ = model.q_posterior(np.array([[-1.0]]), xt, [t])
    q_hi, _ = model.q_posterior(np.array([[1.0]]), xt, [t])
    assert to_host(q_lo)[0, 0] - 1e-9 <= to_host(clipped)[0, 0] <= to_host(q_hi)[0, 0] + 1e-9


@settings(max_examples=3)
@given(st.integers(0, 999), st.sampled_from(["linear", "cosine"]))
def test_gradcheck_simple_loss_with_t_and_noise_fixed(seed, schedule):
    model = tiny_unet_ddpm(30, schedule).double()
    rng = np.random.default_rng(seed)
    x0 = minigen.tensor(GRID[rng.integers(0, 256, (2, 1, 4, 4))], requires_grad=True)
    t, noise = rng.integers(0, 30, 2), rng.standard_normal((2, 1, 4, 4))
    assert minigen.gradcheck(lambda x, *ps: model.loss(x, t, noise), [x0] + list(model.parameters()))
    expected = np.mean((noise - to_host(model(model.q_sample(x0, t, noise), t))) ** 2)
    assert float(model.loss(x0, t, noise).item()) == pytest.approx(expected)


def test_training_lowers_the_simple_loss():
    model = tiny_unet_ddpm(20)
    x0 = GRID[np.random.default_rng(0).integers(0, 256, (16, 1, 4, 4))]
    optimizer = minigen.optim.Adam(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(1)
    t, noise = rng.integers(0, 20, 16), rng.standard_normal((16, 1, 4, 4))
    before = float(model.loss(x0, t, noise).item())
    for _ in range(30):
        optimizer.zero_grad()
        model.loss(x0, generator=rng).backward()
        optimizer.step()
    assert float(model.loss(x0, t, noise).item()) < 0.9 * before


@pytest.mark.parametrize("make, error, pattern", [
    (lambda m: DDPM(lambda x, t: x, (1,)), TypeError, "denoiser must be a minigen.nn.Module"),
    (lambda m: DDPM(m.denoiser, (1, 0)), ValueError, "image_shape must be a tuple of positive integers"),
    (lambda m: DDPM(m.denoiser, (1,), timesteps=0), ValueError, "timesteps must be >= 1"),
    (lambda m: DDPM(m.denoiser, (1,), beta_schedule="quadratic"), ValueError, "beta_schedule must be one of"),
    (lambda m: m.loss(np.zeros((2, 1, 4))), ValueError, r"expected x0 of shape \(N, 1, 4, 4\)"),
    (lambda m: m.q_sample(np.zeros((2, 1, 4, 4)), [0, 20]), ValueError, r"timesteps must lie in \[0, 20\)"),
    (lambda m: m.q_sample(np.zeros((2, 1, 4, 4)), [0.5, 1.0]), TypeError, "integer timesteps"),
    (lambda m: m.q_sample(np.zeros((2, 1, 4, 4)), [0, 1, 2]), ValueError, r"t of shape \(2,\)"),
    (lambda m: m.loss(np.full((2, 1, 4, 4), np.nan)), ValueError, "NaN or inf"),
    (lambda m: m.nll_bound(np.full((2, 1, 4, 4), 2.0)), ValueError, r"x0 must lie in \[-1, 1\]"),
    (lambda m: m.sample(0), ValueError, "n must be >= 1"),
])
def test_bad_input(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make(tiny_unet_ddpm())


def test_save_and_load_round_trip(tmp_path):
    """The recorded constructor arguments rebuild the model (schedule included); same samples, bound."""
    model = tiny_unet_ddpm(15, "cosine")
    model.save(tmp_path / "ddpm.npz")
    loaded = DDPM.load(tmp_path / "ddpm.npz")
    assert loaded.timesteps == 15 and loaded.beta_schedule == "cosine"
    np.testing.assert_array_equal(to_host(loaded.sample(3, generator=4)), to_host(model.sample(3, generator=4)))
    x0 = GRID[np.random.default_rng(0).integers(0, 256, (2, 1, 4, 4))]
    np.testing.assert_array_equal(to_host(loaded.nll_bound(x0, generator=1)), to_host(model.nll_bound(x0, generator=1)))
