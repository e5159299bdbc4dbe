"""Convolution as matrix products: ``conv2d`` and ``conv_transpose2d`` through im2col / col2im.

The columns matrix holds, for each input channel c and kernel offset (i, j), the input pixels
that offset touches at every output position (s: stride, d: dilation, x padded by p)::

    cols[(c, i, j), (n, oh, ow)] = x_pad[n, c, i*d + oh*s, j*d + ow*s]      shape (C*kh*kw, N*OH*OW)

so a convolution is one GEMM and its input gradient (the adjoint) is one GEMM and a col2im::

    conv2d:            y = W2 @ cols               W2 = W.reshape(O, C*kh*kw)
    its adjoint:       x' = col2im(W2^T @ y')      (each offset's slice added back into x)
    weight gradient:   dW2 = y' @ cols^T

conv_transpose2d is that adjoint run forwards (y -> x'), so its backward is conv2d's forward:
the two Functions share the same helpers with their roles swapped. The (C*kh*kw, N*OH*OW)
layout keeps every GEMM a single large one (BLAS runs one large product faster than many small
ones; the README's performance table times conv2d against PyTorch); im2col and col2im loop over the
kh*kw kernel offsets moving one strided slice each (no per-element loops, no add.at).
Columns that only live inside one call (the adjoint's, and conv_transpose2d's backward) are made
a few samples at a time (``sample_chunks``): they then stay in cache, and peak memory stays small.
"""
from ..autograd import Function
from ..backend import get_array_module

__all__ = ["conv2d", "conv_transpose2d"]

CHUNK_BYTES = 2 * 2 ** 20  # one chunk of temporary columns: about an L2 cache


