"""GaussianMixtureCAVI (Blei et al. 2017): the ELBO never decreases and is exact where q can be."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import multivariate_normal

from devices import on_device, to_host
from minigen.models import GaussianMixtureCAVI


def mixture(seed, sizes, n_features, spread=5.0):
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=(len(sizes), n_features)) * spread
    X = np.concatenate([m + rng.normal(size=(n, n_features)) for m, n in zip(mu, sizes)])
    return X, mu


def log_evidence(X, prior_std):
    """log p(X) for x_i ~ N(mu, I), mu ~ N(0, prior_std^2 I): each column is N(0, I + s^2 11^T)."""
    n = len(X)
    cov = np.eye(n) + prior_std ** 2 * np.ones((n, n))
    return sum(multivariate_normal(np.zeros(n), cov).logpdf(x) for x in X.T)


@pytest.mark.filterwarnings("ignore::minigen.models.estimator.ConvergenceWarning")
@given(seed=st.integers(0, 2**16), sizes=st.lists(st.integers(1, 40), min_size=1, max_size=4),
       n_features=st.integers(1, 3), n_components=st.integers(1, 4),
       prior_std=st.floats(0.1, 20.0))
def test_elbo_never_decreases(seed, sizes, n_features, n_components, prior_std):
    X, _ = mixture(seed, sizes, n_features)
    n_components = min(n_components, len(X))
    model = GaussianMixtureCAVI(n_components, prior_std=prior_std, max_iter=40, tol=0.0,
                                random_state=seed).fit(on_device(X))
    elbo = np.array(model.elbo_history_)  # per sample, the start first
    # the ELBO per sample sums O(D) terms of order one and can itself be near 0: scale at least D
    scale = np.maximum(np.abs(elbo[:-1]), n_features)
    assert np.all(np.diff(elbo) >= -1e-10 * scale), np.diff(elbo).min()
    np.testing.assert_allclose(to_host(model.phi_).sum(axis=1), 1.0, rtol=1e-12)
    assert model.lower_bound_ == elbo[-1] and len(elbo) == model.n_iter_ + 1


@pytest.mark.parametrize("n_features", [1, 2])
def test_elbo_equals_the_log_evidence_with_one_component(n_features):
    # with K = 1, q(c) is exact and q(mu) is the exact Gaussian posterior: the bound is tight
    X, _ = mixture(0, [30], n_features)
    model = GaussianMixtureCAVI(1, prior_std=3.0, random_state=0).fit(on_device(X))
    assert model.lower_bound_ * len(X) == pytest.approx(log_evidence(X, 3.0), rel=1e-10)
    posterior_precision = 1 / 9 + len(X)
    np.testing.assert_allclose(to_host(model.m_[0]), X.sum(axis=0) / posterior_precision)
    assert float(model.s2_[0]) == pytest.approx(1 / posterior_precision)


def test_elbo_equals_log_joint_of_separated_clusters():
    # clusters 60 standard deviations apart: q(c) is a point mass on the true labels and q(mu)
    # the exact posterior given them, so ELBO = log p(X, c) = sum_k log p(X_k) + N log(1/K)
    rng = np.random.default_rng(1)
    X1, X2 = rng.normal(size=(20, 2)) + 30, rng.normal(size=(25, 2)) - 30
    model = GaussianMixtureCAVI(2, prior_std=30.0, random_state=0).fit(on_device(np.vstack([X1, X2])))
    expected = log_evidence(X1, 30.0) + log_evidence(X2, 30.0) + 45 * np.log(0.5)
    assert model.lower_bound_ * 45 == pytest.approx(expected, rel=1e-10)


def test_score_samples_bounds_the_posterior_predictive_and_sample_follows_it():
    # K = 1: q(mu) = N(m, s2 I) is the exact posterior, so the posterior predictive is
    # N(x | m, (1 + s2) I) and E_q[log N(x | mu, I)] = log N(x | m, I) - D s2 / 2 is below it
    X, _ = mixture(3, [40], 2)
    model = GaussianMixtureCAVI(1, prior_std=2.0, random_state=0).fit(on_device(X))
    m, s2 = to_host(model.m_[0]), float(model.s2_[0])
    X_new = np.random.default_rng(4).normal(size=(30, 2)) * 3
    bound = to_host(model.score_samples(X_new))
    np.testing.assert_allclose(bound, multivariate_normal(m, np.eye(2)).logpdf(X_new) - s2, rtol=1e-10)
    assert np.all(bound < multivariate_normal(m, (1 + s2) * np.eye(2)).logpdf(X_new))
    assert model.score(X_new) == pytest.approx(bound.mean())
    S, labels = map(to_host, model.sample(20000, random_state=0))
    assert S.shape == (20000, 2) and np.all(labels == 0)
    # one draw of mu ~ q(mu) per call, then x ~ N(mu, I): the mean is within ~5 sqrt(s2) of m
    assert np.abs(S.mean(axis=0) - m).max() < 5 * np.sqrt(s2) + 0.05
    np.testing.assert_allclose(np.cov(S.T), np.eye(2), atol=0.05)


def test_recovers_separated_means():
    mu = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    labels = np.repeat([0, 1, 2], [300, 200, 250])
    X = mu[labels] + np.random.default_rng(2).normal(size=(750, 2))
    # CAVI finds a local optimum from its start (K data points): keep the best ELBO of 5 starts
    model = max((GaussianMixtureCAVI(3, prior_std=10.0, random_state=seed).fit(on_device(X))
                 for seed in range(5)), key=lambda m: m.lower_bound_)
    assert model.converged_
    m = to_host(model.m_)
    order = np.argsort(m[:, 0] + 2 * m[:, 1])
    np.testing.assert_allclose(m[order], mu, atol=0.2)
    assert np.mean(to_host(model.predict(X)) == order[labels]) > 0.98
    np.testing.assert_allclose(to_host(model.predict_proba(X[:7])), to_host(model.phi_[:7]), atol=1e-6)


def test_bad_input_is_rejected():
    X = on_device(mixture(0, [10, 10], 2)[0])
    with pytest.raises(ValueError, match="larger than n_samples=20"):
        GaussianMixtureCAVI(21).fit(X)
    with pytest.raises(ValueError, match="prior_std must be > 0"):
        GaussianMixtureCAVI(2, prior_std=0.0).fit(X)
    X[0, 0] = np.inf
    with pytest.raises(ValueError, match="1 infinite"):
        GaussianMixtureCAVI(2).fit(X)
    model = GaussianMixtureCAVI(2, random_state=0).fit(X[1:])
    with pytest.raises(ValueError, match="X has 3 features, but GaussianMixtureCAVI was fitted with 2"):
        model.predict(np.ones((2, 3)))


def test_one_code_path_on_the_strict_array_module():
    from strict_xp import StrictArray, to_plain, to_strict
    X, _ = mixture(0, [20, 30], 2)
    plain = GaussianMixtureCAVI(2, random_state=0).fit(X)
    strict = GaussianMixtureCAVI(2, random_state=0).fit(to_strict(X))
    for name in ("m_", "s2_", "phi_"):
        assert isinstance(getattr(strict, name), StrictArray), name
        np.testing.assert_allclose(to_plain(getattr(strict, name)), getattr(plain, name))
    assert strict.elbo_history_ == pytest.approx(plain.elbo_history_)
    assert isinstance(strict.predict(to_strict(X)), StrictArray)


def test_fit_on_the_device_keeps_everything_there(fake_cupy):
    from minigen import backend
    X, _ = mixture(0, [20, 30], 2)
    model = GaussianMixtureCAVI(2, random_state=0).fit(backend.to_device(X, "cuda"))
    for name in ("m_", "s2_", "phi_"):
        assert backend.device_of(getattr(model, name)) == "cuda", name
    assert backend.device_of(model.predict(X)) == "cuda"
