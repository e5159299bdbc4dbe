"""Coordinate-ascent variational inference (CAVI) for a Bayesian mixture of unit-variance Gaussians.

The worked example of Blei, Kucukelbir & McAuliffe (2017), "Variational Inference: A Review for
Statisticians", section 3.1 and Algorithm 2, here for x in R^D (the paper has D = 1):
Model:      mu_k ~ N(0, sigma^2 I),  c_i ~ Categorical(1/K, ..., 1/K),  x_i | c_i, mu ~ N(mu_{c_i}, I)
Mean field: q(mu_k) = N(m_k, s2_k I),  q(c_i) = Categorical(phi_i)
Objective:  ELBO = E[log p(mu, c, x)] - E[log q(mu, c)], computed in closed form after each sweep.

One sweep of coordinate ascent (each update maximises the ELBO in its block, so it never decreases):
    phi_ik  propto exp( E[mu_k]^T x_i - E[mu_k^T mu_k] / 2 ),   E[mu_k^T mu_k] = m_k^T m_k + D s2_k
    m_k     = sum_i phi_ik x_i / (1/sigma^2 + sum_i phi_ik),   s2_k = 1 / (1/sigma^2 + sum_i phi_ik)
ELBO terms:
    E[log p(mu_k)]       = -D/2 log(2 pi sigma^2) - E[mu_k^T mu_k] / (2 sigma^2)
    E[log p(c_i)]        = -log K
    E[log p(x_i | c_i)]  = sum_k phi_ik (-D/2 log 2pi - (x_i^T x_i - 2 x_i^T m_k + E[mu_k^T mu_k]) / 2)
    -E[log q(c_i)]       = -sum_k phi_ik log phi_ik
    -E[log q(mu_k)]      = D/2 (1 + log(2 pi s2_k))
Deck 003 writes the q(c_i) update without the exp and the normalisation; minigen follows the paper
(phi_ik = exp(...) / sum_j exp(...)).

For new data, ``score_samples`` is the per-example bound on the posterior predictive
log p(x | X) >= log sum_k (1/K) exp(E_q[log N(x | mu_k, I)])   (Jensen under q(mu), c summed out)
    E_q[log N(x | mu_k, I)] = -D/2 log 2pi - (x^T x - 2 x^T m_k + E[mu_k^T mu_k]) / 2,
and ``sample`` draws from the approximate posterior predictive: mu_k ~ q(mu_k), c ~ Cat(1/K),
x ~ N(mu_c, I).
"""
import math

from ..backend import get_array_module
from ..numerics import logsumexp
from ..validation import check_array, check_float, check_int, check_is_fitted, check_n_components
from .estimator import Estimator, coordinate_ascent


