"""``Module`` and ``Parameter``: the containers that hold a model's weights, as in PyTorch.

Assigning a ``Parameter`` or a ``Module`` to an attribute registers it; ``register_buffer``
registers state that is saved but not trained (running statistics, masks).
"""
from collections import OrderedDict

import numpy

from .. import backend
from ..autograd import Tensor


class Parameter(Tensor):
    """A tensor that is a model weight: requires grad, float32 unless given float data.

    Host (NumPy) data goes to ``device``, or by default to $MINIGEN_DEVICE; GPU data stays put
    unless ``device`` says otherwise.
    """

    def __init__(self, data, requires_grad=True, device=None):
        if isinstance(data, Tensor):
            data = data.data
        if not hasattr(data, "dtype"):  # a list or a number
            data = numpy.asarray(data, dtype="float32")
        if device is None and backend.device_of(data) == "cpu":
            device = backend.default_device()
        if device is not None:
            data = backend.to_device(data, device)
        if data.dtype.kind != "f":
            data = data.astype("float32")
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


def empty_parameter(shape, device=None, dtype=None):
    """An uninitialised Parameter, float32 on $MINIGEN_DEVICE (or 'cpu') unless told otherwise."""
    device = backend.default_device() if device is None else backend.check_device(device)
    xp = backend.array_module_for(device)
    return Parameter(xp.empty(shape, dtype="float32" if dtype is None else dtype), device=device)


class Module:
    """Base class of layers and models: subclasses set attributes in ``__init__`` and write ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                                 f"before assigning attributes")
        for registry in (self._parameters, self._modules, self._buffers):
            registry.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif name in self.__dict__.get("_buffer_names", ()):
            self._buffers[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        for registry in (self._parameters, self._modules, self._buffers):
            registry.pop(name, None)
        object.__delattr__(self, name)

    def register_buffer(self, name, array):
        """Keep ``array`` (a backend array, or None) as saved, untrained state under ``name``."""
        self.__dict__.setdefault("_buffer_names", set()).add(name)
        setattr(self, name, array)

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    # -- traversal
    def named_modules(self, prefix=""):
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}{name}.")

    def modules(self):
        return (m for _, m in self.named_modules())

    def children(self):
        return iter(self._modules.values())

    def named_children(self):
        return iter(self._modules.items())

    def named_parameters(self):
        seen = set()
        for prefix, module in self.named_modules():
            for name, p in module._parameters.items():
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    yield prefix + name, p

    def parameters(self):
        return (p for _, p in self.named_parameters())

    def named_buffers(self):
        for prefix, module in self.named_modules():
            for name, b in module._buffers.items():
                if b is not None:
                    yield prefix + name, b

    # -- modes and housekeeping
    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def to(self, device=None, dtype=None):
        """Move (and/or cast) every parameter and buffer in place; returns self."""
        for m in self.modules():
            for name, p in m._parameters.items():
                if p is not None:
                    data = p.data if device is None else backend.to_device(p.data, device)
                    p.data = data.astype(dtype, copy=False) if dtype is not None else data
                    p.grad = None
            for name, b in list(m._buffers.items()):
                if b is not None:
                    data = b if device is None else backend.to_device(b, device)
                    if dtype is not None and data.dtype.kind == "f":
                        data = data.astype(dtype, copy=False)
                    m._buffers[name] = data
                    object.__setattr__(m, name, data)
        return self

    def double(self):
        return self.to(dtype="float64")

    def float(self):
        return self.to(dtype="float32")

    @property
    def device(self):
        first = next(self.parameters(), None)
        return "cpu" if first is None else first.device

    # -- checkpoints
    def state_dict(self):
        """Name -> array (parameters, then buffers), the arrays themselves (not copies)."""
        state = OrderedDict((name, p.data) for name, p in self.named_parameters())
        state.update(self.named_buffers())
        return state

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays into this module's parameters and buffers, checking names and shapes.

        Mis-shaped entries always raise; missing or unexpected names raise when ``strict``.
        Returns (missing, unexpected) name lists.
        """
        own = dict(self.named_parameters())
        own_buffers = dict(self.named_buffers())
        expected = list(own) + list(own_buffers)
        missing = [k for k in expected if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own and k not in own_buffers]
        mis_shaped = [f"{k}: checkpoint {tuple(state_dict[k].shape)}, model {tuple(v.shape)}"
                      for k, v in list(own.items()) + list(own_buffers.items())
                      if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)]
        problems = []
        if mis_shaped:
            problems.append("mis-shaped keys: " + "; ".join(mis_shaped))
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if problems:
            raise ValueError(f"load_state_dict into {type(self).__name__} failed: " + " | ".join(problems))
        for name, p in own.items():
            if name in state_dict:
                p.data[...] = backend.to_device(state_dict[name], p.device)
        for name, b in own_buffers.items():
            if name in state_dict:
                b[...] = backend.to_device(state_dict[name], backend.device_of(b))
        return missing, unexpected

    # -- printing
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            lines.append(f"  ({name}): " + repr(child).replace("\n", "\n  "))
        return lines[0] + ")" if len(lines) == 1 else "\n".join(lines) + "\n)"
