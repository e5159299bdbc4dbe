"""Deep Boltzmann machine with two hidden layers: mean-field inference, persistent-chain learning, AIS.

Lecture: deck 003 (the DBM beside the DBN: undirected connections between every pair of adjacent
layers, so a middle unit hears both its neighbours; mean-field inference; sampling). Paper:
Salakhutdinov & Hinton 2009, "Deep Boltzmann Machines" (AISTATS), Secs. 2-4.

Model, binary v (D), h1 (H1), h2 (H2)::

    E(v, h1, h2) = -v'W1 h1 - h1'W2 h2 - b'v - c1'h1 - c2'h2,     p = exp(-E) / Z

Conditionals (each layer given its neighbours factorises)::

    p(h1_j = 1 | v, h2) = sigmoid(c1_j + v'W1_j + W2_j h2)    (the middle layer hears both sides)
    p(v_i = 1 | h1) = sigmoid(b_i + W1_i h1),    p(h2_k = 1 | h1) = sigmoid(c2_k + h1'W2_k)

Mean-field posterior q(h1, h2 | v) = prod Bernoulli(mu1_j) prod Bernoulli(mu2_k), fixed point of
(their eq. 8, iterated ``n_mean_field`` times from a bottom-up pass)::

    mu1 = sigmoid(c1 + v'W1 + W2 mu2),    mu2 = sigmoid(c2 + mu1'W2)

and the variational lower bound it maximises (their eq. 6)::

    log p(v) >= b'v + c1'mu1 + c2'mu2 + v'W1 mu1 + mu1'W2 mu2 + H(mu1) + H(mu2) - log Z

Learning (their Sec. 3, Algorithm 1): the log-likelihood gradient is <.>_data - <.>_model; the data
term uses the mean-field posterior, the model term ``n_chains`` persistent Gibbs chains advanced
``k`` steps per update (h1 ~ p(h1 | v, h2); then v ~ p(v | h1) and h2 ~ p(h2 | h1))::

    dW1 = <v mu1'>_data - <v h1'>_chains,    dW2 = <mu1 mu2'>_data - <h1 h2'>_chains,  biases alike.

The persistent chains make this a stochastic approximation (Younes 1989; their Sec. 3), whose
parameters settle only as the step size falls. ``learning_rate_schedule='linear'`` (default)
lowers it from ``learning_rate`` towards 0 over fit's T updates, alpha_t = learning_rate (1 - t / T)
for t = 0..T-1, as the paper's MNIST runs did ("gradually decreased to 0", their Sec. 4);
'constant' keeps it fixed. On the digits example (``examples/dbm.py``, seeds 0-3) the constant
rate ended at a mean-field bound of -25.1 to -27.3 nats, the linear schedule at -24.4 to -24.7.

Greedy pretraining (``pretrain=True``, their Sec. 3.1): two RBMs trained by CD-1, the first with
its bottom-up input doubled (h1 hears 2 v'W1: in the DBM it also hears h2 from above), the second
with its top-down input doubled (h1 hears 2 W2 h2: in the DBM it also hears v from below); the DBM
takes W1 from the first, W2 from the second, and for h1 the mean of the two RBMs' biases.

log Z, exactly for small models by enumerating one side (``log_partition``)::

    over h1:       log Z = logsumexp_h1 [c1'h1 + sum_i softplus(b_i + W1_i h1) + sum_k softplus(c2_k + h1'W2_k)]
    over (v, h2):  log Z = logsumexp_{v,h2} [b'v + c2'h2 + sum_j softplus(c1_j + v'W1_j + W2_j h2)]

and by annealed importance sampling on the model with h1 summed out (``log_partition_ais``; their
Sec. 4, Salakhutdinov & Murray 2008): from the base-rate model A (all weights 0, b_A = logit of the
data mean, Z_A = 2^(H1 + H2) prod_i (1 + e^b_A,i)) through beta_0 = 0 < ... < beta_K = 1,

    p*_beta(v, h2) = exp((1 - beta) b_A'v + beta (b'v + c2'h2)) prod_j (1 + exp(beta (c1_j + v'W1_j + W2_j h2)))

with one Gibbs sweep at beta as the transition. Its estimate of log Z is low on average, so the
reported bound is optimistic by that error; the tests check AIS against enumeration.

Deck 003 draws the DBM with the same energy; where the deck's RBM conditionals swap the biases,
minigen follows the paper (each unit's own bias). Settings, fitted attributes and sampling follow
the estimator contract (``minigen.models.estimator``); like the RBM, learning follows no objective
that can be monitored cheaply, so ``fit`` runs all ``max_iter`` epochs (``converged_`` is True).
"""
import math

