"""Probability distributions over tensors: Normal (diagonal), Laplace, Logistic, StudentT,
Bernoulli, Categorical, PixelCNN++'s DiscretizedLogisticMixture, and KL.

Each distribution holds parameter tensors (gradients flow through them) and offers

    log_prob(x)      log density / mass, elementwise over the batch (sum over event axes yourself)
    sample(shape)    a draw with no gradient (optional ``generator``)
    rsample(shape)   the location-scale families (Normal, Laplace, Logistic): the reparameterised
                     draw  z = loc + scale * eps  with eps from the standard member of the family
                     (Kingma & Welling 2014, Sec. 2.4, and deck 003's list of reparameterisable
                     families); pass ``eps`` to hold the noise fixed
    entropy(), mean, variance

Parameters and values are validated as PyTorch's ``validate_args`` does, on by default: a NaN
or infinite location, a non-positive scale, NaN logits or a value outside the support raise a
ValueError naming the argument, instead of a NaN later. ``validate_args=False`` (per
distribution) or ``Distribution.set_default_validate_args(False)`` turns the checks off for
speed; the checks cost one reduction per parameter.

``kl_divergence(p, q)`` gives KL(p || q) = E_p[log p(x) - log q(x)] in closed form, elementwise:

    Normal:       log(s_q / s_p) + (s_p^2 + (m_p - m_q)^2) / (2 s_q^2) - 1/2
    Laplace:      log(b_q / b_p) + |m_p - m_q| / b_q + (b_p / b_q) exp(-|m_p - m_q| / b_p) - 1
    Bernoulli:    p (log p - log q) + (1 - p) (log(1 - p) - log(1 - q))
    Categorical:  sum_k p_k (log p_k - log q_k)

Bernoulli and Categorical work on logits: log sigmoid(l) = -softplus(-l) and log_softmax are
finite for any logit, so log_prob stays exact at logits of +-1000.
"""
import math
import numbers

import numpy
from scipy import special as _special

from . import backend
from . import functional as F
from .autograd import Tensor, no_grad
from .random import get_generator

