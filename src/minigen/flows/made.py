"""MADE (Germain et al. 2015) and the autoregressive flows built on it: MAF (Papamakarios et al.
2017) and IAF (Kingma et al. 2016).

MADE is an MLP whose weights are masked so that output i depends only on inputs that come
before i in an ordering (Germain et al. 2015, Sec. 4, Eqs. 12-13): every unit k gets a degree
m(k); inputs have degrees 1..D (in ``reverse`` order if asked), hidden units degrees in
[m_min, D - 1], and

    hidden masks:  M[k, j] = 1 if m(k) >= m(j)          output mask:  M[i, k] = 1 if d(i) > m(k)

Hidden degrees are assigned cyclically (deterministic). With a ``context`` (an encoder's h for
IAF), the context feeds the first hidden layer unmasked and hidden degrees start at 0, so that
the first output can depend on the context; without one they start at 1, as in the paper.

Affine autoregressive maps have a triangular Jacobian, log |det| = the sum of the log-diagonal,
but one direction runs in a single pass and the other needs D sequential passes:

- MAF (Papamakarios et al. 2017, Eqs. 2-5): in the density direction (``inverse``, data to
  noise) z_i = (x_i - mu_i(x_<i)) exp(-alpha_i(x_<i)) is ONE parallel pass; sampling
  (``forward``) x_i = z_i exp(alpha_i) + mu_i(x_<i) is sequential over the D dimensions. Suited
  to density estimation.
- IAF (Kingma et al. 2016, Eqs. 10-14, their numerically stable LSTM-type update): sampling
  (``forward``) x = sigma(z) z + (1 - sigma(z)) m(z), with [m_i, s_i] from z_<i and
  sigma = sigmoid(s), is ONE parallel pass with log |det dx/dz| = sum log sigma; the density
  direction (``inverse``) is sequential over the D dimensions. Suited to a VAE posterior,
  where only samples and their own densities are needed.
"""
import numpy

from .. import backend, nn
from .. import functional as F
from ..validation import check_int
from .base import Transform, sum_except_batch

__all__ = ["MADE", "MAF", "IAF"]


class MaskedLinear(nn.Linear):
    """y = x (M * W)^T + b with a fixed 0/1 ``mask`` M of W's shape (a saved buffer)."""

    def __init__(self, in_features, out_features, mask):
        super().__init__(in_features, out_features)
        self.register_buffer("mask", backend.to_device(mask.astype("float32"), self.weight.device))

    def forward(self, x):
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """Masked autoencoder: (N, dim) -> (N, n_params, dim), output [:, p, i] a function of the
    inputs before i (in the order 1..dim, or dim..1 if ``reverse``) and of ``context`` only.

    ``hidden_dims``: the widths of the ReLU hidden layers; ``context_dim``: size of an optional
    conditioning vector given as ``forward(x, context)``.
    """

    def __init__(self, dim, hidden_dims=(64, 64), n_params=2, context_dim=None, reverse=False):
        super().__init__()
        self.dim = check_int(dim, "dim", minimum=1)
        self.hidden_dims = tuple(check_int(h, "each of hidden_dims", minimum=1) for h in hidden_dims)
        self.n_params = check_int(n_params, "n_params", minimum=1)
        self.context_dim = None if context_dim is None else check_int(context_dim, "context_dim", minimum=1)
        self.reverse = bool(reverse)
        order = numpy.arange(1, self.dim + 1)
        self.degrees = order[::-1].copy() if self.reverse else order   # d(i) of input / output i
        low = 0 if (self.context_dim is not None or self.dim == 1) else 1
        degrees_in, layers = self.degrees, []
        for width in self.hidden_dims:
            degrees_out = low + numpy.arange(width) % max(self.dim - low, 1)
            mask = degrees_out[:, None] >= degrees_in[None, :]
            layers += [MaskedLinear(len(degrees_in), width, mask), nn.ReLU()]
            degrees_in = degrees_out
        out_mask = numpy.tile(self.degrees, self.n_params)[:, None] > degrees_in[None, :]
        layers.append(MaskedLinear(len(degrees_in), self.n_params * self.dim, out_mask))
        self.net = nn.Sequential(*layers)
        if self.context_dim is not None:
            width = self.hidden_dims[0] if self.hidden_dims else self.n_params * self.dim
            self.context = nn.Linear(self.context_dim, width, bias=False)

    def forward(self, x, context=None):
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"MADE: expected input (N, {self.dim}), got shape {x.shape}")
        if context is None and self.context_dim is not None:
            raise ValueError(f"MADE: this network was built with context_dim={self.context_dim}: "
                             f"pass a context of shape (N, {self.context_dim})")
        if context is not None and self.context_dim is None:
            raise ValueError("MADE: got a context, but the network was built with context_dim=None")
        layers = list(self.net)
        h = layers[0](x)
        if context is not None:
            h = h + self.context(context)
        for layer in layers[1:]:
            h = layer(h)
        return F.reshape(h, (x.shape[0], self.n_params, self.dim))


