"""FactorAnalysis and PPCA: EM monotonicity, the Gaussian marginal, recovery, PPCA's closed form."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import multivariate_normal

from devices import on_device, to_host
from minigen.models import PPCA, FactorAnalysis


def fa_data(seed, n_samples, n_features, n_components, isotropic=False):
    """Samples of x = W z + mu + noise; returns X, W (D, L), psi (D,)."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(n_features, n_components)) * 2
    psi = np.full(n_features, 0.5) if isotropic else rng.uniform(0.1, 1.0, n_features)
    X = (rng.normal(size=(n_samples, n_components)) @ W.T
         + rng.normal(size=(n_samples, n_features)) * np.sqrt(psi) + rng.normal(size=n_features))
    return X, W, psi


@pytest.mark.filterwarnings("ignore::minigen.models.estimator.ConvergenceWarning")
@given(seed=st.integers(0, 2**16), n_samples=st.integers(5, 80), n_features=st.integers(1, 6),
       data=st.data(), model=st.sampled_from([FactorAnalysis, PPCA]),
       init=st.sampled_from(["pca", "random"]))
def test_em_never_decreases_the_log_likelihood(seed, n_samples, n_features, data, model, init):
    n_components = data.draw(st.integers(1, min(n_features, n_samples)))
    X, _, _ = fa_data(seed, n_samples, n_features, max(1, n_components - 1))
    est = model(n_components, tol=0.0, max_iter=60, init=init, random_state=seed).fit(on_device(X))
    history = np.array(est.log_likelihood_history_)
    assert len(history) >= 2  # stops early only once a step changes nothing
    # per-sample log-likelihoods sum D terms of order one and may be near 0: scale at least D.
    # At a maximum with noise variances at the floor (1e-6 of a feature's variance, L = D here)
    # the objective is evaluated with condition number ~1e6: rounding ~1e-9, hence 1e-8
    scale = np.maximum(np.abs(history[:-1]), n_features)
    assert np.all(np.diff(history) >= -1e-8 * scale), np.diff(history).min()
    # the history is computed from S, score from X; with noise variances at the floor (L >= N - 1
    # here) tr(C^-1 S) loses a few digits to cancellation, hence rel=1e-7
    assert history[-1] == pytest.approx(est.score(X), rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("model", [FactorAnalysis, PPCA])
def test_log_likelihood_is_the_gaussian_with_covariance_WWT_plus_Psi(model):
    X, _, _ = fa_data(0, 200, 5, 2)
    est = model(2, random_state=0).fit(on_device(X))
    W = to_host(est.components_).T
    C = W @ W.T + np.diag(np.broadcast_to(to_host(est.noise_variance_), 5))
    np.testing.assert_allclose(to_host(est.get_covariance()), C)
    X_new = np.random.default_rng(1).normal(size=(30, 5)) * 3
    np.testing.assert_allclose(to_host(est.score_samples(X_new)),
                               multivariate_normal(to_host(est.mean_), C).logpdf(X_new), rtol=1e-10)


def test_transform_is_the_posterior_mean():
    X, _, _ = fa_data(0, 300, 5, 2)
    fa = FactorAnalysis(2, random_state=0).fit(on_device(X))
    W, C = to_host(fa.components_).T, to_host(fa.get_covariance())
    # z, x jointly Gaussian with Cov(z, x) = W^T, so E[z | x] = W^T C^-1 (x - mu)
    expected = (X[:10] - to_host(fa.mean_)) @ np.linalg.solve(C, W)
    np.testing.assert_allclose(to_host(fa.transform(X[:10])), expected, rtol=1e-9, atol=1e-12)


def test_factor_analysis_recovers_loadings_up_to_rotation():
    X, W, psi = fa_data(3, 20000, 6, 2)
    # EM needs 800-1300 iterations to reach this tol, depending on the start (the device's draws)
    fa = FactorAnalysis(2, tol=1e-6, max_iter=3000, random_state=0).fit(on_device(X))
    assert fa.converged_
    W_fit = to_host(fa.components_).T
    assert np.linalg.norm(W_fit @ W_fit.T - W @ W.T) < 0.05 * np.linalg.norm(W @ W.T)
    np.testing.assert_allclose(to_host(fa.noise_variance_), psi, rtol=0.15)


def test_ppca_em_converges_to_the_closed_form():
    X, _, _ = fa_data(1, 500, 6, 2, isotropic=True)
    closed = PPCA(2, method="closed_form").fit(on_device(X))
    em = PPCA(2, method="em", tol=1e-13, max_iter=5000, random_state=0).fit(on_device(X))
    assert em.converged_
    ll_closed, ll_em = closed.log_likelihood_history_[-1], em.log_likelihood_history_[-1]
    assert ll_closed >= ll_em - 1e-12 * abs(ll_closed)  # the closed form is the maximum
    assert ll_em == pytest.approx(ll_closed, rel=1e-8)
    np.testing.assert_allclose(to_host(em.get_covariance()), to_host(closed.get_covariance()), atol=1e-4)
    assert float(em.noise_variance_) == pytest.approx(float(closed.noise_variance_), rel=1e-5)
    assert closed.score(X) == pytest.approx(ll_closed, rel=1e-12)


@pytest.mark.filterwarnings("ignore::minigen.models.estimator.ConvergenceWarning")
@given(seed=st.integers(0, 2**16), n_features=st.integers(2, 6), n_iter=st.integers(1, 30))
def test_ppca_closed_form_beats_every_em_iterate(seed, n_features, n_iter):
    X, _, _ = fa_data(seed, 50, n_features, 1)
    closed = PPCA(1, method="closed_form").fit(on_device(X))
    em = PPCA(1, tol=0.0, max_iter=n_iter, random_state=seed).fit(on_device(X))
    assert closed.score(X) >= max(em.log_likelihood_history_) - 1e-10 * abs(closed.score(X))


def test_closed_form_ppca_spans_the_top_principal_components():
    X, _, _ = fa_data(2, 400, 5, 2)
    ppca = PPCA(2, method="closed_form").fit(on_device(X))
    lam, U = np.linalg.eigh(np.cov(X.T, bias=True))
    projector = U[:, -2:] @ U[:, -2:].T
    W = to_host(ppca.components_).T
    np.testing.assert_allclose(projector @ W, W, atol=1e-10)
    assert float(ppca.noise_variance_) == pytest.approx(lam[:3].mean())


@pytest.mark.parametrize("model", [FactorAnalysis, PPCA])
def test_samples_have_the_model_covariance(model):
    X, _, _ = fa_data(0, 300, 4, 2)
    est = model(2, random_state=0).fit(on_device(X))
    S = to_host(est.sample(50000))
    assert S.shape == (50000, 4)
    # whitened by the model's mean and covariance: mean 0 and covariance I, each entry with a
    # standard error of at most sqrt(2 / 50000) = 0.0063
    L = np.linalg.cholesky(to_host(est.get_covariance()))
    Z = np.linalg.solve(L, (S - to_host(est.mean_)).T).T
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=0.03)
    np.testing.assert_allclose(np.cov(Z.T), np.eye(4), atol=0.03)


