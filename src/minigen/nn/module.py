"""``Module`` and ``Parameter``: the containers that hold a model's weights, as in PyTorch.

Assigning a ``Parameter`` or a ``Module`` to an attribute registers it; ``register_buffer``
registers state that is saved but not trained (running statistics, masks).

Constructor arguments are recorded: every subclass's ``__init__`` is wrapped (in
``Module.__init_subclass__``) so that the outermost call -- ``VAE(64, latent_dim=2)``, not the
``super().__init__(...)`` calls inside it -- keeps its arguments. They must be plain values
(numbers, strings, bools, None, tuples/lists/dicts of them) or Modules (recorded recursively).
That gives three things: ``repr(model)`` is the constructor call with the names of the
constructor's own parameters (valid Python, e.g. ``Sequential(Linear(in_features=2,
out_features=3), Tanh())``); ``model.save(path)`` writes those arguments beside the state dict;
and ``Model.load(path)`` / ``minigen.load_model(path)`` rebuild the model in one call.
"""
import collections.abc
import functools
import inspect
import json
from collections import OrderedDict

import numpy

from .. import backend, serialization
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


_MODULE_CLASSES = {}  # qualified name -> Module subclass, for loading saved models


def _qualified_name(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def _recording(init):
    """Wrap a subclass's ``__init__`` so that the outermost call records its arguments."""

    @functools.wraps(init)
    def recording_init(self, *args, **kwargs):
        if "_constructor" in self.__dict__:  # a super().__init__(...) inside the outermost call
            return init(self, *args, **kwargs)
        # Keep what was passed, not what the caller may change later: iterators (consumed by
        # the constructor) become tuples, lists and dicts are copied.
        args = tuple(_snapshot(a) for a in args)
        kwargs = {k: _snapshot(v) for k, v in kwargs.items()}
        object.__setattr__(self, "_constructor", None)  # recording in progress
        init(self, *args, **kwargs)
        object.__setattr__(self, "_constructor", (args, kwargs))

    return recording_init


def _snapshot(value):
    if isinstance(value, (list, dict)):
        return type(value)(value)
    if isinstance(value, collections.abc.Iterator):
        return tuple(value)
    return value


class Module:
    """Base class of layers and models: subclasses set attributes in ``__init__`` and write ``forward``."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _MODULE_CLASSES[_qualified_name(cls)] = cls
        if "__init__" in cls.__dict__:
            cls.__init__ = _recording(cls.__dict__["__init__"])
        elif cls.__init__ is Module.__init__:  # e.g. Tanh: no __init__ of its own, none recorded
            cls.__init__ = _recording(Module.__init__)

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
                    data = data.astype(dtype, copy=False) if dtype is not None else data
                    if data is not p.data:
                        p.data = data
                        p._bump_version()
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
    def dtype(self):
        """The dtype of the parameters (an error if there are none or they differ)."""
        return self._common("dtype")

    @property
    def device(self):
        """The device of the parameters, 'cpu' or 'cuda' (an error if there are none or they differ)."""
        return self._common("device")

    def _common(self, attribute):
        values = {}
        for name, p in self.named_parameters():
            values.setdefault(str(getattr(p, attribute)), (name, getattr(p, attribute)))
        if len(values) == 1:
            return next(iter(values.values()))[1]
        if not values:
            raise ValueError(f"{type(self).__name__} has no parameters, so it has no {attribute} "
                             f"of its own")
        found = ", ".join(f"{name} is {value}" for value, (name, _) in values.items())
        raise ValueError(f"{type(self).__name__}'s parameters have different {attribute}s ({found}); "
                         f"use .to({attribute}=...) to make them agree")

    # -- checkpoints
    def state_dict(self):
        """Name -> array (parameters, then buffers), the arrays themselves (not copies)."""
        state = OrderedDict((name, p.data) for name, p in self.named_parameters())
        state.update(self.named_buffers())
        return state

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays into this module's parameters and buffers: all of them, or none.

        Every entry is checked and converted first (name, numeric dtype, shape, device and
        dtype of the target); only when all are fine is anything written, so an error leaves
        the module unchanged. Mis-shaped or unconvertible entries always raise; missing or
        unexpected names raise when ``strict``. Returns (missing, unexpected) name lists.
        """
        if not isinstance(state_dict, dict):
            raise TypeError(f"load_state_dict: expected a dict of arrays (from state_dict() or "
                            f"minigen.load), got {type(state_dict).__name__}")
        own = dict(self.named_parameters())
        own_buffers = dict(self.named_buffers())
        targets = {**{k: p.data for k, p in own.items()}, **own_buffers}
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets]
        converted, bad = {}, []
        for name, target in targets.items():
            if name in state_dict:
                value, problem = _convert_entry(state_dict[name], target)
                if problem:
                    bad.append(f"{name}: {problem}")
                else:
                    converted[name] = value
        problems = []
        if bad:
            problems.append("bad entries: " + "; ".join(bad))
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if problems:
            raise ValueError(f"load_state_dict into {type(self).__name__} failed (nothing was "
                             f"loaded): " + " | ".join(problems))
        for name, value in converted.items():
            if name in own:
                own[name].data[...] = value
                own[name]._bump_version()
            else:
                own_buffers[name][...] = value
        return missing, unexpected

    # -- saving and loading whole models
    def save(self, path):
        """Write the constructor arguments and the state dict to ``path`` (``minigen.save``).

        ``type(model).load(path)`` or ``minigen.load_model(path)`` rebuilds the model from it.
        """
        config = json.dumps(_module_config(self))
        return serialization.save({"config": numpy.array(config), "state": self.state_dict()}, path)

    @classmethod
    def load(cls, path, device=None):
        """The model saved at ``path`` by ``save``: built from its recorded constructor
        arguments, then given its state (all or nothing). The saved class must be ``cls`` or a
        subclass of it. ``device``: where to put it (default: where the constructor puts it).
        """
        return _model_from_checkpoint(serialization.load(path), path, cls, device)

    # -- printing
    def extra_repr(self):
        """Settings shown by the repr of a Module whose constructor arguments were not recorded."""
        return ""

    def __repr__(self):
        """The constructor call that builds this module (arguments by the constructor's names)."""
        constructor = self.__dict__.get("_constructor")
        if constructor is None:
            lines = [f"{type(self).__name__}({self.extra_repr()}"]
            for name, child in self._modules.items():
                lines.append(f"  ({name}): " + repr(child).replace("\n", "\n  "))
            return lines[0] + ")" if len(lines) == 1 else "\n".join(lines) + "\n)"
        parts = [_repr_argument(value) if name is None else f"{name}={_repr_argument(value)}"
                 for name, value in _named_arguments(type(self), *constructor)
                 if not _is_generator(value)]
        one_line = f"{type(self).__name__}({', '.join(parts)})"
        if len(one_line) <= 88 and "\n" not in one_line:
            return one_line
        body = "".join(f"\n  {part.replace(chr(10), chr(10) + '  ')}," for part in parts)
        return f"{type(self).__name__}({body}\n)"


