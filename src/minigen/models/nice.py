"""NICE: Non-linear Independent Components Estimation (Dinh, Krueger & Bengio 2014); deck 003,
normalizing flows.

Density direction (data x to code h), their Sec. 3 and 5::

    h = exp(s) * (g_n o ... o g_1)(x),     g_k additive couplings, alternating odd / even halves
    log p(x) = sum_d log p_H(h_d) + sum_d s_d           (the couplings are volume preserving)

with p_H the standard logistic (their MNIST prior) or the standard Normal. Sampling runs the
maps backwards from h ~ p_H. ``forward(x)`` returns ``log_prob(x)``.

Data: continuous x in [0, 1]^D for ``log_prob``; ``bits_per_dim`` takes 8-bit pixels and
dequantises them, y = (k + u) / 256, as NICE did (Sec. 5.1). ``logit_alpha``: None (the
paper: no logit) or alpha for RealNVP's logit preprocessing, whose Jacobian is then counted.
Where minigen differs from the paper: each coupling's MLP ends in a zero-initialised layer
(the flow starts as the identity); the paper's Adam settings and weight sizes are up to the user.
"""
from .. import functional as F
from ..flows import AdditiveCoupling, Affine, Flow, Logit, Sequential, StandardLogistic, StandardNormal
from ..flows import checkerboard_mask
from ..flows.base import as_input
from ..validation import check_int, check_option

__all__ = ["NICE"]


class NICE(Flow):
    """NICE on vectors (N, input_dim): ``n_couplings`` additive couplings with ReLU MLPs of
    ``hidden_dims``, then a diagonal scaling; ``prior`` "logistic" or "normal" (see module)."""

    def __init__(self, input_dim, n_couplings=4, hidden_dims=(1000, 1000, 1000, 1000, 1000),
                 prior="logistic", logit_alpha=None):
        input_dim = check_int(input_dim, "input_dim", minimum=2)
        n_couplings = check_int(n_couplings, "n_couplings", minimum=1)
        hidden_dims = tuple(hidden_dims)
        check_option(prior, "prior", ("logistic", "normal"))
        couplings = [AdditiveCoupling(checkerboard_mask(input_dim, k % 2), hidden_dims)
                     for k in range(n_couplings)]
        # Sequential runs noise to data: the scaling first, then g_n ... g_1, then the logit.
        steps = [Affine(input_dim), *reversed(couplings)]
        if logit_alpha is not None:
            steps.append(Logit(logit_alpha))
        base = (StandardLogistic if prior == "logistic" else StandardNormal)((input_dim,))
        super().__init__(Sequential(*steps), base)
        self.input_dim, self.n_couplings, self.hidden_dims = input_dim, n_couplings, hidden_dims
        self.prior, self.logit_alpha = prior, logit_alpha

    def log_prob(self, x):
        """log p(x) per example (N,) in nats for continuous x of shape (N, input_dim) (or images
        that flatten to it)."""
        x = as_input(x, self._like())
        if x.ndim > 2:
            x = F.reshape(x, (x.shape[0], -1))
        return super().log_prob(x)
