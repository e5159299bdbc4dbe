"""Elementwise Functions: arithmetic, exp/log, activations. Broadcasting is undone by the walk.

Each backward is the derivative beside its forward; stable rewrites are commented.
"""
from .. import numerics
from ..autograd import Function, Tensor
from ..backend import get_array_module

__all__ = ["add", "sub", "mul", "div", "neg", "pow", "exp", "log", "log1p", "sqrt", "abs",
           "clip", "sin", "cos", "tanh", "sigmoid", "relu", "leaky_relu", "elu", "softplus", "where"]


class Add(Function):
    def forward(self, a, b):
        return a + b

    def backward(self, g):
        return g, g


class Sub(Function):
    def forward(self, a, b):
        return a - b

    def backward(self, g):
        return g, -g


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        need_a, need_b = self.needs_input_grad
        return (g * self.b if need_a else None), (g * self.a if need_b else None)


class Div(Function):
    def forward(self, a, b):
        self.b, self.out = b, a / b
        return self.out

    def backward(self, g):
        need_a, need_b = self.needs_input_grad
        ga = g / self.b if need_a else None
        gb = -g * self.out / self.b if need_b else None  # d(a/b)/db = -a/b^2 = -out/b
        return ga, gb


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, g):
        return -g


class PowConstant(Function):
    """x ** p for a constant exponent p: d/dx = p x^(p-1), taken as 0 where p = 0 (as PyTorch:
    x^0 = 1 is constant, even at x = 0 where p x^(p-1) would read 0 * inf)."""

    def __init__(self, p):
        self.p = p

    def forward(self, x):
        self.x = x
        return x ** self.p

    def backward(self, g):
        xp = get_array_module(g)
        p = xp.asarray(self.p, dtype=g.dtype) if hasattr(self.p, "shape") else self.p
        if not hasattr(p, "shape"):  # a Python number: one exponent for every element
            return g * 0 if p == 0 else g * p * self.x ** (p - 1)
        return g * xp.where(p == 0, 0, p * self.x ** xp.where(p == 0, 1, p - 1))


class Pow(Function):
    """a ** b with both differentiable, with PyTorch's values where a formula reads 0 * inf:

        d/da = b a^(b-1),   taken as 0 where b = 0        (a^0 = 1 for every a)
        d/db = a^b log a,   taken as 0 where a = 0, b >= 0 (a^b stays 0 or 1 as b moves)

    For a < 0, log a is NaN, as in PyTorch (the real power is not differentiable in b there).
    """

    def forward(self, a, b):
        self.a, self.b, self.out = a, b, a ** b
        return self.out

    def backward(self, g):
        xp = get_array_module(g)
        a, b = self.a, self.b
        need_a, need_b = self.needs_input_grad
        ga = gb = None
        if need_a:
            b_is_0 = b == 0
            ga = g * xp.where(b_is_0, 0, b * a ** xp.where(b_is_0, 1, b - 1))
        if need_b:
            flat = (a == 0) & (b >= 0)
            gb = g * self.out * xp.log(xp.where(flat, 1, a))  # log 1 = 0 where flat
        return ga, gb


class Exp(Function):
    def forward(self, x):
        self.out = get_array_module(x).exp(x)
        return self.out

    def backward(self, g):
        return g * self.out


class Log(Function):
    def forward(self, x):
        self.x = x
        return get_array_module(x).log(x)

    def backward(self, g):
        return g / self.x


class Log1p(Function):
    def forward(self, x):
        self.x = x
        return get_array_module(x).log1p(x)

    def backward(self, g):
        return g / (1 + self.x)


class Sqrt(Function):
    def forward(self, x):
        self.out = get_array_module(x).sqrt(x)
        return self.out

    def backward(self, g):
        return g / (2 * self.out)


class Abs(Function):
    def forward(self, x):
        self.x = x
        return get_array_module(x).abs(x)

    def backward(self, g):
        return g * get_array_module(g).sign(self.x)  # subgradient 0 at x = 0


class Clip(Function):
    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def forward(self, x):
        xp = get_array_module(x)
        self.inside = xp.ones(x.shape, dtype=bool)
        if self.lo is not None:
            self.inside &= x >= self.lo
        if self.hi is not None:
            self.inside &= x <= self.hi
        return xp.clip(x, self.lo, self.hi)

    def backward(self, g):
        return g * self.inside


