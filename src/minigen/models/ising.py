"""The Ising model: exact enumeration, Gibbs sampling, naive mean field and loopy belief propagation.

Lecture deck 000 ("The mean field approximation", "Ising model"); Wainwright & Jordan (2008),
"Graphical Models, Exponential Families, and Variational Inference", sections 4.1 (Bethe) and
5.3 (naive mean field for the Ising model); Yedidia, Freeman & Weiss (2003) for the Bethe free
energy. Where the slide draws the model, minigen follows Wainwright & Jordan's equations.

Model over spins s in {-1, +1}^n, couplings J (symmetric, zero diagonal) and fields h:

    E(s) = -sum_{i<j} J_ij s_i s_j - sum_i h_i s_i = -s^T J s / 2 - h^T s
    p(s) = exp(-E(s)) / Z,      log Z = logsumexp_s (-E(s))         (exact: 2^n terms)

Gibbs sampling: p(s_i = +1 | s_-i) = sigmoid(2 (h_i + sum_j J_ij s_j)), one spin at a time.

Naive mean field, q(s) = prod_i q_i(s_i) with magnetisations m_i = E_q[s_i] (W&J eq. 5.15):

    ELBO(m) = sum_{i<j} J_ij m_i m_j + sum_i h_i m_i + sum_i H((1 + m_i) / 2)  <=  log Z
    m_i <- tanh(h_i + sum_j J_ij m_j)                     (the coordinate maximiser of the ELBO)

where H is the binary entropy. The ELBO is concave in each m_i alone, so each update, and each
damped update m_i <- (1 - d) tanh(...) + d m_i, never lowers it.

Loopy BP with messages written as cavity fields, m_{i->j}(s_j) propto exp(u_ij s_j):

    c_{i\\j} = h_i + sum_{k in N(i), k != j} u_ki                       (the field on i without j)
    u_ij  <- atanh(tanh(J_ij) tanh(c_{i\\j})) = (log cosh(c_{i\\j} + J_ij) - log cosh(c_{i\\j} - J_ij)) / 2
    m_i   = tanh(h_i + sum_k u_ki)

and the Bethe approximation of log Z from the node and edge beliefs b_i, b_ij:

    log Z_Bethe = sum_(ij) E_bij[J_ij s_i s_j] + sum_i E_bi[h_i s_i]
                  + sum_(ij) H(b_ij) - sum_i (deg(i) - 1) H(b_i),

exact (and BP exact) when the graph is a tree.
"""
import collections
import json
import math
import warnings

import numpy

from .. import backend
from ..backend import get_array_module
from ..numerics import logsumexp, sigmoid
from ..random import get_generator
from ..validation import check_float, check_int
from .estimator import ConvergenceWarning, Estimator, _qualified_name, coordinate_ascent

MAX_EXACT_SPINS = 20  # log_partition and the exact methods enumerate 2^n states, n <= 20

MeanField = collections.namedtuple("MeanField", "magnetisation elbo elbo_history n_iter converged")
MeanField.__doc__ = "Result of IsingModel.mean_field: m (n,), the final ELBO, its history per sweep."
LoopyBP = collections.namedtuple("LoopyBP", "magnetisation log_partition n_iter converged")
LoopyBP.__doc__ = "Result of IsingModel.loopy_bp: m_i = E_b[s_i] (n,) and the Bethe log Z."


def _log_cosh(y):
    """log cosh(y) without overflow: |y| + log1p(exp(-2|y|)) - log 2."""
    xp = get_array_module(y)
    a = xp.abs(y)
    return a + xp.log1p(xp.exp(-2 * a)) - math.log(2)


def _binary_entropy(m):
    """H(q) of q(s = +1) = (1 + m) / 2, with 0 log 0 = 0."""
    xp = get_array_module(m)
    entropy = 0
    for p in ((1 + m) / 2, (1 - m) / 2):
        entropy = entropy - xp.where(p > 0, p * xp.log(xp.where(p > 0, p, 1)), 0)
    return entropy


def _iteration_settings(max_iter, tol, damping):
    """(max_iter >= 1, tol >= 0, damping in [0, 1)) of mean field and loopy BP, checked."""
    damping = check_float(damping, "damping", minimum=0)
    if damping >= 1:
        raise ValueError(f"damping must be in [0, 1), got {damping}")
    return check_int(max_iter, "max_iter", minimum=1), check_float(tol, "tol", minimum=0), damping