__all__ = ["Distribution", "Normal", "Laplace", "Logistic", "StudentT", "Bernoulli", "Categorical",
           "DiscretizedLogisticMixture", "kl_divergence"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _as_tensors(*values):
    """Tensors of one floating dtype (the first floating input's, else float32) from tensors, arrays or scalars."""
    xp = backend.get_array_module(*values)
    dtype = next((v.dtype for v in values if hasattr(v, "dtype") and v.dtype.kind == "f"),
                 numpy.dtype("float32"))
    out = []
    for v in values:
        if isinstance(v, Tensor):
            out.append(v if v.dtype.kind == "f" else Tensor(v.data.astype(dtype)))
        elif isinstance(v, numbers.Real) or hasattr(v, "dtype") or isinstance(v, (list, tuple)):
            out.append(Tensor(xp.asarray(v, dtype=dtype)))
        else:
            raise TypeError(f"distribution parameters must be tensors, arrays or numbers, "
                            f"got {type(v).__name__}")
    return out


def _broadcast(*tensors):
    """The tensors broadcast to one shape (differentiably), and that shape."""
    shape = numpy.broadcast_shapes(*(t.shape for t in tensors))
    return [t if t.shape == shape else F.broadcast_to(t, shape) for t in tensors], shape


def _as_value(x, like):
    """``x`` as a tensor on ``like``'s array module (values may require grad)."""
    if isinstance(x, Tensor):
        return x
    xp = backend.get_array_module(like)
    return Tensor(xp.asarray(x))


def _check_sample_shape(sample_shape):
    if isinstance(sample_shape, numbers.Integral):
        sample_shape = (int(sample_shape),)
    sample_shape = tuple(sample_shape)
    if any(not isinstance(n, numbers.Integral) or n < 0 for n in sample_shape):
        raise ValueError(f"sample_shape must be a tuple of non-negative ints, got {sample_shape}")
    return sample_shape


def _describe(x):
    xp = backend.get_array_module(x)
    n_nan, n_inf = int(xp.isnan(x).sum()), int(xp.isinf(x).sum())
    return f"{n_nan} NaN and {n_inf} infinite entries of {x.size}" if n_nan + n_inf else \
        f"values in [{float(x.min()):.4g}, {float(x.max()):.4g}]"


def _integer_values(owner, x, n, what, xp):
    """``x`` (tensor, array or list) as an integer array with values in [0, n); clear errors."""
    x = xp.asarray(x.data if isinstance(x, Tensor) else x)
    if x.dtype.kind not in "iu":
        raise TypeError(f"{owner}: values must be integer {what}, got dtype {x.dtype}")
    if x.size and (int(x.min()) < 0 or int(x.max()) >= n):
        raise ValueError(f"{owner}: values must lie in [0, {n}), got values in "
                         f"[{int(x.min())}, {int(x.max())}]")
    return x


def _check_finite(owner, t, name):
    x = t.data if isinstance(t, Tensor) else t
    if x.size and not bool(backend.get_array_module(x).isfinite(x).all()):
        raise ValueError(f"{owner}: {name} must be finite, got {_describe(x)}")


def _check_positive(owner, t, name):
    x = t.data if isinstance(t, Tensor) else t
    if x.size and not bool(backend.get_array_module(x).all((x > 0) & (x < numpy.inf))):
        raise ValueError(f"{owner}: {name} must be positive and finite, got {_describe(x)}")


def _check_not_nan(owner, t, name):
    x = t.data if isinstance(t, Tensor) else t
    if x.size and bool(backend.get_array_module(x).isnan(x).any()):
        raise ValueError(f"{owner}: {name} must not be NaN, got {_describe(x)}")


def _checked_eps(dist, eps):
    """``eps`` (the standard noise of ``dist``'s family) as a tensor ending in its batch shape."""
    eps = _as_value(eps, dist.loc)
    n = len(dist.batch_shape)
    if eps.ndim < n or eps.shape[eps.ndim - n:] != dist.batch_shape:
        raise ValueError(f"{type(dist).__name__}.rsample: eps must end with the batch shape "
                         f"{dist.batch_shape}, got shape {eps.shape}")
    return eps


class Distribution:
    """Base class: ``batch_shape`` is the shape of the parameters; ``log_prob`` is elementwise over it.

    ``validate_args`` (None: the default, on unless ``set_default_validate_args(False)``) checks
    the parameters at construction and the values given to ``log_prob``.
    """

    batch_shape = ()
    _validate_default = True

    @staticmethod
    def set_default_validate_args(value):
        """Turn argument validation on (the default) or off for distributions created afterwards."""
        if not isinstance(value, bool):
            raise TypeError(f"set_default_validate_args expects a bool, got {value!r}")
        Distribution._validate_default = value

    def _set_validation(self, validate_args):
        if validate_args is not None and not isinstance(validate_args, bool):
            raise TypeError(f"{type(self).__name__}: validate_args must be True, False or None, "
                            f"got {validate_args!r}")
        self._validate = Distribution._validate_default if validate_args is None else validate_args
        return self._validate

    def log_prob(self, x):
        raise NotImplementedError

    def sample(self, sample_shape=(), generator=None):
        raise NotImplementedError

    def rsample(self, sample_shape=(), eps=None, generator=None):
        raise NotImplementedError(
            f"{type(self).__name__} has no reparameterised sampler (rsample); its samples are "
            f"discrete, so use a score-function estimator (see minigen.models.gradient_estimators)")

    def entropy(self):
        raise NotImplementedError

    @property
    def mean(self):
        raise NotImplementedError

    def _xp(self):
        return backend.get_array_module(self._param)

    def __repr__(self):
        return f"{type(self).__name__}(batch_shape={self.batch_shape})"


class Normal(Distribution):
    """N(loc, scale^2) elementwise (a diagonal Gaussian). Give ``scale`` or ``logvar`` (= 2 log scale).

    With ``logvar`` the log density and KL use ``logvar`` directly (no log(exp(.)) round trip),
    and sampling uses scale = exp(0.5 * logvar): one parameterisation everywhere.
    """

    def __init__(self, loc, scale=None, logvar=None, validate_args=None):
        if (scale is None) == (logvar is None):
            raise ValueError("Normal needs exactly one of scale= and logvar=")
        validate = self._set_validation(validate_args)
        if scale is not None:
            loc, scale = _as_tensors(loc, scale)
            if validate:
                _check_positive("Normal", scale, "scale")
            elif scale.size and not bool(backend.get_array_module(scale).all(scale.data > 0)):
                raise ValueError(f"Normal: scale must be positive, got min {float(scale.data.min())}")
            log_scale = F.log(scale)
        else:
            loc, logvar = _as_tensors(loc, logvar)
            if validate:
                _check_finite("Normal", logvar, "logvar")
            log_scale = 0.5 * logvar
            scale = F.exp(log_scale)
        if validate:
            _check_finite("Normal", loc, "loc")
        (self.loc, self.scale, self.log_scale), self.batch_shape = _broadcast(loc, scale, log_scale)
        self._param = self.loc

    @property
    def mean(self):
        return self.loc

    @property
    def stddev(self):
        return self.scale

    @property
    def variance(self):
        return self.scale * self.scale

    def log_prob(self, x):
        x = _as_value(x, self.loc)
        if self._validate:
            _check_not_nan("Normal.log_prob", x, "x")
        u = (x - self.loc) / self.scale
        return -0.5 * u * u - self.log_scale - _HALF_LOG_2PI

    def rsample(self, sample_shape=(), eps=None, generator=None):
        """z = loc + scale * eps, shape ``sample_shape + batch_shape``; differentiable in loc and scale.

        ``eps``: the standard-normal noise to use (its trailing axes must be ``batch_shape``);
        held fixed, z is a deterministic, differentiable function of the parameters.
        """
        if eps is None:
            shape = _check_sample_shape(sample_shape) + self.batch_shape
            xp = self._xp()
            eps = get_generator(generator, xp).standard_normal(shape).astype(self.loc.dtype)
        return self.loc + self.scale * _checked_eps(self, eps)

    def sample(self, sample_shape=(), generator=None):
        with no_grad():
            return self.rsample(sample_shape, generator=generator)

    def entropy(self):
        return self.log_scale + (0.5 + _HALF_LOG_2PI)  # 1/2 log(2 pi e s^2)


class _LocationScale(Distribution):
    """x = loc + scale * eps with eps from a fixed standard density f: the reparameterisable
    families of deck 003. Subclasses give ``_standard_noise(shape, generator, xp)`` and
    ``_standard_log_density(u)``; then log p(x) = log f((x - loc) / scale) - log scale."""

    def __init__(self, loc, scale, validate_args=None):
        loc, scale = _as_tensors(loc, scale)
        if self._set_validation(validate_args):
            _check_finite(type(self).__name__, loc, "loc")
            _check_positive(type(self).__name__, scale, "scale")
        (self.loc, self.scale), self.batch_shape = _broadcast(loc, scale)
        self._param = self.loc

    @property
    def mean(self):
        return self.loc

    @property
    def stddev(self):
        return F.sqrt(self.variance)

    def log_prob(self, x):
        x = _as_value(x, self.loc)
        if self._validate:
            _check_not_nan(f"{type(self).__name__}.log_prob", x, "x")
        return self._standard_log_density((x - self.loc) / self.scale) - F.log(self.scale)

    def rsample(self, sample_shape=(), eps=None, generator=None):
        """x = loc + scale * eps, shape ``sample_shape + batch_shape``; ``eps`` is standard noise
        of the family (held fixed, x is a differentiable function of loc and scale)."""
        if eps is None:
            xp = self._xp()
            shape = _check_sample_shape(sample_shape) + self.batch_shape
            eps = self._standard_noise(shape, get_generator(generator, xp), xp).astype(self.loc.dtype)
        return self.loc + self.scale * _checked_eps(self, eps)

    def sample(self, sample_shape=(), generator=None):
        with no_grad():
            return self.rsample(sample_shape, generator=generator)


class Laplace(_LocationScale):
    """Laplace(loc, scale): p(x) = exp(-|x - loc| / scale) / (2 scale).

    Standard noise by the inverse CDF: u ~ U(-1/2, 1/2), eps = -sign(u) log(1 - 2|u|).
    """

    def _standard_noise(self, shape, generator, xp):
        u = generator.random(shape) - 0.5
        return -xp.sign(u) * xp.log1p(-2 * xp.abs(u))

    def _standard_log_density(self, u):
        return -F.abs(u) - math.log(2)

    @property
    def variance(self):
        return 2 * self.scale * self.scale

    def entropy(self):
        return F.log(self.scale) + (1 + math.log(2))  # log(2 e b)

    def cdf(self, x):
        u = (_as_value(x, self.loc) - self.loc) / self.scale
        return F.where(u.data < 0, 0.5 * F.exp(-F.abs(u)), 1 - 0.5 * F.exp(-F.abs(u)))


def standard_logistic_noise(generator, shape):
    """Draws of the standard logistic, log v - log(1 - v) with v ~ U(0, 1) from ``generator``
    (tiny keeps v = 0 finite)."""
    v = generator.random(shape)
    xp = backend.get_array_module(v)
    return xp.log(v + numpy.finfo(v.dtype).tiny) - xp.log1p(-v)


def standard_logistic_log_density(u):
    """log f(u) = -u - 2 softplus(-u) = log sigmoid(u) + log sigmoid(-u), finite for any u."""
    return -u - 2 * F.softplus(-u)


class Logistic(_LocationScale):
    """Logistic(loc, scale): CDF sigmoid((x - loc) / scale), the density PixelCNN++ discretises.

    log f(u) = -u - 2 softplus(-u) (= log sigmoid(u) + log sigmoid(-u), finite for any u);
    standard noise eps = log v - log(1 - v), v ~ U(0, 1).
    """

    def _standard_noise(self, shape, generator, xp):
        return standard_logistic_noise(generator, shape)

    def _standard_log_density(self, u):
        return standard_logistic_log_density(u)

    @property
    def variance(self):
        return (math.pi ** 2 / 3) * self.scale * self.scale

    def entropy(self):
        return F.log(self.scale) + 2.0

    def cdf(self, x):
        return F.sigmoid((_as_value(x, self.loc) - self.loc) / self.scale)


class StudentT(Distribution):
    """Student's t with ``df`` degrees of freedom, location ``loc`` and scale ``scale``:

        log p(x) = lgamma((df+1)/2) - lgamma(df/2) - 1/2 log(df pi) - log scale
                   - (df+1)/2 log(1 + ((x - loc) / scale)^2 / df)

    ``df`` is a fixed positive number (or array of them) with no gradient; loc and scale are
    differentiable. Samples: loc + scale * z / sqrt(g / df), z ~ N(0, 1), g ~ chi^2_df (drawn as
    2 Gamma(df/2)). The mean is undefined (NaN) for df <= 1, the variance infinite for
    1 < df <= 2 and undefined for df <= 1, as in scipy and PyTorch.
    """

    def __init__(self, df, loc=0.0, scale=1.0, validate_args=None):
        loc, scale = _as_tensors(loc, scale)
        xp = backend.get_array_module(loc)
        df_host = numpy.asarray(backend.to_device(df.data if isinstance(df, Tensor) else df, "cpu"),
                                dtype=numpy.float64)
        if self._set_validation(validate_args):
            _check_finite("StudentT", loc, "loc")
            _check_positive("StudentT", scale, "scale")
        if df_host.size == 0 or not bool(numpy.all((df_host > 0) & numpy.isfinite(df_host))):
            raise ValueError(f"StudentT: df must be positive and finite, got {df_host}")
        (self.loc, self.scale), self.batch_shape = _broadcast(loc, scale)
        self.batch_shape = numpy.broadcast_shapes(self.batch_shape, df_host.shape)
        self.df = xp.asarray(df_host.astype(self.loc.dtype))
        half = 0.5 * df_host
        self._log_norm = xp.asarray((_special.gammaln(half + 0.5) - _special.gammaln(half)
                                     - 0.5 * numpy.log(df_host * math.pi)).astype(self.loc.dtype))
        self._df_host = df_host
        self._param = self.loc

    def log_prob(self, x):
        x = _as_value(x, self.loc)
        if self._validate:
            _check_not_nan("StudentT.log_prob", x, "x")
        u = (x - self.loc) / self.scale
        return self._log_norm - F.log(self.scale) - (0.5 * (self.df + 1)) * F.log1p(u * u / self.df)

    def sample(self, sample_shape=(), generator=None):
        xp = self._xp()
        shape = _check_sample_shape(sample_shape) + self.batch_shape
        rng = get_generator(generator, xp)
        z = rng.standard_normal(shape)
        g = 2 * rng.standard_gamma(xp.broadcast_to(0.5 * self.df, shape))
        with no_grad():
            return Tensor((self.loc.data + self.scale.data * z / xp.sqrt(g / self.df))
                          .astype(self.loc.dtype))

    @property
    def mean(self):
        xp = self._xp()
        return Tensor(xp.where(self.df > 1, self.loc.data, xp.nan).astype(self.loc.dtype))

    @property
    def variance(self):
        xp = self._xp()
        df, var = self.df, self.scale.data ** 2
        out = xp.where(df > 2, var * df / xp.maximum(df - 2, 1e-30), xp.inf)
        return Tensor(xp.where(df > 1, out, xp.nan).astype(self.loc.dtype))

    def entropy(self):
        half = 0.5 * self._df_host
        h = ((half + 0.5) * (_special.digamma(half + 0.5) - _special.digamma(half))
             + 0.5 * numpy.log(self._df_host) + _special.betaln(half, 0.5))
        return F.log(self.scale) + Tensor(self._xp().asarray(h.astype(self.loc.dtype)))


class Bernoulli(Distribution):
    """x in {0, 1} with P(x = 1) = sigmoid(logits). Give ``logits`` or ``probs``.

    ``log_prob`` also accepts x in [0, 1] (grey levels): -BCE(logits, x), the cross-entropy.
    """

    def __init__(self, probs=None, logits=None, validate_args=None):
        if (probs is None) == (logits is None):
            raise ValueError("Bernoulli needs exactly one of probs= and logits=")
        if self._set_validation(validate_args) and logits is not None:
            _check_not_nan("Bernoulli", _as_tensors(logits)[0], "logits")
        if logits is None:
            (probs,) = _as_tensors(probs)
            self.check_support(probs.data, "probs")
            tiny = float(numpy.finfo(probs.dtype).tiny)
            probs = F.clip(probs, tiny, 1 - float(numpy.finfo(probs.dtype).eps))
            logits = F.log(probs) - F.log1p(-probs)  # logit(p), finite after the clip
        (self.logits,) = _as_tensors(logits)
        self.batch_shape = self.logits.shape
        self._param = self.logits

    @staticmethod
    def check_support(x, name="x"):
        """Raise ValueError unless every value of ``x`` (array or tensor) lies in [0, 1]."""
        x = x.data if isinstance(x, Tensor) else x
        xp = backend.get_array_module(x)
        if x.size and not bool(xp.all((x >= 0) & (x <= 1))):  # False for NaN too
            got = "NaN" if bool(xp.isnan(x).any()) else \
                f"values in [{float(x.min()):.4g}, {float(x.max()):.4g}]"
            raise ValueError(
                f"Bernoulli: {name} must lie in [0, 1], got {got}; scale pixels to [0, 1] "
                f"(e.g. divide 8-bit images by 255) or use a Gaussian likelihood")

    @property
    def probs(self):
        return F.sigmoid(self.logits)

    @property
    def mean(self):
        return self.probs

    @property
    def variance(self):
        p = self.probs
        return p * (1 - p)

    def log_prob(self, x):
        x = _as_value(x, self.logits)
        self.check_support(x)
        (logits, x), _ = _broadcast(self.logits, x)
        # x log sigmoid(l) + (1 - x) log sigmoid(-l) = -[max(l, 0) - l x + log(1 + e^-|l|)]
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none")

    def sample(self, sample_shape=(), generator=None):
        xp = self._xp()
        shape = _check_sample_shape(sample_shape) + self.batch_shape
        u = get_generator(generator, xp).random(shape)
        with no_grad():
            p = self.probs.data
        return Tensor((u < p).astype(self.logits.dtype))

    def entropy(self):
        # H = -p log p - (1 - p) log(1 - p) = BCE(l, p), the cross-entropy of p with itself
        return F.binary_cross_entropy_with_logits(self.logits, self.probs, reduction="none")


class Categorical(Distribution):
    """One of K classes with P(x = k) = softmax(logits)_k over the last axis. Give ``logits`` or ``probs``.

    ``probs`` need not sum to one (they are normalised). ``mean`` is E[one_hot(x)] = probs.
    """

    def __init__(self, probs=None, logits=None, validate_args=None):
        if (probs is None) == (logits is None):
            raise ValueError("Categorical needs exactly one of probs= and logits=")
        validate = self._set_validation(validate_args)
        if logits is None:
            (probs,) = _as_tensors(probs)
            xp = backend.get_array_module(probs)
            if probs.ndim == 0 or not bool(xp.all(probs.data >= 0)) or \
                    not bool(xp.all(probs.data.sum(-1) > 0)):
                raise ValueError("Categorical: probs must be non-negative with a positive sum over "
                                 f"the last axis (the classes), got shape {probs.shape}")
            logits = F.log(F.clip(probs, float(numpy.finfo(probs.dtype).tiny), None))
        (logits,) = _as_tensors(logits)
        if logits.ndim == 0:
            raise ValueError("Categorical: logits need a last axis over the classes, got a scalar")
        if validate:
            xp = backend.get_array_module(logits)
            _check_not_nan("Categorical", logits, "logits")
            if logits.size and (bool((logits.data == xp.inf).any())
                                or not bool((logits.data > -xp.inf).any(axis=-1).all())):
                raise ValueError("Categorical: logits must be below +inf and each row needs at "
                                 "least one class with logit above -inf")
        self.logits = F.log_softmax(logits, axis=-1)  # normalised: log P(x = k)
        self.n_classes = logits.shape[-1]
        self.batch_shape = logits.shape[:-1]
        self._param = self.logits

    @property
    def probs(self):
        return F.exp(self.logits)

    @property
    def mean(self):
        return self.probs

    def _one_hot(self, x):
        xp = self._xp()
        x = _integer_values("Categorical.log_prob", x, self.n_classes, "class indices", xp)
        return (x[..., None] == xp.arange(self.n_classes)).astype(self.logits.dtype)

    def log_prob(self, x):
        return F.sum(Tensor(self._one_hot(x)) * self.logits, axis=-1)

    def sample(self, sample_shape=(), generator=None):
        """Inverse-CDF draws: the first class whose cumulative probability exceeds u ~ U[0, 1)."""
        xp = self._xp()
        shape = _check_sample_shape(sample_shape) + self.batch_shape
        cdf = xp.cumsum(xp.exp(self.logits.data), axis=-1)
        u = get_generator(generator, xp).random(shape + (1,))
        k = (u >= cdf).sum(axis=-1)
        return Tensor(xp.minimum(k, self.n_classes - 1).astype(numpy.int64))  # cdf[-1] may round below 1

    def entropy(self):
        return -F.sum(self.probs * self.logits, axis=-1)


class DiscretizedLogisticMixture(Distribution):
    """PixelCNN++'s likelihood for 8-bit pixels (Salimans et al. 2017, Sec. 2.1).

    A pixel value k in {0, ..., 255} is scaled to x = 2k/255 - 1 in [-1, 1]; the bins have half
    width delta = 1/255. With K logistic components (weights softmax(logit_probs), centres
    ``means``, scales exp(log_scales)):

        P(k) = sum_i pi_i [ sigmoid((x + delta - mu_i) / s_i) - sigmoid((x - delta - mu_i) / s_i) ]

    except at the edges, where the bin reaches to infinity: k = 0 takes sigmoid((x + delta - mu_i)
    / s_i) and k = 255 takes 1 - sigmoid((x - delta - mu_i) / s_i), so the 256 probabilities sum
    to one exactly. The middle bins are computed in the log domain without cancellation:
    log(sigmoid(a) - sigmoid(b)) = log sigmoid(a) + log sigmoid(-b) + log(1 - exp(b - a)), with
    a - b = 2 delta / s > 0. (Salimans et al. approximate narrow bins by the density at the
    centre; minigen computes them exactly.)

    Parameters have shape ``batch_shape + (K,)``; ``log_prob(k)`` takes integer pixel values of
    shape ``batch_shape`` and returns log P(k) of that shape. To use it as a PixelCNN output, let
    the network emit 3K channels per pixel and split them into the three parameter tensors.
    """

    def __init__(self, logit_probs, means, log_scales, n_levels=256, validate_args=None):
        logit_probs, means, log_scales = _as_tensors(logit_probs, means, log_scales)
        if logit_probs.ndim == 0:
            raise ValueError("DiscretizedLogisticMixture: parameters need a last axis over the "
                             "K mixture components, got scalars")
        if self._set_validation(validate_args):
            for name, t in (("logit_probs", logit_probs), ("means", means), ("log_scales", log_scales)):
                _check_finite("DiscretizedLogisticMixture", t, name)
        if not isinstance(n_levels, numbers.Integral) or isinstance(n_levels, bool):
            raise TypeError(f"DiscretizedLogisticMixture: n_levels must be an int, got {n_levels!r}")
        if n_levels < 2:
            raise ValueError(f"DiscretizedLogisticMixture: n_levels must be >= 2, got {n_levels}")
        (logit_probs, self.means, self.log_scales), shape = _broadcast(logit_probs, means, log_scales)
        self.log_weights = F.log_softmax(logit_probs, axis=-1)
        self.n_levels, self.n_components = int(n_levels), shape[-1]
        self.batch_shape = shape[:-1]
        self._param = self.means

    def _levels(self, k):
        return _integer_values("DiscretizedLogisticMixture.log_prob", k, self.n_levels,
                               "pixel levels", self._xp())

    def log_prob(self, k):
        k = self._levels(k)
        xp, dtype = self._xp(), self.means.dtype
        half_width = 1.0 / (self.n_levels - 1)
        x = Tensor((2.0 * k / (self.n_levels - 1) - 1).astype(dtype)[..., None])
        inv_s = F.exp(-self.log_scales)
        upper = (x + half_width - self.means) * inv_s   # a
        lower = (x - half_width - self.means) * inv_s   # b
        log_cdf_upper = -F.softplus(-upper)             # log sigmoid(a): the k = 0 bin
        log_sf_lower = -F.softplus(lower)               # log(1 - sigmoid(b)): the k = top bin
        middle = log_cdf_upper + log_sf_lower + F.log1mexp(2 * half_width * inv_s)
        first = Tensor((k == 0)[..., None])
        last = Tensor((k == self.n_levels - 1)[..., None])
        log_bin = F.where(first.data, log_cdf_upper, F.where(last.data, log_sf_lower, middle))
        return F.logsumexp(self.log_weights + log_bin, axis=-1)

    def sample(self, sample_shape=(), generator=None):
        """Integer pixel levels: a component by its weight, a logistic draw from it, rounded to
        the nearest level and clipped to [0, n_levels - 1]."""
        xp = self._xp()
        shape = _check_sample_shape(sample_shape) + self.batch_shape
        rng = get_generator(generator, xp)
        component = Categorical(logits=self.log_weights, validate_args=False).sample(
            _check_sample_shape(sample_shape), generator=rng).data
        pick = lambda t: xp.take_along_axis(  # noqa: E731
            xp.broadcast_to(t.data, shape + (self.n_components,)), component[..., None], axis=-1)[..., 0]
        v = rng.random(shape)
        tiny = numpy.finfo(v.dtype).tiny
        x = pick(self.means) + xp.exp(pick(self.log_scales)) * (xp.log(v + tiny) - xp.log1p(-v))
        k = xp.rint((xp.clip(x, -1, 1) + 1) * (self.n_levels - 1) / 2)
        return Tensor(k.astype(numpy.int64))

    @property
    def mean(self):
        """E[k], summing k P(k) over the levels."""
        xp = self._xp()
        levels = xp.arange(self.n_levels).reshape((self.n_levels,) + (1,) * len(self.batch_shape))
        probs = F.exp(self.log_prob(xp.broadcast_to(levels, (self.n_levels,) + self.batch_shape)))
        return F.sum(probs * Tensor(levels.astype(self.means.dtype)), axis=0)


# --------------------------------------------------------------------------- KL divergence

def _kl_normal_normal(p, q):
    ratio = p.scale / q.scale
    u = (p.loc - q.loc) / q.scale
    return (q.log_scale - p.log_scale) + 0.5 * (ratio * ratio + u * u) - 0.5


def _kl_laplace_laplace(p, q):
    # E_p|x - m_q| = |m_p - m_q| + b_p exp(-|m_p - m_q| / b_p)
    gap = F.abs(p.loc - q.loc)
    return F.log(q.scale / p.scale) + gap / q.scale + (p.scale / q.scale) * F.exp(-gap / p.scale) - 1


def _kl_bernoulli_bernoulli(p, q):
    # log sigmoid(l) = -softplus(-l), log(1 - sigmoid(l)) = -softplus(l): finite for any logits
    prob = p.probs
    return prob * (F.softplus(-q.logits) - F.softplus(-p.logits)) + \
        (1 - prob) * (F.softplus(q.logits) - F.softplus(p.logits))


def _kl_categorical_categorical(p, q):
    if p.n_classes != q.n_classes:
        raise ValueError(f"kl_divergence: Categoricals over {p.n_classes} and {q.n_classes} classes")
    return F.sum(p.probs * (p.logits - q.logits), axis=-1)


_KL = {
    (Normal, Normal): _kl_normal_normal,
    (Laplace, Laplace): _kl_laplace_laplace,
    (Bernoulli, Bernoulli): _kl_bernoulli_bernoulli,
    (Categorical, Categorical): _kl_categorical_categorical,
}


def kl_divergence(p, q):
    """KL(p || q) in closed form, elementwise over the broadcast batch shape (sum it yourself)."""
    rule = _KL.get((type(p), type(q)))
    if rule is None:
        pairs = ", ".join(f"{a.__name__}/{b.__name__}" for a, b in _KL)
        raise NotImplementedError(f"kl_divergence has no closed form for {type(p).__name__} || "
                                  f"{type(q).__name__} in minigen (supported pairs: {pairs}); "
                                  f"estimate it by Monte Carlo instead: the mean over samples "
                                  f"x ~ p of p.log_prob(x) - q.log_prob(x)")
    return rule(p, q)
