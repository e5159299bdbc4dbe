"""Coupling layers: NICE's additive coupling (Dinh et al. 2014, Sec. 3.2-3.3) and RealNVP's affine
coupling (Dinh et al. 2017, Sec. 3.3-3.4), with their masks (RealNVP Sec. 3.4, Fig. 3).

A 0/1 mask b splits the input: the part b x passes unchanged and conditions a network that
moves the rest. In the density direction (data x to noise z, RealNVP Eq. 9)::

    additive:  z = x + (1 - b) t(b x)                          log |det dz/dx| = 0
    affine:    z = b x + (1 - b) (x exp(s(b x)) + t(b x))      log |det dz/dx| = sum (1 - b) s(b x)

and the generative direction undoes it: x = z - (1 - b) t(b z), or x = b z + (1 - b)(z - t) exp(-s)
(b z = b x, so s and t are known). The Jacobian is triangular in a suitable ordering: both
directions cost one network pass. The affine scale is bounded, s = scale * tanh(s_raw) with a
learned per-dimension (per-channel) ``scale`` (starting at 1), since an unbounded exp(s)
diverges early in training (RealNVP's implementation does the same). The networks' last
layer starts at zero, so every coupling starts as the identity.

Vector inputs (N, D) take a mask of shape (D,) and an MLP with ``hidden_dims`` (ReLU); image
inputs (N, C, H, W) take a mask of shape (C, H, W) or (C, 1, 1) and a ResNet of 3x3
convolutions with ``hidden_channels`` and ``n_blocks`` residual blocks (RealNVP Sec. 4.1).
"""
import numpy

from .. import backend, nn
from .. import functional as F
from ..autograd import Tensor
from ..validation import check_int
from .base import Transform, sum_except_batch, zeros_like_batch

__all__ = ["AdditiveCoupling", "AffineCoupling", "checkerboard_mask", "channel_mask"]


def checkerboard_mask(shape, parity=0):
    """A 0/1 float32 array of ``shape``, 1 where (i + j + parity) is even over the last two axes
    (the last axis alone for a 1-D shape): RealNVP's spatial checkerboard (Fig. 3, left), and
    NICE's odd/even split of a vector."""
    shape = (shape,) if isinstance(shape, (int, numpy.integer)) else tuple(shape)
    if not shape or any(not isinstance(n, (int, numpy.integer)) or n < 1 for n in shape):
        raise ValueError(f"checkerboard_mask: shape must be positive ints, got {shape!r}")
    parity = check_int(parity, "parity", minimum=0, maximum=1)
    index = sum(numpy.indices(shape)[-min(2, len(shape)):])
    return ((index + parity) % 2 == 0).astype("float32")


def channel_mask(channels, parity=0):
    """A 0/1 float32 array (channels, 1, 1): ones on the first half of the channels (parity 0) or
    on the second half (parity 1): RealNVP's channel-wise mask (Fig. 3, right)."""
    channels = check_int(channels, "channels", minimum=2)
    parity = check_int(parity, "parity", minimum=0, maximum=1)
    first = numpy.arange(channels) < channels // 2
    return (first if parity == 0 else ~first).astype("float32").reshape(channels, 1, 1)


def _zero_last(layer):
    layer.weight.data[...] = 0
    layer.bias.data[...] = 0
    return layer


class ResidualBlock(nn.Module):
    """h + conv(relu(conv(relu(h)))) with 3x3 convolutions that keep the size (He et al. 2016)."""

    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, h):
        return h + self.conv2(F.relu(self.conv1(F.relu(h))))


def conditioner(mask_shape, n_outputs, hidden_dims, hidden_channels, n_blocks):
    """The coupling network: (N, D) -> (N, n_outputs * D), or (N, C, H, W) -> (N, n_outputs * C, H, W)."""
    if len(mask_shape) == 1:
        sizes = [mask_shape[0], *hidden_dims]
        layers = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        return nn.Sequential(*layers, _zero_last(nn.Linear(sizes[-1], n_outputs * mask_shape[0])))
    c = mask_shape[0]
    blocks = [ResidualBlock(hidden_channels) for _ in range(n_blocks)]
    return nn.Sequential(nn.Conv2d(c, hidden_channels, 3, padding=1), *blocks, nn.ReLU(),
                         _zero_last(nn.Conv2d(hidden_channels, n_outputs * c, 3, padding=1)))


