"""Reverse-mode automatic differentiation: ``Tensor``, ``Function`` and the backward walk.

A ``Tensor`` wraps a NumPy or CuPy array (``.data``). Every differentiable operation is a
``Function`` subclass with two methods on *raw arrays*::

    forward(*arrays)   -> output array          (may stash what backward needs on self)
    backward(grad_out) -> one gradient per input (None where no gradient flows)

Calling a Function on tensors runs ``forward`` and, when recording, links the output to the
Function so ``Tensor.backward`` can walk the graph in reverse topological order, applying the
chain rule: dL/dx = sum over uses of x of  (dL/dy) (dy/dx).

Broadcasting is handled in one place: if a Function returns a gradient with the output's
(broadcast) shape, the walk sums it back to the input's shape (``sum_to``).

Where the Tensor's pieces live: this file defines the class, its conversions and its in-place
methods; the arithmetic operators (``+``, ``*``, ``@``, ``x[i]`` ...) and the differentiable
methods (``x.exp()``, ``x.sum()`` ...) are Functions, attached to ``Tensor`` in ONE place,
``minigen/ops/__init__.py``, which ``import minigen`` runs (ops import this file, never the
reverse).

In-place updates and versions (as PyTorch's version counter): every in-place update made
through the library -- the ``Tensor`` methods ending in ``_`` (``add_``, ``copy_`` ...), an
optimiser's ``step()``, ``Module.load_state_dict``, ``Module.to``, the ``nn.init`` functions --
adds one to the tensor's ``_version``. A Function records the versions of the tensors whose
arrays it saves for backward, and ``backward()`` raises a RuntimeError naming the op and the
tensor if one of them changed since: its gradient would silently use the new values. Writing
into ``tensor.data`` yourself (``w.data[...] = 0``, ``w.data -= 0.1 * w.grad``) is NOT
tracked, exactly as in PyTorch; use ``with minigen.no_grad(): w.sub_(0.1 * w.grad)``.

Recording switches (``no_grad``, ``enable_grad``, ``detect_anomaly``) are per thread: one
thread evaluating under ``no_grad()`` does not switch recording off for another.
"""
import functools
import threading
import weakref

import numpy

from . import backend


# --------------------------------------------------------------------------- recording switches

class _Switches(threading.local):
    """The recording switches of the current thread (each new thread starts from these values)."""
    grad_enabled = True
    anomaly = False


_switches = _Switches()


class _Switch:
    """A context manager and decorator setting one switch of this thread for its duration.

    Usable as ``with no_grad():``, ``@no_grad()`` and ``@no_grad`` (without parentheses).
    """
    _name, _value = None, None  # the switch (attribute of _Switches) and the value set

    def __new__(cls, func=None):
        self = super().__new__(cls)
        if func is None:
            return self
        if not callable(func):
            raise TypeError(f"{cls.__name__}() takes no arguments (or decorates a function), "
                            f"got {func!r}")
        return self(func)  # used as @no_grad without parentheses

    def __enter__(self):
        self._previous = getattr(_switches, self._name)
        setattr(_switches, self._name, self._value)
        return self

    def __exit__(self, *exc_info):
        setattr(_switches, self._name, self._previous)
        return False

    def __call__(self, func):
        cls = type(self)

        @functools.wraps(func)
        def switched(*args, **kwargs):
            with cls():
                return func(*args, **kwargs)
        return switched


class no_grad(_Switch):
    """Turn graph recording off in this thread: ``with no_grad():``, ``@no_grad`` or ``@no_grad()``."""
    _name, _value = "grad_enabled", False


class enable_grad(_Switch):
    """Turn recording back on in this thread (e.g. inside a ``no_grad`` block)."""
    _name, _value = "grad_enabled", True


class detect_anomaly(_Switch):
    """While on (in this thread), the first op whose forward or backward makes a NaN or inf raises."""
    _name, _value = "anomaly", True


def is_grad_enabled():
    """Whether ops called in this thread are recorded for backward."""
    return _switches.grad_enabled


