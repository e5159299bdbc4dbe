"""Factor analysis and probabilistic PCA: linear-Gaussian latent-variable models (PRML 12.2).

Model:      z ~ N(0, I_L),  x | z ~ N(W z + mu, Psi),  so  x ~ N(mu, C),  C = W W^T + Psi
            Psi diagonal for factor analysis; Psi = sigma^2 I for probabilistic PCA.
Objective:  mean log-likelihood  -1/2 [D log 2pi + log|C| + tr(C^-1 S)],  S the sample covariance.

EM (Ghahramani & Hinton 1996; PRML 12.66-12.70, written with the sufficient statistic S so an
iteration costs O(D^2 L) whatever N):
  E step   G = (I + W^T Psi^-1 W)^-1              posterior covariance of z
           E[z | x] = B (x - mu),  B = G W^T Psi^-1
           (1/N) sum E[z] (x - mu)^T = B S,   (1/N) sum E[z z^T] = G + B S B^T
  M step   W_new = S B^T (G + B S B^T)^-1
           Psi_new = diag(S - W_new B S)          (FA, clamped at a per-feature floor, NOISE_FLOOR)
           sigma^2_new = (1/D) tr(S - W_new B S)  (PPCA, PRML 12.53-12.57; Tipping & Bishop 1999)
Closed form for PPCA (PRML 12.45-12.46), S = U diag(lambda) U^T sorted descending:
           sigma^2 = mean(lambda_{L+1..D}),   W = U_L (diag(lambda_{1..L}) - sigma^2 I)^{1/2}
Posterior and log-likelihood go through the SVD Psi^-1/2 W = U diag(s) V^T (never a D x D
inverse, and no ill-conditioned L x L inverse when some noise variances are tiny):
           G = V diag(1/(1 + s^2)) V^T,   log|C| = log|Psi| + sum_j log(1 + s_j^2)
"""
import math

from ..backend import get_array_module
from ..validation import (check_array, check_float, check_int, check_is_fitted,
                          check_n_components, check_option)
from .estimator import Estimator, coordinate_ascent

# Noise variance psi_d is kept >= NOISE_FLOOR * S_dd, relative to feature d's own variance (so
# that a feature in other units cannot clamp the others), and >= NOISE_FLOOR * mean(S_dd) for a
# constant feature (S_dd = 0). The floor only matters for (near-)deterministic features, whose
# noise variance would otherwise go to 0 and the likelihood to infinity; clamping is the exact M
# step under the constraint psi >= floor, so EM stays monotone.
NOISE_FLOOR = 1e-6
INITS = ("pca", "random")