class IsingModel(Estimator):
    """An Ising model with couplings ``J`` (n, n) (symmetric, zero diagonal) and fields ``h`` (n,).

    The model is given, not learned: there is no ``fit``. ``score_samples`` and ``sample`` are
    exact (by enumeration, up to 20 spins); ``gibbs_sample``, ``mean_field`` and ``loopy_bp``
    work for any size. Spins are -1/+1.
    """

    def __init__(self, J, h):
        xp = get_array_module(J, h)
        J, h = xp.asarray(J, dtype=xp.float64), xp.asarray(h, dtype=xp.float64)
        if J.ndim != 2 or J.shape[0] != J.shape[1]:
            raise ValueError(f"J must be a square (n, n) matrix of couplings, got shape {J.shape}")
        if h.shape != (J.shape[0],):
            raise ValueError(f"h must have shape ({J.shape[0]},), one field per spin of J, got {h.shape}")
        if not bool(xp.all(xp.isfinite(J))) or not bool(xp.all(xp.isfinite(h))):
            raise ValueError("J and h must hold only finite values")
        if not bool(xp.all(J == J.T)):
            raise ValueError(f"J must be symmetric; the largest |J - J^T| is "
                             f"{float(xp.abs(J - J.T).max()):.3g}")
        if bool(xp.any(xp.diagonal(J) != 0)):
            raise ValueError("J must have a zero diagonal (s_i^2 = 1 adds only a constant)")
        self.J = J
        self.h = h

    @classmethod
    def grid(cls, height, width, coupling, field=0.0):
        """A height x width lattice with free boundaries: J_ij = ``coupling`` between the four
        nearest neighbours, h_i = ``field`` (a number, or an array of shape (height, width));
        spin (r, c) is number r * width + c."""
        height, width = check_int(height, "height", minimum=1), check_int(width, "width", minimum=1)
        coupling = check_float(coupling, "coupling")
        n = height * width
        J = numpy.zeros((n, n))
        for r in range(height):
            for c in range(width):
                i = r * width + c
                if c + 1 < width:
                    J[i, i + 1] = J[i + 1, i] = coupling
                if r + 1 < height:
                    J[i, i + width] = J[i + width, i] = coupling
        xp = get_array_module(field)
        field = xp.asarray(field, dtype=xp.float64)
        if field.shape not in ((), (height, width)):
            raise ValueError(f"field must be a number or have shape ({height}, {width}), got {field.shape}")
        return cls(xp.asarray(J), xp.broadcast_to(field, (height, width)).reshape(n).copy())

    @property
    def n_spins(self):
        return self.J.shape[0]

    # ---- state dict: J and h are arrays, not JSON settings ---------------------------------
    def state_dict(self):
        """``class``, and the couplings ``J`` and fields ``h`` as host arrays."""
        return {"class": numpy.array(_qualified_name(type(self))), "params": numpy.array("{}"),
                "kinds": numpy.array(json.dumps({})),
                "J": backend.to_numpy(self.J), "h": backend.to_numpy(self.h)}

    def load_state_dict(self, state, device=None):
        """Restore ``J`` and ``h`` from ``state_dict()`` (checked like the constructor's) onto
        ``device`` ('cpu' or 'cuda'; None: the host, as ``Estimator.load_state_dict``)."""
        if not isinstance(state, dict) or "J" not in state or "h" not in state:
            raise ValueError("state must be a dict from IsingModel.state_dict() with keys 'J' and 'h'")
        saved = str(numpy.asarray(state.get("class")))
        if saved != _qualified_name(type(self)):
            raise ValueError(f"state holds a {saved}, not a {_qualified_name(type(self))}")
        device = "cpu" if device is None else backend.check_device(device)
        other = type(self)(backend.to_device(numpy.asarray(state["J"]), device),
                           backend.to_device(numpy.asarray(state["h"]), device))
        self.J, self.h = other.J, other.h
        return self

    # ---- exact quantities ------------------------------------------------------------------
    def _check_spins(self, s, name="s"):
        xp = get_array_module(self.J)
        s = xp.asarray(backend.to_device(s, backend.device_of(self.J)), dtype=xp.float64)
        if s.shape[-1:] != (self.n_spins,) or s.ndim > 2:
            raise ValueError(f"{name} must have shape (n_spins,) or (N, n_spins) with n_spins = "
                             f"{self.n_spins}, got {s.shape}")
        if not bool(xp.all(xp.abs(s) == 1)):
            raise ValueError(f"{name} must hold spins -1 or +1")
        return s

    def energy(self, s):
        """E(s) = -s^T J s / 2 - h^T s for s of shape (n,) (a number) or (N, n) (shape (N,))."""
        s = self._check_spins(s)
        return -0.5 * ((s @ self.J) * s).sum(axis=-1) - s @ self.h

    def _all_states(self, what):
        """The 2^n spin configurations, (2^n, n), in binary order (spin 0 the most significant)."""
        if self.n_spins > MAX_EXACT_SPINS:
            raise ValueError(f"{what} enumerates 2^n states and allows n <= {MAX_EXACT_SPINS} spins, "
                             f"this model has {self.n_spins}; use mean_field, loopy_bp or gibbs_sample")
        xp = get_array_module(self.J)
        n = self.n_spins
        bits = (xp.arange(2 ** n)[:, None] >> xp.arange(n - 1, -1, -1)[None, :]) & 1
        return (2 * bits - 1).astype(xp.float64)

    def _log_weights(self, what):
        states = self._all_states(what)
        return states, -self.energy(states)

    def log_partition(self):
        """Exact log Z = logsumexp over all 2^n states of -E(s) (n <= 20 spins)."""
        _, log_w = self._log_weights("log_partition()")
        return float(logsumexp(log_w))

    def exact_magnetisation(self):
        """Exact E_p[s_i], (n,), by enumeration (n <= 20 spins)."""
        states, log_w = self._log_weights("exact_magnetisation()")
        xp = get_array_module(states)
        return xp.exp(log_w - logsumexp(log_w)) @ states

    def score_samples(self, s):
        """(N,) exact log p(s) = -E(s) - log Z in nats (n <= 20 spins)."""
        return -self.energy(s) - self.log_partition()

    def sample(self, n_samples=1, random_state=None):
        """(n_samples, n) exact samples, drawn from the enumerated distribution (n <= 20 spins)."""
        n_samples = check_int(n_samples, "n_samples", minimum=1)
        states, log_w = self._log_weights("sample()")
        xp = get_array_module(states)
        cdf = xp.cumsum(xp.exp(log_w - logsumexp(log_w)))
        u = get_generator(random_state, xp).random(n_samples)
        index = xp.minimum(xp.searchsorted(cdf, u), len(cdf) - 1)
        return states[index]

    # ---- Gibbs sampling --------------------------------------------------------------------
    def gibbs_sample(self, n_samples=1, n_sweeps=100, random_state=None):
        """(n_samples, n) states of ``n_samples`` independent Gibbs chains after ``n_sweeps``
        sweeps (each spin resampled in turn from p(s_i | s_-i)), started from uniform spins."""
        n_samples = check_int(n_samples, "n_samples", minimum=1)
        n_sweeps = check_int(n_sweeps, "n_sweeps", minimum=1)
        xp = get_array_module(self.J)
        rng = get_generator(random_state, xp)
        s = 2.0 * (rng.random((n_samples, self.n_spins)) < 0.5) - 1
        for _ in range(n_sweeps):
            u = rng.random((self.n_spins, n_samples))
            for i in range(self.n_spins):
                p_up = sigmoid(2 * (self.h[i] + s @ self.J[:, i]))  # p(s_i = +1 | s_-i)
                s[:, i] = xp.where(u[i] < p_up, 1.0, -1.0)
        return s

    # ---- naive mean field ------------------------------------------------------------------
    def mean_field_elbo(self, m):
        """ELBO(m) = m^T J m / 2 + h^T m + sum_i H((1 + m_i) / 2), a lower bound on log Z."""
        return float(0.5 * m @ self.J @ m + self.h @ m + _binary_entropy(m).sum())

    def mean_field(self, max_iter=200, tol=1e-10, damping=0.0, init=None):
        """Naive mean field by sequential coordinate ascent, m_i <- tanh(h_i + sum_j J_ij m_j).

        ``damping`` d in [0, 1): m_i <- (1 - d) tanh(...) + d m_i. ``init``: the starting
        magnetisations (default tanh(h), the fixed point at J = 0; with h = 0 that is the
        symmetric point m = 0, so pass ``init`` to break the symmetry). ``tol``: the change of
        the ELBO in one sweep (``coordinate_ascent``). Returns ``MeanField(magnetisation, elbo,
        elbo_history, n_iter, converged)``.
        """
        max_iter, tol, damping = _iteration_settings(max_iter, tol, damping)
        xp = get_array_module(self.J)
        if init is None:
            m = xp.tanh(self.h)
        else:
            m = xp.asarray(backend.to_device(init, backend.device_of(self.J)), dtype=xp.float64).copy()
            if m.shape != (self.n_spins,) or not bool(xp.all(xp.abs(m) <= 1)):
                raise ValueError(f"init must have shape ({self.n_spins},) with values in [-1, 1], "
                                 f"got shape {m.shape}")

        def sweep():
            for i in range(self.n_spins):
                m[i] = (1 - damping) * xp.tanh(self.h[i] + self.J[i] @ m) + damping * m[i]
            return self.mean_field_elbo(m)

        history, n_iter, converged = coordinate_ascent(sweep, self.mean_field_elbo(m), tol, max_iter,
                                                       "IsingModel.mean_field")
        return MeanField(m, history[-1], history, n_iter, converged)

    # ---- loopy belief propagation ----------------------------------------------------------
    def loopy_bp(self, max_iter=200, tol=1e-10, damping=0.0):
        """Loopy belief propagation with parallel (flooding) updates of the cavity fields u_ij.

        ``damping`` d in [0, 1): u <- (1 - d) u_new + d u. Converged when no u_ij changes by
        more than ``tol``; a ``ConvergenceWarning`` otherwise. Returns ``LoopyBP(magnetisation,
        log_partition, n_iter, converged)``: m_i = E_b[s_i] and the Bethe approximation of log Z.
        """
        max_iter, tol, damping = _iteration_settings(max_iter, tol, damping)
        xp = get_array_module(self.J)
        J, h = self.J, self.h
        edge = J != 0
        U = xp.zeros_like(J)  # U[i, j] = u_ij, the message from i to j
        converged, n_iter, change = False, max_iter, float("nan")
        for t in range(1, max_iter + 1):
            C = (h + U.sum(axis=0))[:, None] - U.T  # C[i, j] = c_{i\j} = h_i + sum_{k != j} u_ki
            U_new = xp.where(edge, 0.5 * (_log_cosh(C + J) - _log_cosh(C - J)), 0.0)
            U_new = (1 - damping) * U_new + damping * U
            change = float(xp.abs(U_new - U).max())
            U = U_new
            if change <= tol:
                converged, n_iter = True, t
                break
        if not converged:
            warnings.warn(f"IsingModel.loopy_bp did not converge in max_iter={max_iter} iterations "
                          f"(the last largest message change was {change:.3g} > tol={tol}); "
                          "increase max_iter or damping", ConvergenceWarning, stacklevel=2)
        field = h + U.sum(axis=0)  # h_i + sum_k u_ki
        return LoopyBP(xp.tanh(field), self._bethe_log_partition(U, field), n_iter, converged)

    def _bethe_log_partition(self, U, field):
        """log Z_Bethe = sum_(ij) E_bij[J s_i s_j] + sum_i E_bi[h_i s_i] + sum_(ij) H(b_ij)
        - sum_i (deg(i) - 1) H(b_i), from the messages U."""
        xp = get_array_module(U)
        i, j = xp.nonzero(xp.triu(self.J != 0))
        J_ij = self.J[i, j]
        c_i, c_j = field[i] - U[j, i], field[j] - U[i, j]  # cavity fields of the edge's ends
        spins = xp.asarray([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
        s_i, s_j = spins[:, 0], spins[:, 1]
        logits = J_ij[:, None] * s_i * s_j + c_i[:, None] * s_i + c_j[:, None] * s_j  # (E, 4)
        log_b = logits - logsumexp(logits, axis=1, keepdims=True)
        b = xp.exp(log_b)
        edge_terms = (b * (J_ij[:, None] * s_i * s_j - log_b)).sum()  # E[J s_i s_j] + H(b_ij)
        m = xp.tanh(field)
        degree = (self.J != 0).sum(axis=1)
        node_terms = (self.h * m - (degree - 1) * _binary_entropy(m)).sum()
        return float(edge_terms + node_terms)
