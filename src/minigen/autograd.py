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
"""
import contextlib

import numpy

from . import backend

_grad_enabled = True
_anomaly_mode = False


# --------------------------------------------------------------------------- recording switches

@contextlib.contextmanager
def no_grad():
    """Context manager (and decorator) that turns graph recording off."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


@contextlib.contextmanager
def enable_grad():
    """Turn recording back on inside a ``no_grad`` block."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, True
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled():
    return _grad_enabled


@contextlib.contextmanager
def detect_anomaly():
    """While on, the first op whose forward or backward makes a NaN or inf raises an error."""
    global _anomaly_mode
    previous, _anomaly_mode = _anomaly_mode, True
    try:
        yield
    finally:
        _anomaly_mode = previous


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


def _as_array(value, xp, dtype=None):
    if getattr(value, "_is_minigen_tensor", False):
        return value.data
    if isinstance(value, (bool, int, float)) and dtype is not None:
        return xp.asarray(value, dtype=dtype)
    return xp.asarray(value)


# --------------------------------------------------------------------------- Function

class Function:
    """One differentiable operation. Subclasses implement ``forward`` and ``backward``.

    Constructor arguments are the op's non-tensor settings (axis, stride, ...); call the
    instance on tensors (or arrays/scalars, treated as constants)::

        y = Exp()(x)
    """

    def __call__(self, *inputs):
        tensors = [x for x in inputs if getattr(x, "_is_minigen_tensor", False)]
        xp = backend.get_array_module(*inputs)
        _check_same_device(self, inputs)
        # Python scalars take the dtype of the tensors they meet (x * 2.0 stays float32).
        float_dtype = next((t.dtype for t in tensors if t.dtype.kind == "f"), None)
        arrays = [_as_array(x, xp, float_dtype) for x in inputs]
        self.input_shapes = [a.shape for a in arrays]
        try:
            out = self.forward(*arrays)
        except ValueError as e:  # e.g. NumPy's "operands could not be broadcast together"
            shapes = " and ".join(str(tuple(shape)) for shape in self.input_shapes)
            raise ValueError(f"{type(self).__name__} got inputs of shapes {shapes}: {e}") from e
        if _anomaly_mode:
            _check_finite(self, [out], "forward")
        result = Tensor(out)
        if _grad_enabled and any(t.requires_grad for t in tensors):
            self.inputs = [x if getattr(x, "_is_minigen_tensor", False) else None for x in inputs]
            self.needs_input_grad = [x is not None and x.requires_grad for x in self.inputs]
            self.freed = False
            result.requires_grad = True
            result._creator = self
        return result

    def forward(self, *arrays):
        raise NotImplementedError

    def backward(self, grad_out):
        raise NotImplementedError

    def _release(self):
        """Drop saved arrays and input links once backward has used them."""
        self.__dict__ = {"freed": True}


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


# --------------------------------------------------------------------------- Tensor

class Tensor:
    """A multi-dimensional array that remembers how it was computed.

    ``data``: the backend array (NumPy or CuPy); may be read, written in place or replaced.
    ``grad``: after ``backward``, dL/d(this tensor) as a backend array of the same shape.
    """

    _is_minigen_tensor = True
    __array_ufunc__ = None  # numpy_array * tensor: NumPy defers to Tensor.__rmul__

    def __init__(self, data, requires_grad=False):
        if getattr(data, "_is_minigen_tensor", False):
            data = data.data
        if isinstance(data, numpy.generic):  # NumPy gives scalars for 0-d results; keep arrays
            data = numpy.asarray(data)
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
        """A new leaf sharing the data, cut off from the graph: the stop-gradient sg[x]."""
        return Tensor(self.data)

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
            from .ops.elementwise import Cast
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

    # -- operators and methods are attached in ops/ (see minigen/ops/__init__.py)
    __hash__ = object.__hash__


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
    if root._creator is None:  # backward on a leaf: dL/dleaf = grad
        _accumulate_leaf(root, grad, fresh=False)
        return
    # Pending gradients of non-leaf tensors, keyed by the Function that made each tensor
    # (one output per Function). ``owned``: keys whose buffer we allocated and may add into.
    grads, owned = {id(root._creator): grad}, set()
    for fn in _topological_order(root):
        grad_out = grads.pop(id(fn), None)
        if grad_out is not None:
            _apply_chain_rule(fn, grad_out, grads, owned)
        if not retain_graph:
            fn._release()


def _apply_chain_rule(fn, grad_out, grads, owned):
    in_grads = fn.backward(grad_out)
    if not isinstance(in_grads, tuple):
        in_grads = (in_grads,)
    if _anomaly_mode:
        _check_finite(fn, in_grads, "backward")
    seen = set()  # ids of the arrays handed out so far: one array given to two inputs is shared
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
        if g.dtype != x.data.dtype:
            g = g.astype(x.data.dtype)
        # A gradient that is (a view of) grad_out, or that went to another input too, may be
        # shared: never add into it.
        fresh = g is not grad_out and g.base is None and id(g) not in seen
        seen.add(id(g))
        if x._creator is None:
            _accumulate_leaf(x, g, fresh)
            continue
        key = id(x._creator)
        if key not in grads:
            grads[key] = g
            if fresh:
                owned.add(key)
        elif key in owned:
            grads[key] += g
        else:
            grads[key] = grads[key] + g
            owned.add(key)


def _accumulate_leaf(leaf, g, fresh):
    if leaf.grad is None:
        leaf.grad = g if fresh else g.copy()
    else:
        leaf.grad += g