def pair(value, name):
    """An int or a pair of ints -> a pair of ints, with a clear error otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return tuple(value)
    raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")


class WindowGeometry:
    """A 2-D sliding window: kernel, stride, padding, dilation over an input of size (H, W).

    ``out_size`` is (OH, OW) = floor((H + 2p - d(k-1) - 1) / s) + 1, unless given explicitly
    (conv_transpose2d passes its input size there). ``window(i, j)`` indexes the pixels of the
    padded input that kernel offset (i, j) visits across all output positions (strided slices
    of the last two axes); ``unpadded()`` indexes the input inside its padding.
    """

    def __init__(self, op, in_size, kernel, stride, padding, dilation, out_size=None):
        self.in_size, self.kernel = tuple(in_size), pair(kernel, "kernel_size")
        self.stride, self.padding = pair(stride, "stride"), pair(padding, "padding")
        self.dilation = pair(dilation, "dilation")
        if min(self.kernel) < 1 or min(self.stride) < 1 or min(self.dilation) < 1:
            raise ValueError(f"{op}: kernel size, stride and dilation must be >= 1, got kernel "
                             f"{self.kernel}, stride {self.stride}, dilation {self.dilation}")
        if min(self.padding) < 0:
            raise ValueError(f"{op}: padding must be >= 0, got {self.padding}")
        self.padded = tuple(n + 2 * p for n, p in zip(self.in_size, self.padding))
        span = tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation))
        if any(s > n for s, n in zip(span, self.padded)):
            raise ValueError(
                f"{op}: kernel of size {span[0]}x{span[1]} (dilation included) is larger than the "
                f"padded input {self.padded[0]}x{self.padded[1]} (input {self.in_size[0]}x"
                f"{self.in_size[1]} plus padding {self.padding})")
        if out_size is None:
            out_size = tuple((n - s) // st + 1 for n, s, st in zip(self.padded, span, self.stride))
        self.out_size = tuple(out_size)

    def window(self, i, j):
        (sh, sw), (dh, dw), (oh, ow) = self.stride, self.dilation, self.out_size
        return (..., slice(i * dh, i * dh + sh * (oh - 1) + 1, sh),
                slice(j * dw, j * dw + sw * (ow - 1) + 1, sw))

    def offsets(self):
        return ((i, j) for i in range(self.kernel[0]) for j in range(self.kernel[1]))

    def unpadded(self):
        (ph, pw), (h, w) = self.padding, self.in_size
        return ..., slice(ph, ph + h), slice(pw, pw + w)


def channels_first(a):
    """(N, C, ...) <-> (C, N, ...): swap the two leading axes (a view)."""
    return a.swapaxes(0, 1)


def im2col(x, geom):
    """x (N, C, H, W) -> cols (C*kh*kw, N*OH*OW) as in the module docstring."""
    xp = get_array_module(x)
    n, c = x.shape[:2]
    if any(geom.padding):
        x_pad = xp.zeros((n, c) + geom.padded, dtype=x.dtype)
        x_pad[geom.unpadded()] = x
    else:
        x_pad = x
    x_pad = channels_first(x_pad)
    cols = xp.empty((c,) + geom.kernel + (n,) + geom.out_size, dtype=x.dtype)
    for i, j in geom.offsets():
        cols[:, i, j] = x_pad[geom.window(i, j)]
    return cols.reshape(c * geom.kernel[0] * geom.kernel[1], -1)


def col2im(cols, geom, out):
    """The adjoint of im2col: cols (C*kh*kw, n*OH*OW) -> out (n, C, H, W), overlaps summed."""
    xp = get_array_module(cols)
    n, c = out.shape[:2]
    cols = cols.reshape((c,) + geom.kernel + (n,) + geom.out_size)
    x_pad = xp.zeros((c, n) + geom.padded, dtype=cols.dtype)
    for i, j in geom.offsets():
        x_pad[geom.window(i, j)] += cols[:, i, j]
    out[...] = channels_first(x_pad[geom.unpadded()])
    return out


def sample_chunks(n, bytes_per_sample):
    """Slices of the batch with about CHUNK_BYTES of columns each (at least one sample)."""
    step = max(1, CHUNK_BYTES // max(1, bytes_per_sample))
    return [slice(start, min(start + step, n)) for start in range(0, n, step)]


def conv_adjoint(w2, y2, geom, c):
    """x' = col2im(W2^T @ y2), (N, C, H, W): conv2d's input gradient, conv_transpose2d's forward.

    Built a few samples at a time: the columns of samples a..b are W2^T @ y2[:, a*L:b*L], L = OH*OW.
    """
    xp = get_array_module(y2)
    length = geom.out_size[0] * geom.out_size[1]
    n = y2.shape[1] // length
    out = xp.empty((n, c) + geom.in_size, dtype=y2.dtype)
    for s in sample_chunks(n, w2.shape[1] * length * y2.itemsize):
        col2im(w2.T @ y2[:, s.start * length:s.stop * length], geom, out[s])
    return out


def as_columns(y):
    """y (N, O, OH, OW) -> (O, N*OH*OW), the layout the GEMMs use."""
    return get_array_module(y).ascontiguousarray(channels_first(y)).reshape(y.shape[1], -1)


def from_columns(y2, n, out_size, bias):
    """(O, N*OH*OW) -> (N, O, OH, OW) contiguous, with the per-channel bias added in the same pass."""
    xp = get_array_module(y2)
    y = channels_first(y2.reshape((y2.shape[0], n) + tuple(out_size)))
    if bias is None:
        return xp.ascontiguousarray(y)
    out = xp.empty(y.shape, dtype=y.dtype)
    xp.add(y, bias.reshape(1, -1, 1, 1), out=out)
    return out


def check_conv_inputs(op, x, weight, bias, in_axis, out_axis):
    """Shapes of x (N, C, H, W), weight and bias; names expected and actual values on failure."""
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {tuple(x.shape)} "
                         f"({x.ndim}-D)")
    if weight.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D weight, got shape {tuple(weight.shape)}")
    if x.shape[1] != weight.shape[in_axis]:
        raise ValueError(f"{op}: weight {tuple(weight.shape)} expects {weight.shape[in_axis]} input "
                         f"channels, got an input with {x.shape[1]} channels (shape {tuple(x.shape)})")
    if bias is not None and tuple(bias.shape) != (weight.shape[out_axis],):
        raise ValueError(f"{op}: bias must have shape ({weight.shape[out_axis]},), one per output "
                         f"channel, got {tuple(bias.shape)}")


class Conv2d(Function):
    """y = conv2d(x, W) + b with W (O, C, kh, kw): one GEMM forward, two GEMMs and a col2im back."""

    def __init__(self, stride=1, padding=0, dilation=1):
        self.stride, self.padding, self.dilation = stride, padding, dilation

    def forward(self, x, weight, bias=None):
        check_conv_inputs("conv2d", x, weight, bias, in_axis=1, out_axis=0)
        self.geom = WindowGeometry("conv2d", x.shape[2:], weight.shape[2:], self.stride,
                                   self.padding, self.dilation)
        self.x, self.weight, self.cols = x, weight, im2col(x, self.geom)
        w2 = weight.reshape(weight.shape[0], -1)
        return from_columns(w2 @ self.cols, x.shape[0], self.geom.out_size, bias)

    def backward(self, g):
        need_x, need_w = self.needs_input_grad[:2]
        need_b = len(self.needs_input_grad) > 2 and self.needs_input_grad[2]
        g2 = as_columns(g)
        w2 = self.weight.reshape(self.weight.shape[0], -1)
        # cols, the largest saved array, is dropped as soon as dW has used it; a second
        # backward (retain_graph=True) rebuilds it from x.
        cols, self.cols = self.cols, None
        gw = gx = None
        if need_w:
            cols = im2col(self.x, self.geom) if cols is None else cols
            gw = (g2 @ cols.T).reshape(self.weight.shape)
        del cols
        if need_x:
            gx = conv_adjoint(w2, g2, self.geom, self.input_shapes[0][1])
        gb = g2.sum(axis=1) if need_b else None
        return gx, gw, gb


class ConvTranspose2d(Function):
    """The adjoint of conv2d, W (C_in, C_out, kh, kw): forward is conv2d's input gradient."""

    def __init__(self, stride=1, padding=0, output_padding=0, dilation=1):
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.output_padding = output_padding

    def forward(self, x, weight, bias=None):
        check_conv_inputs("conv_transpose2d", x, weight, bias, in_axis=0, out_axis=1)
        self.geom = transposed_geometry(x.shape[2:], weight.shape[2:], self.stride, self.padding,
                                        self.output_padding, self.dilation)
        self.x2, self.weight = as_columns(x), weight
        y = conv_adjoint(weight.reshape(weight.shape[0], -1), self.x2, self.geom, weight.shape[1])
        if bias is not None:
            y += bias.reshape(1, -1, 1, 1)
        return y

    def backward(self, g):
        """conv2d's forward and weight gradient with g as the input: dx2 = W2 @ cols(g),
        dW2 = x2 @ cols(g)^T, the columns of g made a few samples at a time."""
        xp = get_array_module(g)
        need_x, need_w = self.needs_input_grad[:2]
        need_b = len(self.needs_input_grad) > 2 and self.needs_input_grad[2]
        w2 = self.weight.reshape(self.weight.shape[0], -1)
        n, length = g.shape[0], self.geom.out_size[0] * self.geom.out_size[1]
        gx = xp.empty(self.input_shapes[0], dtype=g.dtype) if need_x else None
        gw2 = xp.zeros(w2.shape, dtype=g.dtype) if need_w else None
        for s in sample_chunks(n, w2.shape[1] * length * g.itemsize):
            cols = im2col(g[s], self.geom)
            if need_x:
                gx[s] = from_columns(w2 @ cols, s.stop - s.start, self.geom.out_size, None)
            if need_w:
                gw2 += self.x2[:, s.start * length:s.stop * length] @ cols.T
        gw = gw2.reshape(self.weight.shape) if need_w else None
        gb = g.sum(axis=(0, 2, 3)) if need_b else None
        return gx, gw, gb


