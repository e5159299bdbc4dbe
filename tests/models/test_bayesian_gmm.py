"""BayesianGaussianMixture (PRML 10.2): monotone ELBO, exact where q can be, pruning, predictive."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import gammaln, logsumexp, multigammaln
from scipy.stats import multivariate_t

from devices import on_device, to_host
from minigen.models import BayesianGaussianMixture


def blobs(seed, sizes, n_features, spread=6.0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(size=n_features) * spread
                           + rng.normal(size=(n, n_features)) @ (np.eye(n_features)
                                                                + 0.3 * rng.normal(size=(n_features,) * 2))
                           for n in sizes])


def log_evidence(X, m0, beta0, W0_inv, nu0):
    """log p(X) under x ~ N(mu, Lambda^-1), (mu, Lambda) ~ Normal-Wishart (conjugate, closed form)."""
    N, D = X.shape
    xbar = X.mean(axis=0)
    WN_inv = (W0_inv + (X - xbar).T @ (X - xbar)
              + beta0 * N / (beta0 + N) * np.outer(xbar - m0, xbar - m0))
    return (-0.5 * N * D * np.log(np.pi) + multigammaln((nu0 + N) / 2, D) - multigammaln(nu0 / 2, D)
            + 0.5 * nu0 * np.linalg.slogdet(W0_inv)[1] - 0.5 * (nu0 + N) * np.linalg.slogdet(WN_inv)[1]
            + 0.5 * D * np.log(beta0 / (beta0 + N)))


PRIORS = dict(mean_precision_prior=0.5, degrees_of_freedom_prior=4.0)


@pytest.mark.filterwarnings("ignore::minigen.models.estimator.ConvergenceWarning")
@given(seed=st.integers(0, 2**16), sizes=st.lists(st.integers(3, 40), min_size=1, max_size=3),
       n_features=st.integers(1, 3), n_components=st.integers(1, 5),
       alpha0=st.sampled_from([1e-3, 0.1, 1.0, 10.0]), init_params=st.sampled_from(["kmeans", "random"]))
def test_elbo_never_decreases(seed, sizes, n_features, n_components, alpha0, init_params):
    X = blobs(seed, sizes, n_features)
    n_components = min(n_components, len(X))
    model = BayesianGaussianMixture(n_components, weight_concentration_prior=alpha0, tol=0.0,
                                    max_iter=40, init_params=init_params,
                                    random_state=seed).fit(on_device(X))
    elbo = np.array(model.elbo_history_)  # per sample, the start first
    assert len(elbo) == model.n_iter_ + 1 and model.lower_bound_ == elbo[-1]
    # the ELBO per sample sums O(D) terms of order one and can itself be near 0: scale at least D
    scale = np.maximum(np.abs(elbo[:-1]), n_features)
    assert np.all(np.diff(elbo) >= -1e-10 * scale), np.diff(elbo).min()
    assert np.all(np.isfinite(elbo)) and float(model.weights_.sum()) == pytest.approx(1.0)


@pytest.mark.parametrize("n_features", [1, 3])
def test_elbo_equals_the_log_evidence_with_one_component(n_features):
    # K = 1: q(mu, Lambda) is the exact Normal-Wishart posterior, so the ELBO is log p(X)
    X = blobs(0, [40], n_features)
    m0, W0_inv = np.full(n_features, 0.5), np.diag(np.arange(1.0, n_features + 1))
    model = BayesianGaussianMixture(1, mean_prior=m0, covariance_prior=W0_inv, **PRIORS).fit(on_device(X))
    assert model.lower_bound_ * len(X) == pytest.approx(log_evidence(X, m0, 0.5, W0_inv, 4.0), rel=1e-10)


def test_elbo_equals_log_joint_of_separated_clusters():
    # clusters far apart: q(Z) is a point mass on the true labels and q(pi), q(mu, Lambda) the
    # exact posteriors given them, so ELBO = log p(X | Z) + log p(Z) (Dirichlet-multinomial)
    rng = np.random.default_rng(0)
    X1, X2 = rng.normal(size=(30, 2)) + 200, rng.normal(size=(20, 2)) * 0.5 - 200
    m0, W0_inv, alpha0 = np.zeros(2), np.eye(2), 0.7
    model = BayesianGaussianMixture(2, weight_concentration_prior=alpha0, mean_prior=m0,
                                    covariance_prior=W0_inv, random_state=0, **PRIORS)
    model.fit(on_device(np.vstack([X1, X2])))
    log_p_Z = (gammaln(2 * alpha0) - gammaln(50 + 2 * alpha0)
               + gammaln(30 + alpha0) + gammaln(20 + alpha0) - 2 * gammaln(alpha0))
    expected = (log_evidence(X1, m0, 0.5, W0_inv, 4.0) + log_evidence(X2, m0, 0.5, W0_inv, 4.0)
                + log_p_Z)
    assert model.lower_bound_ * 50 == pytest.approx(expected, rel=1e-10)


def test_superfluous_components_are_switched_off():
    rng = np.random.default_rng(0)
    means = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    weights = np.array([0.2, 0.3, 0.5])
    X = means[rng.choice(3, size=900, p=weights)] + rng.normal(size=(900, 2))
    model = BayesianGaussianMixture(8, weight_concentration_prior=1e-3, max_iter=500, tol=1e-7,
                                    random_state=0).fit(on_device(X))
    assert model.converged_
    fitted_weights, fitted_means = to_host(model.weights_), to_host(model.means_)
    active = fitted_weights > 0.01
    assert active.sum() == 3  # the effective number of components
    order = np.argsort(fitted_means[active, 0] + 2 * fitted_means[active, 1])
    np.testing.assert_allclose(fitted_means[active][order], means, atol=0.2)
    np.testing.assert_allclose(fitted_weights[active][order], weights, atol=0.04)


def test_posterior_predictive_is_a_student_t_mixture():
    X = blobs(1, [60, 40], 3)
    model = BayesianGaussianMixture(2, random_state=0).fit(on_device(X))
    D = 3
    X_new = np.random.default_rng(2).normal(size=(25, D)) * 4
    concentration = to_host(model.weight_concentration_)
    log_terms = []
    for alpha, m, beta, nu, cov in zip(concentration, to_host(model.means_),
                                       to_host(model.mean_precision_),
                                       to_host(model.degrees_of_freedom_),
                                       to_host(model.covariances_)):
        dof = nu + 1 - D
        shape = (1 + beta) / (dof * beta) * (nu * cov)  # L_k^-1, with W_k^-1 = nu_k covariances_
        log_terms.append(np.log(alpha / concentration.sum())
                         + multivariate_t(m, shape, df=dof).logpdf(X_new))
    expected = logsumexp(np.stack(log_terms, axis=1), axis=1)
    np.testing.assert_allclose(to_host(model.score_samples(X_new)), expected, rtol=1e-10)
    assert model.score(X_new) == pytest.approx(expected.mean(), rel=1e-10)


def test_sample_follows_the_posterior_predictive():
    # one component, D = 1: the predictive is a Student-t; compare quantiles by a KS test
    from scipy.stats import kstest, t as student_t
    X = blobs(5, [60], 1)
    model = BayesianGaussianMixture(1, random_state=0).fit(on_device(X))
    dof = float(model.degrees_of_freedom_[0])
    beta, m = float(model.mean_precision_[0]), float(model.means_[0, 0])
    scale = np.sqrt((1 + beta) / (dof * beta) * dof * float(model.covariances_[0, 0, 0]))
    S, _ = map(to_host, model.sample(4000, random_state=1))
    assert kstest(S[:, 0], student_t(df=dof, loc=m, scale=scale).cdf).pvalue > 1e-3


def test_responsibilities_and_prediction():
    X = blobs(3, [50, 50], 2)
    model = BayesianGaussianMixture(3, random_state=0).fit(on_device(X))
    resp = to_host(model.predict_proba(X * 3))
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(to_host(model.predict(X * 3)), resp.argmax(axis=1))
    assert model.covariances_.shape == (3, 2, 2) and model.means_.shape == (3, 2)


def test_bad_input_is_rejected():
    X = on_device(blobs(0, [15, 15], 2))
    with pytest.raises(ValueError, match="larger than n_samples=30"):
        BayesianGaussianMixture(31).fit(X)
    with pytest.raises(ValueError, match="degrees_of_freedom_prior must be > 1"):
        BayesianGaussianMixture(2, degrees_of_freedom_prior=0.5).fit(X)
    with pytest.raises(ValueError, match="covariance_prior .* positive definite"):
        BayesianGaussianMixture(2, covariance_prior=np.zeros((2, 2))).fit(X)
    with pytest.raises(ValueError, match=r"mean_prior must have shape \(2,\)"):
        BayesianGaussianMixture(2, mean_prior=np.zeros(3)).fit(X)
    model = BayesianGaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="X has 1 features, but BayesianGaussianMixture was fitted with 2"):
        model.score_samples(X[:, :1])
    X[4, 0] = np.nan
    with pytest.raises(ValueError, match="1 NaN"):
        BayesianGaussianMixture(2).fit(X)


@pytest.fixture
def strict_special(monkeypatch):
    """backend.special(xp) knows only NumPy and CuPy; serve scipy.special through the strict
    module when xp is the strict stand-in (as cupyx.scipy.special serves CuPy)."""
    import scipy.special
    from strict_xp import StrictModule, strict_module
    import minigen.models.bayesian_gmm as bayesian_gmm
    strict_special = StrictModule("strict_special", scipy.special)
    special = bayesian_gmm.special
    monkeypatch.setattr(bayesian_gmm, "special",
                        lambda xp: strict_special if xp is strict_module else special(xp))


def test_one_code_path_on_the_strict_array_module(strict_special):
    from strict_xp import StrictArray, to_plain, to_strict
    X = blobs(0, [20, 30], 2)
    plain = BayesianGaussianMixture(3, random_state=0).fit(X)
    strict = BayesianGaussianMixture(3, random_state=0).fit(to_strict(X))
    for name in ("weights_", "means_", "covariances_", "degrees_of_freedom_", "scale_cholesky_"):
        assert isinstance(getattr(strict, name), StrictArray), name
        np.testing.assert_allclose(to_plain(getattr(strict, name)), getattr(plain, name))
    assert strict.elbo_history_ == pytest.approx(plain.elbo_history_)
    for method in ("score_samples", "predict_proba", "predict"):
        result = getattr(strict, method)(to_strict(X))
        assert isinstance(result, StrictArray)
        np.testing.assert_allclose(to_plain(result), getattr(plain, method)(X))


def test_fit_on_the_device_keeps_everything_there(fake_cupy):
    from minigen import backend
    X = blobs(0, [20, 30], 2)
    model = BayesianGaussianMixture(3, random_state=0).fit(backend.to_device(X, "cuda"))
    for name in ("weights_", "means_", "covariances_", "scale_cholesky_", "precisions_cholesky_"):
        assert backend.device_of(getattr(model, name)) == "cuda", name
    for method in ("score_samples", "predict_proba", "predict"):
        assert backend.device_of(getattr(model, method)(X)) == "cuda"
