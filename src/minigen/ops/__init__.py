"""The Functions, one file per family, and the Tensor operators and methods built on them.

This is the ONE place where ``Tensor`` (defined in ``minigen/autograd.py``) gets its operators
(``+ - * / ** @``, unary ``-``, ``x[i]``, comparisons) and its differentiable methods
(``x.exp()``, ``x.sum()``, ``x.reshape()`` ...): each is a user-facing function of this package,
set on the class by the loops at the end of this file, which ``import minigen`` runs.
"""
from ..autograd import Tensor
from . import elementwise, linalg, losses, reduce, shape
from .elementwise import add, sub, mul, div, neg, pow, exp, log, log1p, sqrt, abs, clip, tanh, \
    sigmoid, relu, leaky_relu, elu, softplus, where
from .linalg import matmul, einsum
from .reduce import sum, mean, max, min, var, logsumexp, softmax, log_softmax
from .shape import reshape, transpose, permute, expand, getitem, flatten, squeeze, unsqueeze


def _swap(f):
    return lambda self, other: f(other, self)


def _rpow(self, base):
    """base ** x for a constant base (scalar or array): d/dx = base^x log(base)."""
    return elementwise.Pow()(base, self)


def _compare(name):
    def compare(self, other):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor(getattr(self.data, name)(other))
    return compare


_OPERATORS = {
    "__add__": add, "__radd__": _swap(add), "__sub__": sub, "__rsub__": _swap(sub),
    "__mul__": mul, "__rmul__": _swap(mul), "__truediv__": div, "__rtruediv__": _swap(div),
    "__pow__": pow, "__rpow__": _rpow,
    "__matmul__": matmul, "__rmatmul__": _swap(matmul),
    "__neg__": neg, "__getitem__": getitem,
}
_METHODS = {
    "exp": exp, "log": log, "log1p": log1p, "sqrt": sqrt, "abs": abs, "tanh": tanh,
    "sigmoid": sigmoid, "relu": relu, "clip": clip, "clamp": clip, "pow": pow, "matmul": matmul,
    "sum": sum, "mean": mean, "max": max, "min": min, "var": var, "logsumexp": logsumexp,
    "softmax": softmax, "log_softmax": log_softmax, "reshape": reshape, "view": reshape,
    "transpose": transpose, "permute": permute, "expand": expand, "flatten": flatten,
    "squeeze": squeeze, "unsqueeze": unsqueeze,
}
for _name, _fn in {**_OPERATORS, **_METHODS}.items():
    setattr(Tensor, _name, _fn)
for _name in ("__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"):
    setattr(Tensor, _name, _compare(_name))
Tensor.T = property(lambda self: transpose(self))
