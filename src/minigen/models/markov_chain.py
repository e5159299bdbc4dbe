"""First-order Markov chain over a finite set of states.

Lecture deck 000 ("Markov model"); Norris (1997), "Markov Chains", sections 1.1 and 1.7.

Model (1st-order Markov assumption p(x_t | x_1..x_{t-1}) = p(x_t | x_{t-1})):

    p(x_1, ..., x_T) = p(x_1) prod_{t=2}^T p(x_t | x_{t-1}) = pi0[x_1] prod_t P[x_{t-1}, x_t]

Maximum likelihood from sequences (with add-alpha pseudo-counts):

    pi0[i]  = (#sequences starting in i + alpha) / (#sequences + n_states alpha)
    P[i, j] = (#transitions i -> j + alpha) / (#transitions out of i + n_states alpha)

A state never left in the data (with alpha = 0) gets a uniform row: the likelihood does not
depend on it.

Stationary distribution: the row vector pi with pi P = pi and sum(pi) = 1 (unique when the
chain is irreducible); found by solving (P^T - I) pi = 0 together with 1^T pi = 1.
"""
import numpy

from .. import backend
from ..backend import get_array_module
from ..random import get_generator
from ..validation import check_float, check_int, check_is_fitted
from .estimator import Estimator


class MarkovChain(Estimator):
    """A first-order Markov chain over the states 0..n_states-1.

    Fitted attributes: ``initial_`` (n_states,) p(x_1) and ``transition_matrix_``
    (n_states, n_states) with ``transition_matrix_[i, j] = p(x_t = j | x_{t-1} = i)``.
    Sequences: a list of 1-D integer arrays (lengths may differ) or a 2-D integer array
    (n_sequences, length).
    """

    def __init__(self, n_states, alpha=0.0):
        self.n_states = n_states
        self.alpha = alpha

    def _sequences(self, sequences, name="sequences", like=None):
        """``sequences`` as a list of 1-D int64 arrays with values in [0, n_states), on the
        device of the array ``like`` when given (the fitted parameters)."""
        n_states = check_int(self.n_states, "n_states", minimum=1)
        if hasattr(sequences, "ndim") and sequences.ndim == 2:
            sequences = list(sequences)
        if not isinstance(sequences, (list, tuple)) or not sequences:
            raise TypeError(f"{name} must be a non-empty list of 1-D integer arrays (or a 2-D "
                            f"array of equal-length sequences), got {type(sequences).__name__}")
        out = []
        for i, x in enumerate(sequences):
            if like is not None:
                x = backend.to_device(numpy.asarray(x) if isinstance(x, (list, tuple)) else x,
                                      backend.device_of(like))
            xp = get_array_module(x)
            x = xp.asarray(x)
            if x.ndim != 1 or x.size == 0:
                raise ValueError(f"{name}[{i}] must be a non-empty 1-D array, got shape {x.shape}")
            if x.dtype.kind not in "biu" and not bool(xp.all(x == xp.round(x))):
                raise ValueError(f"{name}[{i}] must hold integer states, got dtype {x.dtype}")
            x = x.astype(xp.int64)
            if bool(xp.any(x < 0)) or bool(xp.any(x >= n_states)):
                raise ValueError(f"{name}[{i}] must hold states in [0, {n_states}), got values "
                                 f"from {int(x.min())} to {int(x.max())}")
            out.append(x)
        return out

    def fit(self, sequences):
        """Maximum-likelihood (add-``alpha`` smoothed) initial distribution and transitions."""
        sequences = self._sequences(sequences)
        alpha = check_float(self.alpha, "alpha", minimum=0)
        xp = get_array_module(*sequences)
        K = self.n_states
        first = xp.stack([x[0] for x in sequences])
        pairs = xp.concatenate([x[:-1] * K + x[1:] for x in sequences])  # flat index of (i, j)
        start_counts = xp.bincount(first, minlength=K) + alpha
        counts = xp.bincount(pairs, minlength=K * K).reshape(K, K) + alpha
        self.initial_ = start_counts / start_counts.sum()
        totals = counts.sum(axis=1, keepdims=True)
        self.transition_matrix_ = xp.where(totals > 0, counts / xp.where(totals > 0, totals, 1), 1.0 / K)
        return self

    def log_prob(self, sequences):
        """(n_sequences,) log p(x_1..x_T) = log pi0[x_1] + sum_t log P[x_{t-1}, x_t], nats."""
        check_is_fitted(self, "transition_matrix_")
        sequences = self._sequences(sequences, like=self.transition_matrix_)
        xp = get_array_module(self.transition_matrix_)
        log_P, log_pi0 = xp.log(self.transition_matrix_), xp.log(self.initial_)
        return xp.stack([log_pi0[x[0]] + log_P[x[:-1], x[1:]].sum() for x in sequences])

    def score_samples(self, sequences):
        """(n_sequences,) per-sequence log-likelihood in nats: the same as ``log_prob``."""
        return self.log_prob(sequences)

    def sample(self, length, n_samples=1, random_state=None):
        """(n_samples, length) integer sequences drawn by ancestral sampling: x_1 ~ pi0,
        x_t ~ P[x_{t-1}]."""
        check_is_fitted(self, "transition_matrix_")
        length = check_int(length, "length", minimum=1)
        n_samples = check_int(n_samples, "n_samples", minimum=1)
        xp = get_array_module(self.transition_matrix_)
        rng = get_generator(random_state, xp)
        u = rng.random((n_samples, length, 1))
        cdf0, cdf = xp.cumsum(self.initial_), xp.cumsum(self.transition_matrix_, axis=1)
        last = self.n_states - 1  # a CDF that rounds to just below one must not go past it
        x = xp.empty((n_samples, length), dtype=xp.int64)
        x[:, 0] = xp.minimum((cdf0 < u[:, 0]).sum(axis=1), last)
        for t in range(1, length):  # inverse CDF of row x_{t-1}
            x[:, t] = xp.minimum((cdf[x[:, t - 1]] < u[:, t]).sum(axis=1), last)
        return x

    def stationary_distribution(self):
        """(n_states,) pi with pi P = pi, sum(pi) = 1 (least squares: the unique solution for
        an irreducible chain)."""
        check_is_fitted(self, "transition_matrix_")
        P = self.transition_matrix_
        xp = get_array_module(P)
        K = self.n_states
        A = xp.concatenate([P.T - xp.eye(K), xp.ones((1, K))])  # (P^T - I) pi = 0, 1^T pi = 1
        b = xp.zeros(K + 1)
        b[-1] = 1.0
        return xp.linalg.lstsq(A, b, rcond=None)[0]