class _Autoregressive(Transform):
    def __init__(self, dim, hidden_dims=(64, 64), context_dim=None, reverse=False):
        super().__init__()
        self.made = MADE(dim, hidden_dims, 2, context_dim, reverse)
        self.dim = self.made.dim
        self.event_shape = (self.dim,)

    def _params(self, x, context):
        out = self.made(x, context)
        return out[:, 0], out[:, 1]


class MAF(_Autoregressive):
    """Masked autoregressive flow layer on (N, dim) (module docstring): ``inverse`` (density,
    data to noise) is one parallel pass, ``forward`` (sampling) dim sequential passes::

        z_i = (x_i - mu_i(x_<i)) exp(-alpha_i(x_<i)),    log |det dz/dx| = -sum_i alpha_i

    Where minigen departs from the paper: alpha = A tanh(alpha_raw / A) with A = ``MAX_LOG_SCALE``
    (5), a soft clamp: with an unbounded alpha of -40, x_i = z_i exp(alpha_i) + mu_i rounds z_i
    away and the inverse no longer recovers it (the same reason couplings bound their scale).
    """

    MAX_LOG_SCALE = 5.0

    def _params(self, x, context):
        mu, alpha_raw = super()._params(x, context)
        return mu, self.MAX_LOG_SCALE * F.tanh(alpha_raw / self.MAX_LOG_SCALE)

    def inverse(self, x, context=None):
        mu, alpha = self._params(x, context)
        return (x - mu) * F.exp(-alpha), -sum_except_batch(alpha)

    def forward(self, z, context=None):
        x = z
        for _ in range(self.dim):  # after pass k the first k dimensions (in order) are exact
            mu, alpha = self._params(x, context)
            x = z * F.exp(alpha) + mu
        return x, sum_except_batch(alpha)


class IAF(_Autoregressive):
    """Inverse autoregressive flow layer on (N, dim) (module docstring): ``forward`` (sampling)
    is one parallel pass, ``inverse`` (density) dim sequential passes::

        x = sigma z + (1 - sigma) m,   [m, s] = MADE(z, context),  sigma = sigmoid(s),
        log |det dx/dz| = sum_i log sigma_i

    ``context``: the encoder's extra output h (Kingma et al. 2016, Sec. 4), (N, context_dim).
    """

    def forward(self, z, context=None):
        m, s = self._params(z, context)
        sigma = F.sigmoid(s)
        return sigma * z + (1 - sigma) * m, -sum_except_batch(F.softplus(-s))  # log sigmoid(s)

    def inverse(self, x, context=None):
        z = x
        for _ in range(self.dim):
            m, s = self._params(z, context)
            sigma = F.sigmoid(s)
            z = (x - (1 - sigma) * m) / sigma
        return z, sum_except_batch(F.softplus(-s))
