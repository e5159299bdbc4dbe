"""Gradient utilities: ``clip_grad_norm_`` as in ``torch.nn.utils``."""
import math

import numpy

from ..autograd import Tensor
from ..backend import get_array_module

__all__ = ["clip_grad_norm_"]


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients in place so that their joint norm is at most ``max_norm``.

    total = || (g_1, ..., g_k) ||_p over every parameter's gradient taken as one vector;
    if total > max_norm, each g_i *= max_norm / (total + 1e-6). Gradients that are None are
    skipped. Returns the total norm before clipping, as a 0-d float64 Tensor (like PyTorch).
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    max_norm, norm_type = float(max_norm), float(norm_type)
    if not max_norm >= 0:
        raise ValueError(f"clip_grad_norm_: max_norm must be >= 0, got {max_norm}")
    if not norm_type > 0:
        raise ValueError(f"clip_grad_norm_: norm_type must be > 0 or inf, got {norm_type}")
    if not grads:
        return Tensor(numpy.asarray(0.0))
    if norm_type == math.inf:
        total = max(float(get_array_module(g).abs(g).max()) if g.size else 0.0 for g in grads)
    elif norm_type == 2:
        total = math.sqrt(sum(float(get_array_module(g).vdot(g.ravel(), g.ravel())) for g in grads))
    else:
        total = sum(float((get_array_module(g).abs(g.astype("float64")) ** norm_type).sum())
                    for g in grads) ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total norm of the gradients is {total}; pass "
                           f"error_if_nonfinite=False to clip anyway")
    clip_coef = max_norm / (total + 1e-6)
    if clip_coef < 1:
        for g in grads:
            g *= g.dtype.type(clip_coef)
    return Tensor(get_array_module(grads[0]).asarray(total, dtype="float64"))
