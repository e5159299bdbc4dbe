"""Gaussian mixture model fitted by expectation-maximisation (Bishop, PRML section 9.2).

Model:      p(x) = sum_k pi_k N(x | mu_k, Sigma_k),  k = 1..K
Objective:  the mean log-likelihood (1/N) sum_n log p(x_n), which EM never decreases.

E step (PRML 9.23), in the log domain so that no density underflows:
    log r_nk = log pi_k + log N(x_n | mu_k, Sigma_k) - logsumexp_j [log pi_j + log N(x_n | mu_j, Sigma_j)]
M step (PRML 9.24-9.27):
    N_k = sum_n r_nk,   pi_k = N_k / N,   mu_k = (1/N_k) sum_n r_nk x_n,
    Sigma_k = (1/N_k) sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T + reg_covar I
covariance_type restricts Sigma_k: "full" as above; "tied" one Sigma = sum_k (N_k / N) Sigma_k;
"diag" only the diagonal of Sigma_k; "spherical" the mean of that diagonal times I.

Densities go through the Cholesky factor P_k of the precision, Sigma_k^-1 = P_k P_k^T
(P_k = L_k^-T for Sigma_k = L_k L_k^T; a vector of 1/std for "diag", a scalar for "spherical"):
    log N(x | mu, Sigma) = -D/2 log(2 pi) + log|P| - 1/2 ||P^T (x - mu)||^2,  log|P| = sum log diag P.

reg_covar keeps every Sigma_k positive definite; without it a component can collapse onto a
single point and the likelihood grows without bound (PRML 9.2.1), which fit reports as an error.
"""
import math

import numpy

from ..backend import get_array_module
from ..numerics import logsumexp, one_hot
from ..validation import (check_array, check_float, check_int, check_is_fitted,
                          check_n_components, check_option, count_distinct_rows)
from .estimator import Estimator, coordinate_ascent
from .kmeans import KMeans, kmeans_plusplus, squared_distances

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
INIT_PARAMS = ("kmeans", "k-means++", "random")


class NotPositiveDefiniteError(numpy.linalg.LinAlgError):
    """A covariance matrix (or variance) is not positive definite."""


def precision_cholesky(covariances, covariance_type="full"):
    """P with Sigma^-1 = P P^T for each covariance: L^-T (upper triangular) for "full"/"tied",
    1/sqrt(variance) for "diag"/"spherical". Raises ``NotPositiveDefiniteError``."""
    xp = get_array_module(covariances)
    if covariance_type in ("diag", "spherical"):
        if not bool(xp.all(covariances > 0)):
            raise NotPositiveDefiniteError("a variance is not positive")
        return 1 / xp.sqrt(covariances)
    try:
        L = xp.linalg.cholesky(covariances)
    except numpy.linalg.LinAlgError as e:
        raise NotPositiveDefiniteError(str(e)) from None
    # CuPy does not raise: it may return NaN or a partly factored matrix, so check the result.
    diagonal = xp.diagonal(L, axis1=-2, axis2=-1)
    if not bool(xp.all(xp.isfinite(L))) or not bool(xp.all(diagonal > 0)):
        raise NotPositiveDefiniteError("Cholesky factorisation failed")
    return xp.ascontiguousarray(xp.swapaxes(inv_lower_triangular(L), -1, -2))


def inv_lower_triangular(L):
    """L^-1 for a (stack of) lower-triangular L, by 2 x 2 blocks:
    [[A, 0], [B, C]]^-1 = [[A^-1, 0], [-C^-1 B A^-1, C^-1]].
    Its work is GEMMs (D^3 / 3 flops); xp.linalg has no triangular solve, and an LU-based
    solve(L, I) was 7x slower at D = 784."""
    xp = get_array_module(L)
    n = L.shape[-1]
    if n <= 64:
        return xp.linalg.inv(L)
    h = n // 2
    A_inv, C_inv = inv_lower_triangular(L[..., :h, :h]), inv_lower_triangular(L[..., h:, h:])
    L_inv = xp.zeros_like(L)
    L_inv[..., :h, :h] = A_inv
    L_inv[..., h:, h:] = C_inv
    L_inv[..., h:, :h] = -C_inv @ (L[..., h:, :h] @ A_inv)
    return L_inv


def _is_positive_definite(covariance, covariance_type):
    try:
        precision_cholesky(covariance, covariance_type)
    except NotPositiveDefiniteError:
        return False
    return True


