"""Reductions and the softmax family. NumPy-style ``axis`` (None, int or tuple) and ``keepdims``."""
import operator

from ..autograd import Function
from ..backend import get_array_module

__all__ = ["sum", "mean", "max", "min", "var", "logsumexp", "softmax", "log_softmax"]


def normalize_axis(axis, ndim):
    """A sorted tuple of non-negative axes (all axes for None); clear error when out of range."""
    if axis is None:
        return tuple(range(ndim))
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    axes = tuple(operator.index(a) for a in axes)
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
    normalized = tuple(sorted(a % ndim for a in axes))
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"axis {axis} repeats an axis")
    return normalized


def keep_reduced_axes(g, shape, axes):
    """Reinsert the reduced axes (as size 1) so ``g`` broadcasts against the input."""
    return g.reshape(tuple(1 if i in axes else n for i, n in enumerate(shape)))


class Sum(Function):
    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.axes = normalize_axis(self.axis, x.ndim)
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, g):
        g = keep_reduced_axes(g, self.input_shapes[0], self.axes)
        return get_array_module(g).broadcast_to(g, self.input_shapes[0])


class Mean(Sum):
    def forward(self, x):
        out = super().forward(x)
        self.count = 1
        for a in self.axes:
            self.count *= x.shape[a]
        return out / x.dtype.type(self.count) if x.dtype.kind == "f" else out / self.count

    def backward(self, g):
        return super().backward(g / g.dtype.type(self.count))


class Max(Function):
    """Maximum over ``axis``; at ties the gradient is shared equally (a fixed, valid subgradient)."""

    def __init__(self, axis=None, keepdims=False, largest=True):
        self.axis, self.keepdims, self.largest = axis, keepdims, largest

    def forward(self, x):
        self.axes = normalize_axis(self.axis, x.ndim)
        reduce = x.max if self.largest else x.min
        out = reduce(axis=self.axes, keepdims=True)
        self.winners = x == out
        return out if self.keepdims else out.reshape(
            tuple(n for i, n in enumerate(x.shape) if i not in self.axes))

    def backward(self, g):
        g = keep_reduced_axes(g, self.input_shapes[0], self.axes)
        share = self.winners / self.winners.sum(axis=self.axes, keepdims=True)
        return g * share.astype(g.dtype)


class LogSumExp(Function):
    """log sum_i e^{x_i} = m + log sum_i e^{x_i - m} with m = max x (no overflow)."""

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        xp = get_array_module(x)
        self.axes = normalize_axis(self.axis, x.ndim)
        m = x.max(axis=self.axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)  # all -inf along an axis stays -inf, not NaN
        self.x = x
        self.out = m + xp.log(xp.exp(x - m).sum(axis=self.axes, keepdims=True))
        return self.out if self.keepdims else self.out.reshape(
            tuple(n for i, n in enumerate(x.shape) if i not in self.axes))

    def backward(self, g):
        xp = get_array_module(g)
        g = keep_reduced_axes(g, self.input_shapes[0], self.axes)
        return g * xp.exp(self.x - self.out)  # d lse / dx = softmax(x)


class Softmax(Function):
    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        xp = get_array_module(x)
        e = xp.exp(x - x.max(axis=self.axis, keepdims=True))
        self.out = e / e.sum(axis=self.axis, keepdims=True)
        return self.out

    def backward(self, g):
        # J^T g = s * (g - <g, s>)
        s = self.out
        return s * (g - (g * s).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        xp = get_array_module(x)
        shifted = x - x.max(axis=self.axis, keepdims=True)
        self.out = shifted - xp.log(xp.exp(shifted).sum(axis=self.axis, keepdims=True))
        return self.out

    def backward(self, g):
        xp = get_array_module(g)
        return g - xp.exp(self.out) * g.sum(axis=self.axis, keepdims=True)


def sum(x, axis=None, keepdims=False):
    return Sum(axis, keepdims)(x)


def mean(x, axis=None, keepdims=False):
    return Mean(axis, keepdims)(x)


def max(x, axis=None, keepdims=False):
    return Max(axis, keepdims, largest=True)(x)


def min(x, axis=None, keepdims=False):
    return Max(axis, keepdims, largest=False)(x)


def var(x, axis=None, keepdims=False, ddof=0):
    """Variance, NumPy's convention: ddof=0 divides by n (PyTorch's default is ddof=1)."""
    deviation = x - mean(x, axis, keepdims=True)
    axes = normalize_axis(axis, x.ndim)
    n = 1
    for a in axes:
        n *= x.shape[a]
    if n - ddof <= 0:
        raise ValueError(f"var: ddof={ddof} leaves no degrees of freedom over {n} elements")
    return sum(deviation * deviation, axis, keepdims) / float(n - ddof)


def logsumexp(x, axis=None, keepdims=False):
    return LogSumExp(axis, keepdims)(x)


def softmax(x, axis=-1):
    return Softmax(axis)(x)


def log_softmax(x, axis=-1):
    return LogSoftmax(axis)(x)
