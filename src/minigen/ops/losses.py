"""Losses, each with ``reduction="sum"|"mean"|"none"`` as in PyTorch.

The two that work on logits are fused Functions with stable forms; the others are
compositions of differentiable ops.
"""
import math

from ..autograd import Function, Tensor
from ..backend import get_array_module
from .elementwise import log
from .reduce import mean, sum

__all__ = ["binary_cross_entropy_with_logits", "cross_entropy", "mse_loss", "gaussian_nll"]


def reduce_loss(loss, reduction):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return sum(loss)
    if reduction == "mean":
        return mean(loss)
    raise ValueError(f"reduction must be 'sum', 'mean' or 'none', got {reduction!r}")


def _check_same_shape(name, a, b):
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"{name}: input shape {tuple(a.shape)} and target shape {tuple(b.shape)} differ")


class BCEWithLogits(Function):
    """-[t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))] = max(x, 0) - x t + log(1 + e^-|x|)."""

    def forward(self, x, t):
        xp = get_array_module(x)
        self.x, self.t = x, t
        return xp.maximum(x, 0) - x * t + xp.log1p(xp.exp(-xp.abs(x)))

    def backward(self, g):
        need_x, need_t = self.needs_input_grad
        gx = None
        if need_x:  # (sigmoid(x) - t) g, with sigmoid(x) = (1 + tanh(x / 2)) / 2: stable, in place
            xp = get_array_module(g)
            gx = xp.tanh(self.x * self.x.dtype.type(0.5))
            gx *= 0.5
            gx += 0.5
            gx -= self.t
            gx *= g
        gt = -g * self.x if need_t else None
        return gx, gt


class CrossEntropy(Function):
    """-log softmax(x)[target] over the class axis 1 (PyTorch layout: (N, C) or (N, C, d1, ...))."""

    def forward(self, x, target):
        xp = get_array_module(x)
        if target.dtype.kind not in "iu":
            raise TypeError(f"cross_entropy: target must hold integer class indices, got dtype {target.dtype}")
        if x.ndim < 2 or target.shape != x.shape[:1] + x.shape[2:]:
            raise ValueError(f"cross_entropy: logits of shape {x.shape} need targets of shape "
                             f"{x.shape[:1] + x.shape[2:]}, got {target.shape}")
        n_classes = x.shape[1]
        if target.size and (int(target.min()) < 0 or int(target.max()) >= n_classes):
            raise ValueError(f"cross_entropy: targets must lie in [0, {n_classes}), got values in "
                             f"[{int(target.min())}, {int(target.max())}]")
        shifted = x - x.max(axis=1, keepdims=True)
        self.log_p = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        self.target = xp.expand_dims(target, 1)
        return -xp.take_along_axis(self.log_p, self.target, axis=1)[:, 0]

    def backward(self, g):
        xp = get_array_module(g)
        gx = xp.exp(self.log_p)                              # softmax
        xp.put_along_axis(gx, self.target, xp.take_along_axis(gx, self.target, axis=1) - 1, axis=1)
        return gx * xp.expand_dims(g, 1), None


def binary_cross_entropy_with_logits(logits, target, reduction="mean"):
    """Bernoulli negative log-likelihood of ``target`` in [0, 1] under ``sigmoid(logits)``."""
    _check_same_shape("binary_cross_entropy_with_logits", logits, target)
    return reduce_loss(BCEWithLogits()(logits, target), reduction)


def cross_entropy(logits, target, reduction="mean"):
    """Categorical negative log-likelihood of integer ``target`` under ``softmax(logits, axis=1)``."""
    return reduce_loss(CrossEntropy()(logits, target), reduction)


def mse_loss(input, target, reduction="mean"):
    _check_same_shape("mse_loss", input, target)
    diff = input - target
    return reduce_loss(diff * diff, reduction)


def gaussian_nll(input, target, var, full=False, eps=1e-6, reduction="mean"):
    """Negative log-density of ``target`` under N(input, var), as torch's gaussian_nll_loss:

        0.5 * (log max(var, eps) + (input - target)^2 / max(var, eps))   [+ 0.5 log 2 pi if full]

    ``var`` (a number, or a tensor/array broadcasting against ``input``) is clamped in value
    only: below ``eps`` its gradient is that at ``eps``, not zero, so it can recover.
    """
    _check_same_shape("gaussian_nll", input, target)
    diff = input - target
    if isinstance(var, (int, float)):
        var = max(float(var), eps)
        loss = 0.5 * (diff * diff / var + math.log(var))
    else:  # a tensor or array, broadcasting against input
        # Like torch: clamp the value only, so the gradient still reaches a var below eps.
        value = var.data if isinstance(var, Tensor) else var
        var = var + (get_array_module(value).maximum(value, eps) - value)
        loss = 0.5 * (log(var) + diff * diff / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return reduce_loss(loss, reduction)