def _check_finite(fn, arrays, phase):
    for a in arrays:
        if a is None:
            continue
        xp = backend.get_array_module(a)
        if xp.issubdtype(a.dtype, xp.floating) and not bool(xp.isfinite(a).all()):
            shapes = ", ".join(str(tuple(shape)) for shape in fn.input_shapes)
            raise FloatingPointError(
                f"detect_anomaly: {type(fn).__name__} produced NaN or inf in its {phase} "
                f"(input shapes: {shapes})")


# --------------------------------------------------------------------------- helpers

def sum_to(grad, shape):
    """Sum ``grad`` over the axes that broadcasting added or stretched, giving ``shape``."""
    shape = tuple(shape)
    lead = grad.ndim - len(shape)
    if grad.shape == shape or lead < 0:
        return grad
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(grad.shape[lead:]) if lead else grad


_ndarray = numpy.ndarray  # exactly (not a subclass such as the tests' strict stand-in)
NUMERIC_KINDS = "biuf"  # dtype kinds a Tensor may hold: bool, signed/unsigned int, float


def _as_array(value, xp, dtype=None, fn=None, position=0):
    """An operand of ``fn`` as an array: a Tensor's data, or a numeric constant converted."""
    if getattr(value, "_is_minigen_tensor", False):
        return value.data
    if isinstance(value, (int, float)) and dtype is not None:  # bools are ints
        return xp.asarray(value, dtype=dtype)
    array = None if value is None or isinstance(value, (str, bytes)) else xp.asarray(value)
    if array is None or array.dtype.kind not in NUMERIC_KINDS:
        op = type(fn).__name__ if fn is not None else "backward()"
        raise TypeError(f"{op}: operand {position + 1} must be a Tensor, an array or a number, "
                        f"got {value!r} ({type(value).__name__})")
    return array


# --------------------------------------------------------------------------- Function

class Function:
    """One differentiable operation. Subclasses implement ``forward`` and ``backward``.

    Constructor arguments are the op's non-tensor settings (axis, stride, ...); call the
    instance on tensors (or arrays/scalars, treated as constants)::

        y = Exp()(x)

    When recording, the call also notes the versions of the inputs and of the output, so that
    backward can refuse to use values that were changed in place after they were saved.
    """

    def __call__(self, *inputs):
        if all(getattr(x, "_is_minigen_tensor", False) and type(x.data) is _ndarray for x in inputs):
            # the common case, fast: tensors holding NumPy arrays (nothing to convert)
            tensors, arrays = inputs, [x.data for x in inputs]
            if len(inputs) > 1:
                _check_same_device(self, inputs)
        else:
            tensors, arrays = self._arrays_of(inputs)
        self.input_shapes = [a.shape for a in arrays]
        try:
            out = self.forward(*arrays)
        except ValueError as e:  # e.g. NumPy's "operands could not be broadcast together"
            shapes = " and ".join(str(tuple(shape)) for shape in self.input_shapes)
            raise ValueError(f"{type(self).__name__} got inputs of shapes {shapes}: {e}") from e
        switches = _switches  # this thread's
        if switches.anomaly:
            _check_finite(self, [out], "forward")
        result = Tensor(out)
        if switches.grad_enabled and any(t.requires_grad for t in tensors):
            self.inputs = [_graph_input(x) for x in inputs]
            # Versions now, to compare at backward time (see _check_saved_versions).
            self.input_versions = [(x._version, id(x.data)) if link is not None else None
                                   for x, link in zip(inputs, self.inputs)]
            self.output_version = result._version_cell = [0]
            self.output_id = id(out)
            self.needs_input_grad = [x is not None and x.requires_grad for x in self.inputs]
            self.freed = False
            result.requires_grad = True
            result._creator = self
        return result

    def _arrays_of(self, inputs):
        """(the tensors among ``inputs``, every input as an array): constants converted, devices checked."""
        tensors = [x for x in inputs if getattr(x, "_is_minigen_tensor", False)]
        xp = backend.get_array_module(*inputs)
        _check_same_device(self, inputs)
        # Python scalars take the dtype of the tensors they meet (x * 2.0 stays float32).
        float_dtype = next((t.dtype for t in tensors if t.dtype.kind == "f"), None)
        arrays = [x.data if getattr(x, "_is_minigen_tensor", False) else _as_array(x, xp, float_dtype, self, i)
                  for i, x in enumerate(inputs)]
        return tensors, arrays

    def forward(self, *arrays):
        raise NotImplementedError

    def backward(self, grad_out):
        raise NotImplementedError

    def _release(self):
        """Drop saved arrays and input links once backward has used them."""
        self.__dict__ = {"freed": True}


