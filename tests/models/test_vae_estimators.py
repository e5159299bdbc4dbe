"""Estimators of the ELBO and of log p(x) against the truth (grid quadrature or closed form):

- elbo(n_samples=L) is the average of L one-sample ELBOs;
- deck 004's estimators A ("monte_carlo") and B ("analytic_kl") have the same mean, the grid ELBO;
  A has zero variance when q is the exact posterior (a linear-Gaussian model), B does not;
- log_likelihood with the prior as proposal converges to log p(x) too, with a far larger variance;
- refine_posterior: encoder ELBO <= refined ELBO <= log p(x) (the amortisation gap closes);
- a VAE with a linear encoder and decoder and a per-pixel Gaussian variance reaches the maximum
  likelihood of factor analysis (deck 004: the VAE as nonlinear factor analysis).
"""
import numpy as np
import pytest

import minigen
from devices import to_host
from minigen.models import VAE, FactorAnalysis
from minigen.optim import Adam
from test_vae_likelihood import XP, bars, data, fitted_vae, logsumexp, real_data, sharp_vae, truth_1d


def grid_elbo(points, log_joint, mu, logvar):
    """E_q[log p(x, z) - log q(z)] by quadrature on the 1-D grid, for q = N(mu, exp(logvar)) per example."""
    mu, logvar = to_host(mu)[:, 0], to_host(logvar)[:, 0]
    log_q = -0.5 * ((points - mu) ** 2 / np.exp(logvar) + logvar + np.log(2 * np.pi))  # (G, N)
    w = np.exp(log_q - logsumexp(log_q, 0))
    return (w * (log_joint - log_q)).sum(0)


# ---- the L-sample ELBO and the two estimators ------------------------------------------------------------

@pytest.mark.parametrize("estimator", ["analytic_kl", "monte_carlo"])
def test_l_sample_elbo_is_the_mean_of_one_sample_elbos(estimator):
    model, x = sharp_vae(), data(3)
    eps = XP.asarray(np.random.default_rng(0).normal(size=(4, 3, 1)))
    together = model.elbo(x, n_samples=4, estimator=estimator, eps=eps)
    one_by_one = [model.elbo(x, estimator=estimator, eps=eps[l]) for l in range(4)]
    for field in ("elbo", "reconstruction", "kl"):
        mean = np.mean([to_host(getattr(e, field)) for e in one_by_one], axis=0)
        np.testing.assert_allclose(to_host(getattr(together, field)), mean, rtol=1e-12)


@pytest.mark.parametrize("make", [
    lambda: (sharp_vae(), data()),
    lambda: (sharp_vae(likelihood="gaussian", decoder_variance="from_z"), real_data()),
], ids=["bernoulli", "gaussian from_z"])
def test_estimators_a_and_b_have_the_same_mean_the_grid_elbo(make):
    model, x = make()
    points, log_joint, _ = truth_1d(model, x)
    exact = grid_elbo(points, log_joint, *model.encode(x))
    reps = 10_000
    for estimator in ("analytic_kl", "monte_carlo"):
        draws = to_host(model.elbo(XP.tile(x, (reps, 1)), estimator=estimator, generator=0).elbo).reshape(reps, -1)
        se = draws.std(0) / np.sqrt(reps)
        assert np.all(np.abs(draws.mean(0) - exact) <= 5 * se), (estimator, draws.mean(0), exact, se)


def exact_posterior_vae(variance=0.5):
    """A linear-Gaussian VAE, z ~ N(0, I_2), x | z ~ N(W z + b, variance I_3), whose encoder outputs
    the exact posterior N(S W^T (x - b) / variance, S), S = (I + W^T W / variance)^-1. W has
    orthogonal columns, so S is diagonal and the posterior lies in q's family."""
    minigen.manual_seed(0)
    model = VAE(3, (), 2, likelihood="gaussian", decoder_variance="fixed", fixed_variance=variance).double()
    W = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 2)))[0] * np.array([2.0, 0.7])
    b = np.array([0.3, -0.2, 0.5])
    S = np.linalg.inv(np.eye(2) + W.T @ W / variance)
    assert np.allclose(S, np.diag(np.diag(S)))
    A = S @ W.T / variance
    model.decoder[0].weight.data[...] = XP.asarray(W)
    model.decoder[0].bias.data[...] = XP.asarray(b)
    model.encoder[0].weight.data[...] = XP.asarray(np.concatenate([A, np.zeros((2, 3))]))
    model.encoder[0].bias.data[...] = XP.asarray(np.concatenate([-A @ b, np.log(np.diag(S))]))
    C = W @ W.T + variance * np.eye(3)
    return model, b, C


def test_estimator_a_has_zero_variance_when_q_is_the_exact_posterior():
    model, b, C = exact_posterior_vae()
    x = np.random.default_rng(1).normal(size=(4, 3))
    d = x - b
    log_px = -0.5 * (np.einsum("nd,de,ne->n", d, np.linalg.inv(C), d) + np.linalg.slogdet(2 * np.pi * C)[1])
    reps = 500
    tiled = XP.asarray(np.tile(x, (reps, 1)))
    a = to_host(model.elbo(tiled, estimator="monte_carlo", generator=0).elbo).reshape(reps, -1)
    b_draws = to_host(model.elbo(tiled, estimator="analytic_kl", generator=0).elbo).reshape(reps, -1)
    np.testing.assert_allclose(a, np.broadcast_to(log_px, a.shape), rtol=1e-12)  # every draw is log p(x)
    assert np.all(a.std(0) < 1e-12)
    assert np.all(b_draws.std(0) > 0.1), b_draws.std(0)                          # B still varies ...
    assert np.all(np.abs(b_draws.mean(0) - log_px) < 5 * b_draws.std(0) / np.sqrt(reps))  # ... around the same mean


