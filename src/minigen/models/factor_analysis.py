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
           Psi_new = diag(S - W_new B S)          (FA, clamped at a floor, see NOISE_FLOOR)
           sigma^2_new = (1/D) tr(S - W_new B S)  (PPCA, PRML 12.53-12.57; Tipping & Bishop 1999)
Closed form for PPCA (PRML 12.45-12.46), S = U diag(lambda) U^T sorted descending:
           sigma^2 = mean(lambda_{L+1..D}),   W = U_L (diag(lambda_{1..L}) - sigma^2 I)^{1/2}
Posterior and log-likelihood go through the SVD Psi^-1/2 W = U diag(s) V^T (never a D x D
inverse, and no ill-conditioned L x L inverse when some noise variances are tiny):
           G = V diag(1/(1 + s^2)) V^T,   log|C| = log|Psi| + sum_j log(1 + s_j^2)
"""
import math

from ..backend import get_array_module
from ..random import get_generator
from ..validation import (check_array, check_float, check_int, check_is_fitted,
                          check_n_components, check_n_features, check_option)

# Noise variances are kept >= NOISE_FLOOR * (mean feature variance). The floor only matters
# for (near-)constant features, whose variance would otherwise go to 0 and the likelihood to
# infinity; clamping is the exact M step under the constraint Psi >= floor, so EM stays monotone.
NOISE_FLOOR = 1e-6


class FactorAnalysis:
    """Factor analysis fitted by EM.

    Fitted attributes: ``components_`` W^T (L, D), ``noise_variance_`` diag(Psi) (D,),
    ``mean_`` (D,), ``log_likelihood_history_`` (mean log-likelihood per sample of the initial
    parameters and after each EM iteration), ``n_iter_``, ``converged_``.
    Convergence: the total log-likelihood (N times the mean) grows by less than ``tol``.
    """

    def __init__(self, n_components=1, tol=1e-2, max_iter=1000, random_state=None):
        self.n_components = n_components
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def _prepare(self, X):
        """Check X, set mean_ and return the sample covariance S."""
        X = check_array(X)
        n_samples, n_features = X.shape
        check_n_components(self.n_components, n_samples)
        check_int(self.n_components, "n_components", maximum=n_features)
        self.n_features_in_ = n_features
        self._n_samples = n_samples
        self.mean_ = X.mean(axis=0)
        Xc = X - self.mean_
        S = (Xc.T @ Xc) / n_samples
        mean_variance = float(get_array_module(S).trace(S)) / n_features
        if not mean_variance > 0:
            raise ValueError("X has zero variance in every feature; there is nothing to model")
        self._noise_floor = NOISE_FLOOR * mean_variance
        return S

    def fit(self, X):
        """Fit W and Psi by EM from a random W; returns self."""
        check_float(self.tol, "tol", minimum=0)
        check_int(self.max_iter, "max_iter", minimum=0)
        S = self._prepare(X)
        xp = get_array_module(S)
        D, L = S.shape[0], self.n_components
        rng = get_generator(self.random_state, xp)
        var = xp.diagonal(S)
        W = rng.standard_normal((D, L), dtype=S.dtype) * math.sqrt(float(var.mean()) / L)
        psi = self._noise_update(var)
        history = [mean_log_likelihood(S, W, psi)]
        self.converged_ = False
        for _ in range(self.max_iter):
            W, psi = self._em_step(S, W, psi)
            history.append(mean_log_likelihood(S, W, psi))
            if (history[-1] - history[-2]) * self._n_samples < self.tol:
                self.converged_ = True
                break
        self._set_parameters(W, psi, history)
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

    def _set_parameters(self, W, psi, history):
        self.components_ = W.T
        self.noise_variance_ = psi
        self.log_likelihood_history_ = history
        self.n_iter_ = len(history) - 1

    # --------------------------------------------------------------- inference
    def _psi(self):
        """diag(Psi) as a (D,) vector (PPCA stores sigma^2 as a scalar)."""
        xp = get_array_module(self.components_)
        return xp.broadcast_to(self.noise_variance_, (self.n_features_in_,))

    def _check_X(self, X):
        check_is_fitted(self, "components_")
        X = check_array(X, like=self.components_)
        check_n_features(X, self.n_features_in_, estimator=self)
        return X

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

    def score(self, X):
        """Mean log-likelihood per sample."""
        return float(self.score_samples(X).mean())

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
        rng = get_generator(self.random_state if random_state is None else random_state, xp)
        dtype = self.components_.dtype
        z = rng.standard_normal((n_samples, self.n_components), dtype=dtype)
        eps = rng.standard_normal((n_samples, self.n_features_in_), dtype=dtype)
        return z @ self.components_ + self.mean_ + eps * xp.sqrt(self._psi())


class PPCA(FactorAnalysis):
    """Probabilistic PCA (Tipping & Bishop 1999): factor analysis with Psi = sigma^2 I.

    ``method="closed_form"``: the maximum-likelihood solution from the eigendecomposition of S;
    ``method="em"``: EM, whose log-likelihood converges to the closed form's.
    ``noise_variance_`` is sigma^2 (a 0-d array); other attributes as in ``FactorAnalysis``
    (the closed form has a one-entry ``log_likelihood_history_`` and ``n_iter_ = 0``).
    """

    def __init__(self, n_components=1, method="em", tol=1e-2, max_iter=1000, random_state=None):
        super().__init__(n_components, tol=tol, max_iter=max_iter, random_state=random_state)
        self.method = method

    def fit(self, X):
        """Fit by EM or in closed form (``method``); returns self."""
        check_option(self.method, "method", ("em", "closed_form"))
        if self.method == "em":
            return super().fit(X)
        S = self._prepare(X)
        xp = get_array_module(S)
        D, L = S.shape[0], self.n_components
        lam, U = xp.linalg.eigh(S)
        lam, U = lam[::-1], U[:, ::-1]               # descending eigenvalues
        sigma2 = max(float(lam[L:].mean()) if L < D else 0.0, self._noise_floor)
        W = U[:, :L] * xp.sqrt(xp.maximum(lam[:L] - sigma2, 0))
        psi = xp.full(D, sigma2, dtype=S.dtype)
        self.converged_ = True
        self._set_parameters(W, psi, [mean_log_likelihood(S, W, psi)])
        return self

    def _noise_update(self, residual):
        """M step for sigma^2: the mean of the per-feature residual variances, clamped."""
        xp = get_array_module(residual)
        return xp.full_like(residual, max(float(residual.mean()), self._noise_floor))

    def _set_parameters(self, W, psi, history):
        super()._set_parameters(W, get_array_module(psi).asarray(psi[0]), history)


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
