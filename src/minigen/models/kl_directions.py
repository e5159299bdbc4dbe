"""Reverse vs forward KL: the mean-field Gaussian fitted to a correlated Gaussian both ways (deck 003).

Lecture: deck 003 (variational inference minimises KL(q || p), "mode seeking", which
underestimates the variance; expectation propagation-like fits minimise KL(p || q), "mass
covering"). Reference: Bishop, PRML Sec. 10.1.2 (Fig. 10.2) and eqs. (10.12)-(10.13).

Target p = N(mu, Sigma) in D dimensions, precision Lambda = Sigma^-1; the approximation is a
fully factorised (mean-field) Gaussian q = N(m, diag(s)). Both divergences have closed forms::

    KL(q || p) = 1/2 [ sum_i Lambda_ii s_i + (m - mu)' Lambda (m - mu) - D + log|Sigma| - sum_i log s_i ]
    KL(p || q) = 1/2 [ sum_i (Sigma_ii + (mu_i - m_i)^2) / s_i + sum_i log s_i - D - log|Sigma| ]

and their minimisers are known (PRML 10.1.2)::

    reverse, KL(q || p):  m = mu,  s_i = 1 / Lambda_ii  <=  Sigma_ii      (too narrow: it under-
                                                                          estimates the variance)
    forward, KL(p || q):  m = mu,  s_i = Sigma_ii                         (matches the marginals)

``fit_mean_field_gaussian`` finds them by gradient descent on minigen tensors (Adam on m and
log s; over the last 30% of the steps its step size decays geometrically to a thousandth so
that it settles), the way a
variational method would, so the closed forms can check it.
"""
import math

import numpy

from .. import functional as F
from ..autograd import Tensor
from ..backend import get_array_module
from ..optim import Adam
from ..validation import check_float, check_int, check_option

__all__ = ["gaussian_kl_reverse", "gaussian_kl_forward", "fit_mean_field_gaussian"]


def _check_target(mean, covariance):
    mean = numpy.asarray(mean, dtype=numpy.float64) if not hasattr(mean, "dtype") else mean
    xp = get_array_module(mean)
    mean = xp.asarray(mean, dtype=xp.float64)
    covariance = xp.asarray(covariance, dtype=xp.float64)
    if mean.ndim != 1 or covariance.shape != (mean.shape[0], mean.shape[0]):
        raise ValueError(f"mean must have shape (D,) and covariance (D, D), got {mean.shape} and "
                         f"{covariance.shape}")
    if not bool(xp.isfinite(mean).all()) or not bool(xp.isfinite(covariance).all()):
        raise ValueError("mean and covariance must be finite")
    if not bool(xp.allclose(covariance, covariance.T)):
        raise ValueError("covariance must be symmetric")
    if float(xp.linalg.eigvalsh(covariance).min()) <= 0:
        raise ValueError("covariance must be positive definite")
    return mean, covariance


def gaussian_kl_reverse(m, log_s, mean, precision, log_det_covariance):
    """KL(q || p) for q = N(m, diag(exp(log_s))) and p = N(mean, precision^-1), on tensors."""
    diff = m - Tensor(mean)
    quad = F.sum(diff * F.matmul(diff, Tensor(precision)))
    trace = F.sum(Tensor(get_array_module(precision).diag(precision)) * F.exp(log_s))
    D = mean.shape[0]
    return 0.5 * (trace + quad - D + log_det_covariance - F.sum(log_s))


def gaussian_kl_forward(m, log_s, mean, covariance, log_det_covariance):
    """KL(p || q) for p = N(mean, covariance) and q = N(m, diag(exp(log_s))), on tensors."""
    diff = Tensor(mean) - m
    variances = Tensor(get_array_module(covariance).diag(covariance))
    D = mean.shape[0]
    return 0.5 * (F.sum((variances + diff * diff) * F.exp(-log_s)) + F.sum(log_s) - D
                  - log_det_covariance)


def fit_mean_field_gaussian(mean, covariance, divergence="reverse", n_steps=2000, lr=0.05,
                            init_mean=None):
    """The mean-field Gaussian N(m, diag(s)) minimising KL(q || p) (``divergence="reverse"``) or
    KL(p || q) (``"forward"``) for the Gaussian target p = N(mean, covariance), by Adam on m and
    log s from m = init_mean (default: zeros) and s = 1.

    Returns ``(m, s, history)``: the fitted mean (D,), variances (D,) and the KL after each step.
    """
    mean, covariance = _check_target(mean, covariance)
    check_option(divergence, "divergence", ("reverse", "forward"))
    n_steps = check_int(n_steps, "n_steps", minimum=1)
    lr = check_float(lr, "lr", minimum=0.0, strict=True)
    xp = get_array_module(mean)
    log_det = float(xp.linalg.slogdet(covariance)[1])
    m = Tensor(xp.zeros_like(mean) if init_mean is None else xp.asarray(init_mean, dtype=xp.float64),
               requires_grad=True)
    log_s = Tensor(xp.zeros_like(mean), requires_grad=True)
    if divergence == "reverse":
        precision = xp.linalg.inv(covariance)
        objective = lambda: gaussian_kl_reverse(m, log_s, mean, precision, log_det)  # noqa: E731
    else:
        objective = lambda: gaussian_kl_forward(m, log_s, mean, covariance, log_det)  # noqa: E731
    optimizer = Adam([m, log_s], lr=lr)
    history = []
    for step in range(n_steps):
        # constant for 70% of the steps, then decaying geometrically to lr / 1000 so Adam settles
        optimizer.lr = lr * 1e-3 ** max(0.0, (step / n_steps - 0.7) / 0.3)
        optimizer.zero_grad()
        kl = objective()
        kl.backward()
        optimizer.step()
        history.append(float(kl.item()))
    if not math.isfinite(history[-1]):
        raise FloatingPointError(f"the KL diverged ({history[-1]}); lower lr")
    return m.data.copy(), xp.exp(log_s.data), history
