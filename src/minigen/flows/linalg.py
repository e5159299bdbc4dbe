"""Two differentiable matrix functions the 1x1 convolution needs (not yet in ``minigen.ops``).

    log |det A|:  d/dA = A^{-T}                        (Jacobi's formula)
    A^{-1}:       dL/dA = -A^{-T} (dL/dA^{-1}) A^{-T}  (from d(A^{-1}) = -A^{-1} dA A^{-1})
"""
from ..autograd import Function
from ..backend import get_array_module

__all__ = ["log_abs_det", "inverse"]


class LogAbsDet(Function):
    def forward(self, a):
        xp = get_array_module(a)
        self.a = a
        return xp.asarray(xp.linalg.slogdet(a)[1], dtype=a.dtype)

    def backward(self, g):
        return g * get_array_module(g).linalg.inv(self.a).T


class Inverse(Function):
    def forward(self, a):
        self.a_inv = get_array_module(a).linalg.inv(a)
        return self.a_inv

    def backward(self, g):
        return -self.a_inv.T @ g @ self.a_inv.T


def log_abs_det(a):
    """log |det a| of a square matrix tensor (a 0-d tensor)."""
    return LogAbsDet()(a)


def inverse(a):
    """The inverse of a square matrix tensor."""
    return Inverse()(a)
