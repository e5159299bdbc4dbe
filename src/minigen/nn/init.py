"""Weight initialisation, in place, with PyTorch's names and formulas (``torch.nn.init``).

Each function fills a ``Parameter``/``Tensor`` (or a raw array) in place on its own device and
returns it. Random ones take ``generator`` (None: the global generator seeded by
``minigen.manual_seed``; an int; or a Generator). Draws are made in float64 and then cast,
so a seed gives the same values whatever the parameter's dtype.

Variance-preserving scales (fan_in = in_features * receptive field, fan_out likewise):

    xavier (Glorot & Bengio 2010, eq. 16):   std = gain * sqrt(2 / (fan_in + fan_out))
    kaiming (He et al. 2015, eq. 10):        std = gain / sqrt(fan)
    uniform versions draw U(-bound, bound) with bound = sqrt(3) * std (same variance).
"""
import math

from ..backend import get_array_module, unwrap
from ..random import get_generator

__all__ = ["calculate_gain", "uniform_", "normal_", "zeros_", "ones_", "constant_",
           "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_"]

_LINEAR_LIKE = ("linear", "identity", "conv1d", "conv2d", "conv3d",
                "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity, param=None):
    """The factor that keeps activations' variance after ``nonlinearity`` (PyTorch's table)."""
    if nonlinearity in _LINEAR_LIKE:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise ValueError(f"calculate_gain: negative_slope must be a number, got {slope!r}")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; expected one of "
                     f"{', '.join(_LINEAR_LIKE + ('tanh', 'relu', 'leaky_relu', 'selu'))}")


def _array(tensor):
    array = unwrap(tensor)
    if not hasattr(array, "dtype") or array.dtype.kind != "f":
        got = f"dtype {array.dtype}" if hasattr(array, "dtype") else type(tensor).__name__
        raise TypeError(f"init: expected a floating-point Tensor, Parameter or array, got {got}")
    return array


def _fill(tensor, values):
    array = _array(tensor)
    array[...] = values.astype(array.dtype, copy=False)
    if array is not tensor:  # an in-place update of a Tensor: bump its version
        tensor._bump_version()
    return tensor


def _calculate_fan_in_and_fan_out(array):
    if array.ndim < 2:
        raise ValueError(f"init: fan in and fan out need a tensor with at least 2 dimensions "
                         f"(weight of shape (out, in, ...)), got shape {tuple(array.shape)}")
    receptive_field = math.prod(array.shape[2:])
    return array.shape[1] * receptive_field, array.shape[0] * receptive_field


def _fan(array, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(array)
    fan = fan_in if mode == "fan_in" else fan_out
    if fan == 0:
        raise ValueError(f"init: cannot initialise a tensor with zero {mode} (shape {tuple(array.shape)})")
    return fan


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill with draws from U(a, b)."""
    array = _array(tensor)
    if not a <= b:
        raise ValueError(f"uniform_: need a <= b, got a={a}, b={b}")
    rng = get_generator(generator, get_array_module(array))
    return _fill(tensor, a + (b - a) * rng.random(array.shape))


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill with draws from N(mean, std^2)."""
    array = _array(tensor)
    if not std >= 0:
        raise ValueError(f"normal_: std must be >= 0, got {std}")
    rng = get_generator(generator, get_array_module(array))
    return _fill(tensor, mean + std * rng.standard_normal(array.shape))


def constant_(tensor, val):
    """Fill with the constant ``val``."""
    return _fill(tensor, get_array_module(_array(tensor)).full(_array(tensor).shape, val))


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """U(-bound, bound) with bound = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(_array(tensor))
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(_array(tensor))
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """U(-bound, bound), bound = sqrt(3) * gain / sqrt(fan); ``a`` is leaky_relu's negative slope.

    ``a = sqrt(5)`` gives gain = sqrt(1/3) and bound = 1 / sqrt(fan_in): PyTorch's Linear default.
    """
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(_array(tensor), mode))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """N(0, std^2), std = gain / sqrt(fan)."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(_array(tensor), mode))
    return normal_(tensor, 0.0, std, generator)