def test_noise_floor_is_per_feature_and_matches_scikit_learn():
    # issue 10.1: one feature in other units used to clamp every other noise variance to a
    # floor of 1e-6 x the mean variance (score -15.26 instead of scikit-learn's -11.16)
    sklearn = pytest.importorskip("sklearn.decomposition", reason="scikit-learn is the reference")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 2)) @ rng.standard_normal((2, 5)) + 0.3 * rng.standard_normal((500, 5))
    X[:, 0] *= 1000
    fa = FactorAnalysis(2, random_state=0).fit(on_device(X))
    reference = sklearn.FactorAnalysis(2, random_state=0).fit(X)
    assert fa.score(X) == pytest.approx(-11.16, abs=0.01)
    assert fa.score(X) >= reference.score(X) - 1e-3
    np.testing.assert_allclose(to_host(fa.noise_variance_)[1:], reference.noise_variance_[1:], rtol=0.02)


def digits_every_second_column(seed):
    """Issue 10.1's data: the 8x8 digits on scikit-learn's 0..16 scale, every second pixel
    column, plus N(0, 0.1^2) noise drawn with ``seed``."""
    from minigen.data import load_digits
    images = load_digits()[0][:, 0] * 16
    X = images[:, :, ::2].reshape(len(images), -1).astype(np.float64)
    return X + 0.1 * np.random.default_rng(seed).standard_normal(X.shape)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_em_from_the_pca_start_reaches_scikit_learns_maximum_on_digits(seed):
    sklearn = pytest.importorskip("sklearn.decomposition", reason="scikit-learn is the reference")
    X = digits_every_second_column(seed)
    fa = FactorAnalysis(5, random_state=seed).fit(on_device(X))
    reference = sklearn.FactorAnalysis(5, random_state=seed).fit(X).score(X)
    assert fa.converged_
    assert abs(fa.score(X) - reference) <= 0.002 * abs(reference), (fa.score(X), reference)


