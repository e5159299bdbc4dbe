"""k-means clustering by Lloyd's algorithm with k-means++ seeding (Bishop, PRML section 9.1; deck 002).

Objective:  the distortion J = sum_n ||x_n - mu_{k(n)}||^2 (scikit-learn's ``inertia_``), minimised
            by alternating two exact block minimisations, so J never increases (PRML 9.2-9.4):
  assignment  k(n) = argmin_k ||x_n - mu_k||^2                          (the "E step")
  update      mu_k = mean of the x_n with k(n) = k                       (the "M step")
            a cluster left empty keeps its centre (J cannot increase either way).
Seeding:    greedy k-means++ (Arthur & Vassilvitskii 2007): each new centre is the best, by the
            total squared distance, of 2 + log K data points drawn with probability proportional
            to their squared distance to the nearest centre so far.

The loop is ``coordinate_ascent`` on the per-sample objective -J / N, so ``tol`` is, as for every
estimator, the change of that objective between sweeps (Lloyd stops exactly when no label changes).

As a density (the small-variance limit of deck 002's mixture of isotropic Gaussians), the fitted
model is p(x) = sum_k pi_k N(x | mu_k, sigma^2 I) with pi_k the cluster fractions and
sigma^2 = J / (N D); ``score_samples`` and ``sample`` use that mixture, so KMeans follows the
estimator contract like the other estimators.
"""
import math

import numpy

from ..backend import get_array_module
from ..numerics import logsumexp, one_hot
from ..validation import check_array, check_float, check_int, check_is_fitted, check_n_components
from .estimator import Estimator, coordinate_ascent


def squared_distances(X, centers):
    """(N, K) ||x_n - c_k||^2 = ||x_n||^2 - 2 x_n.c_k + ||c_k||^2, clipped at 0 (rounding)."""
    xp = get_array_module(X)
    return xp.maximum(xp.sum(X ** 2, axis=1)[:, None] - 2 * (X @ centers.T)
                      + xp.sum(centers ** 2, axis=1), 0)


def kmeans_plusplus(X, n_clusters, rng):
    """(n_clusters, D) greedy k-means++ seeds drawn from the rows of X with generator ``rng``."""
    xp = get_array_module(X)
    n_trials = 2 + int(math.log(n_clusters))
    centers = [X[int(rng.integers(0, X.shape[0]))]]
    d2 = squared_distances(X, centers[0][None])[:, 0]
    for _ in range(1, n_clusters):
        cdf = xp.cumsum(d2)  # all zero once every distinct point is a centre: X[0] is drawn
        idx = xp.searchsorted(cdf, rng.random(n_trials, dtype=cdf.dtype) * cdf[-1])
        candidates = X[xp.minimum(idx, X.shape[0] - 1)]
        d2_trials = xp.minimum(d2, squared_distances(X, candidates).T)  # (n_trials, N)
        best = int(xp.argmin(d2_trials.sum(axis=1)))
        centers.append(candidates[best])
        d2 = d2_trials[best]
    return xp.stack(centers)


class KMeans(Estimator):
    """k-means with k-means++ seeding, best of ``n_init`` runs (lowest inertia).

    Fitted attributes: ``cluster_centers_`` (K, D), ``labels_`` (N,), ``inertia_`` J of the
    final centres, ``inertia_history_`` J at the seeds and after each Lloyd sweep (never
    increasing), ``weights_`` (K,) cluster fractions and ``variance_`` sigma^2 = J / (N D) (the
    density of the module docstring), ``n_iter_``, ``converged_``, ``n_features_in_``.
    """

    _parameter_names = ("cluster_centers_", "labels_", "inertia_", "inertia_history_",
                        "n_iter_", "converged_")

    def __init__(self, n_clusters=8, n_init=1, max_iter=300, tol=0.0, random_state=None):
        self.n_clusters = n_clusters
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def fit(self, X):
        """Run Lloyd's algorithm from ``n_init`` k-means++ seedings and keep the best; returns self."""
        X = check_array(X)
        n_samples, self.n_features_in_ = X.shape
        K = check_n_components(self.n_clusters, n_samples, "n_clusters")
        check_int(self.n_init, "n_init", minimum=1)
        check_int(self.max_iter, "max_iter", minimum=1)
        check_float(self.tol, "tol", minimum=0)
        xp = get_array_module(X)
        rng = self._generator(None, xp)
        best = None
        for _ in range(self.n_init):
            centers = kmeans_plusplus(X, K, rng)
            d2 = squared_distances(X, centers)

            def sweep():
                nonlocal centers, d2
                indicators = one_hot(xp.argmin(d2, axis=1), K, X.dtype)       # assignment
                counts = indicators.sum(axis=0)[:, None]
                centers = xp.where(counts > 0, (indicators.T @ X) / xp.maximum(counts, 1), centers)
                d2 = squared_distances(X, centers)                             # update done
                return -float(d2.min(axis=1).mean())

            history, n_iter, converged = coordinate_ascent(
                sweep, -float(d2.min(axis=1).mean()), self.tol, self.max_iter, "KMeans")
            run = {"cluster_centers_": centers, "labels_": xp.argmin(d2, axis=1),
                   "inertia_": -history[-1] * n_samples,
                   "inertia_history_": [-h * n_samples for h in history],
                   "n_iter_": n_iter, "converged_": converged}
            if best is None or run["inertia_"] < best["inertia_"]:
                best = run
        self._set_parameters(best)
        counts = one_hot(self.labels_, K, X.dtype).sum(axis=0)
        self.weights_ = counts / n_samples
        self.variance_ = max(self.inertia_ / X.size, float(numpy.finfo(X.dtype).tiny))
        return self

    def transform(self, X):
        """(N, K) Euclidean distances ||x_n - mu_k|| to every centre."""
        X = self._check_X(X)
        return get_array_module(X).sqrt(squared_distances(X, self.cluster_centers_))

    def predict(self, X):
        """(N,) index of the nearest centre."""
        X = self._check_X(X)
        return get_array_module(X).argmin(squared_distances(X, self.cluster_centers_), axis=1)

    def _log_joint(self, X):
        """(N, K) log pi_k + log N(x_n | mu_k, sigma^2 I); an empty cluster has log pi_k = -inf."""
        xp = get_array_module(X)
        D = X.shape[1]
        log_weights = xp.log(xp.maximum(self.weights_, numpy.finfo(X.dtype).tiny))
        return (log_weights - 0.5 * D * math.log(2 * math.pi * self.variance_)
                - squared_distances(X, self.cluster_centers_) / (2 * self.variance_))

    def score_samples(self, X):
        """(N,) log p(x_n) under the isotropic mixture of the module docstring."""
        return logsumexp(self._log_joint(self._check_X(X)), axis=1)

    def sample(self, n_samples=1, random_state=None):
        """``(X, labels)`` from the isotropic mixture: k ~ Cat(pi), x ~ N(mu_k, sigma^2 I).
        ``random_state=None`` uses the estimator's ``random_state``."""
        check_is_fitted(self, "cluster_centers_")
        n_samples = check_int(n_samples, "n_samples", minimum=1)
        xp = get_array_module(self.cluster_centers_)
        rng = self._generator(random_state, xp)
        K, D = self.cluster_centers_.shape
        cdf = xp.cumsum(self.weights_)
        labels = xp.minimum(xp.searchsorted(cdf, rng.random(n_samples, dtype=cdf.dtype) * cdf[-1],
                                            side="right"), K - 1)
        z = rng.standard_normal((n_samples, D), dtype=self.cluster_centers_.dtype)
        return self.cluster_centers_[labels] + math.sqrt(self.variance_) * z, labels
