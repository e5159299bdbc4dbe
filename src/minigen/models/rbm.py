"""Restricted Boltzmann machine with binary units, trained by contrastive divergence.

Model (Smolensky 1986; Hinton 2002). Visible v in {0,1}^D, hidden h in {0,1}^H, parameters
W (D, H), visible bias b (D,), hidden bias c (H,):

    E(v, h) = -b.v - c.h - v.W.h                                   energy
    p(v, h) = exp(-E(v, h)) / Z,       Z = sum_{v,h} exp(-E(v, h))
    F(v)    = -b.v - sum_j softplus(c_j + v.W_j)                   free energy (h summed out)
    p(v)    = exp(-F(v)) / Z

Given one layer the units of the other are independent:

    p(h_j = 1 | v) = sigmoid(c_j + v.W_j)        p(v_i = 1 | h) = sigmoid(b_i + W_i.h)

Objective: the mean log-likelihood L = <-F(v)>_data - log Z, with gradient

    dL/dW = <v p(h|v)^T>_data - <v h^T>_model,   dL/db = <v>_data - <v>_model,
    dL/dc = <p(h|v)>_data - <h>_model.

CD-k (Hinton 2002) replaces the model expectation by the end of k Gibbs steps started at the data,

    v^0 = data -> h^0 ~ p(h|v^0) -> v^1 ~ p(v|h^0) -> ... -> v^k
    grad_W = v^0^T p(h|v^0) / n - v^k^T p(h|v^k) / n,   grad_b, grad_c alike.

This is biased (it follows the gradient of no objective, Carreira-Perpinan & Hinton 2005).
PCD (Tieleman 2008) keeps the chain: each update continues from the previous update's v^k.
Training monitors: the reconstruction error ||v - p(v|h)||^2 with h ~ p(h|v), and the
pseudo-log-likelihood sum_i log p(v_i | v_-i) = sum_i log sigmoid(F(v with v_i flipped) - F(v)).
Neither is the likelihood.

log Z exactly, by enumerating the smaller layer (here over h; over v it is -F(v)):

    log Z = logsumexp_h [c.h + sum_i softplus(b_i + W_i.h)]

log Z by annealed importance sampling (Neal 2001; Salakhutdinov & Murray 2008) from the
base-rate model A (W = 0, c = 0, b_A = logit of the data's mean), Z_A = 2^H prod_i (1 + exp(b_A,i)),
through 0 = beta_0 < beta_1 < ... < beta_K = 1:

    p*_k(v) = exp((1 - beta_k) b_A.v + beta_k b.v) prod_j (1 + exp(beta_k (c_j + v.W_j)))
    v_1 ~ p_A,   v_{k+1} ~ T_k(v_k)   (one Gibbs step h ~ p_k(h|v), v ~ p_k(v|h), leaving p_k invariant)
    log w = sum_{k=1}^{K} [log p*_k(v_k) - log p*_{k-1}(v_k)]
    log Z ~= log Z_A + log mean(w)

E[w] = Z / Z_A, so by Jensen's inequality the estimate of log Z is low on average (and the
log-likelihood estimate high).
"""
import math

import numpy as np

from .. import backend
from ..random import get_generator, permutation
from ..validation import check_array, check_float, check_int
from .gmm import logsumexp

MAX_EXACT_UNITS = 20  # log_partition enumerates 2^min(D, H) states at most 2^20


def _sigmoid(x):
    # sigmoid(x) = (1 + tanh(x / 2)) / 2: cannot overflow, one transcendental per element
    y = backend.get_array_module(x).tanh(0.5 * x)
    y += 1
    y *= 0.5
    return y


def _softplus(x):
    return backend.get_array_module(x).logaddexp(0, x)  # log(1 + exp(x)) without overflow


def _bernoulli(p, rng):
    return (rng.random(p.shape, dtype=p.dtype) < p).astype(p.dtype)