def _convert_entry(value, target):
    """(value as an array like ``target``: its device and dtype, None) or (None, problem)."""
    if isinstance(value, Tensor):
        value = value.data
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        return None, f"expected an array, got {type(value).__name__}"
    if value.dtype.kind not in "biuf":
        return None, f"expected numbers, got an array of dtype {value.dtype}"
    if tuple(value.shape) != tuple(target.shape):
        return None, f"checkpoint shape {tuple(value.shape)}, model shape {tuple(target.shape)}"
    try:
        return backend.to_device(value, backend.device_of(target)).astype(target.dtype, copy=False), None
    except Exception as e:  # e.g. a CuPy array on a machine without a GPU
        return None, f"cannot convert to {target.dtype} on {backend.device_of(target)} ({e})"


# ----------------------------------------------------------------- constructor arguments

def _named_arguments(cls, args, kwargs):
    """(name, value) pairs of a recorded call: the parameter names of ``cls.__init__``;
    name None for the values of a ``*args`` parameter (shown positionally)."""
    parameters = [p for p in inspect.signature(cls.__init__).parameters.values()][1:]  # no self
    named = []
    for i, value in enumerate(args):
        p = parameters[min(i, len(parameters) - 1)] if parameters else None
        if p is not None and p.kind is p.VAR_POSITIONAL:
            named.append((None, value))
        elif p is not None and i < len(parameters):
            named.append((p.name, value))
        else:
            named.append((None, value))
    named.extend(kwargs.items())
    return named


def _is_generator(value):
    return hasattr(value, "standard_normal") and hasattr(value, "random")


