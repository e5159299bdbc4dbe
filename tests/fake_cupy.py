"""A fake ``cupy`` (and ``cupyx``) so that CPU-only CI can test the device plumbing end to end.

Installed in ``sys.modules`` (the ``fake_cupy`` fixture of conftest.py, or for a whole run with
MINIGEN_FAKE_CUPY=1), it makes ``minigen.backend`` see one CUDA device: ``device="cuda"`` then
keeps data in ``fake_cupy.ndarray`` ('cuda' arrays), which NumPy computes on the CPU.

Like strict_xp.StrictArray, these arrays stop NumPy from handling device data behind the
backend's back; unlike it they follow CuPy's own rules, so what fails here fails on a GPU:

- they are not ``numpy.ndarray``s, and implicit conversion raises TypeError as CuPy's does
  (``numpy.asarray(a)``, ``numpy.testing.assert_allclose(a, b)``, ``numpy_array + a``);
  ``a.get()`` / ``cupy.asnumpy(a)`` copy to the host, ``cupy.asarray(host)`` to the device;
- NumPy ufuncs and functions called on them dispatch to the fake (CuPy implements
  ``__array_ufunc__`` and ``__array_function__`` too); cupy functions, operators and those
  dispatched calls refuse NumPy array operands (``cupy.asarray``/``cupy.array`` take them, and
  so do indexing and assignment: host indices and values are copied over);
- reductions and integer indexing give 0-d arrays, never NumPy scalars; ``a.base`` is None
  exactly for freshly allocated arrays (the autograd engine's ownership test relies on it);
- ``cupy.random.default_rng(seed)`` has only the methods of CuPy's Generator (no
  ``permutation``, ``choice``, ``shuffle``, ``normal``) and a stream that differs from NumPy's
  for the same seed, as on a GPU;
- ``cupy.linalg.cholesky``/``inv``/``solve`` do not raise on singular input but return NaN, as
  cuSOLVER does unless ``cupyx.errstate(linalg="raise")`` is in force;
- ``cupy.cuda.runtime.getDeviceCount()`` is 1, ``cupy.cuda.Device().synchronize()`` waits for
  nothing; ``cupyx.scatter_add`` and ``cupyx.scipy.special`` exist.
- ``ndarray(numpy_array)`` wraps a NumPy array (CuPy's constructor takes a shape: use
  ``cupy.empty``).

Not reproduced: the GPU's float32 rounding, asynchrony, and custom kernels (no
``ElementwiseKernel``, ``RawKernel`` or ``fuse``: code that uses them needs a NumPy path).
"""
import contextlib
import numbers
import operator
import sys
import types

import numpy as np
import scipy.special


# --------------------------------------------------------------------------- wrapping

