"""SiLU, the sigmoid-weighted linear unit (Elfwing et al. 2018; "swish" in Ramachandran et al.
2017), the nonlinearity of the DDPM denoiser (Ho et al. 2020, Appendix B)::

    silu(x) = x * sigmoid(x),      silu'(x) = s + x s (1 - s)   with s = sigmoid(x)
"""
from ..autograd import Function
from ..numerics import sigmoid

__all__ = ["silu"]


class SiLU(Function):
    def forward(self, x):
        self.x, self.s = x, sigmoid(x)
        return x * self.s

    def backward(self, g):
        s = self.s
        return g * (s + self.x * s * (1 - s))


def silu(x):
    """x * sigmoid(x), elementwise."""
    return SiLU()(x)
