"""Reverse vs forward KL on a correlated Gaussian: gradient descent reaches the closed forms."""
import numpy as np
import pytest
import scipy.stats as stats
from hypothesis import given, settings, strategies as st

import minigen
from minigen import backend
from minigen.models.kl_directions import (fit_mean_field_gaussian, gaussian_kl_forward,
                                          gaussian_kl_reverse)


XP = backend.array_module_for(backend.default_device())


@st.composite
def correlated_gaussians(draw):
    rho = draw(st.floats(-0.9, 0.9))
    sd = np.array([draw(st.floats(0.5, 2.0)), draw(st.floats(0.5, 2.0))])
    cov = np.array([[1, rho], [rho, 1]]) * np.outer(sd, sd)
    return np.array([draw(st.floats(-2, 2)), draw(st.floats(-2, 2))]), cov


@settings(max_examples=4)
@given(correlated_gaussians())
def test_reverse_kl_underestimates_and_forward_kl_matches_the_marginal_variances(target):
    mean, cov = target
    m_rev, s_rev, h_rev = fit_mean_field_gaussian(mean, cov, "reverse", n_steps=1500, lr=0.05)
    m_fwd, s_fwd, h_fwd = fit_mean_field_gaussian(mean, cov, "forward", n_steps=1500, lr=0.05)
    np.testing.assert_allclose(m_rev, mean, atol=1e-4)
    np.testing.assert_allclose(m_fwd, mean, atol=1e-4)
    np.testing.assert_allclose(s_rev, 1 / np.diag(np.linalg.inv(cov)), rtol=1e-4)  # 1 / Lambda_ii
    np.testing.assert_allclose(s_fwd, np.diag(cov), rtol=1e-4)                      # Sigma_ii
    assert np.all(s_rev <= np.diag(cov) + 1e-9)
    assert h_rev[-1] <= h_rev[0] + 1e-12 and h_fwd[-1] <= h_fwd[0] + 1e-12  # the start may be optimal


def test_closed_form_kls_match_scipy_monte_carlo():
    rng = np.random.default_rng(0)
    mean, cov = np.array([0.5, -1.0]), np.array([[1.0, 0.6], [0.6, 2.0]])
    m, log_s = np.array([0.2, -0.7]), np.log(np.array([0.8, 1.3]))
    p, q = stats.multivariate_normal(mean, cov), stats.multivariate_normal(m, np.diag(np.exp(log_s)))
    log_det = np.linalg.slogdet(cov)[1]
    on = lambda a: XP.asarray(a)  # noqa: E731  (the device under test)
    rev = gaussian_kl_reverse(minigen.tensor(on(m)), minigen.tensor(on(log_s)), on(mean),
                              on(np.linalg.inv(cov)), log_det)
    fwd = gaussian_kl_forward(minigen.tensor(on(m)), minigen.tensor(on(log_s)), on(mean), on(cov), log_det)
    zq, zp = q.rvs(200000, random_state=rng), p.rvs(200000, random_state=rng)
    assert float(rev.item()) == pytest.approx(np.mean(q.logpdf(zq) - p.logpdf(zq)), abs=0.01)
    assert float(fwd.item()) == pytest.approx(np.mean(p.logpdf(zp) - q.logpdf(zp)), abs=0.01)
    cov_inv = on(np.linalg.inv(cov))
    assert minigen.gradcheck(lambda a, b: gaussian_kl_reverse(a, b, on(mean), cov_inv, log_det), [m, log_s])
    assert minigen.gradcheck(lambda a, b: gaussian_kl_forward(a, b, on(mean), on(cov), log_det), [m, log_s])


@pytest.mark.parametrize("args, message", [
    ((np.zeros(2), np.eye(3)), "shape"),
    ((np.zeros(2), np.array([[1.0, 2.0], [2.0, 1.0]])), "positive definite"),
    ((np.zeros(2), np.array([[1.0, 0.1], [0.2, 1.0]])), "symmetric"),
    ((np.array([np.nan, 0.0]), np.eye(2)), "finite"),
])
def test_bad_targets(args, message):
    with pytest.raises(ValueError, match=message):
        fit_mean_field_gaussian(*args, n_steps=1)
