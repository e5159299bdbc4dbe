"""Containers of Modules: ``Sequential``, ``ModuleList``, ``ModuleDict`` (PyTorch's behaviour).

Children are registered under their index (``"0"``, ``"1"``, ...) or key, so parameter names
read ``"0.weight"`` as in PyTorch's state dicts.
"""
from collections import OrderedDict

from .module import Module

__all__ = ["Sequential", "ModuleList", "ModuleDict"]


def _check_module(container, key, module):
    if not isinstance(module, Module):
        raise TypeError(f"{container}: entry {key!r} must be a Module, got {type(module).__name__}")
    return module


class _Container(Module):
    """Children live in ``_modules`` only; ``container.name`` finds a child registered by name."""

    def __getattr__(self, name):  # only called when normal lookup fails
        modules = self.__dict__.get("_modules", {})
        if name in modules:
            return modules[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


class _Indexed(_Container):
    """Shared by Sequential and ModuleList: children in order, indexed by position."""

    def append(self, module):
        self._modules[str(len(self))] = _check_module(type(self).__name__, len(self), module)
        return self

    def extend(self, modules):
        for module in modules:
            self.append(module)
        return self

    def _key(self, idx):
        if isinstance(idx, bool) or not isinstance(idx, int) or not -len(self) <= idx < len(self):
            raise IndexError(f"{type(self).__name__}: index {idx!r} out of range for {len(self)} modules")
        return list(self._modules)[idx]

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return self._from_items(list(self._modules.items())[idx])
        return self._modules[self._key(idx)]

    def __setitem__(self, idx, module):
        self._modules[self._key(idx)] = _check_module(type(self).__name__, idx, module)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class Sequential(_Indexed):
    """Chain modules: ``Sequential(Linear(2, 8), Tanh(), Linear(8, 1))(x)`` applies them in order.

    Also accepts one OrderedDict of name -> module (children then take those names).
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, module in modules[0].items():
                self._modules[name] = _check_module("Sequential", name, module)
        else:
            self.extend(modules)

    def _from_items(self, items):  # a slice keeps the children's names, as in PyTorch
        return Sequential(OrderedDict(items))

    def forward(self, x):
        for module in self._modules.values():
            x = module(x)
        return x


class ModuleList(_Indexed):
    """A list of modules whose parameters the parent sees (a plain list would hide them)."""

    def __init__(self, modules=None):
        super().__init__()
        self.extend(() if modules is None else modules)

    def _from_items(self, items):
        return ModuleList(module for _, module in items)

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList has no forward(); iterate over it in your own forward")


class ModuleDict(_Container):
    """A dict of modules (string keys) whose parameters the parent sees."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        if key not in self._modules:
            raise KeyError(f"ModuleDict has no module {key!r} (keys: {', '.join(self._modules)})")
        return self._modules[key]

    def __setitem__(self, key, module):
        if not isinstance(key, str) or not key or "." in key:
            raise KeyError(f"ModuleDict: keys must be non-empty strings without '.', got {key!r}")
        self._modules[key] = _check_module("ModuleDict", key, module)

    def __delitem__(self, key):
        del self._modules[key]

    def __contains__(self, key):
        return key in self._modules

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def update(self, modules):
        items = modules.items() if hasattr(modules, "items") else modules
        for key, module in items:
            self[key] = module

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleDict has no forward(); index it in your own forward")