class _Coupling(Transform):
    n_outputs = 1

    def __init__(self, mask, hidden_dims=(64, 64), hidden_channels=32, n_blocks=1):
        super().__init__()
        mask = mask.data if isinstance(mask, Tensor) else mask
        mask = numpy.asarray(backend.to_numpy(mask) if hasattr(mask, "shape") else mask, dtype="float32")
        if mask.ndim not in (1, 3) or not numpy.isin(mask, (0, 1)).all():
            raise ValueError(f"{type(self).__name__}: mask must be a 0/1 array of shape (D,) for vectors "
                             f"or (C, H, W) / (C, 1, 1) for images, got shape {mask.shape}")
        if mask.all() or not mask.any():
            raise ValueError(f"{type(self).__name__}: mask must hold both 0s and 1s (all "
                             f"{int(mask.flat[0])}s would leave nothing to transform or to condition on)")
        self.hidden_dims = tuple(check_int(h, "each of hidden_dims", minimum=1) for h in hidden_dims)
        self.hidden_channels = check_int(hidden_channels, "hidden_channels", minimum=1)
        self.n_blocks = check_int(n_blocks, "n_blocks", minimum=0)
        self.register_buffer("mask", backend.to_device(mask, backend.default_device()))
        if mask.ndim == 1 or mask.shape[1:] != (1, 1):
            self.event_shape = mask.shape
        self.net = conditioner(mask.shape, self.n_outputs, self.hidden_dims, self.hidden_channels,
                               self.n_blocks)

    def _check(self, x):
        m = self.mask
        ok = x.ndim == m.ndim + 1 and all(a == b or b == 1 for a, b in zip(x.shape[1:], m.shape))
        if not ok:
            raise ValueError(f"{type(self).__name__}: input of shape {x.shape} does not match the "
                             f"mask of shape {m.shape} (expected (N, {', '.join(map(str, m.shape))}))")
        return m


class AdditiveCoupling(_Coupling):
    """NICE's additive coupling: z = x + (1 - b) t(b x) (density direction); volume preserving.

    ``mask`` b: a 0/1 array, (D,) with an MLP of ``hidden_dims`` or (C, H, W) / (C, 1, 1) with a
    conv ResNet (``hidden_channels``, ``n_blocks``); see the module docstring.
    """

    def _shift(self, x_b, m):
        return (1 - m) * self.net(x_b)

    def forward(self, z):
        m = self._check(z)
        return z - self._shift(z * m, m), zeros_like_batch(z)

    def inverse(self, x):
        m = self._check(x)
        return x + self._shift(x * m, m), zeros_like_batch(x)


class AffineCoupling(_Coupling):
    """RealNVP's affine coupling with a bounded scale (see the module docstring)::

        z = b x + (1 - b) (x exp(s) + t),  s = scale * tanh(s_raw(b x)),  log |det dz/dx| = sum (1 - b) s
    """

    n_outputs = 2

    def __init__(self, mask, hidden_dims=(64, 64), hidden_channels=32, n_blocks=1):
        super().__init__(mask, hidden_dims, hidden_channels, n_blocks)
        xp = backend.array_module_for(backend.default_device())
        scale_shape = self.mask.shape if self.mask.ndim == 1 else (self.mask.shape[0], 1, 1)
        self.scale = nn.Parameter(xp.ones(scale_shape, dtype="float32"))

    def _scale_shift(self, x_b, m):
        s_raw, t = F.split(self.net(x_b), 2, axis=1)
        return (1 - m) * self.scale * F.tanh(s_raw), (1 - m) * t

    def forward(self, z):
        m = self._check(z)
        s, t = self._scale_shift(z * m, m)
        return (z - t) * F.exp(-s), -sum_except_batch(s)

    def inverse(self, x):
        m = self._check(x)
        s, t = self._scale_shift(x * m, m)
        return x * F.exp(s) + t, sum_except_batch(s)
