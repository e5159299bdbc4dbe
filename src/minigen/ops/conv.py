"""Convolution as matrix products: ``conv2d`` and ``conv_transpose2d``, a fast path and a plain one.

Both paths compute, with s: stride, d: dilation and x zero-padded by p,

    conv2d:            y[n, :, a, b] = sum_{i, j} W[:, :, i, j] @ x_pad[n, :, a*s + i*d, b*s + j*d]
    conv_transpose2d:  its adjoint in x (the transpose): <conv2d(x, W), y> = <x, conv_transpose2d(y, W)>

and the gradients dW = sum over positions of g (x window)^T, dx = adjoint(g), dy = conv2d(g).

The plain reference (``conv2d_reference``, ``conv_transpose2d_reference``) is im2col over the
whole batch, channels first::

    cols[(c, i, j), (n, a, b)] = x_pad[n, c, a*s + i*d, b*s + j*d]      shape (C*kh*kw, N*OH*OW)
    y2 = W2 @ cols,   dW2 = g2 @ cols^T,   dx = col2im(W2^T @ g2)        W2 = W.reshape(O, C*kh*kw)

one GEMM each, but around them: a transposing padded copy of x, kh*kw window copies whose rows
are only OW long, the (O, N*OH*OW) <-> NCHW transposes of y and g, and col2im's kh*kw strided
read-modify-write passes (for conv_transpose2d, a col2im over the 4x-larger output).

The fast path (``conv2d``, ``conv_transpose2d``) keeps "one GEMM per product" but changes the
layout (``Correlation``, ``Adjoint``):

* *Chunks of samples, channels first inside a chunk*: columns (C*kh*kw, n, L) for n samples
  (about ``CHUNK_BYTES``), written and read back while in cache, never kept: the weight
  gradient rebuilds them from x chunk by chunk, so no 9x-the-input buffer is saved.
* *Wide rows on flat padded planes* (the shifted-slice trick of ``minigen.ops.masked_conv``, per
  sample): x is zero-padded once into planes Hq x Wq; output pixel (a, b) lives at a*Wq + b of
  a "wide" row of OH*Wq entries, and tap (i, j) reads that row at the fixed offset i*d*Wq + j*d
  of the plane. Each tap's columns are then one contiguous run per channel and sample (OH*Wq
  long instead of OW long). The price: Wq - OW junk entries per row, computed and dropped
  (2 of 16 for 3x3 on 14x14; 12.5% more GEMM work). ``WIDE_ROWS = False`` keeps the output
  pixels only (runs of OW), the measured alternative.
* *One GEMM per chunk*, (O, K) @ (K, n*OH*Wq), and one copy that drops the junk and puts the
  samples first (NCHW); the weight gradient is one GEMM over the chunk, g (O, n*OH*Wq) @ cols^T,
  with g placed on the wide rows (zeros at the junk).
* *1x1 convolutions* (stride 1, no padding): the columns are x itself (a view) and y[m] = W2 @
  x[m] are per-sample GEMMs in one batched matmul that writes the output: no copy at all.
* *Stride s > 1, polyphase*: tap i reads x at a*s + i*d - p, that is phase (i*d - p) mod s of x
  (x[rho::s]) at stride 1; each phase gets its own plane (one strided gather), and the taps
  read wide rows of their phase's plane as above.
* *The adjoint without col2im* (conv_transpose2d's forward, conv2d's input gradient): output
  pixel m = q*s + rho receives only the taps i with i*d = rho + p (mod s), each reading y at
  q + (rho + p - i*d)/s. So each of the s*s output phases is a stride-1 correlation of y with a
  reversed, transposed sub-kernel (4x4 stride 2: four 2x2 ones), written into the strided view
  x'[:, :, rho_h::s, rho_w::s]: every output pixel is written once, nothing is scattered and
  added, and the phases together do exactly the adjoint's FLOPs (each tap is in one phase; a
  phase that no tap reaches, e.g. the odd pixels of a 1x1 stride-2 adjoint, is zero).
  conv_transpose2d's backward is conv2d's forward and weight product on g.
* *Threads*: the batch is split among minigen's threads (``minigen.threads``), each part with
  its own work arrays, its own chunks and its share of dW (summed after), on a one-thread BLAS.
  On 2 cores (``bench_layers.py``, forward + backward): conv2d 19-31 ms against 37-39 ms with
  the samples in one piece on OpenBLAS's two threads; conv_transpose2d 51-59 against 82-103 ms.
  The 2 MiB chunks still fit best per thread (26.7 ms against 28.1 at 4 MiB, 28.7 at 1 MiB and
  34.6 at 512 KiB; conv_transpose2d 49.3 against 60.7, 58.8 and 50.6 ms).

Measured (``benchmarks/profile_conv.py``: median CPU time of this process, 1 BLAS thread,
interleaved rounds, on the shared 2-core machine under load, so +-10% between runs; forward +
backward, float32):

    conv2d 64x32x14x14 -> 64, 3x3, pad 1     fast 42-49 ms    reference 42-46 ms    PyTorch 30-31 ms
    conv_transpose2d 32 -> 64, 4x4, s 2      fast 80-101 ms   reference 127-132 ms  PyTorch 66-72 ms

conv_transpose2d: the phases replace the reference's 16 strided read-modify-write passes over
the 28x28 output (and its K = 32 GEMMs) by 16 copies of the 14x14 input and four writes of a
quarter of the output each. conv2d: the copies shrink (im2col 5.5 -> 2.3 ms, no output or g
transposes), but the GEMMs grow by the junk and by chunking (the reference's weight gradient is
one K = 12544 GEMM over saved columns): a tie, with 7.1 instead of 20.0 MiB peak memory
(``bench_layers.py``). Rebuilding the columns in backward costs no more than saving them: a
trial that kept them (copied into one (K, N, OH*Wq) array, one weight-gradient GEMM) ran
45.7 ms against 45.4. Wide rows against exact rows (21 rounds): 45.7 vs 45.3 ms (conv2d),
100.6 vs 97.3 ms (conv_transpose2d), 138 vs 137 ms (conv2d 64 -> 64 channels on 32x28x28,
reference 168 ms): cheaper copies and larger GEMMs cancel at 1 thread; wide rows stay the
default because more BLAS threads speed the GEMMs and not the copies. Work arrays are made once
per call and reused chunk to chunk: fresh 2 MiB arrays pay their page faults every chunk (a
column copy ran 12.1 instead of 5.7 ms). 2 MiB chunks beat 8 MiB ones at 1 BLAS thread (45 vs
53 ms, 94 vs 109 ms); with 2 BLAS threads on the busy machine every NumPy path slowed
erratically (the 1024^3 GEMM to 22 GFLOP/s), the chunked one more than the plain one, which
runs fewer, larger GEMMs.
"""
import math