def transposed_geometry(in_size, kernel, stride, padding, output_padding, dilation):
    """The conv2d geometry whose output grid is conv_transpose2d's input (H, W).

    Output size, as in PyTorch: H_out = (H - 1) s - 2p + d (k - 1) + output_padding + 1.
    """
    kernel, stride, padding = pair(kernel, "kernel_size"), pair(stride, "stride"), pair(padding, "padding")
    dilation, output_padding = pair(dilation, "dilation"), pair(output_padding, "output_padding")
    for op_, s, d in zip(output_padding, stride, dilation):
        if not 0 <= op_ < max(s, d):
            raise ValueError(f"conv_transpose2d: output_padding must be >= 0 and smaller than "
                             f"stride or dilation, got output_padding {output_padding}, stride "
                             f"{stride}, dilation {dilation}")
    out = tuple((n - 1) * s - 2 * p + d * (k - 1) + op_ + 1 for n, s, p, d, k, op_
                in zip(in_size, stride, padding, dilation, kernel, output_padding))
    if min(out) < 1:
        raise ValueError(f"conv_transpose2d: output size {out} is not positive (input "
                         f"{tuple(in_size)}, kernel {kernel}, stride {stride}, padding {padding})")
    return WindowGeometry("conv_transpose2d", out, kernel, stride, padding, dilation,
                          out_size=in_size)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1):
    """2-D cross-correlation as in PyTorch: x (N, C, H, W), weight (O, C, kh, kw), bias (O,).

    ``stride``, ``padding`` (zeros) and ``dilation`` are ints or (h, w) pairs.
    Output (N, O, OH, OW) with OH = floor((H + 2 padding - dilation (kh - 1) - 1) / stride) + 1.
    """
    fn = Conv2d(stride, padding, dilation)
    return fn(x, weight) if bias is None else fn(x, weight, bias)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, dilation=1):
    """The transpose (adjoint) of conv2d, as in PyTorch: x (N, C_in, H, W), weight (C_in, C_out, kh, kw).

    Output (N, C_out, H_out, W_out), H_out = (H - 1) stride - 2 padding + dilation (kh - 1)
    + output_padding + 1. With the same weight, <conv2d(x, W), y> = <x, conv_transpose2d(y, W)>.
    """
    fn = ConvTranspose2d(stride, padding, output_padding, dilation)
    return fn(x, weight) if bias is None else fn(x, weight, bias)
