"""EPLL (Zoran & Weiss 2011, deck 001): the objective's gradient, both solvers lower it, and the
one-component one-patch case is the Wiener filter in closed form."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigen
from devices import on_device, to_host
from minigen.models import GaussianMixture, epll_denoise, epll_objective
from minigen.models.epll import extract_patches, sum_patches


def patch_prior(p, n_components, seed=0, covariance_type="full"):
    """A GaussianMixture fitted to smooth-ish random p x p patches."""
    rng = np.random.default_rng(seed)
    D = p * p
    A = rng.normal(size=(D, D)) * 0.3 + np.eye(D)
    X = rng.normal(size=(60 * n_components, D)) @ A.T * 0.2 + rng.normal(size=(n_components, D))[
        rng.integers(0, n_components, 60 * n_components)]
    return GaussianMixture(n_components, covariance_type=covariance_type,
                           random_state=seed).fit(on_device(X))


@settings(max_examples=6)
@given(seed=st.integers(0, 2 ** 16), n_components=st.integers(1, 3),
       covariance_type=st.sampled_from(["full", "diag", "tied", "spherical"]),
       shape=st.sampled_from([(3, 3), (1, 4, 3), (2, 3, 5)]))
def test_objective_gradient_passes_gradcheck(seed, n_components, covariance_type, shape):
    prior = patch_prior(2, n_components, seed, covariance_type)
    rng = np.random.default_rng(seed)
    noisy = rng.normal(size=shape)
    assert minigen.gradcheck(lambda x: epll_objective(x, noisy, prior, 0.3), [rng.normal(size=shape)])


def test_objective_is_the_data_term_minus_the_patch_log_likelihood():
    prior = patch_prior(2, 2)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 4, 3))
    patches = to_host(extract_patches(on_device(x), 2))
    expected = 0.5 * 4 / 0.3 ** 2 * ((x - y) ** 2).sum() - to_host(prior.score_samples(patches)).sum()
    assert float(epll_objective(x, y, prior, 0.3).item()) == pytest.approx(expected, rel=1e-10)


def test_sum_patches_is_the_adjoint_of_extract_patches():
    rng = np.random.default_rng(2)
    x, z = rng.normal(size=(2, 5, 6)), rng.normal(size=(2 * 4 * 5, 4))
    lhs = (to_host(extract_patches(on_device(x), 2)) * z).sum()
    rhs = (x * to_host(sum_patches(on_device(z), (2, 5, 6), 2))).sum()
    assert lhs == pytest.approx(rhs, rel=1e-12)


@pytest.mark.parametrize("solver, kwargs", [("hqs", {}), ("gradient", {"n_iter": 30})])
@pytest.mark.parametrize("seed", [0, 1])
def test_both_solvers_lower_the_objective_from_the_noisy_start(solver, kwargs, seed):
    prior = patch_prior(2, 3, seed)
    rng = np.random.default_rng(seed)
    clean = to_host(prior.sample(1, random_state=seed)[0]).reshape(2, 2)
    clean = np.tile(clean, (3, 3))  # a 6 x 6 image made of one prior patch
    noisy = clean + 0.3 * rng.normal(size=clean.shape)
    restored = epll_denoise(on_device(noisy), prior, 0.3, patch_size=2, solver=solver, **kwargs)
    assert restored.shape == noisy.shape
    before = float(epll_objective(noisy, noisy, prior, 0.3).item())
    after = float(epll_objective(restored, noisy, prior, 0.3).item())
    assert after < before - 1.0, (before, after)


def one_patch_case(seed=0, sigma=0.5):
    """A one-component prior over 3 x 3 patches (well conditioned: correlated, no tiny variance)
    and one noisy 3 x 3 image."""
    rng = np.random.default_rng(seed)
    A = np.eye(9) + 0.2 * rng.normal(size=(9, 9))
    prior = GaussianMixture(1, random_state=seed).fit(on_device(rng.normal(size=(600, 9)) @ A.T * 0.5 + 0.3))
    y = rng.normal(size=(3, 3))
    mu, Sigma = to_host(prior.means_[0]), to_host(prior.covariances_[0])
    return prior, y, mu, Sigma, 9 / sigma ** 2, sigma


def test_gradient_solver_gives_the_wiener_filter_for_one_component_and_one_patch():
    # f(x) = lambda/2 ||x - y||^2 - log N(x | mu, Sigma) is minimised by
    # x* = mu + Sigma (Sigma + I / lambda)^-1 (y - mu)
    prior, y, mu, Sigma, lam, sigma = one_patch_case()
    wiener = mu + Sigma @ np.linalg.solve(Sigma + np.eye(9) / lam, y.ravel() - mu)
    x = to_host(epll_denoise(on_device(y), prior, sigma, patch_size=3, solver="gradient", n_iter=150))
    np.testing.assert_allclose(x.ravel(), wiener, atol=1e-6)


def test_hqs_fixed_point_is_the_wiener_filter_of_the_beta_relaxed_prior():
    # with one component, the z step is the Wiener filter with noise I / beta, and at a fixed beta
    # HQS converges to the minimiser of lambda/2 ||x - y||^2 - log N(x | mu, Sigma + I / beta):
    # x*_beta = mu + (Sigma + I/beta) (Sigma + I/beta + I/lambda)^-1 (y - mu) -> x* as beta grows
    prior, y, mu, Sigma, lam, sigma = one_patch_case(1)
    for b in (1.0, 8.0):
        beta = b / sigma ** 2
        relaxed = Sigma + np.eye(9) / beta
        expected = mu + relaxed @ np.linalg.solve(relaxed + np.eye(9) / lam, y.ravel() - mu)
        x = to_host(epll_denoise(on_device(y), prior, sigma, patch_size=3, betas=[b] * 200))
        np.testing.assert_allclose(x.ravel(), expected, atol=1e-8)


BAD_INPUT = [
    (dict(noise_std=0.0), ValueError, "noise_std must be > 0"),
    (dict(patch_size=4), ValueError, r"patch_size=4 but the prior models 2 x 2 patches"),
    (dict(solver="adam"), ValueError, "solver must be one of 'hqs', 'gradient'"),
    (dict(noisy=np.ones((1, 2, 3, 4))), ValueError, r"noisy must be an \(H, W\) image or \(N, H, W\) images"),
    (dict(noisy=np.ones((1, 3))), ValueError, r"smaller than the prior's 2 x 2 patches"),
    (dict(noisy=np.full((3, 3), np.nan)), ValueError, "noisy must hold only finite values"),
    (dict(noisy=[[1.0, 2.0], [3.0]]), ValueError, "noisy"),
    (dict(prior="gmm"), TypeError, "prior must be a fitted minigen.models.GaussianMixture"),
    (dict(prior=GaussianMixture(2)), ValueError, "not fitted"),
    (dict(betas=[]), ValueError, "betas must hold at least one value"),
    (dict(solver="gradient", n_iter=0), ValueError, "n_iter must be >= 1"),
]


@pytest.mark.parametrize("change, error, pattern", BAD_INPUT)
def test_bad_input_is_rejected_with_a_clear_message(change, error, pattern):
    arguments = dict(noisy=np.zeros((4, 4)), prior=patch_prior(2, 1), noise_std=0.1, patch_size=2)
    arguments.update(change)
    with pytest.raises(error, match=pattern):
        epll_denoise(**arguments)
