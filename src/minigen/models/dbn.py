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
"""
import numbers

from .. import backend
from ..random import get_generator
from ..validation import check_option
from .rbm import RBM, _bernoulli

PROPAGATE = ("probabilities", "samples")


class DBN:
    """Deep belief net over ``layer_sizes`` = [n_visible, n_hidden_1, ..., n_hidden_L] (L >= 1).

    ``rbms[l]`` joins h^l and h^{l+1} (RBM l+1 above; h^0 = v). ``random_state`` (None, int or
    Generator) drives the initialisation of every RBM and all later draws; ``dtype`` and
    ``device`` as in RBM.
    """

    def __init__(self, layer_sizes, random_state=None, dtype="float32", device=None):
        sizes = list(layer_sizes) if hasattr(layer_sizes, "__iter__") else [layer_sizes]
        if len(sizes) < 2 or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1
                                     for s in sizes):
            raise ValueError(f"layer_sizes must be a list of at least two positive integers "
                             f"[n_visible, n_hidden_1, ...], got {layer_sizes!r}")
        self.layer_sizes = [int(s) for s in sizes]
        device = backend.check_device(device or backend.default_device())
        self._rng = get_generator(random_state, backend.array_module_for(device))
        self.rbms = [RBM(n_in, n_out, random_state=self._rng, dtype=dtype, device=device)
                     for n_in, n_out in zip(self.layer_sizes[:-1], self.layer_sizes[1:])]

    def __repr__(self):
        return f"DBN(layer_sizes={self.layer_sizes})"

    def fit(self, X, k=1, persistent=False, learning_rate=0.05, epochs=10, batch_size=100,
            momentum=0.0, weight_decay=0.0, propagate="probabilities", verbose=False):
        """Greedy layer-wise training: RBM l is fitted (``RBM.fit``, same arguments) to the
        up-pass of X through RBMs 1..l-1, as probabilities or as samples (``propagate``). Returns self."""
        check_option(propagate, "propagate", PROPAGATE)
        x = X
        for l, rbm in enumerate(self.rbms):
            if verbose:
                print(f"layer {l + 1}/{len(self.rbms)}: {rbm}")
            rbm.fit(x, k=k, persistent=persistent, learning_rate=learning_rate, epochs=epochs,
                    batch_size=batch_size, momentum=momentum, weight_decay=weight_decay, verbose=verbose)
            if l + 1 < len(self.rbms):
                x = rbm.prob_h_given_v(x) if propagate == "probabilities" else rbm.sample_h_given_v(x)
        return self

    def transform(self, X):
        """The up pass: q(h^L = 1 | v) through every layer's p(h|v), shape (n, layer_sizes[-1])."""
        for rbm in self.rbms:
            X = rbm.prob_h_given_v(X)
        return X

    def sample(self, n, n_gibbs=1000, random_state=None, return_probabilities=False):
        """n samples (n, n_visible): ``n_gibbs`` Gibbs steps in the top RBM, then the down pass.

        ``return_probabilities`` returns p(v | h^1) of the last step instead of a binary draw.
        """
        xp = backend.get_array_module(self.rbms[0].W)
        rng = self._rng if random_state is None else get_generator(random_state, xp)
        # p(h^{L-1} | h^L) at the end of the top chain; a draw from it is the top RBM's sample
        p = self.rbms[-1].sample(n, n_gibbs, random_state=rng, return_probabilities=True)
        for rbm in reversed(self.rbms[:-1]):
            p = rbm.prob_v_given_h(_bernoulli(p, rng))  # h^{l-1} ~ p(h^{l-1} | h^l)
        return p if return_probabilities else _bernoulli(p, rng)
