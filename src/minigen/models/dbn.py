"""Deep belief net: a stack of RBMs trained greedily, one layer at a time (Hinton, Osindero & Teh 2006).

Model. Layers h^0 = v, h^1, ..., h^L with sizes ``layer_sizes``; RBM l (l = 1..L) joins h^{l-1}
(its visible layer) and h^l. The top two layers are an undirected RBM; every layer below is
generated from the one above through the conditional p(v|h) of the RBM that joins them:

    p(v, h^1, ..., h^L) = p(v | h^1) p(h^1 | h^2) ... p(h^{L-2} | h^{L-1}) p(h^{L-1}, h^L)
    p(h^{l-1}_i = 1 | h^l) = sigmoid(b^l_i + W^l_i.h^l)
    p(h^{L-1}, h^L) = exp(-E_L(h^{L-1}, h^L)) / Z_L,   E_L(x, y) = -b^L.x - c^L.y - x.W^L.y

Objective: log p(v). With q(h^1|v) = RBM 1's p(h^1|v) (Hinton et al. 2006),

    log p(v) >= sum_{h^1} q(h^1|v) [log p(h^1) + log p(v|h^1)] + H[q(h^1|v)],

with equality while p(h^1) is RBM 1's own marginal over its hidden layer. Greedy training keeps
p(v|h^1) and q and improves only the prior p(h^1): a new RBM is trained on the data's h^1 under q,
here q's probabilities (or samples from q). Started at W^2 = W^1 transposed (equal sizes) this cannot
lower the bound; like most implementations, minigen starts every RBM afresh instead. Each RBM
is trained by CD-k; its energy, gradient and AIS are in ``minigen/models/rbm.py``.

Sampling: Gibbs sampling in the top RBM gives h^{L-1}, then a down pass h^{l-1} ~ p(h^{l-1} | h^l).
``transform`` is the up pass h^l = q(h^l = 1 | h^{l-1}), applied to probabilities.

score_samples: the bound above applied at every layer (a lower bound on log p(h^1) in place of
log p(h^1) keeps a lower bound), estimated by Monte Carlo over up-pass samples
h^l ~ q(h^l | h^{l-1}), l = 1..L-1:

    log p(v) >= E_q[ sum_{l=1}^{L-1} (log p(h^{l-1} | h^l) - log q(h^l | h^{l-1})) + log p_L(h^{L-1}) ]

with log p_L the top RBM's exact (or AIS) log-probability; for L = 1 it is the RBM's log p(v).
"""
import numbers

from .. import backend
from ..numerics import bernoulli, log_sigmoid, sigmoid
from ..validation import check_array, check_int, check_is_fitted, check_option
from .estimator import Estimator
from .rbm import RBM, check_values

PROPAGATE = ("probabilities", "samples")


