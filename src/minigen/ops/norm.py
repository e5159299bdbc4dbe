"""Normalisation layers: ``layer_norm`` and ``batch_norm``, both through one fused Function.

Both standardise x over some axes and apply a per-feature affine map:

    x_hat = (x - mean) / sqrt(var + eps),        y = weight * x_hat + bias

layer norm takes the statistics over each sample's trailing ``normalized_shape`` axes; batch
norm over the batch and spatial axes of each channel (biased variance), or, in eval mode, uses
the running averages as constants. With statistics from x and m elements per group, the
backward pass (Ioffe & Szegedy 2015, section 3) simplifies to

    gh = g * weight,     dx = (gh - mean(gh) - x_hat * mean(gh * x_hat)) / sqrt(var + eps)

and with constant statistics it is just dx = gh / sqrt(var + eps).
"""
from ..autograd import Function
from ..backend import device_of, get_array_module, unwrap
from .shape import reshape

__all__ = ["layer_norm", "batch_norm"]


class Normalize(Function):
    """(x - mean) / sqrt(var + eps) * weight + bias, statistics over ``axes`` (or given constants).

    ``weight`` and ``bias`` arrive shaped to broadcast against x. After forward, ``mean`` and
    ``var`` hold the statistics used (keepdims shape), for running averages.
    """

    def __init__(self, axes, eps, mean=None, var=None):
        self.axes, self.eps = axes, eps
        self.mean, self.var, self.fixed_stats = mean, var, mean is not None

    def forward(self, x, weight, bias):
        xp = get_array_module(x)
        if not self.fixed_stats:
            self.mean = x.mean(axis=self.axes, keepdims=True)
            self.var = xp.square(x - self.mean).mean(axis=self.axes, keepdims=True)
        self.inv_std = 1 / xp.sqrt(self.var + self.eps)
        self.x_hat, self.weight = (x - self.mean) * self.inv_std, weight
        return self.x_hat * weight + bias

    def backward(self, g):
        need_x, need_w, need_b = self.needs_input_grad
        gx = None
        if need_x:
            gh = g * self.weight
            if self.fixed_stats:
                gx = gh * self.inv_std
            else:
                gx = (gh - gh.mean(axis=self.axes, keepdims=True)
                      - self.x_hat * (gh * self.x_hat).mean(axis=self.axes, keepdims=True)) * self.inv_std
        # weight/bias gradients in x's shape: the walk sums them back to the parameters' shapes
        return gx, (g * self.x_hat if need_w else None), (g if need_b else None)


def affine_or_identity(xp, weight, bias, shape, dtype):
    """Missing weight -> ones, missing bias -> zeros (constants, so no gradient)."""
    weight = xp.ones(shape, dtype=dtype) if weight is None else weight
    bias = xp.zeros(shape, dtype=dtype) if bias is None else bias
    return weight, bias


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Standardise each sample over its trailing ``normalized_shape`` axes (Ba et al. 2016), as in PyTorch.

    ``weight`` and ``bias`` (optional) have shape ``normalized_shape``.
    """
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(shape)
    if k == 0 or x.ndim < k or tuple(x.shape[x.ndim - k:]) != shape:
        raise ValueError(f"layer_norm: expected an input whose trailing dimensions are {shape}, "
                         f"got shape {tuple(x.shape)}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != shape:
            raise ValueError(f"layer_norm: {name} must have shape {shape}, got {tuple(p.shape)}")
    xp = get_array_module(x)
    weight, bias = affine_or_identity(xp, weight, bias, shape, x.dtype)
    return Normalize(tuple(range(x.ndim - k, x.ndim)), eps)(x, weight, bias)




def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Batch normalisation (Ioffe & Szegedy 2015) of x (N, C, ...) per channel, as in PyTorch.

    training=True: statistics of this batch (over N and any spatial axes); if running_mean/var
    (arrays of shape (C,)) are given they are updated in place,
        running = (1 - momentum) * running + momentum * batch statistic
    with the unbiased variance, as PyTorch does. training=False: the running statistics are used.
    """
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected an input (N, C, ...) with at least 2 dimensions, "
                         f"got shape {tuple(x.shape)}")
    c, device = x.shape[1], device_of(x)
    for name, p in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if p is None:
            continue
        if tuple(p.shape) != (c,):
            raise ValueError(f"batch_norm: {name} must have shape ({c},) for an input with {c} "
                             f"channels, got {tuple(p.shape)}")
        if device_of(p) != device:
            raise ValueError(f"batch_norm: {name} is on {device_of(p)} but the input is on "
                             f"{device}; move them to one device with .to(device)")
    xp = get_array_module(x)
    axes = (0,) + tuple(range(2, x.ndim))
    stat_shape = (1, c) + (1,) * (x.ndim - 2)
    weight = weight if weight is None else reshape(weight, stat_shape)
    bias = bias if bias is None else reshape(bias, stat_shape)
    weight, bias = affine_or_identity(xp, weight, bias, stat_shape, x.dtype)
    running_mean, running_var = unwrap(running_mean), unwrap(running_var)
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: eval mode (training=False) needs running_mean and running_var")
        fn = Normalize(axes, eps, running_mean.reshape(stat_shape), running_var.reshape(stat_shape))
        return fn(x, weight, bias)
    m = x.size // c
    if m < 2:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got "
                         f"input of shape {tuple(x.shape)}")
    fn = Normalize(axes, eps)
    y = fn(x, weight, bias)
    if running_mean is not None:
        running_mean *= 1 - momentum
        running_mean += momentum * fn.mean.reshape(c)
    if running_var is not None:
        running_var *= 1 - momentum
        running_var += momentum * fn.var.reshape(c) * (m / (m - 1))
    return y
