"""Device-agnostic test helpers (the suite also runs with MINIGEN_DEVICE=cuda).

CuPy arrays do not turn into NumPy arrays implicitly and refuse NumPy operands: compare on the
host (``to_host``) and move host-built inputs to the device under test (``on_device``). Writing
host values into device arrays works only for scalars (CuPy's ``a[...] = numpy_array`` raises
"non-scalar numpy.ndarray cannot be used for fill"): write ``a[...] = on_device(values)``.
"""
import numpy

from minigen import backend


def to_host(x):
    """A NumPy array with the values of ``x`` (array or Tensor; copied from the GPU if needed)."""
    return backend.to_numpy(x)


def on_device(x):
    """``x`` (a host array or nested list) as an array on the device under test ($MINIGEN_DEVICE)."""
    return backend.to_device(numpy.asarray(x), backend.default_device())