def mahalanobis(X, means, precisions_cholesky, covariance_type="full"):
    """(N, K) squared distances ||P_k^T (x_n - mu_k)||^2 = (x_n - mu_k)^T Sigma_k^-1 (x_n - mu_k)."""
    xp = get_array_module(X, means)
    P = precisions_cholesky
    maha = xp.empty((X.shape[0], means.shape[0]), dtype=X.dtype)
    diff, y = xp.empty_like(X), xp.empty_like(X)  # reused: no (N, D) allocation per component
    for k in range(means.shape[0]):
        xp.subtract(X, means[k], out=diff)  # subtract first: X @ P - mu @ P would cancel digits
        if covariance_type == "full":
            xp.matmul(diff, P[k], out=y)
        elif covariance_type == "tied":
            xp.matmul(diff, P, out=y)
        else:
            xp.multiply(diff, P[k], out=y)
        maha[:, k] = xp.einsum("ij,ij->i", y, y)
    return maha


def log_det_precision_cholesky(precisions_cholesky, covariance_type, n_features):
    """log|P_k| = -1/2 log|Sigma_k| for each component (a scalar for "tied")."""
    xp = get_array_module(precisions_cholesky)
    P = precisions_cholesky
    if covariance_type in ("full", "tied"):
        return xp.sum(xp.log(xp.diagonal(P, axis1=-2, axis2=-1)), axis=-1)
    if covariance_type == "diag":
        return xp.sum(xp.log(P), axis=1)
    return n_features * xp.log(P)


def gaussian_log_prob(X, means, precisions_cholesky, covariance_type="full"):
    """(N, K) log N(x_n | mu_k, Sigma_k) from the precision Cholesky factors."""
    maha = mahalanobis(X, means, precisions_cholesky, covariance_type)
    log_det = log_det_precision_cholesky(precisions_cholesky, covariance_type, X.shape[1])
    return -0.5 * (X.shape[1] * math.log(2 * math.pi) + maha) + log_det


def gaussian_statistics(X, resp, covariance_type="full"):
    """N_k, the weighted means xbar_k and covariances S_k (PRML 9.25-9.27 without reg_covar),
    S_k restricted to ``covariance_type``."""
    xp = get_array_module(X)
    n_samples, d = X.shape
    # An empty component (N_k = 0) gets finite statistics instead of 0/0.
    Nk = resp.sum(axis=0) + 10 * float(numpy.finfo(X.dtype).eps)
    means = (resp.T @ X) / Nk[:, None]
    A = xp.empty_like(X)  # reused: no (N, D) allocation per component
    if covariance_type in ("full", "tied"):
        covariances = xp.empty((len(Nk), d, d), dtype=X.dtype)
        for k in range(len(Nk)):
            xp.subtract(X, means[k], out=A)
            A *= xp.sqrt(resp[:, k])[:, None]   # rows sqrt(r_nk) (x_n - mu_k)
            covariances[k] = (A.T @ A) / Nk[k]  # A^T A: one symmetric rank-N update
        if covariance_type == "tied":
            covariances = xp.tensordot(Nk / n_samples, covariances, axes=1)
    else:
        covariances = xp.empty((len(Nk), d), dtype=X.dtype)
        for k in range(len(Nk)):
            xp.subtract(X, means[k], out=A)
            covariances[k] = resp[:, k] @ xp.square(A, out=A) / Nk[k]
        if covariance_type == "spherical":
            covariances = covariances.mean(axis=1)
    return Nk, means, covariances


def initial_responsibilities(X, n_components, init_params, rng):
    """(N, K) starting responsibilities: hard assignments of ``KMeans`` (Lloyd from k-means++
    seeds) or of the k-means++ seeds alone, or random ones; draws from generator ``rng``."""
    xp = get_array_module(X)
    if init_params == "random":
        resp = rng.random((X.shape[0], n_components), dtype=X.dtype)
        return resp / resp.sum(axis=1, keepdims=True)
    if init_params == "kmeans":
        labels = KMeans(n_components, random_state=rng).fit(X).labels_
    else:
        labels = xp.argmin(squared_distances(X, kmeans_plusplus(X, n_components, rng)), axis=1)
    return one_hot(labels, n_components, X.dtype)