def _unwrap(obj):
    """Fake arrays (also inside tuples, lists and dicts) as the NumPy arrays they hold."""
    if isinstance(obj, ndarray):
        return obj._array
    if isinstance(obj, (tuple, list)):
        return type(obj)(_unwrap(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _unwrap(v) for k, v in obj.items()}
    return obj


def _wrap(obj):
    """NumPy results as fake arrays; NumPy scalars become 0-d arrays, as CuPy returns."""
    if isinstance(obj, np.generic):
        obj = np.asarray(obj)
    if isinstance(obj, np.ndarray):
        return ndarray(obj)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # slogdet, eigh, ... results
        return type(obj)(*map(_wrap, obj))
    if isinstance(obj, (tuple, list)):
        return type(obj)(map(_wrap, obj))
    return obj


def _refuse_host(obj, where):
    """TypeError for a NumPy array among ``obj`` (also inside tuples, lists, dicts), as CuPy's."""
    if isinstance(obj, np.ndarray):
        raise TypeError(f"{where}: got a numpy.ndarray of shape {obj.shape}; CuPy does not take "
                        f"host arrays here (move it with cupy.asarray / minigen.backend.to_device)")
    if isinstance(obj, (tuple, list)):
        for o in obj:
            _refuse_host(o, where)
    elif isinstance(obj, dict):
        for o in obj.values():
            _refuse_host(o, where)


def _device_function(fn, where, owner=None):
    """``fn`` (a NumPy function or a method of ``owner``'s array) taking and giving fake arrays.

    An input handed back unchanged (``astype(copy=False)``, ``out=``) comes back as itself.
    """
    def call(*args, **kwargs):
        _refuse_host((args, kwargs), where)
        result = fn(*_unwrap(args), **_unwrap(kwargs))
        for a in (owner, *args, *kwargs.values()):
            if isinstance(a, ndarray) and result is a._array:
                return a
        return _wrap(result)
    call.__name__ = getattr(fn, "__name__", "call")
    return call


# --------------------------------------------------------------------------- the array

class ndarray:
    """A 'device' array: a NumPy array that only the fake CuPy computes with."""

    def __init__(self, array):
        self._array = array

    def get(self):
        """A NumPy copy on the host."""
        return self._array.copy()

    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed (a fake CuPy array): "
                        "use .get() or minigen.backend.to_numpy to copy it to the host")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        _refuse_host((inputs, kwargs), f"numpy.{ufunc.__name__}")
        result = getattr(ufunc, method)(*_unwrap(inputs), **_unwrap(kwargs))
        out = kwargs.get("out")
        if out is not None:
            return out[0] if len(out) == 1 else out
        return None if method == "at" else _wrap(result)

    def __array_function__(self, func, types, args, kwargs):
        _refuse_host((args, kwargs), f"numpy.{func.__name__}")
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))

    shape = property(lambda self: self._array.shape)
    dtype = property(lambda self: self._array.dtype)
    ndim = property(lambda self: self._array.ndim)
    size = property(lambda self: self._array.size)
    T = property(lambda self: ndarray(self._array.T))
    base = property(lambda self: None if self._array.base is None else _wrap(self._array.base))

    def __getattr__(self, name):
        # No __array_interface__ & co.: NumPy must not find a way to read the data silently.
        if name.startswith("__") or name == "_array":
            raise AttributeError(name)
        attr = getattr(self._array, name)
        if callable(attr):
            return _device_function(attr, f"cupy.ndarray.{name}", owner=self)
        return _wrap(attr)

    def __getitem__(self, index):
        return _wrap(self._array[_unwrap(index)])

    def __setitem__(self, index, value):
        self._array[_unwrap(index)] = _unwrap(value)  # host values are copied in, as CuPy does

    def __len__(self):
        return len(self._array)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __bool__(self):
        return bool(self._array)

    def __float__(self):
        return float(self._array)

    def __int__(self):
        return int(self._array)

    def __index__(self):
        return operator.index(self._array)

    def __repr__(self):
        return repr(self._array)

    def __str__(self):
        return str(self._array)

    def __format__(self, spec):
        return format(self._array, spec)

    def __copy__(self):
        return ndarray(self._array.copy())

    def __deepcopy__(self, memo):
        return ndarray(self._array.copy())


def _operator(name):
    op = getattr(np.ndarray, name)

    def method(self, *args):
        if not all(isinstance(a, (ndarray, numbers.Number, np.generic, np.ndarray)) for a in args):
            return NotImplemented  # e.g. a minigen Tensor: its reflected operator runs instead
        _refuse_host(args, f"cupy.ndarray.{name}")
        result = op(self._array, *_unwrap(args))
        return self if result is self._array else _wrap(result)  # in-place operators give self
    method.__name__ = name
    return method


for _name in ("add sub mul truediv floordiv mod pow matmul and or xor lshift rshift divmod".split()):
    for _form in ("__{}__", "__r{}__", "__i{}__"):
        if hasattr(np.ndarray, _form.format(_name)):
            setattr(ndarray, _form.format(_name), _operator(_form.format(_name)))
