"""Binarising grey-level images for Bernoulli likelihoods (VAE, RBM, PixelCNN on MNIST).

Two protocols, and published likelihoods differ by about 2 nats between them:

- static: ``x_b = [x > threshold]``, the same binary images every epoch;
- dynamic: ``x_b ~ Bernoulli(x)`` with the intensity as probability, a fresh draw every call
  (Salakhutdinov & Murray, 2008), which acts as data augmentation.

Both work on raw NumPy or CuPy arrays and return arrays of the same module and float dtype.
"""
from .. import backend
from ..random import get_generator


def _check_unit_interval(x, name):
    if not hasattr(x, "dtype") or getattr(x, "_is_minigen_tensor", False):
        raise TypeError(f"{name} expects a NumPy or CuPy array (for a Tensor, pass "
                        f"tensor.data), got {type(x).__name__}")
    xp = backend.get_array_module(x)
    if x.size and not bool(xp.all((x >= 0) & (x <= 1))):  # also False for NaN
        raise ValueError(f"{name} expects intensities in [0, 1] (divide 8-bit pixels by 255); "
                         f"got values in [{float(x.min())}, {float(x.max())}] or NaN")
    return xp


def _float_dtype(x):
    return x.dtype if x.dtype.kind == "f" else "float32"


def binarize_static(x, threshold=0.5):
    """``1.0`` where ``x > threshold`` else ``0.0`` (deterministic)."""
    _check_unit_interval(x, "binarize_static")
    return (x > threshold).astype(_float_dtype(x))


def binarize_dynamic(x, generator=None):
    """A fresh Bernoulli sample with success probability ``x`` per pixel.

    ``generator`` is None (minigen's global generator), an int seed or a Generator of the
    array's module. Pixels with ``x == 0`` are always 0 and with ``x == 1`` always 1.
    """
    xp = _check_unit_interval(x, "binarize_dynamic")
    u_dtype = "float64" if x.dtype == "float64" else "float32"
    u = get_generator(generator, xp).random(x.shape, dtype=u_dtype)  # u ~ U[0, 1): P(u < x) = x
    return (u < x).astype(_float_dtype(x))