class GaussianMixture(Estimator):
    """Gaussian mixture fitted by EM (scikit-learn's API and attribute shapes).

    Fitted attributes: ``weights_`` (K,), ``means_`` (K, D), ``covariances_`` ((K, D, D) full,
    (D, D) tied, (K, D) diag, (K,) spherical), ``precisions_cholesky_`` (same shapes),
    ``converged_``, ``n_iter_``, ``lower_bound_`` (mean log-likelihood per sample of the final
    parameters) and ``log_likelihood_history_`` (that quantity for the initial parameters and
    after each EM iteration, of the best of the ``n_init`` runs), ``n_features_in_``.
    Convergence (``coordinate_ascent``): the mean log-likelihood changes by at most ``tol`` in
    one iteration. ``init_params="kmeans"`` starts from the labels of ``minigen.models.KMeans``.

    With ``reg_covar=0`` a feature that is constant in X has zero variance in every component
    (full, tied and diag covariances) and an unbounded likelihood: ``fit`` refuses it up front,
    naming the feature (a spherical covariance averages over features and stays well defined).
    """

    _parameter_names = ("weights_", "means_", "covariances_", "precisions_cholesky_",
                        "lower_bound_", "log_likelihood_history_", "n_iter_", "converged_")

    def __init__(self, n_components=1, covariance_type="full", tol=1e-3, reg_covar=1e-6,
                 max_iter=100, n_init=1, init_params="kmeans", random_state=None):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def fit(self, X):
        """Run EM ``n_init`` times from different starts and keep the best; returns self."""
        X = check_array(X)
        xp = get_array_module(X)
        n_samples, n_features = X.shape
        K = check_n_components(self.n_components, n_samples)
        check_option(self.covariance_type, "covariance_type", COVARIANCE_TYPES)
        check_option(self.init_params, "init_params", INIT_PARAMS)
        check_float(self.tol, "tol", minimum=0)
        reg_covar = check_float(self.reg_covar, "reg_covar", minimum=0)
        check_int(self.max_iter, "max_iter", minimum=1)
        check_int(self.n_init, "n_init", minimum=1)
        if reg_covar == 0 and self.covariance_type != "spherical":
            _check_no_constant_feature(X, self.covariance_type)
        n_distinct = count_distinct_rows(X, at_most=K)
        if n_distinct < K:
            raise ValueError(f"X has only {n_distinct} distinct samples, fewer than "
                             f"n_components={K}: some components would have no point of their "
                             f"own and collapse; use n_components <= {n_distinct}")
        self.n_features_in_ = n_features
        self._variance_floor = float(numpy.finfo(X.dtype).eps) * X.var(axis=0)
        rng = self._generator(None, xp)
        best = None
        for _ in range(self.n_init):
            self._m_step(X, initial_responsibilities(X, K, self.init_params, rng), iteration=0)
            log_resp, start = self._e_step(X)
            iteration = 0

            def em_step():
                nonlocal log_resp, iteration
                iteration += 1
                self._m_step(X, xp.exp(log_resp), iteration)
                log_resp, log_likelihood = self._e_step(X)
                return log_likelihood

            history, self.n_iter_, self.converged_ = coordinate_ascent(
                em_step, start, self.tol, self.max_iter, "GaussianMixture")
            self.lower_bound_, self.log_likelihood_history_ = history[-1], history
            if best is None or self.lower_bound_ > best["lower_bound_"]:
                best = self._get_parameters()
        self._set_parameters(best)
        return self

    def _e_step(self, X):
        """log r_nk and the mean log-likelihood under the current parameters."""
        weighted = self._weighted_log_prob(X)
        log_px = logsumexp(weighted, axis=1)
        return weighted - log_px[:, None], float(log_px.mean())

    def _m_step(self, X, resp, iteration):
        """pi, mu, Sigma from the responsibilities (PRML 9.24-9.27), then Sigma's Cholesky."""
        xp = get_array_module(X)
        Nk, means, covariances = gaussian_statistics(X, resp, self.covariance_type)
        if self.covariance_type in ("full", "tied"):
            covariances += self.reg_covar * xp.eye(X.shape[1], dtype=X.dtype)
        else:
            covariances += self.reg_covar
        self.precisions_cholesky_ = self._checked_precision_cholesky(covariances, Nk, iteration)
        self.weights_ = Nk / Nk.sum()
        self.means_ = means
        self.covariances_ = covariances

    def _checked_precision_cholesky(self, covariances, Nk, iteration):
        """precision_cholesky, or a ValueError naming the collapsed components. A component has
        collapsed when its covariance is not positive definite or a variance along a feature
        is within rounding (eps times that feature's variance in X) of zero."""
        xp = get_array_module(covariances)
        ctype = self.covariance_type
        per_component = covariances[None] if ctype == "tied" else covariances
        variances = (per_component[:, None] if ctype == "spherical" else
                     per_component if ctype == "diag" else
                     xp.diagonal(per_component, axis1=-2, axis2=-1))
        floor = self._variance_floor.mean() if ctype == "spherical" else self._variance_floor
        collapsed = xp.any(variances <= floor, axis=1)
        if not bool(collapsed.any()):
            try:
                return precision_cholesky(covariances, ctype)
            except NotPositiveDefiniteError:
                pass
        bad = [k for k in range(len(per_component))
               if bool(collapsed[k]) or not _is_positive_definite(per_component[k], ctype)]
        which = "the tied covariance" if ctype == "tied" else f"component(s) {bad}"
        counts = ", ".join(f"{float(n):.3g}" for n in Nk)
        raise ValueError(
            f"GaussianMixture: the covariance of {which} became singular at EM iteration "
            f"{iteration}: a component has collapsed onto too few points (or X has a constant "
            f"feature) to estimate a {ctype} covariance in {covariances.shape[-1]} dimensions "
            f"(effective samples per component: {counts}). Increase reg_covar (now "
            f"{self.reg_covar}), e.g. to 1e-6 times the data variance, or use fewer components.")

    # --------------------------------------------------------------- inference
    def _weighted_log_prob(self, X):
        xp = get_array_module(X)
        return (gaussian_log_prob(X, self.means_, self.precisions_cholesky_, self.covariance_type)
                + xp.log(self.weights_))

    def score_samples(self, X):
        """(N,) log p(x_n) under the fitted mixture."""
        return logsumexp(self._weighted_log_prob(self._check_X(X)), axis=1)

    def predict_proba(self, X):
        """(N, K) responsibilities p(k | x_n); each row sums to 1."""
        weighted = self._weighted_log_prob(self._check_X(X))
        return get_array_module(weighted).exp(weighted - logsumexp(weighted, axis=1)[:, None])

    def predict(self, X):
        """(N,) the most responsible component of each sample."""
        weighted = self._weighted_log_prob(self._check_X(X))
        return get_array_module(weighted).argmax(weighted, axis=1)

    def sample(self, n_samples=1, random_state=None):
        """Draw ``(X, labels)``: k ~ Categorical(pi), x ~ N(mu_k, Sigma_k).
        ``random_state=None`` uses the model's own ``random_state``."""
        check_is_fitted(self, "means_")
        n_samples = check_int(n_samples, "n_samples", minimum=1)
        xp = get_array_module(self.means_)
        rng = self._generator(random_state, xp)
        K, d = self.means_.shape
        cdf = xp.cumsum(self.weights_)
        labels = xp.minimum(xp.searchsorted(cdf, rng.random(n_samples, dtype=cdf.dtype) * cdf[-1],
                                            side="right"), K - 1)
        if self.covariance_type in ("full", "tied"):
            L = xp.linalg.cholesky(self.covariances_)  # x = mu + L z with Sigma = L L^T
        else:
            L = xp.sqrt(self.covariances_)  # standard deviations
        X = xp.empty((n_samples, d), dtype=self.means_.dtype)
        for k in range(K):
            idx = xp.nonzero(labels == k)[0]
            z = rng.standard_normal((len(idx), d), dtype=X.dtype)
            if self.covariance_type == "full":
                X[idx] = self.means_[k] + z @ L[k].T
            elif self.covariance_type == "tied":
                X[idx] = self.means_[k] + z @ L.T
            else:
                X[idx] = self.means_[k] + z * L[k]
        return X, labels

    # ------------------------------------------------------- model selection
    def _n_parameters(self):
        K, d = self.means_.shape
        n_cov = {"full": K * d * (d + 1) // 2, "tied": d * (d + 1) // 2,
                 "diag": K * d, "spherical": K}[self.covariance_type]
        return n_cov + K * d + K - 1

    def bic(self, X):
        """Bayesian information criterion -2 log L + p log N (lower is better)."""
        log_px = self.score_samples(X)
        return -2 * float(log_px.sum()) + self._n_parameters() * math.log(log_px.shape[0])

    def aic(self, X):
        """Akaike information criterion -2 log L + 2p (lower is better)."""
        return -2 * float(self.score_samples(X).sum()) + 2 * self._n_parameters()


def _check_no_constant_feature(X, covariance_type):
    """With reg_covar=0, a constant feature makes every full/tied/diag covariance singular: refuse
    it, whatever its value (an exact test, so rounding of the mean cannot decide)."""
    xp = get_array_module(X)
    constant = xp.all(X == X[:1], axis=0)
    if bool(constant.any()):
        j = int(xp.argmax(constant))
        raise ValueError(
            f"GaussianMixture: feature {j} of X is constant (every value is {float(X[0, j])!r}), so "
            f"with reg_covar=0 its variance is 0 in every component and the likelihood is "
            f"unbounded for covariance_type={covariance_type!r}. Set reg_covar > 0 (e.g. the "
            f"default 1e-6), drop the feature, or use covariance_type='spherical'.")