class DBN(Estimator):
    """Deep belief net with hidden layers of sizes ``hidden_layer_sizes`` = (H_1, ..., H_L), L >= 1.

    The RBM settings (``k``, ``persistent``, ``learning_rate``, ``max_iter`` epochs per layer,
    ``batch_size``, ``momentum``, ``weight_decay``, ``n_gibbs``, ``dtype``, ``device``,
    ``verbose``) are those of ``RBM`` and are used for every layer; ``propagate`` feeds each RBM
    the layer below as probabilities or as samples; ``random_state`` drives every draw.

    Fitted attributes: ``rbms_`` (the L fitted RBMs; ``rbms_[l]`` joins h^l and h^{l+1}, h^0 = v),
    ``n_features_in_``, ``n_iter_`` (epochs per layer), ``converged_`` (as for the RBM).
    """

    _parameter_names = ("rbms_",)

    def __init__(self, hidden_layer_sizes=(64,), k=1, persistent=False, learning_rate=0.05,
                 max_iter=10, batch_size=100, momentum=0.0, weight_decay=0.0,
                 propagate="probabilities", n_gibbs=1000, random_state=None, dtype="float32",
                 device=None, verbose=False):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.k = k
        self.persistent = persistent
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.propagate = propagate
        self.n_gibbs = n_gibbs
        self.random_state = random_state
        self.dtype = dtype
        self.device = device
        self.verbose = verbose

    def _rbm_settings(self):
        return {name: getattr(self, name) for name in
                ("k", "persistent", "learning_rate", "max_iter", "batch_size", "momentum",
                 "weight_decay", "n_gibbs", "dtype", "device", "verbose")}

    def fit(self, X):
        """Greedy layer-wise training: RBM l is fitted to the up-pass of X through RBMs 1..l-1,
        as probabilities or as samples (``propagate``). Returns self."""
        sizes = self.hidden_layer_sizes
        if not isinstance(sizes, (list, tuple)) or not sizes or not all(
                isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be a non-empty list or tuple of positive "
                             f"integers (H_1, ..., H_L), got {sizes!r}")
        check_option(self.propagate, "propagate", PROPAGATE)
        x = check_array(X)
        if self.device is not None:
            x = backend.to_device(x, backend.check_device(self.device))
        rng = self._generator(None, backend.get_array_module(x))
        rbms = []
        for l, n_hidden in enumerate(sizes):
            if self.verbose:
                print(f"layer {l + 1}/{len(sizes)}: {n_hidden} hidden units")
            rbm = RBM(int(n_hidden), random_state=rng, **self._rbm_settings()).fit(x)
            rbm.random_state = None  # the generator object is not a setting to keep or save
            rbms.append(rbm)
            if l + 1 < len(sizes):
                x = rbm.prob_h_given_v(x) if self.propagate == "probabilities" else rbm.sample_h_given_v(x, rng)
        self.rbms_ = rbms
        self.n_features_in_ = rbms[0].n_features_in_
        self.n_iter_, self.converged_ = rbms[0].n_iter_, True
        return self

    def transform(self, X):
        """The up pass: q(h^L = 1 | v) through every layer's p(h|v), shape (n, H_L)."""
        check_is_fitted(self, "rbms_")
        for rbm in self.rbms_:
            X = rbm.prob_h_given_v(X)
        return X

    def score_samples(self, X, n_samples=10, random_state=None):
        """(n,) Monte Carlo estimate, from ``n_samples`` up-pass samples per row, of the variational
        lower bound on log p(v) (module docstring); exact log p(v) when L = 1. Binary X."""
        check_is_fitted(self, "rbms_")
        n_samples = check_int(n_samples, "n_samples", minimum=1)
        first = self.rbms_[0]
        v = check_array(X, like=first.components_)
        if v.shape[1] != self.n_features_in_:
            raise ValueError(f"X must have shape (n_samples, {self.n_features_in_}), got shape {v.shape}")
        xp = backend.get_array_module(first.components_)
        v = check_values(xp.asarray(v, dtype=first.components_.dtype), "X", "binary")
        rng = self._generator(random_state, xp)
        top = self.rbms_[-1]
        if len(self.rbms_) == 1:
            return top.score_samples(v)
        below = xp.concatenate([v] * n_samples)  # n_samples up-pass paths per row, all at once
        bound = 0
        for rbm in self.rbms_[:-1]:
            a_up = rbm.intercept_hidden_ + below @ rbm.components_.T      # logits of q(h | below)
            h = bernoulli(sigmoid(a_up), rng)
            a_down = rbm.intercept_visible_ + h @ rbm.components_          # logits of p(below | h)
            bound = bound + _log_bernoulli(below, a_down) - _log_bernoulli(h, a_up)
            below = h
        bound = bound + top.score_samples(below)
        return bound.reshape(n_samples, v.shape[0]).mean(axis=0)

    def sample(self, n_samples=1, random_state=None, n_gibbs=None, return_probabilities=False):
        """(n_samples, D): ``n_gibbs`` (default: the setting) Gibbs steps in the top RBM, then the
        down pass; ``return_probabilities`` returns p(v | h^1) of the last step instead of a draw."""
        check_is_fitted(self, "rbms_")
        n_samples = check_int(n_samples, "n_samples", minimum=1)
        rng = self._generator(random_state, backend.get_array_module(self.rbms_[0].components_))
        # p(h^{L-1} | h^L) at the end of the top chain; a draw from it is the top RBM's sample
        p = self.rbms_[-1].sample(n_samples, rng, n_gibbs=n_gibbs if n_gibbs is not None else self.n_gibbs,
                                  return_probabilities=True)
        for rbm in reversed(self.rbms_[:-1]):
            p = rbm.prob_v_given_h(bernoulli(p, rng))  # h^{l-1} ~ p(h^{l-1} | h^l)
        return p if return_probabilities else bernoulli(p, rng)


def _log_bernoulli(x, logits):
    """(n,) sum_i log Bernoulli(x_i | sigmoid(logits_i)) = x log sigma(a) + (1 - x) log sigma(-a)."""
    return (x * log_sigmoid(logits) + (1 - x) * log_sigmoid(-logits)).sum(axis=1)