class Sin(Function):
    def forward(self, x):
        self.x = x
        return get_array_module(x).sin(x)

    def backward(self, g):
        return g * get_array_module(g).cos(self.x)


class Cos(Function):
    def forward(self, x):
        self.x = x
        return get_array_module(x).cos(x)

    def backward(self, g):
        return -g * get_array_module(g).sin(self.x)


class Tanh(Function):
    def forward(self, x):
        self.out = get_array_module(x).tanh(x)
        return self.out

    def backward(self, g):
        return g * (1 - self.out * self.out)


class Sigmoid(Function):
    def forward(self, x):
        self.out = numerics.sigmoid(x)
        return self.out

    def backward(self, g):
        return g * self.out * (1 - self.out)


class Softplus(Function):
    def forward(self, x):
        self.x = x
        return numerics.softplus(x)

    def backward(self, g):
        return g * numerics.sigmoid(self.x)  # d softplus / dx = sigmoid(x)


class Relu(Function):
    """max(x, 0); backward keeps the output (which the next op usually keeps anyway), not a mask."""

    def forward(self, x):
        self.out = get_array_module(x).maximum(x, x.dtype.type(0))  # not x * mask: -inf * 0 is NaN
        return self.out

    def backward(self, g):
        return g * (self.out > 0)


class LeakyRelu(Function):
    def __init__(self, slope):
        self.slope = slope

    def forward(self, x):
        xp = get_array_module(x)
        self.scale = xp.where(x > 0, 1, self.slope).astype(x.dtype)
        return x * self.scale

    def backward(self, g):
        return g * self.scale


class Elu(Function):
    """x for x > 0, alpha (e^x - 1) otherwise."""

    def __init__(self, alpha):
        self.alpha = alpha

    def forward(self, x):
        xp = get_array_module(x)
        self.positive = x > 0
        self.neg_part = self.alpha * xp.expm1(xp.minimum(x, 0))  # min() keeps expm1 from overflowing
        return xp.where(self.positive, x, self.neg_part)

    def backward(self, g):
        xp = get_array_module(g)
        return g * xp.where(self.positive, 1, self.neg_part + self.alpha)


class Where(Function):
    """cond ? a : b, with cond a boolean constant."""

    def __init__(self, cond):
        self.cond = cond

    def forward(self, a, b):
        xp = get_array_module(a, b)
        self.cond = xp.asarray(self.cond)  # a host mask used with GPU tensors moves with them
        return xp.where(self.cond, a, b)

    def backward(self, g):
        zero = g.dtype.type(0)
        xp = get_array_module(g)
        return xp.where(self.cond, g, zero), xp.where(self.cond, zero, g)


# ----------------------------------------------------------------- user-facing functions

def add(a, b):
    return Add()(a, b)


def sub(a, b):
    return Sub()(a, b)


def mul(a, b):
    return Mul()(a, b)


def div(a, b):
    return Div()(a, b)


def neg(x):
    return Neg()(x)


def pow(x, p):
    if isinstance(p, Tensor):
        return Pow()(x, p)
    return PowConstant(p)(x)


def exp(x):
    return Exp()(x)


def log(x):
    return Log()(x)


def log1p(x):
    return Log1p()(x)


def sqrt(x):
    return Sqrt()(x)


def abs(x):
    return Abs()(x)


def clip(x, min=None, max=None):
    """Clamp to [min, max] (either may be None); gradient 1 inside, 0 outside."""
    return Clip(min, max)(x)


def sin(x):
    return Sin()(x)


def cos(x):
    return Cos()(x)


def tanh(x):
    return Tanh()(x)


def sigmoid(x):
    return Sigmoid()(x)


def relu(x):
    return Relu()(x)


def leaky_relu(x, negative_slope=0.01):
    return LeakyRelu(negative_slope)(x)


def elu(x, alpha=1.0):
    return Elu(alpha)(x)


def softplus(x):
    return Softplus()(x)


def where(cond, a, b):
    """Elementwise choice; ``cond`` is a boolean array or tensor (no gradient)."""
    cond = cond.data if isinstance(cond, Tensor) else cond
    return Where(cond)(a, b)
