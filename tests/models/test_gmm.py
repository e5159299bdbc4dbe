"""GaussianMixture: EM's guarantees, densities against scipy, recovery, sampling, bad input."""
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from devices import on_device, to_host
from minigen.models import GaussianMixture
from minigen.models.gmm import COVARIANCE_TYPES


def blobs(seed, n_per_component, n_features, spread=6.0):
    """Gaussian blobs with random centres, random covariances and labels."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for k, n in enumerate(n_per_component):
        A = rng.normal(size=(n_features, n_features)) * 0.5 + np.eye(n_features)
        X.append(rng.normal(size=n_features) * spread + rng.normal(size=(n, n_features)) @ A.T)
        y.append(np.full(n, k))
    return np.concatenate(X), np.concatenate(y)


def component_covariances(gmm):
    """(K, D, D) full covariance matrices (on the host) whatever the covariance type."""
    K, d = gmm.means_.shape
    cov = to_host(gmm.covariances_)
    if gmm.covariance_type == "tied":
        return np.broadcast_to(cov, (K, d, d))
    if gmm.covariance_type == "diag":
        return np.stack([np.diag(c) for c in cov])
    if gmm.covariance_type == "spherical":
        return cov[:, None, None] * np.eye(d)
    return cov


@pytest.mark.filterwarnings("ignore::minigen.models.estimator.ConvergenceWarning")
@given(seed=st.integers(0, 2**16), covariance_type=st.sampled_from(COVARIANCE_TYPES),
       n_features=st.integers(1, 3), sizes=st.lists(st.integers(12, 40), min_size=1, max_size=3),
       init_params=st.sampled_from(["kmeans", "random"]), data=st.data())
def test_em_never_decreases_the_log_likelihood(seed, covariance_type, n_features, sizes,
                                               init_params, data):
    # well-posed: at most one component per blob, blobs 10 apart, so that no component can
    # collapse (with reg_covar=0 a collapse is a legitimate error, tested below)
    X, y = blobs(seed, sizes, n_features, spread=0.0)
    X += 10.0 * y[:, None]
    n_components = data.draw(st.integers(1, len(sizes)))
    gmm = GaussianMixture(n_components, covariance_type=covariance_type, reg_covar=0.0, tol=0.0,
                          max_iter=30, init_params=init_params, random_state=seed).fit(on_device(X))
    history = np.array(gmm.log_likelihood_history_)
    # tol=0: stops only when an iteration changes nothing at all
    assert len(history) == gmm.n_iter_ + 1 <= 31
    assert gmm.converged_ == (gmm.n_iter_ < 30 or history[-1] == history[-2])
    steps = np.diff(history)
    # per-sample log-likelihoods sum D terms of order one and may be near 0: scale at least D
    assert np.all(steps >= -1e-10 * np.maximum(np.abs(history[:-1]), n_features)), steps.min()
    assert gmm.lower_bound_ == pytest.approx(gmm.score(X), rel=1e-12)


@pytest.mark.filterwarnings("ignore::minigen.models.estimator.ConvergenceWarning")
@given(seed=st.integers(0, 2**16), covariance_type=st.sampled_from(COVARIANCE_TYPES),
       n_components=st.integers(1, 4))
def test_responsibilities_are_a_distribution(seed, covariance_type, n_components):
    X, _ = blobs(seed, [30, 30], 2)
    gmm = GaussianMixture(n_components, covariance_type=covariance_type, max_iter=10,
                          random_state=seed).fit(on_device(X))
    X_new = np.random.default_rng(seed).normal(size=(50, 2)) * 20  # includes far-away points
    resp = to_host(gmm.predict_proba(X_new))
    assert resp.shape == (50, n_components)
    assert np.all(resp >= 0)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(to_host(gmm.predict(X_new)), resp.argmax(axis=1))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_density_matches_scipy(covariance_type):
    X, _ = blobs(0, [40, 60, 50], 3)
    gmm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(on_device(X))
    X_new = np.random.default_rng(1).normal(size=(20, 3)) * 5
    cov = component_covariances(gmm)
    log_joint = np.stack([np.log(w) + multivariate_normal(m, c).logpdf(X_new)
                          for w, m, c in zip(to_host(gmm.weights_), to_host(gmm.means_), cov)], axis=1)
    np.testing.assert_allclose(to_host(gmm.score_samples(X_new)), logsumexp(log_joint, axis=1),
                               rtol=1e-10)
    np.testing.assert_allclose(to_host(gmm.predict_proba(X_new)),
                               np.exp(log_joint - logsumexp(log_joint, axis=1)[:, None]),
                               atol=1e-10)
    assert gmm.score(X_new) == pytest.approx(np.mean(logsumexp(log_joint, axis=1)), rel=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fitted_shapes(covariance_type):
    X, _ = blobs(0, [20, 30], 3)
    gmm = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(on_device(X))
    shape = {"full": (2, 3, 3), "tied": (3, 3), "diag": (2, 3), "spherical": (2,)}
    assert gmm.covariances_.shape == gmm.precisions_cholesky_.shape == shape[covariance_type]
    assert gmm.means_.shape == (2, 3) and gmm.weights_.shape == (2,)
    assert gmm.converged_ and float(gmm.weights_.sum()) == pytest.approx(1.0)


def test_recovers_means_and_weights_of_separated_clusters():
    rng = np.random.default_rng(0)
    means = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    weights = np.array([0.2, 0.3, 0.5])
    labels = rng.choice(3, size=3000, p=weights)
    X = means[labels] + rng.normal(size=(3000, 2)) @ np.array([[1.0, 0.3], [0.0, 0.8]])
    gmm = GaussianMixture(3, random_state=0).fit(on_device(X))
    fitted_means, fitted_weights = to_host(gmm.means_), to_host(gmm.weights_)
    order = np.argsort(fitted_means[:, 0] + 2 * fitted_means[:, 1])
    np.testing.assert_allclose(fitted_means[order], means, atol=0.15)
    np.testing.assert_allclose(fitted_weights[order], weights, atol=0.03)
    assert np.mean(to_host(gmm.predict(X)) == order[labels]) > 0.99


def test_sample_matches_the_model():
    X, _ = blobs(3, [100, 200], 2)
    gmm = GaussianMixture(2, random_state=0).fit(on_device(X))
    S, labels = map(to_host, gmm.sample(40000))
    assert S.shape == (40000, 2) and labels.shape == (40000,)
    weights, means, covariances = to_host(gmm.weights_), to_host(gmm.means_), to_host(gmm.covariances_)
    np.testing.assert_allclose(np.bincount(labels, minlength=2) / 40000, weights, atol=0.01)
    for k in range(2):  # whitened by the model's mean and covariance: mean 0, covariance I
        Z = np.linalg.solve(np.linalg.cholesky(covariances[k]), (S[labels == k] - means[k]).T).T
        # standard errors at >= 10,000 samples: 0.01 for the mean, <= 0.015 for the covariance
        np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=0.05)
        np.testing.assert_allclose(np.cov(Z.T), np.eye(2), atol=0.075)
    np.testing.assert_array_equal(to_host(gmm.sample(5)[0]), to_host(gmm.sample(5)[0]))  # int random_state
    assert not np.array_equal(to_host(gmm.sample(5, random_state=1)[0]),
                              to_host(gmm.sample(5, random_state=2)[0]))


def test_bic_aic_count_parameters():
    X, _ = blobs(0, [50, 50], 3)
    gmm = GaussianMixture(2, random_state=0).fit(on_device(X))
    n_params = 2 * 6 + 2 * 3 + 1  # covariances, means, weights
    log_l = gmm.score(X) * len(X)
    assert gmm.bic(X) == pytest.approx(-2 * log_l + n_params * np.log(len(X)))
    assert gmm.aic(X) == pytest.approx(-2 * log_l + 2 * n_params)


def test_n_init_keeps_the_best_run():
    X, _ = blobs(5, [30, 30, 30, 30], 2, spread=3.0)
    one = GaussianMixture(4, init_params="random", n_init=1, random_state=0).fit(on_device(X))
    best = GaussianMixture(4, init_params="random", n_init=5, random_state=0).fit(on_device(X))
    assert best.lower_bound_ >= one.lower_bound_  # the first of the five runs is `one`
    assert best.lower_bound_ == pytest.approx(best.score(X))


def test_float32_input_stays_float32():
    X, _ = blobs(0, [30, 30], 2)
    gmm = GaussianMixture(2, random_state=0).fit(on_device(X.astype(np.float32)))
    assert gmm.means_.dtype == gmm.covariances_.dtype == np.float32


@pytest.mark.parametrize("bad, message", [(np.nan, "1 NaN and 0 infinite"),
                                          (np.inf, "0 NaN and 1 infinite")])
def test_non_finite_input_is_rejected(bad, message):
    X, _ = blobs(0, [20, 20], 2)
    X[3, 1] = bad
    with pytest.raises(ValueError, match=message):
        GaussianMixture(2).fit(on_device(X))
    gmm = GaussianMixture(2, random_state=0).fit(on_device(np.nan_to_num(X, posinf=0.0)))
    with pytest.raises(ValueError, match="finite"):
        gmm.predict(X)


def test_bad_shapes_and_hyper_parameters_are_rejected():
    X = on_device(blobs(0, [20, 20], 2)[0])
    with pytest.raises(ValueError, match="larger than n_samples=40"):
        GaussianMixture(41).fit(X)
    with pytest.raises(ValueError, match=r"2-D array .* shape \(40,\)"):
        GaussianMixture(2).fit(X[:, 0])
    with pytest.raises(ValueError, match="covariance_type must be one of"):
        GaussianMixture(2, covariance_type="banana").fit(X)
    with pytest.raises(ValueError, match="not fitted"):
        GaussianMixture(2).predict(X)
    gmm = GaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="X has 3 features, but GaussianMixture was fitted with 2"):
        gmm.score_samples(np.ones((5, 3)))


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_collapsing_component_is_reported_not_nan(covariance_type):
    # one cluster is a single point repeated: its covariance is zero up to rounding
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(50, 2)), np.tile([[10.0, 10.0]], (20, 1))])
    with pytest.raises(ValueError, match=r"component\(s\) \[\d\] became singular at EM iteration 0"
                                         r".*Increase reg_covar \(now 0.0\)") as info:
        GaussianMixture(2, covariance_type=covariance_type, reg_covar=0.0, random_state=0).fit(on_device(X))
    # the component named is the one on the repeated point (its index depends on the device's draws)
    message = str(info.value)
    named = int(re.search(r"component\(s\) \[(\d)\]", message).group(1))
    counts = re.search(r"effective samples per component: ([\d.]+), ([\d.]+)", message).groups()
    assert float(counts[named]) == 20
    gmm = GaussianMixture(2, covariance_type=covariance_type, reg_covar=1e-6,
                          random_state=0).fit(on_device(X))
    assert np.all(np.isfinite(to_host(gmm.score_samples(X))))


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag"])
@pytest.mark.parametrize("constant", [5.0, 7.3, 3.0])
def test_constant_feature_with_reg_covar_zero_is_refused_whatever_its_value(covariance_type, constant):
    # issue 10.4: 5.0 used to fit with a meaningless bound and 7.3 to raise, as rounding decided
    X, _ = blobs(0, [20, 20], 2)
    X[:, 1] = constant
    with pytest.raises(ValueError, match=rf"feature 1 of X is constant \(every value is {constant}\)"
                                         r".*Set reg_covar > 0"):
        GaussianMixture(2, covariance_type=covariance_type, reg_covar=0.0,
                        random_state=0).fit(on_device(X))
    gmm = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(on_device(X))
    assert np.isfinite(gmm.score(X))
    # a spherical covariance averages the variances over the features: well defined
    assert np.isfinite(GaussianMixture(2, covariance_type="spherical", reg_covar=0.0,
                                       random_state=0).fit(on_device(X)).score(X))


def test_kmeans_initialisation_is_the_kmeans_estimator():
    from minigen.models import KMeans
    from minigen.models.gmm import initial_responsibilities
    from minigen.random import get_generator
    X, _ = blobs(2, [30, 40, 30], 2, spread=3.0)
    X = on_device(X)
    from minigen import backend
    resp = initial_responsibilities(X, 3, "kmeans", get_generator(7, backend.get_array_module(X)))
    labels = KMeans(3, random_state=7).fit(X).labels_
    np.testing.assert_array_equal(to_host(resp).argmax(axis=1), to_host(labels))
    assert set(np.unique(to_host(resp)).tolist()) == {0.0, 1.0}


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fewer_distinct_points_than_components_is_reported(covariance_type):
    X = np.repeat(np.array([[0.0, 1.0], [2.0, 3.0], [5.0, 1.0]]), 10, axis=0)
    with pytest.raises(ValueError, match="only 3 distinct samples, fewer than n_components=4"):
        GaussianMixture(4, covariance_type=covariance_type).fit(on_device(X))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_one_code_path_on_the_strict_array_module(covariance_type):
    # the strict stand-in for CuPy refuses np.* calls on data: the fit must go through xp
    from strict_xp import StrictArray, to_plain, to_strict
    X, _ = blobs(0, [20, 30], 2)
    plain = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    strict = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(to_strict(X))
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert isinstance(getattr(strict, name), StrictArray), name
        np.testing.assert_allclose(to_plain(getattr(strict, name)), getattr(plain, name))
    samples, labels = strict.sample(10)
    assert isinstance(samples, StrictArray) and isinstance(labels, StrictArray)
    assert isinstance(strict.predict_proba(to_strict(X)), StrictArray)
    np.testing.assert_allclose(to_plain(strict.score_samples(to_strict(X))),
                               plain.score_samples(X))
    assert strict.bic(to_strict(X)) == pytest.approx(plain.bic(X))


def test_check_array_converts_and_rejects():
    from minigen.validation import check_array, count_distinct_rows
    assert check_array([[1, 2], [3, 4]]).dtype == np.float64
    assert check_array(np.ones((2, 2), dtype=bool)).dtype == np.float64
    assert check_array(np.ones((2, 2), dtype=np.float32)).dtype == np.float32
    with pytest.raises(TypeError, match="real numbers, got an array of dtype complex128"):
        check_array(np.ones((2, 2), dtype=complex))
    with pytest.raises(ValueError, match=r"W must be a 2-D array .* shape \(2, 2, 2\)"):
        check_array(np.ones((2, 2, 2)), name="W")
    with pytest.raises(ValueError, match="empty"):
        check_array(np.ones((0, 3)))
    X = np.array([[0.0, 1.0], [0.0, 1.0], [2.0, 1.0], [0.0, 1.0], [2.0, 1.0]])
    assert count_distinct_rows(X, at_most=5) == 2 and count_distinct_rows(X, at_most=1) == 1


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fit_on_the_device_keeps_everything_there(fake_cupy, covariance_type):
    from minigen import backend
    X, _ = blobs(0, [20, 30], 2)
    gmm = GaussianMixture(2, covariance_type=covariance_type, random_state=0)
    gmm.fit(backend.to_device(X, "cuda"))
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert backend.device_of(getattr(gmm, name)) == "cuda", name
    assert backend.device_of(gmm.predict(X)) == "cuda"  # host input is moved to the model
    samples, labels = gmm.sample(5)
    assert backend.device_of(samples) == backend.device_of(labels) == "cuda"
    assert np.isfinite(gmm.bic(X))


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_singular_covariance_is_reported_on_every_device(fake_cupy, device):
    # a cluster on a line: positive variances but a singular covariance, which NumPy's Cholesky
    # rejects and cuSOLVER's (and the fake's) turns into NaN
    from minigen import backend
    rng = np.random.default_rng(0)
    t = rng.normal(size=(20, 1))
    X = np.concatenate([rng.normal(size=(50, 2)), 10.0 + t * np.array([[1.0, 2.0]])])
    with pytest.raises(ValueError, match=r"component\(s\) \[[01]\] became singular"):
        GaussianMixture(2, reg_covar=0.0, random_state=0).fit(backend.to_device(X, device))


@pytest.mark.parametrize("n", [1, 3, 64, 65, 150])
def test_inv_lower_triangular_by_blocks(n):
    from minigen.models.gmm import inv_lower_triangular
    from strict_xp import to_plain, to_strict
    rng = np.random.default_rng(n)
    A = rng.normal(size=(2, n, n + 3))
    L = np.linalg.cholesky(A @ A.swapaxes(1, 2) + np.eye(n))
    expected = np.linalg.inv(L)
    np.testing.assert_allclose(inv_lower_triangular(L), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(to_plain(inv_lower_triangular(to_strict(L))), expected,
                               rtol=1e-10, atol=1e-12)
