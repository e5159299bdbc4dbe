"""Variational Bayesian Gaussian mixture, fitted by coordinate ascent (Bishop, PRML section 10.2).

Model (PRML 10.37-10.40):
    pi ~ Dir(alpha_0),  (mu_k, Lambda_k) ~ N(mu_k | m_0, (beta_0 Lambda_k)^-1) W(Lambda_k | W_0, nu_0),
    z_n ~ Cat(pi),      x_n | z_n = k ~ N(mu_k, Lambda_k^-1)
Mean field (PRML 10.42, 10.55, 10.59):
    q(Z) q(pi) q(mu, Lambda) = prod_n Cat(z_n | r_n) Dir(pi | alpha)
                               prod_k N(mu_k | m_k, (beta_k Lambda_k)^-1) W(Lambda_k | W_k, nu_k)
Objective: the ELBO L(q) = E[log p(X, Z, pi, mu, Lambda)] - E[log q] (PRML 10.70-10.77), which never
decreases from one sweep to the next.

E step ("variational E", PRML 10.46, 10.49, 10.64-10.66):
    log rho_nk = E[ln pi_k] + 1/2 E[ln|Lambda_k|] - D/2 ln 2pi - 1/2 E[(x_n - mu_k)^T Lambda_k (x_n - mu_k)]
    E[(x_n - mu_k)^T Lambda_k (x_n - mu_k)] = D / beta_k + nu_k (x_n - m_k)^T W_k (x_n - m_k)
    E[ln|Lambda_k|] = sum_{i=1..D} psi((nu_k + 1 - i) / 2) + D ln 2 + ln|W_k|
    E[ln pi_k] = psi(alpha_k) - psi(sum_j alpha_j)
    r_nk = rho_nk / sum_j rho_nj                                    (in the log domain)
M step ("variational M", PRML 10.51-10.53, 10.58, 10.60-10.63), with N_k, xbar_k, S_k the
responsibility-weighted counts, means and covariances:
    alpha_k = alpha_0 + N_k,  beta_k = beta_0 + N_k,  nu_k = nu_0 + N_k,
    m_k = (beta_0 m_0 + N_k xbar_k) / beta_k,
    W_k^-1 = W_0^-1 + N_k S_k + beta_0 N_k / (beta_0 + N_k) (xbar_k - m_0)(xbar_k - m_0)^T
ELBO: the data terms 10.71 + 10.72 - 10.75 are summed per sample as sum_nk r_nk (log rho_nk - log r_nk)
(the same quantity, free of 0/0 when N_k = 0); the others follow 10.73, 10.74, 10.76, 10.77 with
ln C(alpha) = ln Gamma(sum alpha) - sum ln Gamma(alpha_k)                                (B.23)
ln B(W, nu) = -nu/2 ln|W| - nu D/2 ln 2 - D(D-1)/4 ln pi - sum_i ln Gamma((nu + 1 - i)/2)  (B.79)
H[q(Lambda)] = -ln B(W, nu) - (nu - D - 1)/2 E[ln|Lambda|] + nu D / 2                   (B.82)
Posterior predictive (PRML 10.81): p(x | X) ~ sum_k alpha_k / sum(alpha) St(x | m_k, L_k, nu_k + 1 - D),
    L_k = (nu_k + 1 - D) beta_k / (1 + beta_k) W_k.
A small weight_concentration_prior alpha_0 drives the weights of superfluous components to ~0.
"""
import math

from ..backend import get_array_module, special
from ..numerics import logsumexp
from ..validation import (check_array, check_float, check_int, check_is_fitted,
                          check_n_components, check_option)
from .estimator import Estimator, coordinate_ascent
from .gmm import (INIT_PARAMS, NotPositiveDefiniteError, gaussian_statistics,
                  initial_responsibilities, log_det_precision_cholesky, mahalanobis,
                  precision_cholesky)


