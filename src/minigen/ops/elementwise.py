"""Elementwise Functions: arithmetic, exp/log, activations. Broadcasting is undone by the walk.

Each backward is the derivative beside its forward; stable rewrites are commented.
"""
from ..autograd import Function, Tensor
from ..backend import device_of, get_array_module, to_device

__all__ = ["add", "sub", "mul", "div", "neg", "pow", "exp", "log", "log1p", "sqrt", "abs",
           "clip", "tanh", "sigmoid", "relu", "leaky_relu", "elu", "softplus", "where"]


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
    """x ** p for a constant exponent p."""

    def __init__(self, p):
        self.p = p

    def forward(self, x):
        self.x = x
        return x ** self.p

    def backward(self, g):
        return g * self.p * self.x ** (self.p - 1)


class Pow(Function):
    """a ** b with both differentiable: d/da = b a^(b-1), d/db = a^b log a (a > 0)."""

    def forward(self, a, b):
        self.a, self.b, self.out = a, b, a ** b
        return self.out

    def backward(self, g):
        xp = get_array_module(g)
        need_a, need_b = self.needs_input_grad
        ga = g * self.b * self.a ** (self.b - 1) if need_a else None
        gb = g * self.out * xp.log(self.a) if need_b else None
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


class Tanh(Function):
    def forward(self, x):
        self.out = get_array_module(x).tanh(x)
        return self.out

    def backward(self, g):
        return g * (1 - self.out * self.out)


def stable_sigmoid(x):
    """1 / (1 + e^-x) without overflow: uses e^-|x| <= 1 on both sides of zero."""
    xp = get_array_module(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def stable_softplus(x):
    """log(1 + e^x) = max(x, 0) + log1p(e^-|x|), finite for any x."""
    xp = get_array_module(x)
    return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))


class Sigmoid(Function):
    def forward(self, x):
        self.out = stable_sigmoid(x)
        return self.out

    def backward(self, g):
        return g * self.out * (1 - self.out)


class Softplus(Function):
    def forward(self, x):
        self.x = x
        return stable_softplus(x)

    def backward(self, g):
        return g * stable_sigmoid(self.x)  # d softplus / dx = sigmoid(x)


class Relu(Function):
    def forward(self, x):
        self.positive = x > 0
        return get_array_module(x).maximum(x, x.dtype.type(0))  # not x * mask: -inf * 0 is NaN

    def backward(self, g):
        return g * self.positive


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


class Cast(Function):
    """Move to another device and/or dtype; the gradient goes back the same way."""

    def __init__(self, device=None, dtype=None):
        self.device, self.dtype = device, dtype

    def forward(self, x):
        self.source_device, self.source_dtype = device_of(x), x.dtype
        if self.device is not None:
            x = to_device(x, self.device)
        return x.astype(self.dtype) if self.dtype is not None else x.copy()

    def backward(self, g):
        return to_device(g, self.source_device).astype(self.source_dtype, copy=False)


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
