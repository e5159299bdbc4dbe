"""Planar and radial flows (Rezende & Mohamed 2015, Sec. 4.1 and Appendix A.1).

Planar (their Eqs. 10-12), with h = tanh::

    f(z) = z + u_hat h(w^T z + b)
    log |det df/dz| = log |1 + u_hat^T psi(z)|,   psi(z) = h'(w^T z + b) w

Invertibility needs w^T u_hat >= -1 (Appendix A.1); it is built into the parameterisation

    u_hat = u + (m(w^T u) - w^T u) w / ||w||^2,    m(a) = -1 + softplus(a) > -1,

so w^T u_hat = m(w^T u) and 1 + u_hat^T psi >= 1 - h' > 0 for every u, w, b.

Radial (their Eq. 14)::

    f(z) = z + beta h(alpha, r) (z - z0),   r = ||z - z0||,   h = 1 / (alpha + r)
    log |det df/dz| = (D - 1) log(1 + beta h) + log(1 + beta h + beta h'(alpha, r) r)
                    = (D - 1) log(1 + beta h) + log(1 + beta alpha / (alpha + r)^2)

with alpha = softplus(alpha') > 0 and beta = -alpha + softplus(beta') >= -alpha (invertible).

Neither map has a closed-form inverse (it exists, but only as the root of a 1-D equation), so
``inverse`` raises NotImplementedError; fit them by reverse KL through ``Flow.sample_with_log_prob``.
"""
import math

from .. import backend, nn
from .. import functional as F
from ..random import get_generator
from ..validation import check_int
from .base import Transform

__all__ = ["Planar", "Radial", "planar_step"]


def planar_step(z, u, w, b):
    """One planar map f(z) = z + u_hat tanh(w^T z + b) and log |det df/dz|, per example.

    z: (N, D); u, w: (D,) or (N, D) (shared or per-example parameters, e.g. from an encoder:
    Rezende & Mohamed 2015, Eq. 15); b: () / (1,) or (N,). Returns (f(z) (N, D), log_det (N,)).
    The constraint w^T u_hat >= -1 is applied here (see the module docstring).
    """
    wu = F.sum(w * u, axis=-1, keepdims=True)
    u_hat = u + (F.softplus(wu) - 1 - wu) * w / F.sum(w * w, axis=-1, keepdims=True)
    b = F.reshape(b, (-1, 1))
    h = F.tanh(F.sum(w * z, axis=-1, keepdims=True) + b)               # (N, 1)
    w_u_hat = F.sum(w * u_hat, axis=-1, keepdims=True)                   # = m(w^T u) > -1
    log_det = F.log(F.abs(1 + (1 - h * h) * w_u_hat))                    # 1 + u_hat^T psi(z)
    return z + u_hat * h, F.reshape(log_det, (-1,))


def _not_invertible(name):
    raise NotImplementedError(
        f"{name} has no closed-form inverse (Rezende & Mohamed 2015 define it by the forward "
        f"map only); evaluate densities of its samples with Flow.sample_with_log_prob")


class Planar(Transform):
    """f(z) = z + u_hat tanh(w^T z + b) on (N, dim) inputs (see the module docstring).

    Parameters u, w ~ U(-1/sqrt(dim), 1/sqrt(dim)), b = 0 (``generator`` seeds the draw).
    """

    def __init__(self, dim, generator=None):
        super().__init__()
        self.dim = check_int(dim, "dim", minimum=1)
        self.event_shape = (self.dim,)
        xp = backend.array_module_for(backend.default_device())
        rng = get_generator(generator, xp)
        bound = 1 / math.sqrt(self.dim)
        self.u = nn.Parameter(rng.uniform(-bound, bound, self.dim).astype("float32"))
        self.w = nn.Parameter(rng.uniform(-bound, bound, self.dim).astype("float32"))
        self.b = nn.Parameter(xp.zeros(1, dtype="float32"))

    def forward(self, z):
        return planar_step(z, self.u, self.w, self.b)

    def inverse(self, x):
        _not_invertible("Planar")


class Radial(Transform):
    """f(z) = z + beta (z - z0) / (alpha + ||z - z0||) on (N, dim) inputs (module docstring).

    z0 ~ U(-1/sqrt(dim), 1/sqrt(dim)); alpha' = beta' = 0 at the start.
    """

    def __init__(self, dim, generator=None):
        super().__init__()
        self.dim = check_int(dim, "dim", minimum=1)
        self.event_shape = (self.dim,)
        xp = backend.array_module_for(backend.default_device())
        bound = 1 / math.sqrt(self.dim)
        self.z0 = nn.Parameter(get_generator(generator, xp).uniform(-bound, bound, self.dim).astype("float32"))
        self.alpha_raw = nn.Parameter(xp.zeros(1, dtype="float32"))
        self.beta_raw = nn.Parameter(xp.zeros(1, dtype="float32"))

    def forward(self, z):
        alpha = F.softplus(self.alpha_raw)
        beta = F.softplus(self.beta_raw) - alpha                       # beta >= -alpha
        diff = z - self.z0
        r = F.sqrt(F.sum(diff * diff, axis=-1, keepdims=True))          # (N, 1)
        beta_h = beta / (alpha + r)
        log_det = (self.dim - 1) * F.log(1 + beta_h) + \
            F.log(1 + beta * alpha / ((alpha + r) * (alpha + r)))
        return z + beta_h * diff, F.reshape(log_det, (-1,))

    def inverse(self, x):
        _not_invertible("Radial")
