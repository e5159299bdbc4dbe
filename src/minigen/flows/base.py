"""The change of variables, as deck 003 writes it: ``Transform``, ``Sequential`` and ``Flow``.

A flow pushes a simple base variable z ~ p_Z through an invertible map x = T(z). Rezende &
Mohamed (2015, Eq. 1) and the deck's y = 2x + 1 example give the density of x::

    log p_X(x) = log p_Z(T^-1(x)) + log |det dT^-1/dx|          (density: the inverse direction)
               = log p_Z(z) - log |det dT/dz|,  z = T^-1(x)      (sampling: the forward direction)

and a composition x = T_K o ... o T_1(z) adds the log-determinants (their Eq. 6).

Direction convention (that of the deck, of Rezende & Mohamed and of PyTorch's
``TransformedDistribution``): every ``Transform`` has ``forward(z) -> (x, log_abs_det)``, the
*generative* direction from the base variable to the data, and ``inverse(x) -> (z, log_abs_det)``,
the density direction; ``log_abs_det`` has shape (N,) and is log |det dT/dz| for ``forward`` and
log |det dT^-1/dx| for ``inverse``, so the two sum to zero at matching points.
"""
import math

import numpy

from .. import backend, nn
from .. import functional as F
from ..autograd import Tensor, no_grad
from ..distributions import Distribution, standard_logistic_log_density, standard_logistic_noise
from ..random import get_generator
from ..validation import check_int

