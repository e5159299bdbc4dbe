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


def unwrap(x):
    """The backend array of a minigen Tensor; anything else unchanged."""
    return x.data if getattr(x, "_is_minigen_tensor", False) else x


def get_array_module(*xs):
    """The array module (numpy, cupy, ...) that owns the first non-NumPy array in ``xs``."""
    cupy = sys.modules.get("cupy")
    for x in xs:
        x = unwrap(x)
        for array_type, module in _EXTRA_MODULES:
            if isinstance(x, array_type):
                return module
        if cupy is not None and isinstance(x, cupy.ndarray):
            return cupy
    return numpy


def import_cupy():
    """Import CuPy and check that a CUDA device is usable; say exactly what is missing if not.

    Three failures, three messages (each a RuntimeError): CuPy is not installed (or does not
    import), the CUDA driver is missing or unusable, or the driver sees no device.
    """
    try:
        import cupy
    except ModuleNotFoundError as e:
        if e.name != "cupy":  # CuPy is there but one of its own dependencies is not
            raise RuntimeError(f"device 'cuda' was requested but CuPy failed to import: {e}") from e
        raise RuntimeError(
            "device 'cuda' was requested but CuPy is not installed: install the wheel that "
            "matches your CUDA version, pip install 'minigen[gpu]' (cupy-cuda12x, CUDA 12) or "
            "pip install cupy-cuda13x (CUDA 13)") from e
    except ImportError as e:  # e.g. CUDA libraries that do not match the wheel
        raise RuntimeError(f"device 'cuda' was requested but CuPy failed to import (does the "
                           f"cupy-cudaXXx wheel match the installed CUDA?): {e}") from e
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDARuntimeError: no driver, an old driver, or no device
        if "NoDevice" in str(e) or "no CUDA-capable device" in str(e):
            count = 0
        else:
            raise RuntimeError(
                f"device 'cuda' was requested but the CUDA driver is missing or not usable "
                f"({type(e).__name__}: {e}); check that nvidia-smi works and that the driver "
                f"supports the CUDA version of your CuPy wheel") from e
    if count == 0:
        raise RuntimeError(
            "device 'cuda' was requested but no CUDA device was found (the driver reports 0 "
            "devices; check nvidia-smi and CUDA_VISIBLE_DEVICES)")
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
    if cupy is not None and isinstance(unwrap(array), cupy.ndarray):
        return "cuda"
    return "cpu"


def to_device(array, device):
    """Move ``array`` to ``device`` ('cpu' or 'cuda'); returns it unchanged if already there."""
    device = check_device(device)
    array = unwrap(array)
    if device_of(array) == device:
        return array
    if device == "cuda":
        return import_cupy().asarray(array)
    return array.get()


def to_numpy(array):
    """A NumPy array holding ``array``'s values (copied from the GPU if needed)."""
    array = unwrap(array)
    return array if device_of(array) == "cpu" else array.get()


def array_module_for(device):
    """numpy for 'cpu', cupy for 'cuda'."""
    return numpy if check_device(device) == "cpu" else import_cupy()


def synchronize(device=None):
    """Wait until the GPU has finished the work queued so far (nothing to wait for on the CPU).

    GPU calls return before their kernels run: time GPU code with a synchronize() before
    reading the clock. ``device``: 'cpu' or 'cuda' (default: the default device).
    """
    if check_device(default_device() if device is None else device) == "cuda":
        import_cupy().cuda.Device().synchronize()


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