class FactorAnalysis(Estimator):
    """Factor analysis fitted by EM.

    ``init="pca"`` (the default) starts EM from the PPCA closed form (W = U_L (Lambda_L -
    sigma^2 I)^1/2, Psi its residual variances), ``init="random"`` from random loadings. Why the
    PCA start: EM for factor analysis is slow along the directions where the likelihood is flat
    (its convergence rate is the fraction of missing information, Dempster et al. 1977), and from
    a random W on the 8x8 digits it was still 1% below the maximum after 5,000 iterations; from
    the PPCA solution, which already spans nearly the right subspace, it reaches scikit-learn's
    maximum (within 0.2%) in tens of iterations (tests/models/test_factor_analysis.py).

    Fitted attributes: ``components_`` W^T (L, D), ``noise_variance_`` diag(Psi) (D,),
    ``mean_`` (D,), ``log_likelihood_history_`` (mean log-likelihood per sample of the initial
    parameters and after each EM iteration), ``n_iter_``, ``converged_``, ``n_features_in_``.
    Convergence (``coordinate_ascent``): the mean log-likelihood changes by at most ``tol``.
    ``random_state`` is used by ``init="random"`` and by ``sample``.
    """

    _parameter_names = ("components_", "noise_variance_", "mean_")

    def __init__(self, n_components=1, tol=1e-5, max_iter=1000, init="pca", random_state=None):
        self.n_components = n_components
        self.tol = tol
        self.max_iter = max_iter
        self.init = init
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def _prepare(self, X):
        """Check X, set mean_ and return the sample covariance S."""
        X = check_array(X)
        n_samples, n_features = X.shape
        check_n_components(self.n_components, n_samples)
        check_int(self.n_components, "n_components", maximum=n_features)
        self.n_features_in_ = n_features
        self.mean_ = X.mean(axis=0)
        Xc = X - self.mean_
        S = (Xc.T @ Xc) / n_samples
        xp = get_array_module(S)
        variances = xp.diagonal(S)
        mean_variance = float(variances.mean())
        if not mean_variance > 0:
            raise ValueError("X has zero variance in every feature; there is nothing to model")
        self._noise_floor = NOISE_FLOOR * xp.where(variances > 0, variances, mean_variance)
        return S

    def fit(self, X):
        """Fit W and Psi by EM from the PPCA solution (or a random W, ``init``); returns self."""
        check_float(self.tol, "tol", minimum=0)
        check_int(self.max_iter, "max_iter", minimum=1)
        check_option(self.init, "init", INITS)
        S = self._prepare(X)
        xp = get_array_module(S)
        D, L = S.shape[0], self.n_components
        if self.init == "pca":
            W, sigma2 = ppca_closed_form(S, L)
            psi = self._noise_update(xp.diagonal(S) - xp.sum(W ** 2, axis=1))  # diag(S - W W^T)
        else:
            rng = self._generator(None, xp)
            var = xp.diagonal(S)
            W = rng.standard_normal((D, L), dtype=S.dtype) * math.sqrt(float(var.mean()) / L)
            psi = self._noise_update(var)

        def em_step():
            nonlocal W, psi
            W, psi = self._em_step(S, W, psi)
            return mean_log_likelihood(S, W, psi)

        history, self.n_iter_, self.converged_ = coordinate_ascent(
            em_step, mean_log_likelihood(S, W, psi), self.tol, self.max_iter,
            type(self).__name__)
        self._set_fit(W, psi, history)
        return self

    def _em_step(self, S, W, psi):
        """One EM iteration on the sufficient statistic S (see the module docstring)."""
        xp = get_array_module(S)
        G, B = posterior(W, psi)
        SB = S @ B.T                                 # (1/N) sum (x - mu) E[z]^T
        Ezz = G + B @ SB                             # (1/N) sum E[z z^T]
        W_new = xp.linalg.solve(Ezz, SB.T).T         # SB Ezz^-1 (Ezz is symmetric)
        residual = xp.diagonal(S) - xp.sum(W_new * SB, axis=1)  # diag(S - W_new B S)
        return W_new, self._noise_update(residual)

    def _noise_update(self, residual):
        """M step for diag(Psi) from the residual variances diag(S - W_new B S), clamped."""
        xp = get_array_module(residual)
        return xp.maximum(residual, self._noise_floor)

    def _set_fit(self, W, psi, history):
        self.components_ = W.T
        self.noise_variance_ = psi
        self.log_likelihood_history_ = history

    # --------------------------------------------------------------- inference
    def _psi(self):
        """diag(Psi) as a (D,) vector (PPCA stores sigma^2 as a scalar)."""
        xp = get_array_module(self.components_)
        return xp.broadcast_to(self.noise_variance_, (self.n_features_in_,))

    def transform(self, X):
        """(N, L) posterior means E[z | x] = G W^T Psi^-1 (x - mu)."""
        X = self._check_X(X)
        _, B = posterior(self.components_.T, self._psi())
        return (X - self.mean_) @ B.T

    def score_samples(self, X):
        """(N,) log N(x_n | mu, W W^T + Psi). The Mahalanobis term is evaluated as
        (x - mu)^T C^-1 (x - mu) = ||Psi^-1/2 (x - mu - W E[z|x])||^2 + ||E[z|x]||^2,
        a sum of squares, free of the cancellation in Woodbury's form."""
        X = self._check_X(X)
        xp = get_array_module(X)
        W, psi = self.components_.T, self._psi()
        _, B = posterior(W, psi)
        Xc = X - self.mean_
        Ez = Xc @ B.T
        residual = Xc - Ez @ W.T
        maha = xp.sum(residual ** 2 / psi, axis=1) + xp.sum(Ez ** 2, axis=1)
        log_det_C = log_det_covariance(psi, _whitened_svd(W, psi)[1])
        return -0.5 * (maha + log_det_C + X.shape[1] * math.log(2 * math.pi))

    def get_covariance(self):
        """The model covariance C = W W^T + Psi, (D, D)."""
        check_is_fitted(self, "components_")
        xp = get_array_module(self.components_)
        return self.components_.T @ self.components_ + xp.diag(self._psi())

    def sample(self, n_samples=1, random_state=None):
        """(n_samples, D) draws x = W z + mu + Psi^{1/2} eps, z, eps standard normal.
        ``random_state=None`` uses the model's own ``random_state``."""
        check_is_fitted(self, "components_")
        n_samples = check_int(n_samples, "n_samples", minimum=1)
        xp = get_array_module(self.components_)
        rng = self._generator(random_state, xp)
        dtype = self.components_.dtype
        z = rng.standard_normal((n_samples, self.n_components), dtype=dtype)
        eps = rng.standard_normal((n_samples, self.n_features_in_), dtype=dtype)
        return z @ self.components_ + self.mean_ + eps * xp.sqrt(self._psi())


