"""The estimator contract (minigen.models.estimator), checked on every estimator at once:
settings in __init__ and a valid repr, fit returns self, per-example score_samples, sample with a
random_state, n_iter_/converged_/ConvergenceWarning, and state_dict round trips through
minigen.save / minigen.load (issue 10.8). Bad input is one table (issue 10.13)."""
import warnings

import numpy as np
import pytest

import minigen
from minigen import backend
from devices import on_device, to_host
from minigen.models import (DBN, PPCA, RBM, BayesianGaussianMixture, FactorAnalysis,
                            GaussianMixture, GaussianMixtureCAVI, KMeans)
from minigen.models.estimator import ConvergenceWarning, Estimator


def gaussian_data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [5.0, 0.0, 1.0], [0.0, 5.0, -1.0]])
    return centres[rng.integers(0, 3, n)] + rng.normal(size=(n, 3)) @ np.diag([1.0, 0.5, 0.8])


def binary_data(n=80, seed=0):
    return (np.random.default_rng(seed).random((n, 6)) < 0.3).astype(np.float64)


ESTIMATORS = {
    "GaussianMixture": (lambda: GaussianMixture(3, random_state=0), gaussian_data),
    "GaussianMixture-diag": (lambda: GaussianMixture(2, covariance_type="diag", n_init=2,
                                                     random_state=0), gaussian_data),
    "BayesianGaussianMixture": (lambda: BayesianGaussianMixture(3, random_state=0), gaussian_data),
    "GaussianMixtureCAVI": (lambda: GaussianMixtureCAVI(3, prior_std=5.0, random_state=0),
                            gaussian_data),
    "FactorAnalysis": (lambda: FactorAnalysis(2, random_state=0), gaussian_data),
    "PPCA": (lambda: PPCA(2, random_state=0), gaussian_data),
    "PPCA-closed-form": (lambda: PPCA(2, method="closed_form", random_state=0), gaussian_data),
    "KMeans": (lambda: KMeans(3, n_init=2, random_state=0), gaussian_data),
    "RBM": (lambda: RBM(4, max_iter=3, batch_size=20, n_gibbs=20, random_state=0,
                        dtype="float64"), binary_data),
    "DBN": (lambda: DBN((4, 3), max_iter=3, batch_size=20, n_gibbs=20, random_state=0,
                        dtype="float64"), binary_data),
}
ITERATIVE = ["GaussianMixture", "BayesianGaussianMixture", "GaussianMixtureCAVI", "FactorAnalysis",
             "PPCA", "KMeans"]


def fitted(name):
    make, data = ESTIMATORS[name]
    X = data()
    return make().fit(on_device(X)), X


def first(result):
    """The samples of ``sample`` (mixtures return (X, labels))."""
    return result[0] if isinstance(result, tuple) else result


@pytest.mark.parametrize("name", ESTIMATORS)
def test_every_estimator_follows_the_contract(name):
    make, data = ESTIMATORS[name]
    est, X = make(), data()
    assert isinstance(est, Estimator)
    settings = est.get_params()
    assert est.fit(on_device(X)) is est
    assert est.get_params() == settings  # fit never changes a setting
    rebuilt = eval(repr(est), vars(minigen.models))  # repr is valid constructor arguments
    assert type(rebuilt) is type(est) and rebuilt.get_params() == settings
    scores = to_host(est.score_samples(X))
    assert scores.shape == (len(X),) and np.all(np.isfinite(scores))
    assert est.score(X) == pytest.approx(scores.mean(), rel=1e-12) or name == "DBN"
    assert isinstance(est.n_iter_, int) and isinstance(est.converged_, bool)
    assert est.n_features_in_ == X.shape[1]
    assert first(est.sample()).shape == (1, X.shape[1])
    np.testing.assert_array_equal(to_host(first(est.sample(4, random_state=5))),
                                  to_host(first(est.sample(4, random_state=5))))
    fitted_names = [n for n in vars(est) if not n.startswith("_") and n not in settings]
    assert fitted_names and all(n.endswith("_") for n in fitted_names), fitted_names