class GaussianMixtureCAVI(Estimator):
    """Blei et al.'s Bayesian mixture of unit-variance Gaussians, fitted by CAVI.

    ``prior_std`` is sigma, the prior standard deviation of each component mean.
    Fitted attributes (named as in the paper): ``m_`` (K, D) and ``s2_`` (K,), the variational
    means and variances of the component means; ``phi_`` (N, K) the variational assignment
    probabilities of the training samples; ``elbo_history_`` (the ELBO per sample, ELBO / N, at
    the start and after each sweep), ``lower_bound_`` (its final value), ``n_iter_`` (sweeps
    run), ``converged_``. Convergence (``coordinate_ascent``): the ELBO per sample changes by at
    most ``tol`` in one sweep. Initialisation: m_k at K data points drawn without replacement,
    s2_k = 1, and phi its optimal update.
    """

    _parameter_names = ("m_", "s2_", "phi_")

    def __init__(self, n_components=2, prior_std=1.0, max_iter=100, tol=1e-6,
                 random_state=None):
        self.n_components = n_components
        self.prior_std = prior_std
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def fit(self, X):
        """Run CAVI sweeps until the ELBO per sample stops changing; returns self."""
        X = check_array(X)
        xp = get_array_module(X)
        n_samples, self.n_features_in_ = X.shape
        K = check_n_components(self.n_components, n_samples)
        sigma2 = check_float(self.prior_std, "prior_std", minimum=0, strict=True) ** 2
        check_int(self.max_iter, "max_iter", minimum=1)
        check_float(self.tol, "tol", minimum=0)
        rng = self._generator(None, xp)
        self.m_ = X[xp.argsort(rng.random(n_samples))[:K]]
        self.s2_ = xp.ones(K, dtype=X.dtype)
        log_phi = self._log_phi(X)
        self.phi_ = xp.exp(log_phi)
        start = self._elbo(X, self.phi_, log_phi, sigma2) / n_samples

        def sweep():
            log_phi = self._log_phi(X)                     # q(c_i) update
            self.phi_ = xp.exp(log_phi)
            precision = 1 / sigma2 + self.phi_.sum(axis=0)  # q(mu_k) update
            self.m_ = (self.phi_.T @ X) / precision[:, None]
            self.s2_ = 1 / precision
            return self._elbo(X, self.phi_, log_phi, sigma2) / n_samples

        self.elbo_history_, self.n_iter_, self.converged_ = coordinate_ascent(
            sweep, start, self.tol, self.max_iter, "GaussianMixtureCAVI")
        self.lower_bound_ = self.elbo_history_[-1]
        return self

    def _expected_mu_squared(self):
        """E[mu_k^T mu_k] = m_k^T m_k + D s2_k, (K,)."""
        return (self.m_ ** 2).sum(axis=1) + self.m_.shape[1] * self.s2_

    def _log_phi(self, X):
        """log phi_ik = m_k^T x_i - E[mu_k^T mu_k] / 2 - log normaliser."""
        log_phi = X @ self.m_.T - 0.5 * self._expected_mu_squared()
        return log_phi - logsumexp(log_phi, axis=1)[:, None]

    def _elbo(self, X, phi, log_phi, sigma2):
        """The ELBO in closed form (terms listed in the module docstring)."""
        xp = get_array_module(X)
        (N, D), K = X.shape, self.m_.shape[0]
        E_mu2 = self._expected_mu_squared()
        log_p_mu = -0.5 * D * K * math.log(2 * math.pi * sigma2) - E_mu2.sum() / (2 * sigma2)
        log_p_c = -N * math.log(K)
        E_sq_dist = (X ** 2).sum(axis=1)[:, None] - 2 * (X @ self.m_.T) + E_mu2  # E||x_i - mu_k||^2
        log_p_x = xp.sum(phi * (-0.5 * D * math.log(2 * math.pi) - 0.5 * E_sq_dist))
        entropy_c = -xp.sum(phi * log_phi)
        entropy_mu = 0.5 * D * xp.sum(1 + xp.log(2 * math.pi * self.s2_))
        return float(log_p_mu + log_p_c + log_p_x + entropy_c + entropy_mu)

    def _expected_log_likelihood(self, X):
        """(N, K) E_q[log N(x_n | mu_k, I)] (module docstring)."""
        D = X.shape[1]
        return (-0.5 * D * math.log(2 * math.pi) - 0.5 * (X ** 2).sum(axis=1)[:, None]
                + X @ self.m_.T - 0.5 * self._expected_mu_squared())

    def score_samples(self, X):
        """(N,) lower bound on the posterior predictive log p(x_n | X_train) (module docstring)."""
        X = self._check_X(X)
        return logsumexp(self._expected_log_likelihood(X), axis=1) - math.log(self.m_.shape[0])

    def predict_proba(self, X):
        """(N, K) assignment probabilities phi of new samples under the fitted q(mu)."""
        return get_array_module(self.m_).exp(self._log_phi(self._check_X(X)))

    def predict(self, X):
        """(N,) the most probable component of each sample."""
        phi = self.predict_proba(X)
        return get_array_module(phi).argmax(phi, axis=1)

    def sample(self, n_samples=1, random_state=None):
        """Draw ``(X, labels)`` from the approximate posterior predictive: mu_k ~ q(mu_k) once per
        call, c ~ Cat(1/K), x ~ N(mu_c, I). ``random_state=None`` uses the estimator's own."""
        check_is_fitted(self, "m_")
        n_samples = check_int(n_samples, "n_samples", minimum=1)
        xp = get_array_module(self.m_)
        rng = self._generator(random_state, xp)
        K, D = self.m_.shape
        mu = self.m_ + xp.sqrt(self.s2_)[:, None] * rng.standard_normal((K, D), dtype=self.m_.dtype)
        labels = rng.integers(0, K, size=n_samples)
        return mu[labels] + rng.standard_normal((n_samples, D), dtype=self.m_.dtype), labels
