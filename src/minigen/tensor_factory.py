"""Building tensors: ``tensor``, ``zeros``, ``ones``, ``randn``, ``rand``, ``arange``."""
import numpy

from . import backend
from .autograd import NUMERIC_KINDS, Tensor
from .random import get_generator
from .validation import as_array


def _resolve(device):
    return backend.default_device() if device is None else backend.check_device(device)


def tensor(data, requires_grad=False, dtype=None, device=None):
    """A new tensor holding a copy of ``data`` (list, scalar, NumPy/CuPy array or Tensor).

    Python floats become float32 and Python ints int64, as in PyTorch; arrays keep their dtype
    unless ``dtype`` is given. ``device`` defaults to the device of GPU data (a CuPy array or a
    cuda Tensor stays there, as in torch.tensor), else to $MINIGEN_DEVICE or 'cpu'.
    """
    if isinstance(data, Tensor):
        data = data.data
    if data is None or isinstance(data, (str, bytes)) or getattr(data, "dtype", None) == object:
        raise TypeError(f"tensor: data must be numbers or booleans (a number, a nested list, an "
                        f"array or a Tensor), got {data!r} ({type(data).__name__})")
    if device is None and backend.device_of(data) == "cuda":
        device = "cuda"
    xp = backend.array_module_for(_resolve(device))
    if dtype is None and not hasattr(data, "dtype"):
        probe = as_array(data, "tensor: data", numpy)
        if probe.dtype.kind not in NUMERIC_KINDS:
            raise TypeError(f"tensor: data must be numbers or booleans, got {data!r} "
                            f"(an array of dtype {probe.dtype})")
        dtype = numpy.float32 if probe.dtype.kind == "f" else probe.dtype
    if backend.device_of(data) != _resolve(device):
        data = backend.to_device(data, _resolve(device))
    array = xp.array(data, dtype=dtype, copy=True)
    return Tensor(array, requires_grad=requires_grad)


def zeros(*shape, dtype="float32", device=None, requires_grad=False):
    xp = backend.array_module_for(_resolve(device))
    return Tensor(xp.zeros(_shape(shape), dtype=dtype), requires_grad=requires_grad)


def ones(*shape, dtype="float32", device=None, requires_grad=False):
    xp = backend.array_module_for(_resolve(device))
    return Tensor(xp.ones(_shape(shape), dtype=dtype), requires_grad=requires_grad)


def randn(*shape, dtype="float32", device=None, requires_grad=False, generator=None):
    """Standard normal samples from ``generator`` (default: the global one, see manual_seed)."""
    xp = backend.array_module_for(_resolve(device))
    data = get_generator(generator, xp).standard_normal(_shape(shape)).astype(dtype)
    return Tensor(data, requires_grad=requires_grad)


def rand(*shape, dtype="float32", device=None, requires_grad=False, generator=None):
    xp = backend.array_module_for(_resolve(device))
    data = get_generator(generator, xp).random(_shape(shape)).astype(dtype)
    return Tensor(data, requires_grad=requires_grad)


def arange(*args, dtype=None, device=None):
    """Like numpy.arange; float arguments give float32 (as ``tensor`` and PyTorch do), ints int64."""
    xp = backend.array_module_for(_resolve(device))
    if dtype is None:
        dtype = numpy.float32 if any(isinstance(a, float) for a in args) else numpy.int64
    return Tensor(xp.arange(*args, dtype=dtype))


def _shape(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