from ..autograd import Function
from ..backend import get_array_module
from ..threads import share_out

__all__ = ["conv2d", "conv_transpose2d"]

WIDE_ROWS = True  # fast path: columns on wide rows (contiguous runs, junk entries) or exact rows
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


def chunk_samples(bytes_per_sample):
    """Samples per chunk: about CHUNK_BYTES of columns (at least one sample)."""
    return max(1, CHUNK_BYTES // max(1, bytes_per_sample))


def sample_chunks(n, bytes_per_sample):
    """Slices of the batch with about CHUNK_BYTES of columns each (at least one sample)."""
    step = chunk_samples(bytes_per_sample)
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



# ----------------------------------------------------------------------------- the plain reference path

class Conv2dFunction(Function):
    """What both conv2d Functions share: the settings, and checking and keeping x and W."""

    def __init__(self, stride=1, padding=0, dilation=1):
        self.stride, self.padding, self.dilation = stride, padding, dilation

    def keep_inputs(self, x, weight, bias):
        """Check the shapes, set ``geom`` (the window) and keep x and W for backward."""
        check_conv_inputs("conv2d", x, weight, bias, in_axis=1, out_axis=0)
        self.geom = WindowGeometry("conv2d", x.shape[2:], weight.shape[2:], self.stride,
                                   self.padding, self.dilation)
        self.x, self.weight = x, weight


class Conv2dReference(Conv2dFunction):
    """y = conv2d(x, W) + b with W (O, C, kh, kw): one GEMM forward, two GEMMs and a col2im back."""

    def forward(self, x, weight, bias=None):
        self.keep_inputs(x, weight, bias)
        self.cols = im2col(x, self.geom)
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


class ConvTranspose2dFunction(Function):
    """What both conv_transpose2d Functions share: the settings, and checking x and W."""

    def __init__(self, stride=1, padding=0, output_padding=0, dilation=1):
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.output_padding = output_padding

    def keep_inputs(self, x, weight, bias):
        """Check the shapes, set ``geom`` (the conv2d window whose output grid is x's) and keep W."""
        check_conv_inputs("conv_transpose2d", x, weight, bias, in_axis=0, out_axis=1)
        self.geom = transposed_geometry(x.shape[2:], weight.shape[2:], self.stride, self.padding,
                                        self.output_padding, self.dilation)
        self.weight = weight


class ConvTranspose2dReference(ConvTranspose2dFunction):
    """The adjoint of conv2d, W (C_in, C_out, kh, kw): forward is conv2d's input gradient."""

    def forward(self, x, weight, bias=None):
        self.keep_inputs(x, weight, bias)
        self.x2 = as_columns(x)
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



# ----------------------------------------------------------------------------- the fast path

def axis_taps(kernel, stride, dilation, pads):
    """One axis of a ``Correlation``: tap i reads x at a*s + o_i, o_i = i*d - pad before, that is
    phase rho = o_i mod s of x at the shift floor(o_i / s).

    Returns (the phases used, the first shift u0 of each, for each tap (its phase's index, shift
    - u0), the largest shift - u0): a phase's plane row u holds x row (u + u0) s + rho.
    """
    offsets = [i * dilation - pads[0] for i in range(kernel)]
    phases = sorted({o % stride for o in offsets})
    first = [min(o // stride for o in offsets if o % stride == rho) for rho in phases]
    taps = [(phases.index(o % stride), o // stride - first[phases.index(o % stride)]) for o in offsets]
    return phases, first, taps, max(shift for _, shift in taps)


class Correlation:
    """A strided, dilated window over x zero-padded by ``pads`` ((top, bottom), (left, right);
    a negative pad crops), computed as GEMMs over columns that are long contiguous runs.

    Along each axis, tap i reads x at a*s + o_i for output a, o_i = i*d - pad: the phase
    rho_i = o_i mod s of x (x[rho::s]) at the shift floor(o_i / s), stride 1; u_i is that shift
    less the smallest one among its phase's taps (``axis_taps``). Each phase of x is stored once,
    zero-padded, as a flattened plane of (Hq + 1) x Wq pixels, Hq = OH + max u, Wq = OW + max v
    (the extra row keeps the last wide row inside the plane). Output pixel (a, b) sits at
    a*Wq + b of a *wide* row of OH*Wq entries (b >= OW: junk, dropped), and tap (i, j) reads
    the same wide row at the fixed offset u_i Wq + v_j of its plane, so its columns are one
    contiguous run per channel and sample::

        cols[(c, i, j), n, a*Wq + b] = plane[c, rho_i, rho_j, n][(a + u_i) Wq + b + v_j]

    shape (C*kh*kw, n, OH*Wq): channels first within a chunk of samples. (With ``WIDE_ROWS``
    off, ``row`` = OW: the same planes, copied without the junk, in runs of OW.)
    """

    def __init__(self, op, in_size, kernel, stride, dilation, pads, out_size=None, scratch=None):
        self.pads = tuple(tuple(p) for p in pads)
        padded = tuple(n + before + after for n, (before, after) in zip(in_size, self.pads))
        self.window = WindowGeometry(op, padded, kernel, stride, 0, dilation, out_size)
        self.in_size, self.out_size = tuple(in_size), self.window.out_size
        axes = [axis_taps(*args) for args in zip(self.window.kernel, self.window.stride,
                                                 self.window.dilation, self.pads)]
        self.phases, self.first, self.taps, spans = zip(*axes)
        self.plane = tuple(n + span for n, span in zip(self.out_size, spans))  # (Hq, Wq)
        self.row = self.plane[1] if WIDE_ROWS else self.out_size[1]  # row length of the columns
        self.pointwise = self.window.kernel == self.window.stride == (1, 1) \
            and not any(sum(self.pads, ())) and self.out_size == self.in_size
        # work arrays reused from chunk to chunk (fresh ones cost page faults), shareable
        self.scratch = {} if scratch is None else scratch

    @classmethod
    def of(cls, op, geom):
        """The window of ``geom`` (a WindowGeometry: the same padding on both sides)."""
        return cls(op, geom.in_size, geom.kernel, geom.stride, geom.dilation,
                   [(p, p) for p in geom.padding], geom.out_size)

    def column_bytes(self, channels, itemsize):
        """Bytes of columns per sample (what ``sample_chunks`` sizes chunks by)."""
        (kh, kw), (oh, _) = self.window.kernel, self.out_size
        return channels * kh * kw * oh * self.row * itemsize

    def work(self, name, like, shape, zeros=False):
        """A work array of ``shape`` (samples on axis 3) made at the first (largest) chunk, then
        reused: a zeroed one keeps the zeros the chunks never write (the padding). Correlations
        that share ``scratch`` share the arrays of one ``name`` and shape."""
        key = (name, shape[:3], shape[4:])
        buf = self.scratch.get(key)
        if buf is None or buf.shape[3] < shape[3]:
            make = get_array_module(like).zeros if zeros else get_array_module(like).empty
            buf = self.scratch[key] = make(shape, dtype=like.dtype)
        return buf[:, :, :, :shape[3]]

    def phase_rows(self, axis, a):
        """(rows of plane a, rows of x) along ``axis``: plane row u <-> x row (u + u0) s + rho."""
        s, rho, u0 = self.window.stride[axis], self.phases[axis][a], self.first[axis][a]
        n, size = self.plane[axis], self.in_size[axis]
        lo, hi = max(0, -u0), min(n, -((rho - size) // s) - u0)
        if hi <= lo:
            return None
        start = (lo + u0) * s + rho
        return slice(lo, hi), slice(start, start + (hi - lo - 1) * s + 1, s)

    def planes(self, x):
        """x (n, C, H, W) -> its zero-padded phase planes (C, phases_h, phases_w, n, (Hq + 1) Wq)."""
        (n, c), (hq, wq), (ph, pw) = x.shape[:2], self.plane, self.phases
        placement = ("planes", self.pads, tuple(map(tuple, self.phases)), tuple(map(tuple, self.first)))
        buf = self.work(placement, x, (c, len(ph), len(pw), n, hq + 1, wq), zeros=True)
        x = channels_first(x)
        for a in range(len(ph)):
            for b in range(len(pw)):
                rows, cols = self.phase_rows(0, a), self.phase_rows(1, b)
                if rows is not None and cols is not None:
                    buf[:, a, b, :, rows[0], cols[0]] = x[:, :, rows[1], cols[1]]
        return buf.reshape(c, len(ph), len(pw), n, -1)

    def columns(self, x):
        """cols (C*kh*kw, n, OH*Wq) of the samples x (n, C, H, W); a view of x for a 1x1 window."""
        n, c = x.shape[:2]
        if self.pointwise:
            return channels_first(x.reshape(n, c, -1))
        planes, (kh, kw), (oh, ow), (hq, wq) = self.planes(x), self.window.kernel, self.out_size, self.plane
        images = planes.reshape(planes.shape[:4] + (hq + 1, wq))
        length = oh * self.row
        cols = self.work("columns", x, (c, kh, kw, n, length))
        for i, (a, u) in enumerate(self.taps[0]):
            for j, (b, v) in enumerate(self.taps[1]):
                if self.row == wq:  # wide rows: one contiguous run per channel and sample
                    cols[:, i, j] = planes[:, a, b, :, u * wq + v:u * wq + v + length]
                else:  # the output pixels only: runs of OW
                    cols[:, i, j].reshape(c, n, oh, ow)[...] = images[:, a, b, :, u:u + oh, v:v + ow]
        return cols.reshape(c * kh * kw, n, length)

    def product(self, w2, cols, out, bias=None):
        """out (n, O, OH, OW) = W2 (O, K) @ cols[:, m, :] for every sample m, junk dropped, + bias.

        One GEMM over the chunk, (O, K) @ (K, n*OH*Wq), and one copy that drops the junk and puts
        the samples first. A 1x1 window (the columns are x itself) writes y with per-sample
        GEMMs, y[m] = W2 @ x[m], straight into ``out``: no copy at all. (Per-sample GEMMs
        everywhere would need the junk-dropping copy all the same, as n times more, smaller
        GEMM calls: the same time at 1 BLAS thread, more thread hand-offs at 2.)
        """
        xp, n, o = get_array_module(cols), cols.shape[1], w2.shape[0]
        (oh, ow), wq = self.out_size, self.row
        bias = None if bias is None else bias.reshape(1, -1, 1, 1)
        if self.pointwise and out.flags.c_contiguous:
            xp.matmul(w2, cols.swapaxes(0, 1), out=out.reshape(n, o, -1))
            if bias is not None:
                out += bias
            return out
        wide = (w2 @ cols.reshape(cols.shape[0], -1)).reshape(o, n, oh, wq)
        y = channels_first(wide[..., :ow])
        if bias is None:
            out[...] = y
        else:
            xp.add(y, bias, out=out)
        return out

    def wide(self, g):
        """g (n, O, OH, OW) on the columns' wide rows, (O, n*OH*Wq), zeros at the junk entries."""
        xp, (n, o), wq = get_array_module(g), g.shape[:2], self.row
        if wq == self.out_size[1]:
            return xp.ascontiguousarray(channels_first(g)).reshape(o, -1)
        g_wide = xp.zeros((o, n, self.out_size[0], wq), dtype=g.dtype)
        g_wide[..., :self.out_size[1]] = channels_first(g)
        return g_wide.reshape(o, -1)

    def weight_product(self, g, cols):
        """sum over the samples m of g[m] (O, OH*OW) @ cols[:, m, :]^T: one GEMM, (O, K)."""
        return self.wide(g) @ cols.reshape(cols.shape[0], -1).T


def phase_taps(rho, size, kernel, stride, padding, dilation, grid):
    """1-D phase rho of the adjoint x'[m] = sum over a*s + i*d - p = m of W[i]^T y[a] (y: ``grid`` long).

    For m = q*s + rho the live taps are the i with i*d = rho + p (mod s), every
    sigma = s / gcd(s, d)-th one; they read y[q + e_i], e_i = (rho + p - i*d) / s, which steps by
    delta = d / gcd(s, d). Listed from the last tap down, that is a stride-1 correlation with
    dilation delta and the taps reversed, over y padded by -e_last before. Returns (taps: a slice
    of the kernel, delta, (pad before, pad after)) or None when no tap (or no position) lands here.
    """
    taps = [i for i in range(kernel) if (i * dilation - rho - padding) % stride == 0]
    count = len(range(rho, size, stride))
    if not taps or not count:
        return None
    sigma, delta = stride // math.gcd(stride, dilation), dilation // math.gcd(stride, dilation)
    e_last = (rho + padding - taps[-1] * dilation) // stride
    after = (count - 1) + e_last + (len(taps) - 1) * delta - (grid - 1)
    return slice(taps[0], taps[-1] + 1, sigma), delta, (-e_last, after)


class Phase:
    """Output phase (rows, cols) of conv2d's adjoint: x'[:, :, rows, cols] = correlation of y with
    the reversed sub-kernel W[:, :, taps_h, taps_w] transposed, or zero (``correlation`` None)."""

    def __init__(self, geom, rho, scratch=None):
        axes = [phase_taps(r, n, k, s, p, d, g) for r, n, k, s, p, d, g in
                zip(rho, geom.in_size, geom.kernel, geom.stride, geom.padding, geom.dilation, geom.out_size)]
        self.rows, self.cols = (slice(r, None, s) for r, s in zip(rho, geom.stride))
        self.taps = self.correlation = None
        if None not in axes:
            (taps_h, dh, pads_h), (taps_w, dw, pads_w) = axes
            self.taps = taps_h, taps_w
            kernel = tuple(len(range(k)[t]) for k, t in zip(geom.kernel, self.taps))
            self.correlation = Correlation("conv_transpose2d", geom.out_size, kernel, 1, (dh, dw),
                                           (pads_h, pads_w), scratch=scratch)

    def weight(self, weight):
        """W (O, C, kh, kw) -> this phase's W2 (C, O*Jh*Jw): the live taps, reversed, transposed."""
        sub = weight[:, :, self.taps[0], self.taps[1]][:, :, ::-1, ::-1]
        return get_array_module(weight).ascontiguousarray(channels_first(sub)).reshape(sub.shape[1], -1)


class Adjoint:
    """conv2d's adjoint y (N, O, OH, OW) -> x' (N, C, H, W) as s_h*s_w stride-1 correlations,
    one per output phase, each written into its strided view of x' (no col2im scatter)."""

    def __init__(self, geom, weight):
        scratch = {}  # the phases' columns share one work array
        self.phases = [Phase(geom, (rh, rw), scratch) for rh in range(geom.stride[0])
                       for rw in range(geom.stride[1])]
        self.weights = [None if p.correlation is None else p.weight(weight) for p in self.phases]
        self.grid_channels, self.channels = weight.shape[:2]

    def column_bytes(self, itemsize):
        """Bytes per sample of the largest phase's columns."""
        return max([p.correlation.column_bytes(self.grid_channels, itemsize)
                    for p in self.phases if p.correlation is not None] + [1])

    def apply(self, y, out):
        """out (n, C, H, W) = the adjoint of the samples y (n, O, OH, OW)."""
        for phase, w2 in zip(self.phases, self.weights):
            target = out[:, :, phase.rows, phase.cols]
            if phase.correlation is None:
                target[...] = 0
            else:
                phase.correlation.product(w2, phase.correlation.columns(y), target)
        return out


class Conv2d(Conv2dFunction):
    """y = conv2d(x, W) + b: per-sample GEMMs over chunks of columns; x' by the adjoint's phases."""

    def forward(self, x, weight, bias=None):
        self.keep_inputs(x, weight, bias)
        xp, (n, c), o = get_array_module(x), x.shape[:2], weight.shape[0]
        w2 = weight.reshape(o, -1)
        y = xp.empty((n, o) + self.geom.out_size, dtype=x.dtype)

        def part(chunks):  # chunks of samples from the shared queue, this thread's work arrays
            correlation = Correlation.of("conv2d", self.geom)
            for s in chunks:
                correlation.product(w2, correlation.columns(x[s]), y[s], bias)
        share_out(part, n, chunk_samples(Correlation.of("conv2d", self.geom).column_bytes(c, x.itemsize)), x)
        return y

    def backward(self, g):
        """dW2 = sum g[n] @ cols(x[n])^T, columns rebuilt chunk by chunk (none are saved); x' = adjoint(g).

        Two loops, each with its own chunks: one chunk's x columns and g columns together would
        not stay in cache (measured: a shared loop was slower than the two)."""
        xp = get_array_module(g)
        need_x, need_w = self.needs_input_grad[:2]
        need_b = len(self.needs_input_grad) > 2 and self.needs_input_grad[2]
        n, c = self.x.shape[:2]
        gx = gw = None
        if need_w:
            def weight_part(chunks):  # chunks of samples from the shared queue: their share of dW2
                correlation = Correlation.of("conv2d", self.geom)
                gw2 = xp.zeros((self.weight.shape[0], self.weight[0].size), dtype=g.dtype)
                for s in chunks:
                    gw2 += correlation.weight_product(g[s], correlation.columns(self.x[s]))
                return gw2
            step = chunk_samples(Correlation.of("conv2d", self.geom).column_bytes(c, g.itemsize))
            gw = sum(share_out(weight_part, n, step, g)).reshape(self.weight.shape)
        if need_x:
            gx = xp.empty(self.x.shape, dtype=g.dtype)

            def input_part(chunks):  # chunks of samples from the shared queue: their x'
                adjoint = Adjoint(self.geom, self.weight)
                for s in chunks:
                    adjoint.apply(g[s], gx[s])
            share_out(input_part, n, chunk_samples(Adjoint(self.geom, self.weight).column_bytes(g.itemsize)), g)
        gb = g.sum(axis=(0, 2, 3)) if need_b else None
        return gx, gw, gb


class ConvTranspose2d(ConvTranspose2dFunction):
    """The adjoint of conv2d, W (C_in, C_out, kh, kw): forward by the output phases, backward is
    conv2d's forward (x' = W2 @ cols(g)) and weight product (dW2 = sum x[n] @ cols(g[n])^T)."""

    def forward(self, x, weight, bias=None):
        self.keep_inputs(x, weight, bias)
        self.x = x
        xp, n = get_array_module(x), x.shape[0]
        y = xp.empty((n, weight.shape[1]) + self.geom.in_size, dtype=x.dtype)

        def part(chunks):  # chunks of samples from the shared queue, this thread's work arrays
            adjoint = Adjoint(self.geom, weight)
            for s in chunks:
                adjoint.apply(x[s], y[s])
                if bias is not None:
                    y[s] += bias.reshape(1, -1, 1, 1)
        share_out(part, n, chunk_samples(Adjoint(self.geom, weight).column_bytes(x.itemsize)), x)
        return y

    def backward(self, g):
        xp = get_array_module(g)
        need_x, need_w = self.needs_input_grad[:2]
        need_b = len(self.needs_input_grad) > 2 and self.needs_input_grad[2]
        n, c_in = self.x.shape[:2]
        w2 = self.weight.reshape(c_in, -1)
        gx = xp.empty(self.x.shape, dtype=g.dtype) if need_x else None

        def part(chunks):  # chunks of samples from the shared queue: their x' and share of dW2
            correlation = Correlation.of("conv_transpose2d", self.geom)
            gw2 = xp.zeros(w2.shape, dtype=g.dtype) if need_w else None
            for s in chunks:
                cols = correlation.columns(g[s])
                if need_x:
                    correlation.product(w2, cols, gx[s])
                if need_w:
                    gw2 += correlation.weight_product(self.x[s], cols)
            return gw2
        step = chunk_samples(Correlation.of("conv_transpose2d", self.geom).column_bytes(g.shape[1], g.itemsize))
        shares = share_out(part, n, step, g)
        gw = sum(shares).reshape(self.weight.shape) if need_w else None
        gb = g.sum(axis=(0, 2, 3)) if need_b else None
        return gx, gw, gb


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


def conv2d_reference(x, weight, bias=None, stride=1, padding=0, dilation=1):
    """``conv2d`` by the plain path: one im2col GEMM over the whole batch (the reference)."""
    fn = Conv2dReference(stride, padding, dilation)
    return fn(x, weight) if bias is None else fn(x, weight, bias)


def conv_transpose2d_reference(x, weight, bias=None, stride=1, padding=0, output_padding=0, dilation=1):
    """``conv_transpose2d`` by the plain path: one GEMM and a col2im scatter (the reference)."""
    fn = ConvTranspose2dReference(stride, padding, output_padding, dilation)
    return fn(x, weight) if bias is None else fn(x, weight, bias)