import numpy as np

from .. import backend
from ..numerics import bernoulli, logsumexp, sigmoid, softplus
from ..random import permutation
from ..utils.progress import progress
from ..validation import check_array, check_float, check_int, check_is_fitted, check_option
from .estimator import Estimator

__all__ = ["DBM"]

MAX_ENUMERATED_UNITS = 20


def _entropy(mu):
    """H(Bernoulli(mu)) summed over the last axis, with 0 log 0 = 0."""
    xp = backend.get_array_module(mu)
    p = xp.clip(mu, 1e-12, 1 - 1e-12)
    return -(mu * xp.log(p) + (1 - mu) * xp.log1p(-p)).sum(axis=-1)


def learning_rates(learning_rate, n_updates, schedule):
    """The step sizes of fit's ``n_updates`` updates: ``learning_rate`` (1 - t / n_updates) for
    t = 0..n_updates-1 under 'linear', ``learning_rate`` throughout under 'constant'."""
    if schedule == "linear":
        return [learning_rate * (1 - t / n_updates) for t in range(n_updates)]
    return [learning_rate] * n_updates


def _all_states(n, xp, dtype):
    """Every binary vector of length n, as rows (2^n, n)."""
    codes = np.arange(2 ** n)[:, None] >> np.arange(n)[::-1] & 1
    return xp.asarray(codes.astype(dtype))


