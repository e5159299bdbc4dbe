"""Glow's invertible 1x1 convolution (Kingma & Dhariwal 2018, Sec. 3.2) and RealNVP's squeeze
(Dinh et al. 2017, Sec. 3.6).

1x1 convolution, a learned C x C matrix W applied at every pixel (density direction, as in
Glow's Table 1)::

    z[:, :, i, j] = W x[:, :, i, j],      log |det dz/dx| = H W log |det W|

On (N, C) inputs it is the linear map z = W x (H W = 1). ``lu=True`` uses Glow's LU
parameterisation W = P L (U + diag(sign(s) exp(log|s|))) with P a fixed permutation, L unit
lower- and U strictly upper-triangular, so that log |det W| = sum log|s| costs O(C). W starts as
a random rotation (log |det W| = 0).

Squeeze: (N, C, H, W) <-> (N, 4C, H/2, W/2), each 2x2 block of pixels becoming 4 channels. In
the density direction (``inverse``) it is space-to-depth, as in RealNVP; ``forward``
(generative) is depth-to-space. A permutation of the entries: log |det| = 0.
"""
import math

import numpy

from .. import backend, nn
from .. import functional as F
from ..random import get_generator
from ..validation import check_int
from .base import Transform, zeros_like_batch
from .linalg import inverse, log_abs_det

__all__ = ["Invertible1x1Conv", "Squeeze"]


def _plu(a):
    """a = P L U (Doolittle's elimination with partial pivoting), on the host."""
    n = len(a)
    u, lower, perm = a.copy(), numpy.eye(n), numpy.arange(n)
    for k in range(n - 1):
        p = k + int(numpy.argmax(numpy.abs(u[k:, k])))
        u[[k, p]], perm[[k, p]], lower[[k, p], :k] = u[[p, k]], perm[[p, k]], lower[[p, k], :k]
        lower[k + 1:, k] = u[k + 1:, k] / u[k, k]
        u[k + 1:] -= lower[k + 1:, k, None] * u[k]
    return numpy.eye(n)[perm].T, lower, numpy.triu(u)


class Invertible1x1Conv(Transform):
    """z = W x over the channel axis of (N, C, H, W) or (N, C) inputs (see the module docstring)."""

    def __init__(self, channels, lu=False, generator=None):
        super().__init__()
        self.channels = check_int(channels, "channels", minimum=1)
        self.lu = bool(lu)
        device = backend.default_device()
        rotation = numpy.linalg.qr(get_generator(generator).standard_normal((channels, channels)))[0]
        if not self.lu:
            self.weight = nn.Parameter(rotation.astype("float32"), device=device)
            return
        p, lower, upper = _plu(rotation)
        s = numpy.diag(upper)
        eye = numpy.eye(channels)
        on = lambda a: backend.to_device(a.astype("float32"), device)  # noqa: E731
        self.register_buffer("permutation", on(p))
        self.register_buffer("sign_s", on(numpy.sign(s)))
        self.register_buffer("lower_mask", on(numpy.tril(numpy.ones_like(eye), -1)))
        self.register_buffer("eye", on(eye))
        self.lower = nn.Parameter(on(lower))
        self.upper = nn.Parameter(on(numpy.triu(upper, 1)))
        self.log_s = nn.Parameter(on(numpy.log(numpy.abs(s))))

    def weight_and_log_det(self):
        """(W, log |det W|)."""
        if not self.lu:
            return self.weight, log_abs_det(self.weight)
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.lower_mask.T + self.eye * (self.sign_s * F.exp(self.log_s))
        return self.permutation @ lower @ upper, F.sum(self.log_s)

    def _apply(self, matrix, x):
        if x.ndim not in (2, 4) or x.shape[1] != self.channels:
            raise ValueError(f"Invertible1x1Conv: expected input (N, {self.channels}) or "
                             f"(N, {self.channels}, H, W), got shape {x.shape}")
        if x.ndim == 2:
            return F.linear(x, matrix)
        return F.einsum("ij,njhw->nihw", matrix, x)

    def _log_det(self, log_det_w, x):
        return F.broadcast_to(math.prod(x.shape[2:]) * log_det_w, (x.shape[0],))

    def forward(self, z):
        weight, log_det_w = self.weight_and_log_det()
        return self._apply(inverse(weight), z), -self._log_det(log_det_w, z)

    def inverse(self, x):
        weight, log_det_w = self.weight_and_log_det()
        return self._apply(weight, x), self._log_det(log_det_w, x)


class Squeeze(Transform):
    """Depth-to-space (``forward``) and space-to-depth (``inverse``) by 2x2 blocks; see above."""

    def forward(self, z):
        n, c4, h, w = self._shape(z, "forward")
        if c4 % 4:
            raise ValueError(f"Squeeze.forward: the channels ({c4}) must be divisible by 4")
        x = F.reshape(z, (n, c4 // 4, 2, 2, h, w))
        x = F.permute(x, 0, 1, 4, 2, 5, 3)
        return F.reshape(x, (n, c4 // 4, 2 * h, 2 * w)), zeros_like_batch(z)

    def inverse(self, x):
        n, c, h, w = self._shape(x, "inverse")
        if h % 2 or w % 2:
            raise ValueError(f"Squeeze.inverse: height and width must be even, got {h} x {w}")
        z = F.reshape(x, (n, c, h // 2, 2, w // 2, 2))
        z = F.permute(z, 0, 1, 3, 5, 2, 4)
        return F.reshape(z, (n, 4 * c, h // 2, w // 2)), zeros_like_batch(x)

    @staticmethod
    def _shape(x, direction):
        if x.ndim != 4:
            raise ValueError(f"Squeeze.{direction}: expected (N, C, H, W), got shape {x.shape}")
        return x.shape
