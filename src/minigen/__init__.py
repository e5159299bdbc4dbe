"""minigen: classic generative models from scratch on NumPy (or CuPy), every gradient checked.

    import minigen
    import minigen.functional as F
    x = minigen.tensor([[1.0, 2.0]], requires_grad=True)
    F.softplus(x).sum().backward()
"""
from . import backend, ops
from .autograd import Tensor, Function, no_grad, enable_grad, is_grad_enabled, detect_anomaly
from .gradcheck import gradcheck, GradcheckError
from .random import manual_seed
from .tensor_factory import tensor, zeros, ones, randn, rand, arange
from . import functional

__version__ = "0.1.0"
from . import distributions
from .serialization import save, load
from . import nn, optim  # noqa: E402