@pytest.mark.parametrize("name", ESTIMATORS)
def test_state_dict_round_trip_through_save_and_load(name, tmp_path):
    est, X = fitted(name)
    path = tmp_path / f"{name}.npz"
    minigen.save(est.state_dict(), path)
    loaded = type(est)().load_state_dict(minigen.load(path), device=backend.default_device())
    assert repr(loaded) == repr(est)
    np.testing.assert_array_equal(to_host(loaded.score_samples(X)), to_host(est.score_samples(X)))
    for method in ("predict", "predict_proba", "transform"):
        if hasattr(est, method):
            np.testing.assert_array_equal(to_host(getattr(loaded, method)(X)),
                                          to_host(getattr(est, method)(X)))
    drawn, drawn_loaded = est.sample(6, random_state=3), loaded.sample(6, random_state=3)
    for a, b in zip(*(d if isinstance(d, tuple) else (d,) for d in (drawn, drawn_loaded))):
        np.testing.assert_array_equal(to_host(a), to_host(b))


def test_load_state_dict_refuses_another_estimators_state():
    est, _ = fitted("KMeans")
    with pytest.raises(ValueError, match="holds a minigen.models.kmeans.KMeans, not a"):
        GaussianMixture().load_state_dict(est.state_dict())


@pytest.mark.parametrize("name", ITERATIVE)
def test_max_iter_reached_warns_and_reports_not_converged(name):
    make, data = ESTIMATORS[name]
    est = make()
    est.max_iter, est.tol = 1, 0.0
    if name == "PPCA":
        est.init = "random"
    with pytest.warns(ConvergenceWarning, match=f"did not converge in max_iter=1"):
        est.fit(on_device(data()))
    assert est.n_iter_ == 1 and est.converged_ is False


@pytest.mark.parametrize("name", ITERATIVE)
def test_tol_is_the_change_of_the_per_sample_objective(name):
    make, data = ESTIMATORS[name]
    est = make()
    est.tol = 1e-4
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est.fit(on_device(data()))
    history = {"GaussianMixture": "log_likelihood_history_", "FactorAnalysis": "log_likelihood_history_",
               "PPCA": "log_likelihood_history_", "KMeans": "inertia_history_"}.get(name, "elbo_history_")
    history = np.array(getattr(est, history))
    if name == "KMeans":
        history = -history / len(data())  # the objective is -J / N
    assert len(history) == est.n_iter_ + 1 and est.converged_
    assert abs(history[-1] - history[-2]) <= 1e-4
    assert np.all(np.abs(np.diff(history[:-1])) > 1e-4)


def bad_input_rows():
    rows = []
    ragged = [[0.0, 1.0, 0.0], [1.0, 0.0]]
    for name in ESTIMATORS:
        rows.append(pytest.param(name, "fit", ragged, ValueError, "X is a ragged nested list",
                                 id=f"{name}-fit-ragged"))
        rows.append(pytest.param(name, "score_samples", ragged, ValueError,
                                 "X is a ragged nested list", id=f"{name}-score-ragged"))
        rows.append(pytest.param(name, "fit", [[0.0, np.nan, 1.0]] * 10, ValueError,
                                 "must hold only finite values, but it contains 10 NaN",
                                 id=f"{name}-fit-nan"))
        rows.append(pytest.param(name, "score_samples", np.zeros((2, 5)), ValueError,
                                 r"(has 5 features, but .* fitted with|must have shape \(n_samples, 6\))",
                                 id=f"{name}-score-wrong-features"))
        rows.append(pytest.param(name, "fit", [["a", "b"], ["c", "d"]], TypeError,
                                 "X must hold real numbers", id=f"{name}-fit-strings"))
        rows.append(pytest.param(name, "sample", 0, ValueError, "n_samples must be >= 1, got 0",
                                 id=f"{name}-sample-zero"))
        rows.append(pytest.param(name, "unfitted-score", np.zeros((2, 3)), ValueError, "not fitted",
                                 id=f"{name}-not-fitted"))
    return rows


@pytest.mark.parametrize("name, method, argument, error, pattern", bad_input_rows())
def test_bad_input_is_rejected_with_a_clear_message(name, method, argument, error, pattern):
    if method == "unfitted-score":
        est = ESTIMATORS[name][0]()
        method = "score_samples"
    else:
        est = ESTIMATORS[name][0]() if method == "fit" else fitted(name)[0]
    with pytest.raises(error, match=pattern):
        getattr(est, method)(argument)
