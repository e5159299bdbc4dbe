"""Losses, each with ``reduction="sum"|"mean"|"none"`` as in PyTorch.

The two that work on logits are fused Functions with stable forms; the others are
compositions of differentiable ops.
"""
import math

from ..autograd import Function, Tensor
from ..backend import get_array_module
from ..numerics import exp_neg_abs, log1p_unit
from .elementwise import log, softplus
from .reduce import mean, sum

__all__ = ["binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits_reference",
           "cross_entropy", "mse_loss", "gaussian_nll"]


def _check_reduction(reduction):
    if reduction not in ("none", "sum", "mean"):
        raise ValueError(f"reduction must be 'sum', 'mean' or 'none', got {reduction!r}")


def reduce_loss(loss, reduction):
    _check_reduction(reduction)
    if reduction == "none":
        return loss
    return sum(loss) if reduction == "sum" else mean(loss)


def _check_same_shape(name, a, b):
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"{name}: input shape {tuple(a.shape)} and target shape {tuple(b.shape)} differ")


class BCEWithLogits(Function):
    """Bernoulli NLL of target t under sigmoid(x), reduced by ``reduction`` ('none', 'sum', 'mean'):

        -[t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))] = max(x, 0) - x t + log1p(e),   e = exp(-|x|)
        d/dx = sigmoid(x) - t = max(e, [x > 0]) / (1 + e) - t                 (1/(1+e) or e/(1+e))

    Fused, with the reduction inside: a handful of passes, the loss summed without a separate
    Sum op. ``e`` and ``log1p(e)`` come from ``minigen.numerics`` (``exp_neg_abs``,
    ``log1p_unit``: log(1 + e) from log, several times faster than log1p in float32); ``e``,
    ``u = 1 + e`` and the mask x > 0 are kept for backward.
    ``binary_cross_entropy_with_logits_reference`` is the plain composition it is tested against.
    """

    def __init__(self, reduction="none"):
        self.reduction = reduction

    def forward(self, x, t):
        xp = get_array_module(x)
        if t.dtype != x.dtype:  # e.g. a float64 or boolean target: compute in the common dtype
            dtype = xp.result_type(x.dtype, t.dtype)
            x, t = x.astype(dtype, copy=False), t.astype(dtype, copy=False)
        e = exp_neg_abs(x)                      # exp(-|x|) in [0, 1], an array also for 0-d x
        loss, u = log1p_unit(e)                 # log1p(e) and u = 1 + e
        self.positive = x > 0
        work = xp.subtract(self.positive, t)
        work *= x                               # max(x, 0) - x t = x ([x > 0] - t)
        loss += work
        self.x, self.t, self.e, self.u = x, t, e, u
        if self.reduction == "none":
            return loss
        total = loss.sum()
        return total if self.reduction == "sum" else total / loss.size

    def backward(self, g):
        need_x, need_t = self.needs_input_grad
        if self.reduction == "mean":
            g = g / self.x.size
        gx = gt = None
        if need_x:
            xp = get_array_module(g)
            gx = xp.maximum(self.e, self.positive, out=xp.empty_like(self.e))  # 1 if x > 0, else e
            gx /= self.u                             # sigmoid(x), accurate in both tails
            gx -= self.t
            gx *= g
        if need_t:
            gt = -self.x * g
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
    _check_reduction(reduction)
    return BCEWithLogits(reduction)(logits, target)


def binary_cross_entropy_with_logits_reference(logits, target, reduction="mean"):
    """The same loss as the plain composition softplus(x) - x t of differentiable ops (the fused
    ``binary_cross_entropy_with_logits`` is tested against it)."""
    _check_same_shape("binary_cross_entropy_with_logits", logits, target)
    return reduce_loss(softplus(logits) - logits * target, reduction)


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