for _name in ("lt le gt ge eq ne neg pos abs invert contains".split()):
    setattr(ndarray, f"__{_name}__", _operator(f"__{_name}__"))
ndarray.__hash__ = None  # unhashable, like NumPy's and CuPy's arrays


# --------------------------------------------------------------------------- modules

class _DeviceUfunc:
    """A NumPy ufunc as the fake's: calls and .at/.reduce/.outer/... on fake arrays."""

    def __init__(self, ufunc):
        self._ufunc = ufunc

    def __call__(self, *args, **kwargs):
        return _device_function(self._ufunc, f"cupy.{self._ufunc.__name__}")(*args, **kwargs)

    def __getattr__(self, name):
        attr = getattr(self._ufunc, name)
        return _device_function(attr, f"cupy.{self._ufunc.__name__}.{name}") if callable(attr) else attr


class _DeviceModule(types.ModuleType):
    """A NumPy-like module (numpy, numpy.linalg, scipy.special, ...) over fake arrays.

    ``overrides``: name -> a replacement of the wrapped module's function (on NumPy arrays).
    """

    def __init__(self, name, wrapped, overrides=None):
        super().__init__(name)
        self._wrapped, self._overrides = wrapped, overrides or {}

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            attr = self._overrides.get(name) or getattr(self._wrapped, name)
        except AttributeError:
            raise AttributeError(f"the fake {self.__name__} has no attribute {name!r}") from None
        if isinstance(attr, types.ModuleType):
            value = _DeviceModule(f"{self.__name__}.{name}", attr)
        elif isinstance(attr, np.ufunc):
            value = _DeviceUfunc(attr)
        elif callable(attr) and not isinstance(attr, type):
            value = _device_function(attr, f"{self.__name__}.{name}")
        else:  # dtypes, classes, constants
            value = attr
        setattr(self, name, value)
        return value


def asarray(a, dtype=None, order=None):
    """Host data copied to the 'device'; a fake array of the right dtype is returned as it is."""
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == np.dtype(dtype) else a.astype(dtype)
    return ndarray(np.array(_unwrap(a), dtype=dtype, order=order, copy=True))


def array(obj, dtype=None, copy=True, order="K", ndmin=0):
    """A new 'device' array from host or device data (a view only for device data and copy=False)."""
    if isinstance(obj, ndarray) and not copy:
        return asarray(obj, dtype)
    return ndarray(np.array(_unwrap(obj), dtype=dtype, copy=True, order=order, ndmin=ndmin))


def asnumpy(a):
    """A NumPy array on the host (a copy of device data)."""
    return a.get() if isinstance(a, ndarray) else np.asarray(a)


def get_array_module(*args):
    return cupy if any(isinstance(a, ndarray) for a in args) else np


# -- linalg: cuSOLVER reports a failed factorisation only under cupyx.errstate(linalg="raise")
_errors = {"linalg": "ignore"}


@contextlib.contextmanager
def errstate(linalg=None):
    previous = dict(_errors)
    if linalg is not None:
        _errors["linalg"] = linalg
    try:
        yield
    finally:
        _errors.update(previous)


def _nan_on_failure(fn):
    def call(a, *args, **kwargs):
        try:
            return fn(a, *args, **kwargs)
        except np.linalg.LinAlgError:
            if _errors["linalg"] == "raise":
                raise
            identity = np.broadcast_to(np.eye(a.shape[-1], dtype=a.dtype), a.shape)
            return np.full_like(fn(identity, *args, **kwargs), np.nan)  # right shape and dtype
    return call


linalg = _DeviceModule("cupy.linalg", np.linalg, {
    name: _nan_on_failure(getattr(np.linalg, name)) for name in ("cholesky", "inv", "solve")})