__all__ = ["Transform", "Sequential", "Flow", "StandardNormal", "StandardLogistic",
           "sum_except_batch", "dequantize"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def sum_except_batch(t):
    """Sum a tensor (N, ...) over every axis but the first: per-example totals (N,)."""
    return F.sum(t, axis=tuple(range(1, t.ndim))) if t.ndim > 1 else t


def zeros_like_batch(t):
    """A zero log-determinant (N,) in ``t``'s dtype and on its device (volume-preserving maps)."""
    xp = backend.get_array_module(t.data)
    return Tensor(xp.zeros(t.shape[0], dtype=t.dtype))


def check_event_shape(shape, name="shape"):
    """An int or a tuple of positive ints, as a tuple."""
    shape = (shape,) if isinstance(shape, (int, numpy.integer)) else shape
    if not isinstance(shape, (tuple, list)) or not shape:
        raise TypeError(f"{name} must be a positive int or a non-empty tuple of them, got {shape!r}")
    return tuple(check_int(n, f"each entry of {name}", minimum=1) for n in shape)


def dequantize(x, n_levels=256, generator=None):
    """y = (k + u) / n_levels, u ~ U(0, 1): 8-bit pixels as a continuous variable in (0, 1).

    ``x``: the levels k as integers in [0, n_levels), or as floats k / (n_levels - 1) in [0, 1]
    (how minigen's loaders store images; the bundled digits' 17 levels are mapped to the
    nearest of 256). Returns a tensor of x's float dtype (float32 for integer input).
    """
    n_levels = check_int(n_levels, "n_levels", minimum=2)
    data = x.data if isinstance(x, Tensor) else x
    xp = backend.get_array_module(data)
    data = xp.asarray(data)
    if data.dtype.kind in "iu":
        k, dtype = data, numpy.dtype("float32")
        top = n_levels - 1
    else:
        k, dtype, top = xp.rint(data * (n_levels - 1)), data.dtype, 1
    if data.size and (float(data.min()) < 0 or float(data.max()) > top or
                      not bool(xp.isfinite(data).all())):
        raise ValueError(f"dequantize: x must hold levels in [0, {top}] "
                         f"({'integers' if top != 1 else 'floats k / ' + str(n_levels - 1)}), "
                         f"got values in [{float(data.min()):.4g}, {float(data.max()):.4g}]")
    u = get_generator(generator, xp).random(k.shape)  # a host Generator draws on the host:
    u = backend.to_device(u, backend.device_of(k))    # move its draws to the data's device
    return Tensor(((k + u) / n_levels).astype(dtype))


class Transform(nn.Module):
    """An invertible map with its log-determinant (see the module docstring for the directions).

    Subclasses implement ``forward(z) -> (x, log_abs_det)`` and, when a closed form exists,
    ``inverse(x) -> (z, log_abs_det)``; ``event_shape`` is the shape of one example when the
    transform knows it (None otherwise).
    """

    event_shape = None

    def forward(self, z):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def inverse(self, x):
        raise NotImplementedError(f"{type(self).__name__} has no inverse")


def as_input(x, like=None):
    """``x`` (tensor or array) as a floating tensor with ``like``'s dtype and device."""
    if not isinstance(x, Tensor):
        x = Tensor(x if hasattr(x, "shape") else numpy.asarray(x, dtype="float32"))
    if x.dtype.kind not in "biuf":
        raise TypeError(f"expected real numbers, got dtype {x.dtype}")
    if like is not None:
        x = x.to(device=like.device, dtype=like.dtype)
    elif x.dtype.kind != "f":
        x = x.to(dtype="float32")
    return x


class Sequential(Transform):
    """T = T_K o ... o T_1: ``forward`` applies the transforms in the order given (T_1 first) and
    ``inverse`` in reverse order; the log-determinants add (Rezende & Mohamed 2015, Eq. 6)."""

    def __init__(self, *transforms):
        super().__init__()
        for i, t in enumerate(transforms):
            if not isinstance(t, Transform):
                raise TypeError(f"Sequential: transform {i} must be a minigen.flows.Transform, "
                                f"got {type(t).__name__}")
        if not transforms:
            raise ValueError("Sequential needs at least one transform")
        self.transforms = nn.ModuleList(transforms)
        self.event_shape = next((t.event_shape for t in transforms if t.event_shape is not None), None)

    def __len__(self):
        return len(self.transforms)

    def __getitem__(self, i):
        return self.transforms[i]

    def forward(self, z):
        total = None
        for t in self.transforms:
            z, log_det = t(z)
            total = log_det if total is None else total + log_det
        return z, total

    def inverse(self, x):
        total = None
        for t in reversed(list(self.transforms)):
            x, log_det = t.inverse(x)
            total = log_det if total is None else total + log_det
        return x, total


class _StandardBase(Distribution):
    """A parameter-free base density over ``event_shape`` that takes its dtype and device from
    the values it meets (so a flow moved to float64 or to the GPU needs no new base)."""

    def __init__(self, event_shape):
        self.batch_shape = check_event_shape(event_shape, "event_shape")

    def sample(self, sample_shape=(), generator=None):
        shape = ((sample_shape,) if isinstance(sample_shape, int) else tuple(sample_shape)) + self.batch_shape
        return Tensor(self._draw(get_generator(generator), shape).astype("float32"))

    def rsample(self, sample_shape=(), eps=None, generator=None):
        return self.sample(sample_shape, generator)  # no parameters: nothing to differentiate


class StandardNormal(_StandardBase):
    """N(0, I) over ``event_shape``: log p(z) = -z^2 / 2 - log(2 pi) / 2 per element."""

    def log_prob(self, z):
        return -0.5 * z * z - _HALF_LOG_2PI

    def _draw(self, generator, shape):
        return generator.standard_normal(shape)


class StandardLogistic(_StandardBase):
    """The standard logistic density per element (NICE's prior for MNIST, Dinh et al. 2014,
    Sec. 3.4): log p(z) = -softplus(z) - softplus(-z) = -z - 2 softplus(-z); sampled as
    logit(u), u ~ U(0, 1). ``distributions.Logistic(0, 1)`` with its dtype and device taken from
    the values it meets."""

    def log_prob(self, z):
        return standard_logistic_log_density(z)

    def _draw(self, generator, shape):
        return standard_logistic_noise(generator, shape)


class Flow(nn.Module):
    """The distribution of x = T(z), z ~ base: ``log_prob`` through ``T.inverse``, ``sample``
    and ``sample_with_log_prob`` through ``T.forward`` (the latter works for planar and radial
    flows, which have no closed-form inverse). ``forward(x)`` returns ``log_prob(x)``.

    ``base``: a minigen distribution whose ``batch_shape`` is the shape of one base draw z
    (default: ``StandardNormal(event_shape)``); ``event_shape`` (the shape of z; that of x is
    the same unless the transform reshapes, as ``Squeeze`` does) defaults to the base's
    ``batch_shape`` or to the transform's ``event_shape``.
    """

    def __init__(self, transform, base=None, event_shape=None):
        super().__init__()
        if not isinstance(transform, Transform):
            raise TypeError(f"Flow: transform must be a minigen.flows.Transform, got {type(transform).__name__}")
        if base is not None and not isinstance(base, Distribution):
            raise TypeError(f"Flow: base must be a minigen distribution, got {type(base).__name__}")
        self.transform = transform
        if event_shape is None:
            event_shape = base.batch_shape if base is not None else transform.event_shape
        if event_shape is None:
            raise ValueError(f"Flow: pass event_shape (the shape of one example): neither base nor "
                             f"{type(transform).__name__} gives it")
        self.event_shape = check_event_shape(event_shape, "event_shape")
        self.base = StandardNormal(self.event_shape) if base is None else base

    def _like(self):
        return next(self.parameters(), None)

    def base_log_prob(self, z):
        """log p_Z(z) summed over the event axes: (N,)."""
        return sum_except_batch(self.base.log_prob(z))

    def log_prob(self, x):
        """log p_X(x) = log p_Z(T^-1(x)) + log |det dT^-1/dx|, per example (N,), in nats."""
        x = as_input(x, self._like())
        try:
            z, log_det = self.transform.inverse(x)
        except NotImplementedError as e:
            raise NotImplementedError(
                f"{type(self).__name__}.log_prob needs the inverse of the transform: {e}. Use "
                f"sample_with_log_prob (e.g. for a reverse-KL fit) instead") from e
        return self.base_log_prob(z) + log_det

    def forward(self, x):
        return self.log_prob(x)

    def loss(self, x):
        """The batch mean of -log p(x): maximum likelihood."""
        return -F.mean(self.log_prob(x))

    def _base_sample(self, n, generator):
        n = check_int(n, "n", minimum=1)
        like = self._like()
        xp = numpy if like is None else backend.get_array_module(like.data)
        z = self.base.rsample((n,), generator=get_generator(generator, xp))
        return z if like is None else z.to(device=like.device, dtype=like.dtype)

    def sample_with_log_prob(self, n, generator=None):
        """(x, log p_X(x)) for n draws x = T(z): log p_X(x) = log p_Z(z) - log |det dT/dz|.

        Differentiable in the flow's parameters (the reparameterisation used by reverse-KL fits).
        """
        z = self._base_sample(n, generator)
        x, log_det = self.transform(z)
        return x, self.base_log_prob(z) - log_det

    def sample(self, n, generator=None):
        """n draws x = T(z), z ~ base, shape (n, *event_shape), without a graph."""
        with no_grad():
            return self.transform(self._base_sample(n, generator))[0]

    def bits_per_dim(self, x, generator=None):
        """Bits per dimension of 8-bit data (N,): x holds pixel levels k/255 in [0, 1] (or the
        integers k in 0..255); y = (k + u) / 256 with u ~ U(0, 1)^D (uniform dequantisation,
        Theis et al. 2016) and

            bits/dim = (-log p(y) + D log 256) / (D log 2),

        the Jacobian of y = (k + u) / 256 counted by the D log 256; one draw of u: in expectation
        an upper bound on the discrete model's -log2 P(k) / D."""
        y = dequantize(x, generator=generator)
        d = math.prod(self.event_shape)
        return (-self.log_prob(y) + d * math.log(256)) / (d * math.log(2))