class DBM(Estimator):
    """Two-hidden-layer binary deep Boltzmann machine, ``layer_sizes = (D, H1, H2)``."""

    def __init__(self, layer_sizes=(784, 500, 1000), learning_rate=0.005, max_iter=10, batch_size=100,
                 n_chains=100, k=1, n_mean_field=10, pretrain=True, pretrain_epochs=10,
                 pretrain_learning_rate=0.05, weight_decay=0.0, n_gibbs=1000, random_state=None,
                 dtype="float64", verbose=False, learning_rate_schedule="linear"):
        self.layer_sizes = layer_sizes
        self.learning_rate = learning_rate
        self.learning_rate_schedule = learning_rate_schedule
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.n_chains = n_chains
        self.k = k
        self.n_mean_field = n_mean_field
        self.pretrain = pretrain
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_learning_rate = pretrain_learning_rate
        self.weight_decay = weight_decay
        self.n_gibbs = n_gibbs
        self.random_state = random_state
        self.dtype = dtype
        self.verbose = verbose

    # ------------------------------------------------------------------ checks
    def _sizes(self):
        sizes = tuple(self.layer_sizes)
        if len(sizes) != 3:
            raise ValueError(f"layer_sizes must be (D, H1, H2): a visible and two hidden layers, "
                             f"got {self.layer_sizes!r}")
        return tuple(check_int(s, "each of layer_sizes", minimum=1) for s in sizes)

    def _check_binary(self, X, name, size, values="unit"):
        like = self.weights_[0] if hasattr(self, "weights_") else None
        X = check_array(X, name, like=like)
        if X.shape[1] != size:
            raise ValueError(f"{name} must have {size} columns (its layer's size), got shape {X.shape}")
        xp = backend.get_array_module(X)
        X = X.astype(np.dtype(self.dtype), copy=False)
        if values == "binary" and bool(((X != 0) & (X != 1)).any()):
            raise ValueError(f"{name} must be binary (values in {{0, 1}}); binarise it first, e.g. "
                             f"minigen.data.binarize_static")
        if bool(((X < 0) | (X > 1)).any()):
            raise ValueError(f"{name} must have values in [0, 1], got values in "
                             f"[{float(X.min())}, {float(X.max())}]")
        return xp.asarray(X)

    # ------------------------------------------------------------------ energy and conditionals
    def energy(self, v, h1, h2):
        """E(v, h1, h2) per row, shape (N,)."""
        check_is_fitted(self, "weights_")
        D, H1, H2 = self._sizes()
        v, h1, h2 = (self._check_binary(a, name, n) for a, name, n in ((v, "v", D), (h1, "h1", H1), (h2, "h2", H2)))
        (W1, W2), (b, c1, c2) = self.weights_, self.biases_
        return -(((v @ W1) * h1).sum(axis=1) + ((h1 @ W2) * h2).sum(axis=1) + v @ b + h1 @ c1 + h2 @ c2)

    def _p_h1(self, v, h2):
        (W1, W2), (_, c1, _) = self.weights_, self.biases_
        return sigmoid(c1 + v @ W1 + h2 @ W2.T)

    def _p_v(self, h1):
        return sigmoid(self.biases_[0] + h1 @ self.weights_[0].T)

    def _p_h2(self, h1):
        return sigmoid(self.biases_[2] + h1 @ self.weights_[1])

    def prob_h1_given_v_h2(self, v, h2):
        """p(h1_j = 1 | v, h2), shape (N, H1)."""
        check_is_fitted(self, "weights_")
        D, _, H2 = self._sizes()
        return self._p_h1(self._check_binary(v, "v", D), self._check_binary(h2, "h2", H2))

    def prob_v_given_h1(self, h1):
        """p(v_i = 1 | h1), shape (N, D)."""
        check_is_fitted(self, "weights_")
        return self._p_v(self._check_binary(h1, "h1", self._sizes()[1]))

    def prob_h2_given_h1(self, h1):
        """p(h2_k = 1 | h1), shape (N, H2)."""
        check_is_fitted(self, "weights_")
        return self._p_h2(self._check_binary(h1, "h1", self._sizes()[1]))

    # ------------------------------------------------------------------ inference
    def _mean_field(self, v, n_iter):
        mu1 = sigmoid(self.biases_[1] + v @ self.weights_[0])   # a bottom-up start
        mu2 = self._p_h2(mu1)
        for _ in range(n_iter):
            mu1 = self._p_h1(v, mu2)
            mu2 = self._p_h2(mu1)
        return mu1, mu2

    def mean_field(self, v, n_iter=None):
        """The mean-field posterior means (mu1 (N, H1), mu2 (N, H2)) after ``n_iter`` fixed-point
        updates (default: the ``n_mean_field`` setting)."""
        check_is_fitted(self, "weights_")
        n_iter = check_int(self.n_mean_field if n_iter is None else n_iter, "n_iter", minimum=0)
        return self._mean_field(self._check_binary(v, "v", self._sizes()[0]), n_iter)

    def _bound_without_log_z(self, v, mu1, mu2):
        (W1, W2), (b, c1, c2) = self.weights_, self.biases_
        return (v @ b + mu1 @ c1 + mu2 @ c2 + ((v @ W1) * mu1).sum(axis=1)
                + ((mu1 @ W2) * mu2).sum(axis=1) + _entropy(mu1) + _entropy(mu2))

    def _log_z(self):
        if self._enumerable():
            return self.log_partition()
        if getattr(self, "log_partition_ais_", None) is None:
            raise ValueError("this DBM is too large for an exact log Z: call log_partition_ais() "
                             "first; score_samples then uses its estimate")
        return self.log_partition_ais_

    def score_samples(self, X, n_iter=None):
        """The mean-field lower bound on log p(v) per row (N,) in nats: exact log Z for small models,
        else the estimate stored by ``log_partition_ais``."""
        mu1, mu2 = self.mean_field(X, n_iter)
        v = self._check_binary(X, "X", self._sizes()[0])
        return self._bound_without_log_z(v, mu1, mu2) - self._log_z()

    # ------------------------------------------------------------------ partition function
    def _enumerable(self):
        D, H1, H2 = self._sizes()
        return min(H1, D + H2) <= MAX_ENUMERATED_UNITS

    def log_partition(self):
        """log Z exactly, enumerating h1 (2^H1 states) or (v, h2) (2^(D+H2)), whichever is smaller;
        a clear error when both exceed 2^20."""
        check_is_fitted(self, "weights_")
        D, H1, H2 = self._sizes()
        if not self._enumerable():
            raise ValueError(f"log_partition enumerates 2^min(H1, D + H2) = 2^{min(H1, D + H2)} states, "
                             f"more than 2^{MAX_ENUMERATED_UNITS}; use log_partition_ais() instead")
        (W1, W2), (b, c1, c2) = self.weights_, self.biases_
        xp = backend.get_array_module(W1)
        if H1 <= D + H2:
            h1 = _all_states(H1, xp, W1.dtype)
            terms = h1 @ c1 + softplus(b + h1 @ W1.T).sum(axis=1) + softplus(c2 + h1 @ W2).sum(axis=1)
        else:
            states = _all_states(D + H2, xp, W1.dtype)
            v, h2 = states[:, :D], states[:, D:]
            terms = v @ b + h2 @ c2 + softplus(c1 + v @ W1 + h2 @ W2.T).sum(axis=1)
        return float(logsumexp(terms))

    def log_partition_ais(self, n_temperatures=10000, n_runs=100, random_state=None):
        """log Z by AIS with h1 summed out (module docstring), ``n_temperatures`` linear in [0, 1];
        stored as ``log_partition_ais_`` for ``score_samples``."""
        check_is_fitted(self, "weights_")
        n_temperatures = check_int(n_temperatures, "n_temperatures", minimum=2)
        n_runs = check_int(n_runs, "n_runs", minimum=1)
        (W1, W2), (b, c1, c2) = self.weights_, self.biases_
        xp = backend.get_array_module(W1)
        rng = self._generator(random_state, xp)
        D, H1, H2 = self._sizes()
        p_A = xp.clip(self.data_mean_, 1e-3, 1 - 1e-3)
        b_A = xp.log(p_A) - xp.log1p(-p_A)
        log_z_A = (H1 + H2) * math.log(2) + float(softplus(b_A).sum())

        def log_p_star(v, h2, a, beta):  # a = c1 + v'W1 + W2 h2
            return (1 - beta) * (v @ b_A) + beta * (v @ b + h2 @ c2) + softplus(beta * a).sum(axis=1)

        betas = np.linspace(0.0, 1.0, n_temperatures).tolist()
        v = bernoulli(xp.broadcast_to(p_A, (n_runs, D)).astype(W1.dtype), rng)   # exact draws from A
        h2 = bernoulli(xp.full((n_runs, H2), 0.5, dtype=W1.dtype), rng)
        log_w = xp.zeros(n_runs, dtype=W1.dtype)
        for t in progress(range(1, n_temperatures), desc="DBM AIS", disable=not self.verbose):
            a = c1 + v @ W1 + h2 @ W2.T
            log_w += log_p_star(v, h2, a, betas[t]) - log_p_star(v, h2, a, betas[t - 1])
            if t < n_temperatures - 1:  # one Gibbs sweep leaving p_beta invariant
                beta = betas[t]
                h1 = bernoulli(sigmoid(beta * a), rng)
                v = bernoulli(sigmoid((1 - beta) * b_A + beta * (b + h1 @ W1.T)), rng)
                h2 = bernoulli(sigmoid(beta * (c2 + h1 @ W2)), rng)
        self.log_partition_ais_ = log_z_A + float(logsumexp(log_w)) - math.log(n_runs)
        return self.log_partition_ais_

    # ------------------------------------------------------------------ learning
    def _gibbs_sweep(self, v, h2, rng):
        h1 = bernoulli(self._p_h1(v, h2), rng)
        return bernoulli(self._p_v(h1), rng), h1, bernoulli(self._p_h2(h1), rng)

    def _pretrain_rbm(self, data, n_hidden, up_scale, down_scale, rng, desc):
        """CD-1 on an RBM whose bottom-up input is multiplied by ``up_scale`` and top-down input by
        ``down_scale`` (2 for the doubled side of the DBM's pretraining); returns (W, b_vis, b_hid)."""
        dtype, xp = data.dtype, backend.get_array_module(data)
        W = 0.01 * rng.standard_normal((data.shape[1], n_hidden), dtype=dtype)
        b_vis, b_hid = xp.zeros(data.shape[1], dtype=dtype), xp.zeros(n_hidden, dtype=dtype)
        lr = check_float(self.pretrain_learning_rate, "pretrain_learning_rate", minimum=0, strict=True)
        n, batch = data.shape[0], check_int(self.batch_size, "batch_size", minimum=1)
        for _ in progress(range(self.pretrain_epochs), desc=desc, disable=not self.verbose):
            order = permutation(n, rng)
            for start in range(0, n, batch):
                v0 = data[order[start:start + batch]]
                p_h0 = sigmoid(b_hid + up_scale * (v0 @ W))
                v1 = sigmoid(b_vis + down_scale * (bernoulli(p_h0, rng) @ W.T))
                p_h1 = sigmoid(b_hid + up_scale * (v1 @ W))
                m = v0.shape[0]
                W += lr * (v0.T @ p_h0 - v1.T @ p_h1) / m
                b_vis += lr * (v0 - v1).mean(axis=0)
                b_hid += lr * (p_h0 - p_h1).mean(axis=0)
        return W, b_vis, b_hid

    def fit(self, X):
        """Pretrain (if ``pretrain``), then ``max_iter`` epochs of mean-field / persistent-chain
        learning on X (N, D) in [0, 1]. Returns self."""
        D, H1, H2 = self._sizes()
        epochs = check_int(self.max_iter, "max_iter", minimum=1)
        batch = check_int(self.batch_size, "batch_size", minimum=1)
        n_chains = check_int(self.n_chains, "n_chains", minimum=1)
        k = check_int(self.k, "k", minimum=1)
        n_mean_field = check_int(self.n_mean_field, "n_mean_field", minimum=0)
        check_int(self.pretrain_epochs, "pretrain_epochs", minimum=0)
        check_int(self.n_gibbs, "n_gibbs", minimum=1)
        lr = check_float(self.learning_rate, "learning_rate", minimum=0, strict=True)
        schedule = check_option(self.learning_rate_schedule, "learning_rate_schedule",
                                ("linear", "constant"))
        decay = check_float(self.weight_decay, "weight_decay", minimum=0)
        dtype = np.dtype(self.dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        for name in ("weights_", "biases_"):  # a refit starts afresh
            self.__dict__.pop(name, None)
        X = self._check_binary(X, "X", D)
        xp = backend.get_array_module(X)
        rng = self._generator(None, xp)
        if self.pretrain and self.pretrain_epochs > 0:
            W1, b, c1_a = self._pretrain_rbm(X, H1, 2.0, 1.0, rng, "pretraining v-h1")
            h1_data = sigmoid(c1_a + 2.0 * (X @ W1))
            W2, c1_b, c2 = self._pretrain_rbm(h1_data, H2, 1.0, 2.0, rng, "pretraining h1-h2")
            c1 = 0.5 * (c1_a + c1_b)
        else:
            W1 = 0.01 * rng.standard_normal((D, H1), dtype=dtype)
            W2 = 0.01 * rng.standard_normal((H1, H2), dtype=dtype)
            b, c1, c2 = (xp.zeros(n, dtype=dtype) for n in (D, H1, H2))
        self.n_features_in_ = D
        self.data_mean_ = X.mean(axis=0)
        self.weights_, self.biases_ = [W1, W2], [b, c1, c2]
        self.log_partition_ais_ = None
        v_chain = bernoulli(xp.broadcast_to(self.data_mean_, (n_chains, D)).astype(dtype), rng)
        h2_chain = bernoulli(xp.full((n_chains, H2), 0.5, dtype=dtype), rng)
        n = X.shape[0]
        rates = iter(learning_rates(lr, epochs * -(-n // batch), schedule))  # one per update
        for _ in progress(range(epochs), desc="DBM epochs", disable=not self.verbose):
            order = permutation(n, rng)
            for start in range(0, n, batch):
                rate = next(rates)
                v = X[order[start:start + batch]]
                mu1, mu2 = self._mean_field(v, n_mean_field)                # data term
                for _ in range(k):                                           # model term
                    v_chain, h1_chain, h2_chain = self._gibbs_sweep(v_chain, h2_chain, rng)
                m = v.shape[0]
                grads = [v.T @ mu1 / m - v_chain.T @ h1_chain / n_chains,
                         mu1.T @ mu2 / m - h1_chain.T @ h2_chain / n_chains]
                bias_grads = [v.mean(0) - v_chain.mean(0), mu1.mean(0) - h1_chain.mean(0),
                              mu2.mean(0) - h2_chain.mean(0)]
                for W, g in zip(self.weights_, grads):
                    W += rate * (g - decay * W)
                for c, g in zip(self.biases_, bias_grads):
                    c += rate * g
        self.n_iter_, self.converged_ = epochs, True
        return self

    # ------------------------------------------------------------------ sampling
    def sample(self, n_samples=1, random_state=None, n_gibbs=None, return_probabilities=False):
        """``n_samples`` visible vectors (n_samples, D) from ``n_gibbs`` Gibbs sweeps (default: the
        setting) started at the data's base rate; the last sweep's p(v | h1) with
        ``return_probabilities``."""
        check_is_fitted(self, "weights_")
        n_samples = check_int(n_samples, "n_samples", minimum=1)
        n_gibbs = check_int(self.n_gibbs if n_gibbs is None else n_gibbs, "n_gibbs", minimum=1)
        xp = backend.get_array_module(self.weights_[0])
        rng = self._generator(random_state, xp)
        D, _, H2 = self._sizes()
        dtype = self.weights_[0].dtype
        v = bernoulli(xp.broadcast_to(self.data_mean_, (n_samples, D)).astype(dtype), rng)
        h2 = bernoulli(xp.full((n_samples, H2), 0.5, dtype=dtype), rng)
        for _ in progress(range(n_gibbs), desc="DBM Gibbs", disable=not self.verbose):
            v, h1, h2 = self._gibbs_sweep(v, h2, rng)
        return self._p_v(h1) if return_probabilities else v
