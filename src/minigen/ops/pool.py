"""Pooling and nearest-neighbour upsampling over (N, C, H, W) inputs.

Pooling windows use conv2d's ``WindowGeometry``: for each kernel offset (i, j) one strided
slice of the padded input holds that offset's pixel for every output position, so forward
and backward are loops over the kh*kw offsets, each moving a whole slice.
"""
from ..autograd import Function
from ..backend import get_array_module
from .conv import WindowGeometry, pair

__all__ = ["max_pool2d", "avg_pool2d", "upsample_nearest"]


def pool_geometry(op, x, kernel_size, stride, padding):
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {tuple(x.shape)} "
                         f"({x.ndim}-D)")
    kernel = pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else stride
    padding = pair(padding, "padding")
    if any(2 * p > k for p, k in zip(padding, kernel)):
        raise ValueError(f"{op}: padding must be at most half the kernel size, got padding "
                         f"{padding} for kernel {kernel}")
    return WindowGeometry(op, x.shape[2:], kernel, stride, padding, 1)


def padded(x, geom, value):
    """x inside a (N, C) + geom.padded array filled with ``value`` (x itself when no padding)."""
    if not any(geom.padding):
        return x
    x_pad = get_array_module(x).full(x.shape[:2] + geom.padded, value, dtype=x.dtype)
    x_pad[geom.unpadded()] = x
    return x_pad


class MaxPool2d(Function):
    """Maximum over each window; the gradient goes to the window's first maximum in raster order."""

    def __init__(self, kernel_size, stride=None, padding=0):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        xp = get_array_module(x)
        self.geom = pool_geometry("max_pool2d", x, self.kernel_size, self.stride, self.padding)
        x_pad = padded(x, self.geom, -xp.inf)
        out, self.argmax = None, None  # argmax: index k of the winning offset, per output
        for k, (i, j) in enumerate(self.geom.offsets()):
            v = x_pad[self.geom.window(i, j)]
            if out is None:
                out, self.argmax = v.copy(), xp.zeros(v.shape, dtype=xp.int32)
                continue
            better = v > out  # strict: at ties the earlier offset keeps the gradient
            xp.copyto(out, v, where=better)
            self.argmax[better] = k
        return out

    def backward(self, g):
        xp = get_array_module(g)
        gx_pad = xp.zeros(self.input_shapes[0][:2] + self.geom.padded, dtype=g.dtype)
        for k, (i, j) in enumerate(self.geom.offsets()):
            gx_pad[self.geom.window(i, j)] += g * (self.argmax == k)
        return gx_pad[self.geom.unpadded()]


class AvgPool2d(Function):
    """Mean over each window; zero padding counts towards the mean (PyTorch's count_include_pad=True)."""

    def __init__(self, kernel_size, stride=None, padding=0):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        self.geom = pool_geometry("avg_pool2d", x, self.kernel_size, self.stride, self.padding)
        x_pad = padded(x, self.geom, 0)
        out = get_array_module(x).zeros(x.shape[:2] + self.geom.out_size, dtype=x.dtype)
        for i, j in self.geom.offsets():
            out += x_pad[self.geom.window(i, j)]
        return out / x.dtype.type(self.geom.kernel[0] * self.geom.kernel[1])

    def backward(self, g):
        xp = get_array_module(g)
        share = g / g.dtype.type(self.geom.kernel[0] * self.geom.kernel[1])
        gx_pad = xp.zeros(self.input_shapes[0][:2] + self.geom.padded, dtype=g.dtype)
        for i, j in self.geom.offsets():
            gx_pad[self.geom.window(i, j)] += share
        return gx_pad[self.geom.unpadded()]


class UpsampleNearest(Function):
    """Each pixel copied into a scale x scale block; the gradient sums each block."""

    def __init__(self, scale):
        self.scale = scale

    def forward(self, x):
        if x.ndim != 4:
            raise ValueError(f"upsample_nearest: expected a 4-D input (N, C, H, W), got shape "
                             f"{tuple(x.shape)} ({x.ndim}-D)")
        xp, s = get_array_module(x), self.scale
        n, c, h, w = x.shape
        blocks = xp.broadcast_to(x[:, :, :, None, :, None], (n, c, h, s, w, s))
        return blocks.reshape(n, c, h * s, w * s)

    def backward(self, g):
        n, c, h, w = self.input_shapes[0]
        return g.reshape(n, c, h, self.scale, w, self.scale).sum(axis=(3, 5))


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Max pooling as in PyTorch (stride defaults to kernel_size; padding with -inf)."""
    return MaxPool2d(kernel_size, stride, padding)(x)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Average pooling as in PyTorch with count_include_pad=True (stride defaults to kernel_size)."""
    return AvgPool2d(kernel_size, stride, padding)(x)


def upsample_nearest(x, scale_factor):
    """Nearest-neighbour upsampling of (N, C, H, W) by a positive integer factor."""
    if isinstance(scale_factor, bool) or not isinstance(scale_factor, int) or scale_factor < 1:
        raise ValueError(f"upsample_nearest: scale_factor must be a positive integer, got {scale_factor!r}")
    return UpsampleNearest(scale_factor)(x)