# ---- log p(x): posterior and prior as proposals -------------------------------------------------------------

@pytest.fixture(scope="module")
def fitted_on_bars():
    """A VAE with a 1-D latent fitted to noisy bars, five bar images, and log p(x) by quadrature."""
    model, x = fitted_vae(1), XP.asarray(bars(5, seed=7))
    return (model, x) + truth_1d(model, x)


def test_prior_and_posterior_proposals_both_converge_but_the_prior_varies_far_more(fitted_on_bars):
    """Measured: the prior's L_100 variance is 9 to 59 times the posterior's (about 25 on average)."""
    model, x, _, _, log_px = fitted_on_bars
    np.testing.assert_allclose(to_host(model.log_likelihood(x, 20_000, generator=1)), log_px, atol=0.01)
    np.testing.assert_allclose(to_host(model.log_likelihood(x, 20_000, proposal="prior", generator=1)),
                               log_px, atol=0.03)
    k, repeats = 100, 200
    variance = {}
    for proposal in ("posterior", "prior"):
        log_w = to_host(model.log_weights(x, k * repeats, proposal=proposal, generator=0)).reshape(repeats, k, -1)
        L_k = logsumexp(log_w, 1) - np.log(k)  # 200 independent estimates of log p(x) per image
        variance[proposal] = L_k.var(0, ddof=1)
    ratio = variance["prior"] / variance["posterior"]
    assert np.all(ratio > 3) and ratio.mean() > 10, ratio


def test_prior_proposal_weights_are_the_likelihoods_of_prior_draws():
    model, x = sharp_vae(), data(2)
    eps = XP.asarray(np.random.default_rng(3).normal(size=(6, 2, 1)))
    np.testing.assert_allclose(to_host(model.log_weights(x, 6, proposal="prior", eps=eps)),
                               to_host(model.log_px(x, eps)), rtol=1e-12)


# ---- the amortisation gap ---------------------------------------------------------------------------------

def test_refined_posterior_lies_between_the_encoder_elbo_and_log_px():
    model, x = sharp_vae(), data()
    points, log_joint, log_px = truth_1d(model, x)
    before = {name: p.data.copy() for name, p in model.named_parameters()}
    mu, logvar = model.refine_posterior(x, 150, 0.05, generator=0)
    encoder = grid_elbo(points, log_joint, *model.encode(x))
    refined = grid_elbo(points, log_joint, mu, logvar)
    assert np.all(encoder < refined - 0.05), (encoder, refined)   # the amortisation gap, closed in part
    assert np.all(refined <= log_px + 1e-9)                        # still a lower bound
    for name, p in model.named_parameters():                       # the model itself is untouched
        np.testing.assert_array_equal(to_host(p.data), to_host(before[name]))
        assert p.grad is None and p.requires_grad
    draws = to_host(model.elbo(x, posterior=(mu, logvar), n_samples=20_000, generator=1).elbo)
    np.testing.assert_allclose(draws, refined, atol=0.05)         # elbo(posterior=...) evaluates it


# ---- the VAE as nonlinear factor analysis ----------------------------------------------------------------

def test_linear_gaussian_vae_reaches_the_factor_analysis_maximum_likelihood():
    """Linear encoder and decoder, per-pixel variance: p(x) = N(b, W W^T + diag(sigma^2)), a factor
    analysis model; trained on the ELBO it reaches FactorAnalysis' maximum likelihood (measured over
    seeds 0-2: within 1.5e-4 nats per example)."""
    rng = np.random.default_rng(0)
    W, psi = rng.normal(size=(4, 1)), rng.uniform(0.2, 0.6, 4)
    X = rng.normal(size=(200, 1)) @ W.T + rng.normal(size=(200, 4)) * np.sqrt(psi)
    X -= X.mean(0)
    fa_score = FactorAnalysis(1, tol=1e-10, max_iter=20_000).fit(X).score(X)
    minigen.manual_seed(0)
    model = VAE(4, (), 1, likelihood="gaussian", decoder_variance="per_pixel").double()
    optimizer = Adam(model.parameters(), lr=0.1)
    steps = 300
    for step in range(steps):
        optimizer.lr = 0.1 * 0.05 ** (step / steps)  # decay to 0.005
        optimizer.zero_grad()
        model.loss(XP.asarray(X)).backward()  # noise: the global generator, seeded above
        optimizer.step()
    W_vae, b = to_host(model.decoder[0].weight), to_host(model.decoder[0].bias)
    C = W_vae @ W_vae.T + np.diag(to_host(model.decode(XP.zeros((1, 1))).variance)[0])
    d = X - b
    exact = np.mean(-0.5 * (np.einsum("nd,de,ne->n", d, np.linalg.inv(C), d) + np.linalg.slogdet(2 * np.pi * C)[1]))
    importance_weighted = to_host(model.log_likelihood(XP.asarray(X), 1000, generator=0)).mean()
    assert abs(importance_weighted - exact) < 2e-3, (importance_weighted, exact)
    assert exact <= fa_score + 1e-6             # factor analysis' maximum bounds every linear-Gaussian model
    assert fa_score - importance_weighted < 5e-3, (importance_weighted, fa_score)