class _GraphEdge:
    """What the graph keeps of a non-leaf input: its creator, dtype and version, not its data.

    A Function's backward needs an input's values only when it saved them itself; holding the
    input Tensor would keep every intermediate array alive until backward (PyTorch's graph
    likewise holds only what each op saves). ``data`` is the tensor's array while the tensor
    lives elsewhere (for the in-place check), else None.
    """
    __slots__ = ("_creator", "requires_grad", "dtype", "_version_cell", "_tensor")

    def __init__(self, x):
        self._creator, self.requires_grad, self.dtype = x._creator, x.requires_grad, x.data.dtype
        self._version_cell, self._tensor = x._version_cell, weakref.ref(x)

    _version = property(lambda self: self._version_cell[0])

    @property
    def data(self):
        x = self._tensor()
        return None if x is None else x.data


def _graph_input(x):
    """The graph's link to an input: leaves (which receive .grad) as they are, non-leaf tensors
    as a _GraphEdge, constants as None."""
    if not getattr(x, "_is_minigen_tensor", False):
        return None
    return x if x._creator is None else _GraphEdge(x)


def _check_saved_versions(fn):
    """Raise if a tensor whose memory ``fn`` saved was updated in place since the forward pass.

    Cheap when nothing changed (compares a few version numbers). When a version did change,
    the tensor matters only if ``fn`` kept its memory: one of the arrays on ``fn`` is the
    tensor's array at forward time, or its array now or a view of the memory that lives in
    (compared by the ids of the arrays and of their ``base``, the array owning the memory). ``x + 1`` keeps nothing of x,
    so x may change after it, as in PyTorch.
    """
    changed = [i for i, (x, version) in enumerate(zip(fn.inputs, fn.input_versions))
               if x is not None and x._version != version[0]]
    if not changed and fn.output_version[0] == 0:
        return
    saved = set()
    for value in fn.__dict__.values():
        base = getattr(value, "base", _MISSING)
        if base is not _MISSING:
            saved.add(id(value))
            if base is not None:
                saved.add(id(base))
    for i in changed:
        a = fn.inputs[i].data  # now (None once the tensor is gone); it may have been replaced
        version, forward_id = fn.input_versions[i]
        if forward_id in saved or (a is not None and (
                id(a) in saved or (a.base is not None and id(a.base) in saved))):
            _raise_modified(fn, f"its input {i + 1}", fn.input_shapes[i], fn.inputs[i]._version,
                            version)
    if fn.output_version[0] != 0 and fn.output_id in saved:
        _raise_modified(fn, "its output", None, fn.output_version[0], 0)


_MISSING = object()


def _raise_modified(fn, which, shape, now, then):
    of_shape = "" if shape is None else f", of shape {tuple(shape)}"
    raise RuntimeError(
        f"one of the tensors that {type(fn).__name__} saved for backward ({which}{of_shape}) was "
        f"modified in place after the forward pass: its version is {now}, it was {then}. An "
        f"optimizer step, an in-place method (add_, copy_, ...), load_state_dict or Module.to "
        f"changed it, so the gradient would use the new values. Call backward() before such "
        f"updates, or recompute the loss.")


