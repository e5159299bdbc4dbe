"""Group normalisation (Wu & He 2018, "Group Normalization", Eq. 1-3 and Fig. 2).

The C channels of x (N, C, *spatial) are split into G groups of C/G consecutive channels; each
sample's group is standardised over its channels and positions, then every channel gets its
own affine map::

    x_hat[n, g] = (x[n, g] - mean[n, g]) / sqrt(var[n, g] + eps)      over the C/G channels and
    y[n, c]     = weight[c] * x_hat[n, c] + bias[c]                    all positions of group g

Seen as x reshaped to (N, G, C/G, S), this is the same standardise-then-affine map as layer and
batch norm with the statistics over axes (2, 3) and weight, bias shaped (1, G, C/G, 1), so it
runs through the one fused ``Normalize`` Function of ``norm.py`` (forward and backward there).
G = 1 is layer norm over (C, *spatial); G = C is instance norm. The statistics are per sample,
so the result does not depend on the batch (unlike batch norm).
"""
from ..backend import get_array_module
from .norm import Normalize, affine_or_identity
from .shape import reshape

__all__ = ["group_norm"]


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    """Group normalisation of x (N, C, ...) with ``num_groups`` groups, as torch.nn.functional.group_norm.

    ``weight`` and ``bias`` (optional) have shape (C,); missing ones mean 1 and 0.
    """
    if x.ndim < 2:
        raise ValueError(f"group_norm: expected an input (N, C, ...) with at least 2 dimensions, "
                         f"got shape {tuple(x.shape)}")
    c = x.shape[1]
    if isinstance(num_groups, bool) or not isinstance(num_groups, int) or num_groups < 1 or c % num_groups:
        raise ValueError(f"group_norm: num_groups must be a positive integer dividing the {c} "
                         f"channels, got {num_groups!r}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != (c,):
            raise ValueError(f"group_norm: {name} must have shape ({c},), got {tuple(p.shape)}")
    n, g = x.shape[0], num_groups
    grouped = (n, g, c // g, -1)
    param_shape = (1, g, c // g, 1)
    weight = weight if weight is None else reshape(weight, param_shape)
    bias = bias if bias is None else reshape(bias, param_shape)
    weight, bias = affine_or_identity(get_array_module(x), weight, bias, param_shape, x.dtype)
    y = Normalize((2, 3), eps)(reshape(x, grouped), weight, bias)
    return reshape(y, x.shape)