def _repr_argument(value):
    if isinstance(value, Module):
        return repr(value)
    if isinstance(value, type) and issubclass(value, numpy.generic) or isinstance(value, numpy.dtype):
        return repr(numpy.dtype(value).name)
    if isinstance(value, numpy.generic):
        return repr(value.item())
    if isinstance(value, (list, tuple)):
        items = ", ".join(_repr_argument(v) for v in value)
        if isinstance(value, list):
            return f"[{items}]"
        return f"({items},)" if len(value) == 1 else f"({items})"
    if isinstance(value, dict):
        items = ", ".join(f"({k!r}, {_repr_argument(v)})" for k, v in value.items())
        return f"OrderedDict([{items}])" if isinstance(value, OrderedDict) else \
            "{" + ", ".join(f"{k!r}: {_repr_argument(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _module_config(module):
    """The recorded constructor call of ``module`` as JSON-ready data."""
    constructor = module.__dict__.get("_constructor")
    if constructor is None:
        raise TypeError(f"{type(module).__name__} cannot be saved with its architecture: it did not "
                        f"record constructor arguments (a plain Module, or __init__ failed)")
    args, kwargs = constructor
    where = type(module).__name__
    return {"class": _qualified_name(type(module)), "module": type(module).__module__,
            "args": [_encode(a, f"{where} argument {i + 1}") for i, a in enumerate(args)],
            "kwargs": {k: _encode(v, f"{where} argument {k}") for k, v in kwargs.items()}}


def _encode(value, where):
    """JSON-ready form of a constructor argument; every JSON object is a tagged value."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, numpy.generic):
        return value.item()
    if isinstance(value, Module):
        return {"module": _module_config(value)}
    if isinstance(value, type) and issubclass(value, numpy.generic) or isinstance(value, numpy.dtype):
        return {"dtype": numpy.dtype(value).name}
    if _is_generator(value):
        return None  # it only seeded the initial weights, which the saved state replaces
    if isinstance(value, (list, tuple)):
        items = [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else {"tuple": items}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"dict": [[k, _encode(v, f"{where}[{k!r}]")] for k, v in value.items()],
                "ordered": isinstance(value, OrderedDict)}
    raise TypeError(f"{where} is {value!r} ({type(value).__name__}): a saved model's constructor "
                    f"arguments must be numbers, strings, bools, None, dtypes, tuples/lists/dicts "
                    f"of them, or Modules")


def _decode(value):
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "module" in value:
        return _build(value["module"])
    if "dtype" in value:
        return value["dtype"]
    if "tuple" in value:
        return tuple(_decode(v) for v in value["tuple"])
    items = [(k, _decode(v)) for k, v in value["dict"]]
    return OrderedDict(items) if value["ordered"] else dict(items)


def module_class(name, module=None):
    """The Module subclass saved under the qualified ``name`` (its minigen module is imported
    if needed; a model class of your own must be imported before loading)."""
    if name not in _MODULE_CLASSES and module is not None and \
            (module == "minigen" or module.startswith("minigen.")):
        import importlib
        importlib.import_module(module)
    if name not in _MODULE_CLASSES:
        raise ValueError(f"no Module class named {name!r} is known; import the module that "
                         f"defines it before loading")
    return _MODULE_CLASSES[name]


def _build(config):
    cls = module_class(config["class"], config.get("module"))
    return cls(*[_decode(a) for a in config["args"]],
               **{k: _decode(v) for k, v in config["kwargs"].items()})


def _model_from_checkpoint(checkpoint, path, expected=None, device=None):
    """Rebuild a model from ``{"config": ..., "state": ...}`` as written by ``Module.save``."""
    if "config" not in checkpoint:
        raise ValueError(f"{path!s}: not a saved model (no 'config' entry: it was not written by "
                         f"Module.save; load a bare state dict with minigen.load and "
                         f"model.load_state_dict)")
    config = json.loads(str(checkpoint["config"]))
    cls = module_class(config["class"], config.get("module"))
    if expected is not None and not issubclass(cls, expected):
        raise TypeError(f"{path!s} holds a {cls.__name__} ({config['class']}), not a "
                        f"{expected.__name__}; load it with {cls.__name__}.load or "
                        f"minigen.load_model")
    model = _build(config)
    state = checkpoint.get("state", {})
    saved_dtypes = {numpy.asarray(a).dtype for a in state.values()
                    if numpy.asarray(a).dtype.kind == "f"}
    if len(saved_dtypes) == 1 and any(True for _ in model.parameters()) \
            and model.dtype != next(iter(saved_dtypes)):
        model.to(dtype=next(iter(saved_dtypes)))  # saved after .double(), say
    if device is not None:
        model.to(device=device)
    model.load_state_dict(state)
    return model