def _check_same_device(fn, inputs):
    """Tensors and raw arrays (not Python or NumPy scalars) must all live on one device."""
    first = None
    for x in inputs:
        if hasattr(x, "shape") and not isinstance(x, numpy.generic):
            device = backend.device_of(x)
            if first is None:
                first = device
            elif device != first:
                raise ValueError(
                    f"{type(fn).__name__}: expected all tensors on one device, got tensors on "
                    f"{' and '.join(sorted((first, device)))} (move them with .to(device))")


class Cast(Function):
    """Move to another device and/or dtype; the gradient goes back the same way."""

    def __init__(self, device=None, dtype=None):
        self.device, self.dtype = device, dtype

    def forward(self, x):
        self.source_device, self.source_dtype = backend.device_of(x), x.dtype
        if self.device is not None:
            x = backend.to_device(x, self.device)
        return x.astype(self.dtype) if self.dtype is not None else x.copy()

    def backward(self, g):
        return backend.to_device(g, self.source_device).astype(self.source_dtype, copy=False)


# --------------------------------------------------------------------------- Tensor

class Tensor:
    """A multi-dimensional array of numbers (or booleans) that remembers how it was computed.

    ``data``: the backend array (NumPy or CuPy). It may be read, and replaced or written in
    place, but such writes are not tracked (see "In-place updates" in the module docstring):
    prefer the in-place methods (``add_``, ``copy_`` ...), which are.
    ``grad``: after ``backward``, dL/d(this tensor) as a backend array of the same shape.

    ``Tensor(array)`` wraps a NumPy/CuPy array without copying; build tensors from lists,
    numbers or arrays (copied) with ``minigen.tensor``. Operators and differentiable methods
    are attached in ``minigen/ops/__init__.py``.
    """

    _is_minigen_tensor = True
    __array_ufunc__ = None  # numpy_array * tensor: NumPy defers to Tensor.__rmul__
    _version_cell = None  # [version], created by the first in-place update; shared by detach()

    def __init__(self, data, requires_grad=False):
        if getattr(data, "_is_minigen_tensor", False):
            data = data.data
        if isinstance(data, numpy.generic):  # NumPy gives scalars for 0-d results; keep arrays
            data = numpy.asarray(data)
        try:
            kind = data.dtype.kind
        except AttributeError:
            raise TypeError(f"Tensor(data) wraps a NumPy or CuPy array, got a "
                            f"{type(data).__name__}; build a tensor from lists or numbers with "
                            f"minigen.tensor(data)") from None
        if kind not in NUMERIC_KINDS:
            raise TypeError(f"tensors hold numbers or booleans, got an array of dtype {data.dtype}")
        self.data = data
        self.grad = None
        self._creator = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    def requires_grad_(self, flag=True):
        if flag and self.data.dtype.kind != "f":
            raise TypeError(
                f"only floating-point tensors can require gradients, got dtype {self.data.dtype} "
                f"(convert with .float() or tensor(..., dtype='float32') first)")
        self.requires_grad = bool(flag)
        return self

    # -- array-like attributes
    shape = property(lambda self: tuple(self.data.shape))
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: int(self.data.size))
    device = property(lambda self: backend.device_of(self.data))
    is_leaf = property(lambda self: self._creator is None)

    def __len__(self):
        return len(self.data)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self)))

    def __repr__(self):
        extra = ", requires_grad=True" if self.requires_grad else ""
        dev = ", device='cuda'" if self.device == "cuda" else ""
        body = str(backend.to_numpy(self.data)).replace("\n", "\n       ")
        return f"tensor({body}{dev}{extra})"

    def numpy(self):
        """The values as a NumPy array (copied from the GPU if needed; shares memory on the CPU)."""
        return backend.to_numpy(self.data)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def __bool__(self):
        return bool(self.data)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def detach(self):
        """A new leaf sharing the data (and the version counter), cut off from the graph: sg[x]."""
        out = Tensor(self.data)
        if self._version_cell is None:
            self._version_cell = [0]
        out._version_cell = self._version_cell
        return out

    def to(self, device=None, dtype=None):
        """A copy on ``device`` and/or with ``dtype`` (self if nothing changes)."""
        data = self.data
        if device is not None:
            data = backend.to_device(data, device)
        if dtype is not None:
            data = data.astype(dtype, copy=False)
        if data is self.data:
            return self
        if self.requires_grad:  # differentiable move/cast
            return Cast(device, dtype)(self)
        return Tensor(data)

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def float(self):
        return self.to(dtype="float32")

    def double(self):
        return self.to(dtype="float64")

    def astype(self, dtype):
        return self.to(dtype=dtype)

    def zero_grad(self):
        self.grad = None

    # -- in-place updates (not recorded in the graph; each bumps the version)
    @property
    def _version(self):
        """How many in-place updates made through the library this tensor's memory has seen."""
        return 0 if self._version_cell is None else self._version_cell[0]

    def _bump_version(self):
        if self._version_cell is None:
            self._version_cell = [1]
        else:
            self._version_cell[0] += 1

    def _inplace(self, method, update, *operands):
        if self.requires_grad and _switches.grad_enabled:
            raise RuntimeError(
                f"{method}: an in-place update of a tensor that requires grad is not recorded for "
                f"backward; make it under minigen.no_grad() (e.g. a hand-written parameter "
                f"update), or use the out-of-place operation")
        xp = backend.get_array_module(self.data)
        arrays = [_as_array(x, xp, self.dtype if self.dtype.kind == "f" else None, None, i + 1)
                  for i, x in enumerate(operands)]
        update(*arrays)
        self._bump_version()
        return self

    def add_(self, other, alpha=1):
        """self += alpha * other, in place."""
        def update(o):
            self.data += o if alpha == 1 else alpha * o
        return self._inplace("add_", update, other)

    def sub_(self, other, alpha=1):
        """self -= alpha * other, in place."""
        def update(o):
            self.data -= o if alpha == 1 else alpha * o
        return self._inplace("sub_", update, other)

    def mul_(self, other):
        def update(o):
            self.data *= o
        return self._inplace("mul_", update, other)

    def div_(self, other):
        def update(o):
            self.data /= o
        return self._inplace("div_", update, other)

    def copy_(self, source):
        """Copy ``source``'s values (broadcast to this shape, cast to this dtype) into self."""
        def update(s):
            self.data[...] = backend.to_device(s, self.device)
        return self._inplace("copy_", update, source)

    def fill_(self, value):
        def update(v):
            self.data[...] = v
        return self._inplace("fill_", update, value)

    def zero_(self):
        return self.fill_(0)

    def clamp_(self, min=None, max=None):
        def update():
            backend.get_array_module(self.data).clip(self.data, min, max, out=self.data)
        return self._inplace("clamp_", update)

    # -- the backward walk
    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) * grad into ``leaf.grad`` for every leaf that requires grad.

        ``grad`` (array or Tensor, same shape as self) is the upstream gradient; it may be
        left out only for a single-element tensor (a loss), where it defaults to 1.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() called on a tensor that does not require grad: no input of the "
                "computation had requires_grad=True (or it ran under no_grad())")
        xp = backend.get_array_module(self.data)
        if grad is None:
            if self.data.size != 1:
                raise ValueError(
                    f"backward() without a gradient needs a single-element output, got shape "
                    f"{self.shape}; pass grad= with that shape (e.g. the upstream dL/dy), or "
                    f"reduce first (y.sum().backward())")
            grad = xp.ones_like(self.data)
        else:
            grad = _as_array(grad, xp).astype(self.dtype, copy=False)
            if grad.shape != self.data.shape:
                raise ValueError(f"backward(): grad has shape {tuple(grad.shape)} but the "
                                 f"tensor has shape {self.shape}")
        _run_backward(self, grad, retain_graph)