# -- random: CuPy's Generator API, on a stream of its own
class Generator:
    """cupy.random.Generator: its methods only; results are 'device' arrays (0-d for one draw)."""

    METHODS = frozenset("beta binomial chisquare dirichlet exponential f gamma geometric "
                        "hypergeometric integers logseries poisson power random "
                        "standard_exponential standard_gamma standard_normal uniform".split())

    def __init__(self, numpy_generator):
        self._rng = numpy_generator

    def __getattr__(self, name):
        if name.startswith("__") or name == "_rng":
            raise AttributeError(name)
        if name not in self.METHODS:
            raise AttributeError(
                f"cupy.random.Generator has no method {name!r}: CuPy's Generator offers only "
                f"{', '.join(sorted(self.METHODS))} (draw permutations and choices on the host, "
                f"or sort random keys: xp.argsort(rng.random(n)))")
        method = _device_function(getattr(self._rng, name), f"cupy.random.Generator.{name}")
        return lambda *args, **kwargs: asarray(method(*args, **kwargs))


def default_rng(seed=None):
    """A Generator; an int seed gives a stream that differs from numpy.random.default_rng(seed)."""
    if isinstance(seed, Generator):
        return seed
    return Generator(np.random.default_rng(None if seed is None else [int(seed), 0xC0DA]))


random = types.ModuleType("cupy.random")
random.Generator, random.default_rng = Generator, default_rng

# -- cuda: one device
cuda = types.ModuleType("cupy.cuda")
cuda.runtime = types.ModuleType("cupy.cuda.runtime")


class CUDARuntimeError(RuntimeError):
    pass


class Device:
    def __init__(self, device=0):
        self.id = int(device)

    def synchronize(self):
        pass  # the fake computes synchronously

    def use(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


cuda.runtime.getDeviceCount = lambda: 1
cuda.runtime.getDeviceProperties = lambda device: {"name": b"fake CUDA device (NumPy)"}
cuda.runtime.CUDARuntimeError = CUDARuntimeError
cuda.Device = Device

# -- the modules
cupy = _DeviceModule("cupy", np)
for _name, _value in dict(ndarray=ndarray, asarray=asarray, asanyarray=asarray, array=array,
                          asnumpy=asnumpy, get_array_module=get_array_module, linalg=linalg,
                          random=random, cuda=cuda, __version__="0.0+fake").items():
    setattr(cupy, _name, _value)


def scatter_add(a, slices, value):
    """a[slices] += value, repeated indices accumulating (cupyx.scatter_add)."""
    if not isinstance(a, ndarray):
        raise TypeError(f"cupyx.scatter_add: a must be a cupy.ndarray, got {type(a).__name__}")
    _refuse_host(value, "cupyx.scatter_add")  # host index arrays are copied over, as in indexing
    np.add.at(a._array, _unwrap(slices), _unwrap(value))


cupyx = types.ModuleType("cupyx")
cupyx.scatter_add, cupyx.errstate = scatter_add, errstate
cupyx.scipy = types.ModuleType("cupyx.scipy")
cupyx.scipy.special = _DeviceModule("cupyx.scipy.special", scipy.special)

MODULES = {"cupy": cupy, "cupy.cuda": cuda, "cupy.cuda.runtime": cuda.runtime, "cupy.linalg": linalg,
           "cupy.random": random, "cupyx": cupyx, "cupyx.scipy": cupyx.scipy,
           "cupyx.scipy.special": cupyx.scipy.special}


def install(monkeypatch=None):
    """Put the fake in ``sys.modules`` (undone after the test when ``monkeypatch`` is given).

    minigen's global random generators are keyed by module name; a test gets fresh ones so that
    no fake generator outlives it (next to a real CuPy, say).
    """
    import minigen.random
    if monkeypatch is None:
        sys.modules.update(MODULES)
        minigen.random._generators.pop("cupy", None)
        return cupy
    for name, module in MODULES.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(minigen.random, "_generators", {})
    return cupy
