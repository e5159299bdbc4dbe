"""Special functions that the distributions need beyond the elementwise family.

``log1mexp(d) = log(1 - exp(-d))`` for d > 0, computed as log(-expm1(-d)) so that it stays
accurate when d is tiny (where 1 - exp(-d) cancels): the log-probability of a narrow bin of a
logistic CDF (PixelCNN++'s discretised logistic) is built on it.
"""
from ..autograd import Function
from ..backend import get_array_module

__all__ = ["log1mexp"]


class Log1mexp(Function):
    """y = log(1 - e^{-d});  dy/dd = e^{-d} / (1 - e^{-d}) = 1 / expm1(d)."""

    def forward(self, d):
        self.d = d
        return get_array_module(d).log(-get_array_module(d).expm1(-d))

    def backward(self, g):
        return g / get_array_module(self.d).expm1(self.d)


def log1mexp(d):
    """log(1 - exp(-d)) elementwise for d > 0 (accurate for tiny d)."""
    return Log1mexp()(d)