def _topological_order(root):
    """Functions reachable from ``root``, each after every Function that consumes its output.

    Iterative depth-first search (no recursion limit: a chain of 100,000 ops is fine).
    """
    order, visited = [], set()
    stack = [(root._creator, False)]
    while stack:
        fn, expanded = stack.pop()
        if expanded:
            order.append(fn)
            continue
        if id(fn) in visited:
            continue
        visited.add(id(fn))
        if fn.freed:
            raise RuntimeError(
                "trying to backward through the graph a second time: its saved values were "
                "freed by the first backward(); pass retain_graph=True to the first call")
        stack.append((fn, True))
        for x in fn.inputs:
            if x is not None and x._creator is not None and id(x._creator) not in visited:
                stack.append((x._creator, False))
    order.reverse()
    return order


def _run_backward(root, grad, retain_graph):
    """The chain rule, in reverse topological order: for y = f(x, ...),  grads[x] += grads[y] dy/dx."""
    grads = _GradientSums()
    grads.add(root, grad, shared=True)
    if root._creator is None:  # backward on a leaf: dL/dleaf = grad
        return
    for fn in _topological_order(root):
        grad_out = grads.pop(fn)  # dL/dy for the output y of fn, complete: all its uses are done
        if grad_out is not None:
            for x, g, shared in _input_gradients(fn, grad_out):
                grads.add(x, g, shared)  # grads[x] += g
        if not retain_graph:
            fn._release()


