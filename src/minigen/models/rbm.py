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

Deck 003 writes the conditionals with the two biases swapped and the CD update with the opposite
sign; minigen follows Hinton (2002, 2010): p(h|v) uses the hidden bias c, and the update ascends
the log-likelihood (data term minus model term).

Names follow scikit-learn's BernoulliRBM: ``components_`` is W^T (H, D), ``intercept_visible_`` is
b (D,), ``intercept_hidden_`` is c (H,).
"""
import math

import numpy as np

from .. import backend
from ..numerics import bernoulli, logsumexp, sigmoid, softplus
from ..random import permutation
from ..utils.progress import progress
from ..validation import check_array, check_float, check_int, check_is_fitted, check_option
from .estimator import Estimator

MAX_EXACT_UNITS = 20  # log_partition enumerates 2^min(D, H) states at most 2^20


class RBM(Estimator):
    """Binary-binary restricted Boltzmann machine with ``n_hidden`` (H) hidden units, fitted by CD-k.

    Settings: ``k`` Gibbs steps per gradient, ``persistent`` (PCD), ``learning_rate``,
    ``max_iter`` epochs (passes over X), ``batch_size``, ``momentum``, ``weight_decay`` (as in
    Hinton 2010: u <- momentum u + learning_rate (grad - weight_decay [W, 0, 0]), theta <- theta + u),
    ``n_gibbs`` Gibbs steps per chain in ``sample``, ``random_state`` (initialisation W ~
    N(0, 0.01^2), minibatch order, every draw), ``dtype`` (float32 or float64) and ``device``
    (None: the device of X; 'cpu' or 'cuda'), ``verbose`` (a progress line with the time left for
    the epochs of ``fit`` and the temperatures of ``log_partition_ais``).

    Fitted attributes: ``components_`` W^T (H, D), ``intercept_visible_`` b (D,),
    ``intercept_hidden_`` c (H,), ``n_features_in_`` D, ``data_mean_`` (the training data's mean,
    AIS's base rate and the chains' start), ``history_`` (per-epoch monitors
    ``'reconstruction_error'`` and ``'pseudo_log_likelihood'`` on a fixed subset of up to 1000
    training rows), ``n_iter_`` (epochs run, = ``max_iter``), ``converged_`` (True once the
    ``max_iter`` epochs have run: CD-k follows the gradient of no objective, Carreira-Perpinan &
    Hinton 2005, so it has no convergence test and issues no ConvergenceWarning), and
    ``log_partition_ais_`` once ``log_partition_ais`` has run (None before).

    ``score_samples(X)`` is log p(v) = -F(v) - log Z with the exact log Z when min(D, H) <= 20,
    else the AIS estimate stored by ``log_partition_ais()`` (which must be called first).
    Every public method validates its input once (binary v, or [0, 1] probabilities where said).
    """

    _parameter_names = ("components_", "intercept_visible_", "intercept_hidden_")

    def __init__(self, n_hidden=64, k=1, persistent=False, learning_rate=0.05, max_iter=10,
                 batch_size=100, momentum=0.0, weight_decay=0.0, n_gibbs=1000, random_state=None,
                 dtype="float32", device=None, verbose=False):
        self.n_hidden = n_hidden
        self.k = k
        self.persistent = persistent
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.n_gibbs = n_gibbs
        self.random_state = random_state
        self.dtype = dtype
        self.device = device
        self.verbose = verbose

    # ---- checks ------------------------------------------------------------------------------
    def _check(self, X, name="X", values="binary", layer="visible"):
        """X (n, D) or (n, H) as an array of the parameters' module, device and dtype; ``values``
        'binary' ({0,1}) or 'unit' ([0,1])."""
        check_is_fitted(self, "components_")
        n_units = self.n_features_in_ if layer == "visible" else self.components_.shape[0]
        X = check_array(X, name, like=self.components_)
        if X.shape[1] != n_units:
            raise ValueError(f"{name} must have shape (n_samples, {n_units}), got shape {X.shape}")
        X = backend.get_array_module(self.components_).asarray(X, dtype=self.components_.dtype)
        return check_values(X, name, values)

    # ---- energies and conditionals ----------------------------------------------------------
    def energy(self, v, h):
        """E(v, h) = -b.v - c.h - v.W.h for each row pair; v (n, D), h (n, H) binary."""
        v, h = self._check(v, "v"), self._check(h, "h", layer="hidden")
        if v.shape[0] != h.shape[0]:
            raise ValueError(f"v and h must have the same number of rows, got {v.shape[0]} and {h.shape[0]}")
        return (-(v @ self.intercept_visible_) - (h @ self.intercept_hidden_)
                - ((v @ self.components_.T) * h).sum(axis=1))

    def free_energy(self, v):
        """F(v) = -b.v - sum_j softplus(c_j + v.W_j), so p(v) = exp(-F(v)) / Z; v (n, D) binary."""
        v = self._check(v, "v")
        return -(v @ self.intercept_visible_) - softplus(self.intercept_hidden_ + v @ self.components_.T).sum(axis=1)

    def prob_h_given_v(self, v):
        """p(h_j = 1 | v) = sigmoid(c_j + v.W_j); v (n, D) in [0, 1] (probabilities allowed)."""
        v = self._check(v, "v", "unit")
        return sigmoid(self.intercept_hidden_ + v @ self.components_.T)

    def prob_v_given_h(self, h):
        """p(v_i = 1 | h) = sigmoid(b_i + W_i.h); h (n, H) in [0, 1]."""
        h = self._check(h, "h", "unit", layer="hidden")
        return sigmoid(self.intercept_visible_ + h @ self.components_)

    def sample_h_given_v(self, v, random_state=None):
        """A binary draw h ~ p(h | v), shape (n, H)."""
        p = self.prob_h_given_v(v)
        return bernoulli(p, self._generator(random_state, backend.get_array_module(p)))

    def sample_v_given_h(self, h, random_state=None):
        """A binary draw v ~ p(v | h), shape (n, D)."""
        p = self.prob_v_given_h(h)
        return bernoulli(p, self._generator(random_state, backend.get_array_module(p)))

    def gibbs(self, v, k=1, random_state=None, return_probabilities=False):
        """k steps of block Gibbs sampling v -> h ~ p(h|v) -> v ~ p(v|h) from v (n, D) in [0, 1];
        returns the binary v^k, or its p(v|h) of the last step if ``return_probabilities``."""
        k = check_int(k, "k", minimum=1)
        rng = self._generator(random_state, backend.get_array_module(self.components_))
        v = self._check(v, "v", "unit")
        for _ in range(k):
            p_v = sigmoid(self.intercept_visible_
                          + bernoulli(sigmoid(self.intercept_hidden_ + v @ self.components_.T), rng)
                          @ self.components_)
            v = bernoulli(p_v, rng)
        return p_v if return_probabilities else v

    # ---- training ----------------------------------------------------------------------------
    def cd_gradient(self, v, random_state=None, chain=None):
        """One CD-k estimate (k = the ``k`` setting) of the mean log-likelihood gradient on the
        batch v (n, D) in [0, 1]: ``(grad_W, grad_b, grad_c, v_k)`` with grad_W of W's shape (D, H)
        and v_k the end of the negative chain, started at v (CD) or at ``chain`` (PCD)."""
        k = check_int(self.k, "k", minimum=1)
        v0 = self._check(v, "v", "unit")
        W, c = self.components_.T, self.intercept_hidden_
        p_h0 = sigmoid(c + v0 @ W)
        v_k = self.gibbs(v0 if chain is None else chain, k, random_state)
        p_hk = sigmoid(c + v_k @ W)
        grad_W = v0.T @ p_h0 / v0.shape[0] - v_k.T @ p_hk / v_k.shape[0]
        return grad_W, v0.mean(axis=0) - v_k.mean(axis=0), p_h0.mean(axis=0) - p_hk.mean(axis=0), v_k

    def cd_update_reference(self, v, learning_rate, velocities, random_state=None, chain=None,
                         weight_decay=0.0):
        """One step of fit written plainly (``_cd_update`` is the fast one, tested equal): the
        ``cd_gradient`` of the batch v, then u <- momentum u + learning_rate (grad - weight_decay
        [W, 0, 0]), theta <- theta + u for (W^T, b, c) with the velocities u; returns v_k."""
        grad_W, grad_b, grad_c, v_k = self.cd_gradient(v, random_state, chain)
        grads = (grad_W.T - weight_decay * self.components_, grad_b, grad_c)
        params = (self.components_, self.intercept_visible_, self.intercept_hidden_)
        for param, grad, u in zip(params, grads, velocities):
            u *= self.momentum
            u += learning_rate * grad
            param += u
        return v_k

    def _cd_work(self, rows, xp, dtype):
        """The work arrays of ``_cd_update`` for batches of up to ``rows`` rows (chains likewise):
        V = [v^0; v^k | 1] (2 rows, D + 1), P = [p(h|v^0); p(h|v^k) | +-s] (2 rows, H + 1),
        A = v W (rows, H) and G = P^T V (H + 1, D + 1); V's column of ones is written here."""
        H, D = self.components_.shape
        work = {"V": xp.empty((2 * rows, D + 1), dtype), "P": xp.empty((2 * rows, H + 1), dtype),
                "A": xp.empty((rows, H), dtype), "G": xp.empty((H + 1, D + 1), dtype)}
        work["V"][:, D] = 1
        return work

    def _cd_update(self, X, rows, rng, chain, work, learning_rate, weight_decay, velocities):
        """fit's inner step on the batch X[rows]: ``cd_update_reference`` with the same draws from
        ``rng``, arranged to cost little beyond the 2k + 3 GEMMs of CD-k (the bound that
        benchmarks/bench_rbm.py times). p(h|v^0) is computed once (cd_gradient's gibbs computes
        it again), and the three steps are one GEMM over the batch and the chain's rows,

            [P | s]^T [V | 1] = [[step_W, step_c], [step_b, .]]
            with V = [v^0; v^k] and P = [s p(h|v^0); -s' p(h|v^k)],

        s = learning_rate / n and s' = learning_rate / m (the chain's m rows) in P's last column:
        the top-left block is learning_rate grad_W^T, the last row the visible bias step
        learning_rate (mean v^0 - mean v^k), the last column the hidden one (P's column sums), so
        no separate means. Batches, probabilities and GEMM outputs land in the ``work`` arrays of
        ``_cd_work``; no per-batch input checks (fit checked X); at momentum 0 the velocities are
        left alone (u would equal the step). Equal to ``cd_update_reference`` up to rounding (the
        sums run in another order)."""
        xp = backend.get_array_module(X)
        n = len(rows)
        Wt, b, c = self.components_, self.intercept_visible_, self.intercept_hidden_
        H, D = Wt.shape
        V, P = work["V"], work["P"]
        v0 = V[:n, :D]
        xp.take(X, rows, axis=0, out=v0)

        def p_h_given(v, out):  # sigmoid(c + v W): the GEMM into a work array, then in place
            a = xp.matmul(v, Wt.T, out=work["A"][:len(v)])
            a += c
            return sigmoid(a, out=out)

        p_h0 = p_h_given(v0, P[:n, :H])
        p_h = p_h0 if chain is None else p_h_given(chain, P[n:n + len(chain), :H])
        for _ in range(self.k):  # as gibbs: h ~ p(h|v), v ~ p(v|h), then p(h|v) of the new v
            a_v = bernoulli(p_h, rng) @ Wt
            a_v += b
            v = bernoulli(sigmoid(a_v, out=a_v), rng)
            m = len(v)  # n, or the chain's length under PCD
            p_h = p_h_given(v, P[n:n + m, :H])
        V[n:n + m, :D] = v
        p_h0 *= learning_rate / n
        p_h *= -learning_rate / m
        P[:n, H], P[n:n + m, H] = learning_rate / n, -learning_rate / m
        G = xp.matmul(P[:n + m].T, V[:n + m], out=work["G"])
        step_W, step_b, step_c = G[:H, :D], G[H, :D], G[:H, D]
        if weight_decay:
            step_W -= (learning_rate * weight_decay) * Wt
        for param, step, u in zip((Wt, b, c), (step_W, step_b, step_c), velocities):
            if self.momentum:
                u *= self.momentum
                u += step
                step = u
            param += step
        return v

    def fit(self, X):
        """Initialise W ~ N(0, 0.01^2), b = c = 0 and run ``max_iter`` epochs of CD-k (PCD-k if
        ``persistent``) on X (n, D); X may hold probabilities in [0, 1] (grey levels, a lower
        layer's p(h|v)), which enter the gradient as expectations. Returns self."""
        H = check_int(self.n_hidden, "n_hidden", minimum=1)
        check_int(self.k, "k", minimum=1)
        epochs = check_int(self.max_iter, "max_iter", minimum=1)
        batch_size = check_int(self.batch_size, "batch_size", minimum=1)
        learning_rate = check_float(self.learning_rate, "learning_rate", minimum=0, strict=True)
        weight_decay = check_float(self.weight_decay, "weight_decay", minimum=0)
        if not 0 <= check_float(self.momentum, "momentum") < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        check_int(self.n_gibbs, "n_gibbs", minimum=1)
        dtype = np.dtype(self.dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        X = check_array(X)
        if self.device is not None:
            X = backend.to_device(X, backend.check_device(self.device))
        xp = backend.get_array_module(X)
        X = check_values(X.astype(dtype, copy=False), "X", "unit")
        n, D = X.shape
        rng = self._generator(None, xp)
        self.n_features_in_ = D
        self.components_ = 0.01 * rng.standard_normal((H, D), dtype=dtype)
        self.intercept_visible_ = xp.zeros(D, dtype=dtype)
        self.intercept_hidden_ = xp.zeros(H, dtype=dtype)
        self.data_mean_ = X.mean(axis=0)
        self.log_partition_ais_ = None
        self.history_ = {"reconstruction_error": [], "pseudo_log_likelihood": []}
        v_monitor = bernoulli(X[permutation(n, rng)[:1000]], rng)  # Bernoulli of 0/1 data is itself
        chain = bernoulli(X[permutation(n, rng)[:batch_size]], rng) if self.persistent else None
        velocities = [xp.zeros_like(p) for p in (self.components_, self.intercept_visible_,
                                                 self.intercept_hidden_)]
        work = self._cd_work(min(batch_size, n), xp, dtype)  # reused by every batch
        method = f"{'PCD' if self.persistent else 'CD'}-{self.k}"
        epoch_bar = progress(range(epochs), desc=f"RBM {method}", disable=not self.verbose)
        for _ in epoch_bar:
            order = permutation(n, rng)
            for start in range(0, n, batch_size):
                v_k = self._cd_update(X, order[start:start + batch_size], rng, chain, work,
                                      learning_rate, weight_decay, velocities)
                if self.persistent:
                    chain = v_k
            self.history_["reconstruction_error"].append(
                float(self.reconstruction_error(v_monitor, rng).mean()))
            self.history_["pseudo_log_likelihood"].append(
                float(self.pseudo_log_likelihood(v_monitor, random_state=rng).mean()))
            epoch_bar.set_postfix(reconstruction_error=self.history_["reconstruction_error"][-1],
                                  pseudo_log_likelihood=self.history_["pseudo_log_likelihood"][-1])
        self.n_iter_, self.converged_ = epochs, True
        return self

    # ---- monitors ----------------------------------------------------------------------------
    def reconstruction_error(self, X, random_state=None):
        """(n,) ||v - p(v|h)||^2 with h ~ p(h|v), per row; X (n, D) in [0, 1]."""
        X = self._check(X, "X", "unit")
        p_v = self.gibbs(X, 1, random_state, return_probabilities=True)
        return ((X - p_v) ** 2).sum(axis=1)

    def pseudo_log_likelihood(self, X, exact=False, random_state=None):
        """(n,) sum_i log p(v_i | v_-i) per row; X (n, D) binary.

        ``exact`` sums over all D units (D free-energy evaluations); otherwise one random unit
        per row times D, an unbiased estimate (as in scikit-learn's BernoulliRBM.score_samples).
        """
        v = self._check(X, "X")
        xp = backend.get_array_module(v)
        W, b = self.components_.T, self.intercept_visible_
        a = self.intercept_hidden_ + v @ W
        rows, pll = xp.arange(v.shape[0]), 0
        if exact:
            units, scale = range(self.n_features_in_), 1
        else:  # one random unit per row, scaled by D: an unbiased estimate of the sum over i
            rng = self._generator(random_state, xp)
            units, scale = [rng.integers(0, self.n_features_in_, size=v.shape[0])], self.n_features_in_
        for i in units:
            sign = 1 - 2 * v[rows, i]  # +1 where v_i = 0 flips to 1, -1 where 1 flips to 0
            # F(v') - F(v) for v' = v with unit i flipped
            dF = -sign * b[i] - (softplus(a + sign[:, None] * W[i]) - softplus(a)).sum(axis=1)
            pll = pll - softplus(-dF)  # log sigmoid(F(v') - F(v)) = log p(v_i | v_-i)
        return scale * pll

    # ---- partition function and likelihood ---------------------------------------------------
    def log_partition(self):
        """log Z exactly, enumerating the 2^min(D, H) states of the smaller layer in batches."""
        check_is_fitted(self, "components_")
        H, D = self.components_.shape
        m = min(D, H)
        if m > MAX_EXACT_UNITS:
            raise ValueError(f"exact log Z enumerates 2^{m} states of the smaller layer; it is limited "
                             f"to min(n_visible, n_hidden) <= {MAX_EXACT_UNITS}: use log_partition_ais()")
        xp = backend.get_array_module(self.components_)
        W, b, c = (p.astype("float64") for p in (self.components_.T, self.intercept_visible_,
                                                  self.intercept_hidden_))
        if H <= D:   # log p*(h) = c.h + sum_i softplus(b_i + W_i.h)
            W_enum, bias_enum, bias_other = W.T, c, b
        else:        # log p*(v) = -F(v) = b.v + sum_j softplus(c_j + v.W_j)
            W_enum, bias_enum, bias_other = W, b, c
        batch = max(1, min(2 ** m, 2 ** 22 // max(D, H)))
        bits = xp.arange(m)
        log_z_batches = []
        for start in range(0, 2 ** m, batch):
            codes = xp.arange(start, min(start + batch, 2 ** m))
            states = (xp.right_shift(codes[:, None], bits) & 1).astype("float64")  # row r: r's binary digits
            log_p = states @ bias_enum + softplus(bias_other + states @ W_enum).sum(axis=1)
            log_z_batches.append(logsumexp(log_p))
        return float(logsumexp(xp.stack(log_z_batches)))

    def log_partition_ais(self, n_betas=10000, n_runs=100, X=None, random_state=None,
                          return_bounds=False):
        """log Z by annealed importance sampling with ``n_betas`` temperatures, linear in [0, 1];
        the estimate is also stored as ``log_partition_ais_`` for ``score_samples``.

        The base-rate biases b_A are the logit of X's mean (X in [0, 1]), else of the training
        data's mean ``data_mean_``. With ``return_bounds`` also returns (log(mean(w) - 3 s),
        log(mean(w) + 3 s)) + log Z_A, s the standard error of mean(w) over the ``n_runs`` runs
        (as reported by Salakhutdinov & Murray 2008); the lower end is -inf when 3 s > mean(w).
        Computed in float64.
        """
        n_betas = check_int(n_betas, "n_betas", minimum=2)  # beta_0 = 0 and beta_K = 1
        n_runs = check_int(n_runs, "n_runs", minimum=1)
        check_is_fitted(self, "components_")
        xp = backend.get_array_module(self.components_)
        rng = self._generator(random_state, xp)
        mean = self.data_mean_ if X is None else self._check(X, "X", "unit").mean(axis=0)
        W, b, c = (p.astype("float64") for p in (self.components_.T, self.intercept_visible_,
                                                  self.intercept_hidden_))
        p_A = xp.clip(mean.astype("float64"), 1e-3, 1 - 1e-3)
        b_A = xp.log(p_A) - xp.log1p(-p_A)
        log_z_A = self.components_.shape[0] * math.log(2) + float(softplus(b_A).sum())

        def log_p_star(v, a, beta):  # a = c + v.W
            return (1 - beta) * (v @ b_A) + beta * (v @ b) + softplus(beta * a).sum(axis=1)

        betas = np.linspace(0.0, 1.0, n_betas).tolist()
        v = bernoulli(xp.broadcast_to(p_A, (n_runs, self.n_features_in_)), rng)  # v_1 ~ p_A
        log_w = xp.zeros(n_runs)
        for k in progress(range(1, n_betas), desc="AIS", disable=not self.verbose):
            a = c + v @ W
            log_w += log_p_star(v, a, betas[k]) - log_p_star(v, a, betas[k - 1])
            if k < n_betas - 1:  # v_{k+1} ~ T_k(v_k)
                h = bernoulli(sigmoid(betas[k] * a), rng)
                v = bernoulli(sigmoid((1 - betas[k]) * b_A + betas[k] * (b + h @ W.T)), rng)
        log_z = log_z_A + float(logsumexp(log_w)) - math.log(n_runs)
        self.log_partition_ais_ = log_z
        if not return_bounds:
            return log_z
        w = xp.exp(log_w - log_w.max())  # w / max(w): relative spread is all that matters
        rel_se = float(w.std(ddof=1) / (math.sqrt(n_runs) * w.mean())) if n_runs > 1 else math.inf
        low = log_z + math.log(1 - 3 * rel_se) if 3 * rel_se < 1 else -math.inf
        return log_z, (low, log_z + math.log(1 + 3 * rel_se))

    def score_samples(self, X):
        """(n,) log p(v) = -F(v) - log Z in nats (float64) for binary rows v of X; log Z exact when
        min(D, H) <= 20, else the stored ``log_partition_ais_``."""
        v = self._check(X, "X")
        if min(self.components_.shape) <= MAX_EXACT_UNITS:
            log_z = self.log_partition()
        elif getattr(self, "log_partition_ais_", None) is not None:
            log_z = self.log_partition_ais_
        else:
            raise ValueError(f"log Z of an RBM with {self.n_features_in_} visible and "
                             f"{self.components_.shape[0]} hidden units cannot be enumerated; call "
                             f"log_partition_ais() first (its estimate is then used)")
        return -self.free_energy(v).astype("float64") - log_z

    # ---- sampling -------------------------------------------------------------------------------
    def sample(self, n_samples=1, random_state=None, n_gibbs=None, return_probabilities=False):
        """(n_samples, D) binary samples after ``n_gibbs`` (default: the ``n_gibbs`` setting) Gibbs
        steps of independent chains started from v ~ Bernoulli(data_mean_); with
        ``return_probabilities`` the last p(v|h) instead. ``random_state=None`` uses the
        estimator's ``random_state``."""
        check_is_fitted(self, "components_")
        n_samples = check_int(n_samples, "n_samples", minimum=1)
        n_gibbs = check_int(self.n_gibbs if n_gibbs is None else n_gibbs, "n_gibbs", minimum=1)
        xp = backend.get_array_module(self.components_)
        rng = self._generator(random_state, xp)
        v = bernoulli(xp.broadcast_to(self.data_mean_, (n_samples, self.n_features_in_)), rng)
        return self.gibbs(v, n_gibbs, rng, return_probabilities)


def check_values(X, name, values):
    """Raise unless the array X is binary (``values='binary'``) or in [0, 1] (``'unit'``); returns
    X. Shared with the DBN."""
    check_option(values, "values", ("binary", "unit"))
    if values == "binary" and bool(((X != 0) & (X != 1)).any()):
        bad = float(X[(X != 0) & (X != 1)][0])
        raise ValueError(f"{name} must be binary (values in {{0, 1}}), got e.g. {bad}; "
                         f"binarise it first, e.g. minigen.data.binarize_static")
    if values == "unit" and bool(((X < 0) | (X > 1)).any()):
        raise ValueError(f"{name} must have values in [0, 1], got values in "
                         f"[{float(X.min())}, {float(X.max())}]")
    return X