class PPCA(FactorAnalysis):
    """Probabilistic PCA (Tipping & Bishop 1999): factor analysis with Psi = sigma^2 I.

    ``method="closed_form"``: the maximum-likelihood solution from the eigendecomposition of S;
    ``method="em"``: EM, whose log-likelihood converges to the closed form's; its ``init``
    defaults to "random" (from "pca", the closed form itself, EM would have nothing to do).
    ``noise_variance_`` is sigma^2 (a 0-d array); other attributes as in ``FactorAnalysis``
    (the closed form has a one-entry ``log_likelihood_history_``, ``n_iter_ = 0`` and
    ``converged_ = True``).
    """

    def __init__(self, n_components=1, method="em", tol=1e-5, max_iter=1000, init="random",
                 random_state=None):
        super().__init__(n_components, tol=tol, max_iter=max_iter, init=init,
                         random_state=random_state)
        self.method = method

    def fit(self, X):
        """Fit by EM or in closed form (``method``); returns self."""
        check_option(self.method, "method", ("em", "closed_form"))
        if self.method == "em":
            return super().fit(X)
        S = self._prepare(X)
        W, sigma2 = ppca_closed_form(S, self.n_components)
        psi = self._noise_update(get_array_module(S).full(S.shape[0], sigma2, dtype=S.dtype))
        self.n_iter_, self.converged_ = 0, True
        self._set_fit(W, psi, [mean_log_likelihood(S, W, psi)])
        return self

    def _noise_update(self, residual):
        """M step for sigma^2: the mean of the per-feature residual variances, clamped at the
        mean of the per-feature floors (one variance for all features)."""
        xp = get_array_module(residual)
        return xp.full_like(residual, max(float(residual.mean()), float(self._noise_floor.mean())))

    def _set_fit(self, W, psi, history):
        super()._set_fit(W, get_array_module(psi).asarray(psi[0]), history)


def ppca_closed_form(S, L):
    """The PPCA maximum-likelihood W (D, L) and sigma^2 from S's eigendecomposition
    (PRML 12.45-12.46, with R = I)."""
    xp = get_array_module(S)
    lam, U = xp.linalg.eigh(S)
    lam, U = lam[::-1], U[:, ::-1]               # descending eigenvalues
    sigma2 = float(lam[L:].mean()) if L < S.shape[0] else 0.0
    W = U[:, :L] * xp.sqrt(xp.maximum(lam[:L] - sigma2, 0))
    return W, sigma2


def _whitened_svd(W, psi):
    """Thin SVD U diag(s) V^T of the whitened loadings Psi^-1/2 W."""
    xp = get_array_module(W)
    return xp.linalg.svd(W / xp.sqrt(psi)[:, None], full_matrices=False)


def posterior(W, psi):
    """G = (I + W^T Psi^-1 W)^-1 and B = G W^T Psi^-1, so z | x ~ N(B (x - mu), G).

    Through the SVD Psi^-1/2 W = U diag(s) V^T: G = V diag(1 / (1 + s^2)) V^T and
    B = V diag(s / (1 + s^2)) U^T Psi^-1/2, accurate even when I + W^T Psi^-1 W is ill-conditioned
    (noise variances at the floor)."""
    xp = get_array_module(W)
    U, s, Vt = _whitened_svd(W, psi)
    G = (Vt.T / (1 + s ** 2)) @ Vt
    B = (Vt.T * (s / (1 + s ** 2))) @ (U.T / xp.sqrt(psi))
    return G, B


def log_det_covariance(psi, s):
    """log|W W^T + Psi| = log|Psi| + sum log(1 + s^2) (matrix determinant lemma), s the
    singular values of Psi^-1/2 W."""
    xp = get_array_module(psi)
    return xp.sum(xp.log(psi)) + xp.sum(xp.log1p(s ** 2))


def mean_log_likelihood(S, W, psi):
    """-1/2 [D log 2pi + log|C| + tr(C^-1 S)] for C = W W^T + diag(psi), where
    tr(C^-1 S) = tr(S~) - sum_j s_j^2 / (1 + s_j^2) u_j^T S~ u_j with S~ = Psi^-1/2 S Psi^-1/2."""
    xp = get_array_module(S)
    U, s, _ = _whitened_svd(W, psi)
    inv_std = 1 / xp.sqrt(psi)
    S_white = S * inv_std[:, None] * inv_std[None, :]
    explained = xp.sum(U * (S_white @ U), axis=0)   # u_j^T S~ u_j
    trace_Cinv_S = xp.trace(S_white) - xp.sum(s ** 2 / (1 + s ** 2) * explained)
    return float(-0.5 * (S.shape[0] * math.log(2 * math.pi) + log_det_covariance(psi, s)
                         + trace_Cinv_S))