def _check_data(X, name, n_features, like, values):
    """X as a 2-D array of the module, device and dtype of array ``like``; ``values`` is
    'binary' ({0,1}) or 'unit' ([0,1])."""
    X = check_array(X, name, like=like)
    if X.shape[1] != n_features:
        raise ValueError(f"{name} must have shape (n_samples, {n_features}), got shape {X.shape}")
    X = backend.get_array_module(like).asarray(X, dtype=like.dtype)
    if values == "binary" and bool(((X != 0) & (X != 1)).any()):
        bad = float(X[(X != 0) & (X != 1)][0])
        raise ValueError(f"{name} must be binary (values in {{0, 1}}), got e.g. {bad}; "
                         f"binarise it first, e.g. minigen.data.binarize_static")
    if values == "unit" and bool(((X < 0) | (X > 1)).any()):
        raise ValueError(f"{name} must have values in [0, 1], got values in "
                         f"[{float(X.min())}, {float(X.max())}]")
    return X


class RBM:
    """Binary-binary restricted Boltzmann machine with ``n_visible`` (D) and ``n_hidden`` (H) units.

    Parameters are created at construction (W ~ N(0, 0.01^2) as in Hinton 2010, b = c = 0)
    on ``device`` ('cpu' or 'cuda', default ``minigen.backend.default_device()``) in ``dtype``
    (float32 or float64); inputs to every method are converted to W's array module, device and
    dtype (``rbm.device``, ``rbm.dtype``). ``random_state`` (None, int or Generator)
    seeds the initialisation and every draw made without an explicit ``random_state``.

    After ``fit``: ``history_`` holds the per-epoch monitors ``'reconstruction_error'`` and
    ``'pseudo_log_likelihood'`` and ``data_mean_`` the training data's mean (AIS's base rate).
    """

    def __init__(self, n_visible, n_hidden, random_state=None, dtype="float32", device=None):
        self.n_visible = check_int(n_visible, "n_visible", minimum=1)
        self.n_hidden = check_int(n_hidden, "n_hidden", minimum=1)
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        xp = backend.array_module_for(backend.check_device(device or backend.default_device()))
        self._rng = get_generator(random_state, xp)
        self.W = 0.01 * self._rng.standard_normal((self.n_visible, self.n_hidden), dtype=dtype)
        self.b = xp.zeros(self.n_visible, dtype=dtype)
        self.c = xp.zeros(self.n_hidden, dtype=dtype)
        self.history_ = {"reconstruction_error": [], "pseudo_log_likelihood": []}

    @property
    def dtype(self):
        return self.W.dtype

    @property
    def device(self):
        return backend.device_of(self.W)

    def __repr__(self):
        return (f"RBM(n_visible={self.n_visible}, n_hidden={self.n_hidden}, dtype={self.dtype}, "
                f"device={self.device!r})")

    # ---- helpers ---------------------------------------------------------------------------
    def _check(self, X, name, n_features, values="binary"):
        return _check_data(X, name, n_features, self.W, values)

    def _generator(self, random_state):
        if random_state is None:
            return self._rng
        return get_generator(random_state, backend.get_array_module(self.W))

    def _prob_h(self, v):
        return _sigmoid(self.c + v @ self.W)

    def _prob_v(self, h):
        return _sigmoid(self.b + h @ self.W.T)

    def _free_energy(self, v):
        return -(v @ self.b) - _softplus(self.c + v @ self.W).sum(axis=1)

    def _gibbs(self, v, k, rng):
        """k steps v -> h ~ p(h|v) -> v ~ p(v|h); returns the last v and its p(v|h)."""
        for _ in range(k):
            p_v = self._prob_v(_bernoulli(self._prob_h(v), rng))
            v = _bernoulli(p_v, rng)
        return v, p_v

    # ---- energies and conditionals ----------------------------------------------------------
    def energy(self, v, h):
        """E(v, h) = -b.v - c.h - v.W.h for each row pair; v (n, D), h (n, H) binary."""
        v = self._check(v, "v", self.n_visible)
        h = self._check(h, "h", self.n_hidden)
        if v.shape[0] != h.shape[0]:
            raise ValueError(f"v and h must have the same number of rows, got {v.shape[0]} and {h.shape[0]}")
        return -(v @ self.b) - (h @ self.c) - ((v @ self.W) * h).sum(axis=1)

    def free_energy(self, v):
        """F(v) = -b.v - sum_j softplus(c_j + v.W_j), so p(v) = exp(-F(v)) / Z; v (n, D) binary."""
        return self._free_energy(self._check(v, "v", self.n_visible))

    def prob_h_given_v(self, v):
        """p(h_j = 1 | v) = sigmoid(c_j + v.W_j); v (n, D) in [0, 1] (probabilities allowed)."""
        return self._prob_h(self._check(v, "v", self.n_visible, "unit"))

    def sample_h_given_v(self, v, random_state=None):
        """A binary draw h ~ p(h | v), shape (n, H)."""
        return _bernoulli(self.prob_h_given_v(v), self._generator(random_state))

    def prob_v_given_h(self, h):
        """p(v_i = 1 | h) = sigmoid(b_i + W_i.h); h (n, H) in [0, 1]."""
        return self._prob_v(self._check(h, "h", self.n_hidden, "unit"))

    def sample_v_given_h(self, h, random_state=None):
        """A binary draw v ~ p(v | h), shape (n, D)."""
        return _bernoulli(self.prob_v_given_h(h), self._generator(random_state))

    def gibbs(self, v, k=1, random_state=None):
        """k steps of block Gibbs sampling v -> h -> v from binary v (n, D); returns binary v."""
        v = self._check(v, "v", self.n_visible)
        return self._gibbs(v, check_int(k, "k", minimum=1), self._generator(random_state))[0]

    # ---- training ----------------------------------------------------------------------------
    def _cd_gradient(self, v0, k, rng, v_chain=None):
        """CD-k estimate of (dL/dW, dL/db, dL/dc) on the batch v0; the negative chain starts at
        v0 (CD) or at ``v_chain`` (PCD). Returns the gradients and the chain's end v^k."""
        p_h0 = self._prob_h(v0)
        p_h = p_h0 if v_chain is None else self._prob_h(v_chain)
        for _ in range(k):
            v = _bernoulli(self._prob_v(_bernoulli(p_h, rng)), rng)
            p_h = self._prob_h(v)
        grad_W = v0.T @ p_h0 / v0.shape[0] - v.T @ p_h / v.shape[0]
        grad_b = v0.mean(axis=0) - v.mean(axis=0)
        grad_c = p_h0.mean(axis=0) - p_h.mean(axis=0)
        return [grad_W, grad_b, grad_c], v

    def cd_gradient(self, v, k=1, random_state=None):
        """One CD-k estimate of the log-likelihood gradient (grad_W, grad_b, grad_c) on batch v."""
        v = self._check(v, "v", self.n_visible, "unit")
        return tuple(self._cd_gradient(v, check_int(k, "k", minimum=1), self._generator(random_state))[0])

    def fit(self, X, k=1, persistent=False, learning_rate=0.05, epochs=10, batch_size=100,
            momentum=0.0, weight_decay=0.0, verbose=False):
        """Maximise the log-likelihood of X (n, D) by CD-k, or PCD-k if ``persistent``, starting
        from the current parameters (a second call continues training).

        X may hold probabilities in [0, 1] (e.g. grey levels or a lower layer's p(h|v)); they
        enter the gradient as expectations. Update with velocity u (momentum and weight decay
        as in Hinton 2010): u <- momentum u + learning_rate (grad - weight_decay [W, 0, 0]),
        theta <- theta + u.
        Appends one entry per epoch to ``history_`` (computed on a fixed random subset of up to
        1000 training rows, binarised by sampling if not binary; the pseudo-log-likelihood is the
        noisy one-unit estimate). Returns self.
        """
        X = self._check(X, "X", self.n_visible, "unit")
        k, epochs, batch_size = (check_int(k, "k", minimum=1), check_int(epochs, "epochs", minimum=1),
                                 check_int(batch_size, "batch_size", minimum=1))
        learning_rate = check_float(learning_rate, "learning_rate", minimum=0, strict=True)
        weight_decay = check_float(weight_decay, "weight_decay", minimum=0)
        if not 0 <= check_float(momentum, "momentum") < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        rng, n = self._rng, X.shape[0]
        self.data_mean_ = X.mean(axis=0)
        v_monitor = _bernoulli(X[permutation(n, rng)[:1000]], rng)  # Bernoulli of 0/1 data is itself
        v_chain = _bernoulli(X[permutation(n, rng)[:batch_size]], rng) if persistent else None
        params = (self.W, self.b, self.c)
        velocities = [backend.get_array_module(p).zeros_like(p) for p in params]
        for epoch in range(epochs):
            order = permutation(n, rng)
            for start in range(0, n, batch_size):
                v0 = X[order[start:start + batch_size]]
                grads, v_k = self._cd_gradient(v0, k, rng, v_chain)
                if persistent:
                    v_chain = v_k
                if weight_decay:
                    grads[0] -= weight_decay * self.W
                for param, grad, u in zip(params, grads, velocities):
                    u *= momentum
                    u += learning_rate * grad
                    param += u
            self.history_["reconstruction_error"].append(self._reconstruction_error(v_monitor, rng))
            self.history_["pseudo_log_likelihood"].append(self._pseudo_log_likelihood(v_monitor, rng))
            if verbose:
                print(f"epoch {epoch + 1}/{epochs}: reconstruction error "
                      f"{self.history_['reconstruction_error'][-1]:.4f}, pseudo-log-likelihood "
                      f"{self.history_['pseudo_log_likelihood'][-1]:.4f}")
        return self

    # ---- monitors ----------------------------------------------------------------------------
    def _reconstruction_error(self, v, rng):
        p_v = self._prob_v(_bernoulli(self._prob_h(v), rng))
        return float(((v - p_v) ** 2).sum(axis=1).mean())

    def reconstruction_error(self, X, random_state=None):
        """Mean over rows of ||v - p(v|h)||^2 with h ~ p(h|v); X (n, D) in [0, 1]."""
        X = self._check(X, "X", self.n_visible, "unit")
        return self._reconstruction_error(X, self._generator(random_state))

    def _pseudo_log_likelihood(self, v, rng, exact=False):
        xp = backend.get_array_module(v)
        a = self.c + v @ self.W
        F = -(v @ self.b) - _softplus(a).sum(axis=1)
        if exact:
            units, scale = range(self.n_visible), 1
        else:  # one random unit per row, scaled by D: an unbiased estimate of the sum over i
            units, scale = [rng.integers(0, self.n_visible, size=v.shape[0])], self.n_visible
        rows, pll = xp.arange(v.shape[0]), 0
        for i in units:
            sign = 1 - 2 * v[rows, i]  # +1 where v_i = 0 flips to 1, -1 where 1 flips to 0
            a_flip = a + sign[:, None] * self.W[i]  # c + v'.W for v' = v with unit i flipped
            F_flip = F - sign * self.b[i] - (_softplus(a_flip) - _softplus(a)).sum(axis=1)
            pll = pll - _softplus(F - F_flip)  # log sigmoid(F_flip - F) = log p(v_i | v_-i)
        return float(scale * pll.mean())

    def pseudo_log_likelihood(self, X, exact=False, random_state=None):
        """Mean over rows of sum_i log p(v_i | v_-i); X (n, D) binary.

        ``exact`` sums over all D units (D free-energy evaluations); otherwise one random unit
        per row times D, an unbiased estimate (as in scikit-learn's BernoulliRBM.score_samples).
        """
        X = self._check(X, "X", self.n_visible)
        return self._pseudo_log_likelihood(X, self._generator(random_state), exact)

    # ---- partition function and likelihood ---------------------------------------------------
    def log_partition(self):
        """log Z exactly, enumerating the 2^min(D, H) states of the smaller layer in batches."""
        m = min(self.n_visible, self.n_hidden)
        if m > MAX_EXACT_UNITS:
            raise ValueError(f"exact log Z enumerates 2^{m} states of the smaller layer; it is limited "
                             f"to min(n_visible, n_hidden) <= {MAX_EXACT_UNITS}: use log_partition_ais()")
        xp = backend.get_array_module(self.W)
        W, b, c = (p.astype("float64") for p in (self.W, self.b, self.c))
        if self.n_hidden <= self.n_visible:  # log p*(h) = c.h + sum_i softplus(b_i + W_i.h)
            W_enum, bias_enum, bias_other = W.T, c, b
        else:                                # log p*(v) = -F(v) = b.v + sum_j softplus(c_j + v.W_j)
            W_enum, bias_enum, bias_other = W, b, c
        batch = max(1, min(2 ** m, 2 ** 22 // max(self.n_visible, self.n_hidden)))
        bits = xp.arange(m)
        log_z_batches = []
        for start in range(0, 2 ** m, batch):
            codes = xp.arange(start, min(start + batch, 2 ** m))
            states = (xp.right_shift(codes[:, None], bits) & 1).astype("float64")  # row r: r's binary digits
            log_p = states @ bias_enum + _softplus(bias_other + states @ W_enum).sum(axis=1)
            log_z_batches.append(logsumexp(log_p))
        return float(logsumexp(xp.stack(log_z_batches)))

    def log_partition_ais(self, n_betas=10000, n_runs=100, X=None, random_state=None, return_bounds=False):
        """log Z by annealed importance sampling with ``n_betas`` temperatures, linear in [0, 1].

        The base-rate biases b_A are the logit of X's mean, else of the training data's mean
        (``data_mean_``), else zero. With ``return_bounds`` also returns (log(mean(w) - 3 s),
        log(mean(w) + 3 s)) + log Z_A, s the standard error of mean(w) over the ``n_runs`` runs
        (as reported by Salakhutdinov & Murray 2008); the lower end is -inf when 3 s > mean(w).
        Computed in float64.
        """
        n_betas = check_int(n_betas, "n_betas", minimum=2)  # beta_0 = 0 and beta_K = 1
        n_runs = check_int(n_runs, "n_runs", minimum=1)
        xp = backend.get_array_module(self.W)
        rng = self._generator(random_state)
        W, b, c = (p.astype("float64") for p in (self.W, self.b, self.c))
        if X is not None:
            mean = self._check(X, "X", self.n_visible, "unit").mean(axis=0)
        else:
            mean = getattr(self, "data_mean_", None)
        b_A = xp.zeros_like(b) if mean is None else _logit(xp.clip(mean.astype("float64"), 1e-3, 1 - 1e-3))
        log_z_A = self.n_hidden * math.log(2) + float(_softplus(b_A).sum())

        def log_p_star(v, a, beta):  # a = c + v.W
            return (1 - beta) * (v @ b_A) + beta * (v @ b) + _softplus(beta * a).sum(axis=1)

        betas = np.linspace(0.0, 1.0, n_betas).tolist()
        v = _bernoulli(xp.broadcast_to(_sigmoid(b_A), (n_runs, self.n_visible)), rng)  # v_1 ~ p_A
        log_w = xp.zeros(n_runs)
        for k in range(1, n_betas):
            a = c + v @ W
            log_w += log_p_star(v, a, betas[k]) - log_p_star(v, a, betas[k - 1])
            if k < n_betas - 1:  # v_{k+1} ~ T_k(v_k)
                h = _bernoulli(_sigmoid(betas[k] * a), rng)
                v = _bernoulli(_sigmoid((1 - betas[k]) * b_A + betas[k] * (b + h @ W.T)), rng)
        log_z = log_z_A + float(logsumexp(log_w)) - math.log(n_runs)
        if not return_bounds:
            return log_z
        w = xp.exp(log_w - log_w.max())  # w / max(w): relative spread is all that matters
        rel_se = float(w.std(ddof=1) / (math.sqrt(n_runs) * w.mean())) if n_runs > 1 else math.inf
        low = log_z + math.log(1 - 3 * rel_se) if 3 * rel_se < 1 else -math.inf
        return log_z, (low, log_z + math.log(1 + 3 * rel_se))

    def log_likelihood(self, X, log_Z=None):
        """Mean over rows of log p(v) = -F(v) - log Z; log Z exact if ``log_Z`` is None."""
        X = self._check(X, "X", self.n_visible)
        if log_Z is None:
            log_Z = self.log_partition()
        return float(-self._free_energy(X).astype("float64").mean()) - float(log_Z)

    # ---- sampling -------------------------------------------------------------------------------
    def sample(self, n, n_gibbs=1000, random_state=None, return_probabilities=False):
        """n samples (n, D) from n_gibbs Gibbs steps of independent chains.

        Chains start from the base rate ``data_mean_`` if fitted, else from v ~ Bernoulli(1/2).
        ``return_probabilities`` returns the last p(v|h) instead of the binary draw from it.
        """
        n, n_gibbs = check_int(n, "n", minimum=1), check_int(n_gibbs, "n_gibbs", minimum=1)
        xp = backend.get_array_module(self.W)
        rng = self._generator(random_state)
        p_start = getattr(self, "data_mean_", xp.full(self.n_visible, 0.5, dtype=self.dtype))
        v = _bernoulli(xp.broadcast_to(p_start, (n, self.n_visible)), rng)
        v, p_v = self._gibbs(v, n_gibbs, rng)
        return p_v if return_probabilities else v


def _logit(p):
    xp = backend.get_array_module(p)
    return xp.log(p) - xp.log1p(-p)