def test_constant_feature_gets_a_positive_noise_floor():
    X, _, _ = fa_data(0, 200, 4, 1)
    X[:, 2] = 7.0
    fa = FactorAnalysis(1, random_state=0).fit(on_device(X))
    assert np.all(to_host(fa.noise_variance_) > 0) and np.all(np.isfinite(to_host(fa.score_samples(X))))


@pytest.mark.parametrize("model", [FactorAnalysis, PPCA])
def test_bad_input_is_rejected(model):
    X, _, _ = fa_data(0, 20, 4, 2)
    X_nan = X.copy()
    X_nan[0, 0] = np.nan
    X = on_device(X)
    with pytest.raises(ValueError, match="1 NaN"):
        model(2).fit(on_device(X_nan))
    with pytest.raises(ValueError, match="larger than n_samples=20"):
        model(21).fit(on_device(np.random.default_rng(0).normal(size=(20, 30))))
    with pytest.raises(ValueError, match="n_components must be <= 4"):
        model(5).fit(X)
    with pytest.raises(ValueError, match="not fitted"):
        model(2).transform(X)
    est = model(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="X has 3 features, but .* fitted with 4"):
        est.score_samples(X[:, :3])
    with pytest.raises(ValueError, match="zero variance"):
        model(1).fit(on_device(np.ones((10, 3))))


def test_ppca_method_is_checked():
    with pytest.raises(ValueError, match="method must be one of 'em', 'closed_form'"):
        PPCA(1, method="svd").fit(on_device(np.eye(3)))


@pytest.fixture
def strict_namedtuples(monkeypatch):
    """strict_xp rebuilds tuple results with type(obj)(iterable), which fails for the named
    tuples of numpy.linalg.svd / eigh; rebuild those field by field (until strict_xp does)."""
    import strict_xp
    to_strict = strict_xp._strict

    def strict(obj):
        if isinstance(obj, tuple) and hasattr(obj, "_fields"):
            return type(obj)(*(to_strict(o) for o in obj))
        return to_strict(obj)
    monkeypatch.setattr(strict_xp, "_strict", strict)


@pytest.mark.parametrize("model, kwargs", [(FactorAnalysis, {}), (PPCA, {"method": "em"}),
                                           (PPCA, {"method": "closed_form"})])
def test_one_code_path_on_the_strict_array_module(model, kwargs, strict_namedtuples):
    from strict_xp import StrictArray, to_plain, to_strict
    X, _, _ = fa_data(0, 100, 5, 2)
    plain = model(2, random_state=0, **kwargs).fit(X)
    strict = model(2, random_state=0, **kwargs).fit(to_strict(X))
    for name in ("components_", "noise_variance_", "mean_"):
        assert isinstance(getattr(strict, name), StrictArray), name
        np.testing.assert_allclose(to_plain(getattr(strict, name)), getattr(plain, name))
    for method in ("transform", "score_samples"):
        result = getattr(strict, method)(to_strict(X))
        assert isinstance(result, StrictArray)
        np.testing.assert_allclose(to_plain(result), getattr(plain, method)(X))
    assert isinstance(strict.sample(3), StrictArray)
    assert isinstance(strict.get_covariance(), StrictArray)


@pytest.mark.parametrize("model, kwargs", [(FactorAnalysis, {}), (PPCA, {"method": "em"}),
                                           (PPCA, {"method": "closed_form"})])
def test_fit_on_the_device_keeps_everything_there(fake_cupy, model, kwargs):
    from minigen import backend
    X, _, _ = fa_data(0, 100, 5, 2)
    est = model(2, random_state=0, **kwargs).fit(backend.to_device(X, "cuda"))
    for name in ("components_", "noise_variance_", "mean_"):
        assert backend.device_of(getattr(est, name)) == "cuda", name
    for result in (est.transform(X), est.score_samples(X), est.sample(3), est.get_covariance()):
        assert backend.device_of(result) == "cuda"
