"""A strict stand-in for CuPy: arrays that refuse to be handled by NumPy behind the backend's back.

CuPy arrays cannot be passed to ``numpy.exp`` or mixed with NumPy arrays; code that works on CPU
by accident (``np.exp(x.data)``, ``np.zeros(shape)`` added to data) breaks on the GPU. This module
reproduces that on the CPU, so the one-code-path rule can be tested without a GPU:

- ``StrictArray`` is an ``ndarray`` subclass whose ``__array_ufunc__`` and ``__array_function__``
  raise ``TypeError`` unless the call came through ``strict_module`` (a "strict context").
  Its operators and ufunc-calling methods (``a + b``, ``a.sum()``, ``a > 0`` ...) run inside the
  strict context, just as CuPy's own methods work on CuPy arrays, and refuse plain ndarray
  operands (``np.zeros(3) + a`` raises, as it does with CuPy).
- ``strict_module`` wraps NumPy (and its submodules ``linalg``, ``random`` ...): every function
  runs inside the strict context and hands back ``StrictArray`` results (also from the
  ``Generator`` that ``strict_module.random.default_rng`` returns).

Importing this module registers the pair with ``minigen.backend``, so ``get_array_module`` of a
``StrictArray`` is ``strict_module``.
"""
import contextlib
import functools
import types

import numpy as np

from minigen import backend

_depth = 0  # > 0 while a call made through the strict module (or a StrictArray method) runs


@contextlib.contextmanager
def _strict_context():
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1


def _plain(obj):
    """StrictArrays (also inside tuples, lists and dicts) as plain ndarray views."""
    if isinstance(obj, StrictArray):
        return obj.view(np.ndarray)
    if isinstance(obj, (tuple, list)):
        return type(obj)(_plain(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


def _strict(obj):
    """Results of the strict module: ndarrays and NumPy scalars become StrictArrays (CuPy gives
    0-d arrays, never scalars), Generators strict Generators."""
    if isinstance(obj, np.generic):
        obj = np.asarray(obj)
    if isinstance(obj, np.ndarray) and not isinstance(obj, StrictArray):
        return obj.view(StrictArray)
    if isinstance(obj, (tuple, list)):
        return type(obj)(_strict(o) for o in obj)
    if isinstance(obj, np.random.Generator):
        return _StrictObject(obj)
    return obj


def _run_inside(fn):
    @functools.wraps(fn)
    def inside(*args, **kwargs):
        with _strict_context():
            return _strict(fn(*args, **kwargs))
    return inside


class StrictArray(np.ndarray):
    """An ndarray that only the strict module (or its own methods) may compute with."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if not _depth:
            raise TypeError(f"StrictArray: numpy.{ufunc.__name__} was called on a strict array "
                            f"directly; use the array module (xp.{ufunc.__name__})")
        out = kwargs.get("out")
        result = getattr(ufunc, method)(*_plain(inputs), **_plain(kwargs))
        if method == "at":
            return None
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _strict(result)

    def __array_function__(self, func, types, args, kwargs):
        if not _depth:
            raise TypeError(f"StrictArray: numpy.{func.__name__} was called on a strict array "
                            f"directly; use the array module (xp.{func.__name__})")
        return _strict(func(*_plain(args), **_plain(kwargs)))


def _method_inside(method):
    """An operator/method that runs inside but, like CuPy's, refuses plain ndarray operands."""
    @functools.wraps(method)
    def inside(self, *args, **kwargs):
        for a in args:
            if isinstance(a, np.ndarray) and not isinstance(a, StrictArray):
                raise TypeError(f"StrictArray.{method.__name__}: got a plain numpy.ndarray operand "
                                f"{a.shape}; convert it with xp.asarray first")
        with _strict_context():
            return _strict(method(self, *args, **kwargs))
    return inside


# Operators and methods that call ufuncs internally run "inside", like CuPy's own methods.
_INSIDE = [f"__{op}__" for op in (
    "add radd iadd sub rsub isub mul rmul imul truediv rtruediv itruediv floordiv rfloordiv "
    "ifloordiv mod rmod imod pow rpow ipow matmul rmatmul imatmul neg pos abs invert and rand "
    "iand or ror ior xor rxor ixor lt le gt ge eq ne divmod rdivmod repr str format contains"
).split()] + ("sum prod mean std var max min all any argmax argmin clip round cumsum cumprod dot "
              "trace conj nonzero sort argsort searchsorted").split()
for _name in _INSIDE:
    setattr(StrictArray, _name, _method_inside(getattr(np.ndarray, _name)))
StrictArray.__getitem__ = _run_inside(np.ndarray.__getitem__)  # a[i]: 0-d array, not a scalar


class _StrictObject:
    """Attribute access on a wrapped object (a ufunc, a Generator): callables run inside."""

    def __init__(self, wrapped):
        self._wrapped = wrapped

    def __getattr__(self, name):
        attr = getattr(self._wrapped, name)
        return _run_inside(attr) if callable(attr) and not isinstance(attr, type) else attr

    def __call__(self, *args, **kwargs):
        return _run_inside(self._wrapped)(*args, **kwargs)


class StrictModule(types.ModuleType):
    """NumPy (or one of its submodules) seen through the strict context."""

    def __init__(self, name, wrapped):
        super().__init__(name)
        self._wrapped = wrapped

    def __repr__(self):
        return f"<strict array module over {self._wrapped.__name__}>"

    def __getattr__(self, name):
        attr = getattr(self._wrapped, name)
        if isinstance(attr, types.ModuleType):
            value = StrictModule(f"{self.__name__}.{name}", attr)
        elif isinstance(attr, np.ufunc):
            value = _StrictObject(attr)  # keeps .at, .reduce, ... inside the strict context
        elif callable(attr) and not isinstance(attr, type):
            value = _run_inside(attr)
        else:  # dtypes, classes, constants
            value = attr
        setattr(self, name, value)
        return value


strict_module = StrictModule("strict_xp", np)


def to_strict(array):
    """A StrictArray copy of ``array``."""
    return strict_module.array(array)


def to_plain(array):
    """A plain ndarray view of a StrictArray (for NumPy assertions in tests)."""
    return array.view(np.ndarray) if isinstance(array, StrictArray) else array


backend.register_array_module(StrictArray, strict_module)
