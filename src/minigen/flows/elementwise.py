"""Elementwise transforms: ``Affine`` (deck 003's y = 2x + 1), ``Logit`` (pixels in [0, 1] to the
real line, Dinh et al. 2017, Sec. 4.1) and ``ActNorm`` (Kingma & Dhariwal 2018, Sec. 3.1).

An elementwise map has a diagonal Jacobian, so log |det| is the sum of the log-derivatives.
"""
import math

from .. import backend, nn
from .. import functional as F
from ..autograd import no_grad
from ..validation import check_float, check_int
from .base import Transform, check_event_shape, sum_except_batch

__all__ = ["Affine", "Logit", "ActNorm"]


class Affine(Transform):
    """x = exp(log_scale) * z + shift, elementwise, with parameters of ``shape`` (broadcast against
    one example; e.g. (C, 1, 1) for one scale per channel).

    log |det dx/dz| = sum log_scale over the example. With a standard Normal base, scale 2 and
    shift 1 (log_scale = log 2) give x ~ N(1, 4): the deck's y = 2x + 1. Starts as the identity.
    """

    def __init__(self, shape):
        super().__init__()
        self.shape = check_event_shape(shape)
        self.event_shape = self.shape
        xp = backend.array_module_for(backend.default_device())
        self.log_scale = nn.Parameter(xp.zeros(self.shape, dtype="float32"))
        self.shift = nn.Parameter(xp.zeros(self.shape, dtype="float32"))

    def _log_det(self, like):
        return sum_except_batch(F.broadcast_to(self.log_scale, like.shape))

    def forward(self, z):
        return z * F.exp(self.log_scale) + self.shift, self._log_det(z)

    def inverse(self, x):
        return (x - self.shift) * F.exp(-self.log_scale), -self._log_det(x)


class Logit(Transform):
    """Pixels x in [0, 1] <-> the real line (Dinh et al. 2017, Sec. 4.1)::

        inverse:  p = alpha + (1 - 2 alpha) x,   z = logit(p) = log p - log(1 - p)
                  log |det dz/dx| = sum [log(1 - 2 alpha) - log p - log(1 - p)]
        forward:  x = (sigmoid(z) - alpha) / (1 - 2 alpha)
                  log |det dx/dz| = sum [log sigmoid(z) + log sigmoid(-z) - log(1 - 2 alpha)]

    ``alpha`` in [0, 1/2) keeps p away from 0 and 1 (RealNVP uses 0.05); ``inverse`` accepts the
    image of ``forward``, x in (-alpha, 1 - alpha) / (1 - 2 alpha), a little wider than [0, 1]. No parameters.
    """

    def __init__(self, alpha=0.05):
        super().__init__()
        self.alpha = check_float(alpha, "alpha", minimum=0.0)
        if self.alpha >= 0.5:
            raise ValueError(f"Logit: alpha must be in [0, 0.5), got {alpha}")
        self.log_range = math.log1p(-2 * self.alpha)

    def forward(self, z):
        x = (F.sigmoid(z) - self.alpha) / (1 - 2 * self.alpha)
        log_det = -F.softplus(-z) - F.softplus(z) - self.log_range  # log sigmoid(z) + log sigmoid(-z)
        return x, sum_except_batch(log_det)

    def inverse(self, x):
        p = self.alpha + (1 - 2 * self.alpha) * x
        xp = backend.get_array_module(p.data)
        if p.size and not bool(xp.all((p.data > 0) & (p.data < 1))):
            low, high = -self.alpha / (1 - 2 * self.alpha), (1 - self.alpha) / (1 - 2 * self.alpha)
            raise ValueError(f"Logit.inverse: x must lie in ({low:.4g}, {high:.4g}) for alpha={self.alpha} "
                             f"(pixels scaled to [0, 1]; dequantised if alpha=0), got values in "
                             f"[{float(x.data.min()):.4g}, {float(x.data.max()):.4g}]")
        log_p, log_1mp = F.log(p), F.log(1 - p)
        return log_p - log_1mp, sum_except_batch(self.log_range - log_p - log_1mp)


class ActNorm(Transform):
    """A per-channel affine map with data-dependent initialisation (Glow, Kingma & Dhariwal 2018,
    Sec. 3.1, Table 1), on (N, C) or (N, C, H, W) inputs::

        inverse (data to noise):  z = (x - bias) * exp(-log_scale)
        log |det dz/dx| = -H W sum_c log_scale_c          (H W = 1 for vectors)

    The first ``inverse`` call (a batch of data) sets bias and log_scale to the per-channel mean
    and log standard deviation of that batch, so that z starts with zero mean and unit variance
    per channel; ``initialized`` (a saved buffer) records that this happened.
    """

    def __init__(self, num_features):
        super().__init__()
        self.num_features = check_int(num_features, "num_features", minimum=1)
        xp = backend.array_module_for(backend.default_device())
        self.log_scale = nn.Parameter(xp.zeros(self.num_features, dtype="float32"))
        self.bias = nn.Parameter(xp.zeros(self.num_features, dtype="float32"))
        self.register_buffer("initialized", xp.zeros((), dtype=bool))

    def _view(self, p, x):
        if x.ndim not in (2, 4) or x.shape[1] != self.num_features:
            raise ValueError(f"ActNorm: expected input (N, {self.num_features}) or "
                             f"(N, {self.num_features}, H, W), got shape {x.shape}")
        return F.reshape(p, (1, self.num_features) + (1,) * (x.ndim - 2))

    def _log_det(self, x):
        pixels = math.prod(x.shape[2:])
        return F.broadcast_to(pixels * F.sum(self.log_scale), (x.shape[0],))

    def initialize(self, x):
        """Set bias and log_scale from the per-channel statistics of the batch ``x``."""
        axes = (0,) + tuple(range(2, x.ndim))
        with no_grad():
            self.bias.data[...] = x.data.mean(axis=axes)
            self.log_scale.data[...] = backend.get_array_module(x.data).log(x.data.std(axis=axes) + 1e-6)
        self.initialized[...] = True

    def forward(self, z):
        return z * F.exp(self._view(self.log_scale, z)) + self._view(self.bias, z), self._log_det(z)

    def inverse(self, x):
        self._view(self.bias, x)  # shape check before the statistics
        if not bool(self.initialized):
            self.initialize(x)
        z = (x - self._view(self.bias, x)) * F.exp(-self._view(self.log_scale, x))
        return z, -self._log_det(x)
