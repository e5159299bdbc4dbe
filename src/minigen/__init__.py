"""minigen: classic generative models from scratch on NumPy (or CuPy), every gradient checked.

    import minigen
    import minigen.functional as F
    x = minigen.tensor([[1.0, 2.0]], requires_grad=True)
    F.softplus(x).sum().backward()

The engine (tensors, ops, layers, optimisers, checkpoints) is imported with the package; the
larger subpackages (``minigen.models``, ``minigen.data``, ``minigen.flows``,
``minigen.distributions`` (which imports SciPy), ``minigen.utils``)
are imported on first use, so ``import minigen`` stays fast and ``minigen.models.VAE`` works
without a separate import.
"""
import importlib

from . import backend, ops
from .autograd import Tensor, Function, no_grad, enable_grad, is_grad_enabled, detect_anomaly
from .gradcheck import gradcheck, GradcheckError
from .random import manual_seed
from .tensor_factory import tensor, zeros, ones, randn, rand, arange
from . import functional

__version__ = "0.1.0"
from .serialization import save, load, load_model  # noqa: E402
from . import nn, optim  # noqa: E402

_LAZY_SUBPACKAGES = ("models", "data", "flows", "distributions", "utils", "numerics", "validation")


def __getattr__(name):
    """Import a subpackage on first access (``minigen.models``), as PEP 562 allows."""
    if name in _LAZY_SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'minigen' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBPACKAGES))