def _input_gradients(fn, grad_out):
    """(input, dL/dinput, shared) for each input of ``fn`` that needs a gradient.

    Each gradient is summed back to its input's shape (broadcasting) and cast to its dtype;
    ``shared`` says the array may also be held elsewhere (it is grad_out or a view of it, or it
    went to another input too), so it must not be added into in place.
    """
    _check_saved_versions(fn)
    in_grads = fn.backward(grad_out)
    if not isinstance(in_grads, tuple):
        in_grads = (in_grads,)
    if _switches.anomaly:
        _check_finite(fn, in_grads, "backward")
    handed_out = set()  # ids of the arrays handed out so far
    for x, g, shape in zip(fn.inputs, in_grads, fn.input_shapes):
        if x is None or g is None or not x.requires_grad:
            continue
        if isinstance(g, numpy.generic):  # a NumPy scalar from 0-d arithmetic: grads are arrays
            g = numpy.asarray(g)
        g = sum_to(g, shape)
        if g.shape != shape:
            raise RuntimeError(
                f"{type(fn).__name__}.backward returned a gradient of shape {tuple(g.shape)} "
                f"for an input of shape {tuple(shape)}")
        if g.dtype != x.dtype:
            g = g.astype(x.dtype)
        shared = g is grad_out or g.base is not None or id(g) in handed_out
        handed_out.add(id(g))
        yield x, g, shared


class _GradientSums:
    """The running sums grads[x] (dL/dx over the uses of x seen so far), added in place when safe.

    The memory optimisation, kept here out of the walk: a gradient array that backward
    returned may be shared (``shared``), so the first one for x is stored as it is and copied
    only when a second one has to be added to it; from then on the sum lives in a buffer this
    object owns and later terms are added into it in place (no new array per use of x).
    A leaf's sum goes to ``leaf.grad`` (added to what an earlier backward left there).
    Non-leaf sums are keyed by the Function that made the tensor (one output per Function).
    """

    def __init__(self):
        self.pending, self.owned = {}, set()

    def add(self, x, g, shared):
        if x._creator is None:
            if x.grad is None:
                x.grad = g.copy() if shared else g
            else:
                x.grad += g
            return
        key = id(x._creator)
        if key not in self.pending:
            self.pending[key] = g
            if not shared:
                self.owned.add(key)
        elif key in self.owned:
            self.pending[key] += g
        else:
            self.pending[key] = self.pending[key] + g
            self.owned.add(key)

    def pop(self, fn):
        """dL/d(output of fn), or None when no gradient reached it."""
        self.owned.discard(id(fn))
        return self.pending.pop(id(fn), None)
