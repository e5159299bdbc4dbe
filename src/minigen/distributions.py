"""Probability distributions over tensors: Normal (diagonal), Bernoulli, Categorical, and KL.

Each distribution holds parameter tensors (gradients flow through them) and offers

    log_prob(x)      log density / mass, elementwise over the batch (sum over event axes yourself)
    sample(shape)    a draw with no gradient (optional ``generator``)
    rsample(shape)   Normal only: the reparameterised draw  z = mu + sigma * eps,  eps ~ N(0, I)
                     (Kingma & Welling 2014, Sec. 2.4); pass ``eps`` to hold the noise fixed
    entropy(), mean

``kl_divergence(p, q)`` gives KL(p || q) = E_p[log p(x) - log q(x)] in closed form, elementwise:

    Normal:       log(s_q / s_p) + (s_p^2 + (m_p - m_q)^2) / (2 s_q^2) - 1/2
    Bernoulli:    p (log p - log q) + (1 - p) (log(1 - p) - log(1 - q))
    Categorical:  sum_k p_k (log p_k - log q_k)

Bernoulli and Categorical work on logits: log sigmoid(l) = -softplus(-l) and log_softmax are
finite for any logit, so log_prob stays exact at logits of +-1000.
"""
import math
import numbers

import numpy

from . import backend
from . import functional as F
from .autograd import Tensor, no_grad
from .random import get_generator

__all__ = ["Distribution", "Normal", "Bernoulli", "Categorical", "kl_divergence"]

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


class Distribution:
    """Base class: ``batch_shape`` is the shape of the parameters; ``log_prob`` is elementwise over it."""

    batch_shape = ()

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

    def __init__(self, loc, scale=None, logvar=None):
        if (scale is None) == (logvar is None):
            raise ValueError("Normal needs exactly one of scale= and logvar=")
        if scale is not None:
            loc, scale = _as_tensors(loc, scale)
            if scale.size and not bool(backend.get_array_module(scale).all(scale.data > 0)):
                raise ValueError(f"Normal: scale must be positive, got min {float(scale.data.min())}")
            log_scale = F.log(scale)
        else:
            loc, logvar = _as_tensors(loc, logvar)
            log_scale = 0.5 * logvar
            scale = F.exp(log_scale)
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
        eps = _as_value(eps, self.loc)
        n = len(self.batch_shape)
        if eps.shape[eps.ndim - n:] != self.batch_shape or eps.ndim < n:
            raise ValueError(f"Normal.rsample: eps must end with the batch shape {self.batch_shape}, "
                             f"got shape {eps.shape}")
        return self.loc + self.scale * eps

    def sample(self, sample_shape=(), generator=None):
        with no_grad():
            return self.rsample(sample_shape, generator=generator)

    def entropy(self):
        return self.log_scale + (0.5 + _HALF_LOG_2PI)  # 1/2 log(2 pi e s^2)


class Bernoulli(Distribution):
    """x in {0, 1} with P(x = 1) = sigmoid(logits). Give ``logits`` or ``probs``.

    ``log_prob`` also accepts x in [0, 1] (grey levels): -BCE(logits, x), the cross-entropy.
    """

    def __init__(self, probs=None, logits=None):
        if (probs is None) == (logits is None):
            raise ValueError("Bernoulli needs exactly one of probs= and logits=")
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

    def __init__(self, probs=None, logits=None):
        if (probs is None) == (logits is None):
            raise ValueError("Categorical needs exactly one of probs= and logits=")
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
        x = x.data if isinstance(x, Tensor) else x
        xp = self._xp()
        x = xp.asarray(x)
        if x.dtype.kind not in "iu":
            raise TypeError(f"Categorical.log_prob: values must be integer class indices, "
                            f"got dtype {x.dtype}")
        if x.size and (int(x.min()) < 0 or int(x.max()) >= self.n_classes):
            raise ValueError(f"Categorical.log_prob: values must lie in [0, {self.n_classes}), "
                             f"got values in [{int(x.min())}, {int(x.max())}]")
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


# --------------------------------------------------------------------------- KL divergence

def _kl_normal_normal(p, q):
    ratio = p.scale / q.scale
    u = (p.loc - q.loc) / q.scale
    return (q.log_scale - p.log_scale) + 0.5 * (ratio * ratio + u * u) - 0.5


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
    (Bernoulli, Bernoulli): _kl_bernoulli_bernoulli,
    (Categorical, Categorical): _kl_categorical_categorical,
}


def kl_divergence(p, q):
    """KL(p || q) in closed form, elementwise over the broadcast batch shape (sum it yourself)."""
    rule = _KL.get((type(p), type(q)))
    if rule is None:
        pairs = ", ".join(f"{a.__name__}/{b.__name__}" for a, b in _KL)
        raise NotImplementedError(f"kl_divergence has no closed form for {type(p).__name__} || "
                                  f"{type(q).__name__}; supported pairs: {pairs}")
    return rule(p, q)