class BayesianGaussianMixture(Estimator):
    """Gaussian mixture with Dirichlet and Normal-Wishart priors, fitted by CAVI (full covariances).

    Priors (None: the defaults below, resolved in ``fit`` and stored with a trailing underscore):
    ``weight_concentration_prior`` alpha_0 (1/K), ``mean_precision_prior`` beta_0 (1),
    ``mean_prior`` m_0 (the data mean), ``degrees_of_freedom_prior`` nu_0 (D, must be > D - 1),
    ``covariance_prior`` W_0^-1 (the data covariance plus ``reg_covar`` I).
    Variational parameters: ``weight_concentration_`` alpha (K,), ``mean_precision_`` beta (K,),
    ``means_`` m (K, D), ``degrees_of_freedom_`` nu (K,), ``scale_cholesky_`` P_k with
    W_k = P_k P_k^T (K, D, D). Point summaries: ``weights_`` E[pi], ``covariances_`` E[Lambda_k]^-1,
    ``precisions_cholesky_`` the Cholesky factor of E[Lambda_k] = nu_k W_k.
    ``elbo_history_``: the ELBO per sample, L(q) / N, at the start (an M step on the
    ``init_params`` responsibilities, then an E step) and after each sweep (M step, then E step);
    ``lower_bound_`` its last value; convergence (``coordinate_ascent``) when one sweep changes it
    by at most ``tol``. ``sample`` draws from the posterior predictive (the Student-t mixture of
    ``score_samples``).
    """

    _parameter_names = ("weight_concentration_", "mean_precision_", "means_",
                        "degrees_of_freedom_", "scale_cholesky_", "weights_", "covariances_",
                        "precisions_cholesky_")

    def __init__(self, n_components=1, tol=1e-3, reg_covar=1e-6, max_iter=100,
                 init_params="kmeans", weight_concentration_prior=None, mean_precision_prior=None,
                 mean_prior=None, degrees_of_freedom_prior=None, covariance_prior=None,
                 random_state=None):
        self.n_components = n_components
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.init_params = init_params
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.mean_prior = mean_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def _set_priors(self, X):
        xp = get_array_module(X)
        n_samples, D = X.shape
        K = self.n_components
        alpha0 = self.weight_concentration_prior
        self.weight_concentration_prior_ = check_float(
            1 / K if alpha0 is None else alpha0, "weight_concentration_prior", 0, strict=True)
        beta0 = self.mean_precision_prior
        self.mean_precision_prior_ = check_float(
            1.0 if beta0 is None else beta0, "mean_precision_prior", 0, strict=True)
        nu0 = self.degrees_of_freedom_prior
        self.degrees_of_freedom_prior_ = check_float(
            float(D) if nu0 is None else nu0, "degrees_of_freedom_prior", D - 1, strict=True)
        if self.mean_prior is None:
            self.mean_prior_ = X.mean(axis=0)
        else:
            self.mean_prior_ = check_array(self.mean_prior, "mean_prior", ndim=1, like=X)
            if self.mean_prior_.shape != (D,):
                raise ValueError(f"mean_prior must have shape ({D},), got {self.mean_prior_.shape}")
        if self.covariance_prior is None:
            Xc = X - X.mean(axis=0)
            self.covariance_prior_ = ((Xc.T @ Xc) / n_samples
                                      + self.reg_covar * xp.eye(D, dtype=X.dtype))
        else:
            self.covariance_prior_ = check_array(self.covariance_prior, "covariance_prior", ndim=2,
                                                 like=X)
            if self.covariance_prior_.shape != (D, D):
                raise ValueError(f"covariance_prior must have shape ({D}, {D}), "
                                 f"got {self.covariance_prior_.shape}")
        try:
            self._prior_scale_cholesky = precision_cholesky(self.covariance_prior_)
        except NotPositiveDefiniteError:
            raise ValueError("covariance_prior (W_0^-1) must be symmetric positive definite; with "
                             "the default (the data covariance) increase reg_covar (now "
                             f"{self.reg_covar})") from None

    def fit(self, X):
        """Run CAVI sweeps until the ELBO per sample stops changing; returns self."""
        X = check_array(X)
        n_samples, self.n_features_in_ = X.shape
        K = check_n_components(self.n_components, n_samples)
        check_option(self.init_params, "init_params", INIT_PARAMS)
        check_float(self.tol, "tol", minimum=0)
        check_float(self.reg_covar, "reg_covar", minimum=0)
        check_int(self.max_iter, "max_iter", minimum=1)
        self._set_priors(X)
        xp = get_array_module(X)
        self._m_step(X, initial_responsibilities(X, K, self.init_params,
                                                 self._generator(None, xp)))
        log_rho = self._log_rho(X)
        log_resp = log_rho - logsumexp(log_rho, axis=1)[:, None]     # E step
        start = self._elbo(xp.exp(log_resp), log_resp, log_rho) / n_samples

        def sweep():
            nonlocal log_rho, log_resp
            resp = xp.exp(log_resp)
            self._m_step(X, resp)                                      # M step
            log_rho = self._log_rho(X)
            elbo = self._elbo(resp, log_resp, log_rho) / n_samples
            log_resp = log_rho - logsumexp(log_rho, axis=1)[:, None]   # E step for the next sweep
            return elbo

        self.elbo_history_, self.n_iter_, self.converged_ = coordinate_ascent(
            sweep, start, self.tol, self.max_iter, "BayesianGaussianMixture")
        self.lower_bound_ = self.elbo_history_[-1]
        return self

    def _m_step(self, X, resp):
        """q(pi) and q(mu, Lambda) from the responsibilities (PRML 10.58, 10.60-10.63)."""
        xp = get_array_module(X)
        beta0, m0 = self.mean_precision_prior_, self.mean_prior_
        nu0 = self.degrees_of_freedom_prior_
        Nk, xbar, S = gaussian_statistics(X, resp, "full")
        self.weight_concentration_ = self.weight_concentration_prior_ + Nk
        self.mean_precision_ = beta0 + Nk
        self.degrees_of_freedom_ = nu0 + Nk
        self.means_ = (beta0 * m0 + Nk[:, None] * xbar) / self.mean_precision_[:, None]
        d = xbar - m0
        W_inv = (self.covariance_prior_ + Nk[:, None, None] * S
                 + (beta0 * Nk / (beta0 + Nk))[:, None, None] * d[:, :, None] * d[:, None, :])
        try:
            self.scale_cholesky_ = precision_cholesky(W_inv)
        except NotPositiveDefiniteError:
            raise ValueError("the Wishart scale W_k^-1 = W_0^-1 + ... is not positive definite: "
                             "covariance_prior is (nearly) singular; increase reg_covar "
                             f"(now {self.reg_covar})") from None
        alpha = self.weight_concentration_
        self.weights_ = alpha / alpha.sum()
        self.covariances_ = W_inv / self.degrees_of_freedom_[:, None, None]
        self.precisions_cholesky_ = (self.scale_cholesky_
                                     * xp.sqrt(self.degrees_of_freedom_)[:, None, None])

    # ---------------------------------------------------------- expectations
    def _E_log_pi(self):
        digamma = special(get_array_module(self.weight_concentration_)).digamma
        alpha = self.weight_concentration_
        return digamma(alpha) - digamma(alpha.sum())

    def _E_log_det_Lambda(self):
        xp = get_array_module(self.degrees_of_freedom_)
        D = self.n_features_in_
        nu = self.degrees_of_freedom_
        i = xp.arange(1, D + 1, dtype=nu.dtype)
        log_det_W = 2 * log_det_precision_cholesky(self.scale_cholesky_, "full", D)
        return (special(xp).digamma((nu[:, None] + 1 - i) / 2).sum(axis=1)
                + D * math.log(2) + log_det_W)

    def _log_rho(self, X):
        """(N, K) log rho_nk (PRML 10.46 with 10.64-10.66)."""
        D = X.shape[1]
        E_maha = (D / self.mean_precision_
                  + self.degrees_of_freedom_ * mahalanobis(X, self.means_, self.scale_cholesky_))
        return (self._E_log_pi() + 0.5 * self._E_log_det_Lambda()
                - 0.5 * D * math.log(2 * math.pi) - 0.5 * E_maha)

    def _elbo(self, resp, log_resp, log_rho):
        """L(q), PRML 10.70-10.77, for r from the last E step and the current q(pi, mu, Lambda)."""
        xp = get_array_module(resp)
        gammaln = special(xp).gammaln
        K, D = self.means_.shape
        alpha0, beta0 = self.weight_concentration_prior_, self.mean_precision_prior_
        m0, nu0 = self.mean_prior_, self.degrees_of_freedom_prior_
        alpha, beta, nu = self.weight_concentration_, self.mean_precision_, self.degrees_of_freedom_
        P = self.scale_cholesky_
        E_log_pi, E_log_det = self._E_log_pi(), self._E_log_det_Lambda()
        log_det_W = 2 * log_det_precision_cholesky(P, "full", D)
        log_det_W0 = 2 * float(log_det_precision_cholesky(self._prior_scale_cholesky, "full", D))

        def log_C(alpha):  # Dirichlet normaliser (B.23)
            return gammaln(alpha.sum()) - gammaln(alpha).sum()

        def log_B(log_det_W, nu):  # Wishart normaliser (B.79)
            i = xp.arange(1, D + 1, dtype=resp.dtype)
            return (-0.5 * nu * log_det_W - 0.5 * nu * D * math.log(2)
                    - 0.25 * D * (D - 1) * math.log(math.pi)
                    - gammaln((xp.asarray(nu)[..., None] + 1 - i) / 2).sum(axis=-1))

        data_terms = xp.sum(resp * (log_rho - log_resp))             # 10.71 + 10.72 - 10.75
        E_log_p_pi = (log_C(xp.full(K, alpha0, dtype=resp.dtype))   # 10.73
                      + (alpha0 - 1) * E_log_pi.sum())
        E_log_q_pi = log_C(alpha) + xp.sum((alpha - 1) * E_log_pi)   # 10.76
        maha_m = mahalanobis(m0[None, :], self.means_, P)[0]         # (m_k - m0)^T W_k (m_k - m0)
        trace_W0inv_W = xp.einsum("ij,kjl,kil->k", self.covariance_prior_, P, P)  # Tr(W_0^-1 W_k)
        E_log_p_mu_Lambda = (                                                   # 10.74
            0.5 * xp.sum(D * math.log(beta0 / (2 * math.pi)) + E_log_det - D * beta0 / beta
                         - beta0 * nu * maha_m)
            + K * log_B(log_det_W0, nu0) + 0.5 * (nu0 - D - 1) * E_log_det.sum()
            - 0.5 * xp.sum(nu * trace_W0inv_W))
        entropy_Lambda = -log_B(log_det_W, nu) - 0.5 * (nu - D - 1) * E_log_det + 0.5 * nu * D
        E_log_q_mu_Lambda = xp.sum(0.5 * E_log_det + 0.5 * D * xp.log(beta / (2 * math.pi))
                                   - 0.5 * D - entropy_Lambda)                 # 10.77
        return float(data_terms + E_log_p_pi - E_log_q_pi + E_log_p_mu_Lambda - E_log_q_mu_Lambda)

    # --------------------------------------------------------------- inference
    def predict_proba(self, X):
        """(N, K) variational responsibilities r_nk of new samples; rows sum to 1."""
        log_rho = self._log_rho(self._check_X(X))
        return get_array_module(log_rho).exp(log_rho - logsumexp(log_rho, axis=1)[:, None])

    def predict(self, X):
        """(N,) the most responsible component of each sample."""
        log_rho = self._log_rho(self._check_X(X))
        return get_array_module(log_rho).argmax(log_rho, axis=1)

    def score_samples(self, X):
        """(N,) log of the posterior predictive density, a mixture of Student-t (PRML 10.81)."""
        X = self._check_X(X)
        xp = get_array_module(X)
        gammaln = special(xp).gammaln
        D = X.shape[1]
        alpha, beta = self.weight_concentration_, self.mean_precision_
        dof = self.degrees_of_freedom_ + 1 - D
        c = dof * beta / (1 + beta)                      # L_k = c_k W_k
        delta2 = c * mahalanobis(X, self.means_, self.scale_cholesky_)
        log_det_L = D * xp.log(c) + 2 * log_det_precision_cholesky(self.scale_cholesky_, "full", D)
        log_student = (gammaln((dof + D) / 2) - gammaln(dof / 2) + 0.5 * log_det_L
                       - 0.5 * D * xp.log(dof * math.pi) - 0.5 * (dof + D) * xp.log1p(delta2 / dof))
        return logsumexp(xp.log(alpha / alpha.sum()) + log_student, axis=1)

    def sample(self, n_samples=1, random_state=None):
        """Draw ``(X, labels)`` from the posterior predictive: k ~ Cat(E[pi]), then the Student-t
        x = m_k + sqrt(dof_k / u) A_k e, u ~ chi^2(dof_k), e ~ N(0, I), A_k A_k^T = L_k^-1
        (PRML 10.81; A_k = P_k^-T / sqrt(c_k) with W_k = P_k P_k^T, L_k = c_k W_k).
        ``random_state=None`` uses the estimator's ``random_state``."""
        check_is_fitted(self, "means_")
        n_samples = check_int(n_samples, "n_samples", minimum=1)
        xp = get_array_module(self.means_)
        rng = self._generator(random_state, xp)
        K, D = self.means_.shape
        cdf = xp.cumsum(self.weights_)
        labels = xp.minimum(xp.searchsorted(cdf, rng.random(n_samples, dtype=cdf.dtype) * cdf[-1],
                                            side="right"), K - 1)
        dof = self.degrees_of_freedom_ + 1 - D
        c = dof * self.mean_precision_ / (1 + self.mean_precision_)
        e = rng.standard_normal((n_samples, D), dtype=self.means_.dtype)
        u = 2 * rng.standard_gamma(dof[labels] / 2).astype(self.means_.dtype)   # chi^2(dof)
        X = xp.empty((n_samples, D), dtype=self.means_.dtype)
        for k in range(K):
            idx = xp.nonzero(labels == k)[0]
            # rows A_k e = P_k^-T e / sqrt(c_k): solve P_k^T y = e for all rows at once
            y = xp.linalg.solve(self.scale_cholesky_[k].T, e[idx].T).T / math.sqrt(float(c[k]))
            X[idx] = self.means_[k] + y * xp.sqrt(dof[k] / u[idx])[:, None]
        return X, labels
