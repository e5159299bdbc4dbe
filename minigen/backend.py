"""NumPy or CuPy: the one place that knows which array library holds the data.

Every op asks ``get_array_module(*arrays)`` for ``xp`` and then writes ``xp.exp``,
``xp.matmul`` ... so that one code path serves the CPU (NumPy) and the GPU (CuPy).
CuPy is optional and imported lazily: if ``cupy`` has never been imported, no array
can be a CuPy array, so plain NumPy is the answer without touching CuPy at all.
"""
import os
import sys

import numpy

_EXTRA_MODULES = []  # (array type, module) pairs, e.g. the strict test double


def register_array_module(array_type, module):
    """Tell ``get_array_module`` that arrays of ``array_type`` belong to ``module``."""
    _EXTRA_MODULES.append((array_type, module))


def _unwrap(x):
    return x.data if getattr(x, "_is_minigen_tensor", False) else x


def get_array_module(*xs):
    """The array module (numpy, cupy, ...) that owns the first non-NumPy array in ``xs``."""
    cupy = sys.modules.get("cupy")
    for x in xs:
        x = _unwrap(x)
        for array_type, module in _EXTRA_MODULES:
            if isinstance(x, array_type):
                return module
        if cupy is not None and isinstance(x, cupy.ndarray):
            return cupy
    return numpy


def import_cupy():
    """Import CuPy and check that a CUDA device is usable; say exactly what is missing if not."""
    try:
        import cupy
    except ImportError as e:
        raise RuntimeError(
            "device 'cuda' was requested but CuPy is not installed "
            "(pip install 'minigen[gpu]' or a cupy-cudaXXx wheel)") from e
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDA driver missing or broken
        raise RuntimeError(
            f"device 'cuda' was requested but the CUDA driver is not usable: {e}") from e
    if count == 0:
        raise RuntimeError("device 'cuda' was requested but no CUDA device was found")
    return cupy


def cuda_available():
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        import_cupy()
    except RuntimeError:
        return False
    return True


def check_device(device):
    """Normalise a device name: 'cpu' or 'cuda' ('cuda:0' is accepted as 'cuda')."""
    name = str(device).split(":")[0]
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    return name


def default_device():
    """The device new tensors and models use: $MINIGEN_DEVICE, else 'cpu'."""
    return check_device(os.environ.get("MINIGEN_DEVICE", "cpu"))


def device_of(array):
    """'cuda' for a CuPy array, 'cpu' for anything else."""
    cupy = sys.modules.get("cupy")
    if cupy is not None and isinstance(_unwrap(array), cupy.ndarray):
        return "cuda"
    return "cpu"


def to_device(array, device):
    """Move ``array`` to ``device`` ('cpu' or 'cuda'); returns it unchanged if already there."""
    device = check_device(device)
    array = _unwrap(array)
    if device_of(array) == device:
        return array
    if device == "cuda":
        return import_cupy().asarray(array)
    return array.get()


def to_numpy(array):
    """A NumPy array holding ``array``'s values (copied from the GPU if needed)."""
    array = _unwrap(array)
    return array if device_of(array) == "cpu" else array.get()


def array_module_for(device):
    """numpy for 'cpu', cupy for 'cuda'."""
    return numpy if check_device(device) == "cpu" else import_cupy()


def scatter_add(target, index, values):
    """``target[index] += values`` with repeated indices accumulating (in place)."""
    xp = get_array_module(target)
    if xp.__name__ == "cupy":
        import cupyx
        cupyx.scatter_add(target, index, values)
    else:
        xp.add.at(target, index, values)
    return target


def special(xp):
    """scipy.special on the CPU, cupyx.scipy.special on the GPU (digamma, gammaln, ...)."""
    if xp.__name__ == "cupy":
        import cupyx.scipy.special as sp
    else:
        import scipy.special as sp
    return sp
