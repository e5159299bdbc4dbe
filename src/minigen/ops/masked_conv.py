"""A convolution that skips the kernel taps its mask zeroes: ``masked_conv2d``.

conv2d(x, W * M) (stride 1) equals conv2d(x, W) restricted to the *live* taps, the kernel
offsets (i, j) where the mask M (O, C, kh, kw) is not all zero. A PixelCNN mask keeps the rows
above the centre and the left half of the centre row: a 3x3 type-B kernel has 5 live taps of 9,
a 7x7 type-A kernel 24 of 49, so skipping the rest saves 4/9 and 25/49 of the work that im2col
on the full kernel (``minigen.ops.conv``, the plain reference) and PyTorch both spend. Without a
mask every tap is live: the Gated PixelCNN's vertical stack uses that with padding on the top
only (a causal convolution), which ``conv2d``'s symmetric padding cannot express.

Layout: the shifted-slice trick. Pad x and flatten every pixel of every padded image into one
column of x_flat (C, M), M = N*Hp*Wp (channels first, as ``minigen.ops.conv`` lays out its
columns). Output pixel (n, r, c) is computed at column q = (n*Hp + r)*Wp + c of a "wide" output
grid of the same size, and tap (i, j) reads column q + s_ij with s_ij = i*dh*Wp + j*dw, the same
shift for every pixel. So, with W_ij = (W * M)[:, :, i, j] (O, C),

    y_wide[:, q] = sum over live taps of W_ij @ x_flat[:, q + s_ij],      q < L = M - max shift,

one GEMM with K = T*C on the T live taps' slices stacked (no im2col over every offset). Columns
of the wide grid that are not output pixels (q in the padding) are computed and dropped: they
cost (Hp*Wp)/(OH*OW) - 1 extra work (15% for 3x3 on 28x28). Backward, with G the output gradient
on the wide grid (zeros at the padding columns) shifted right by the largest shift S (G[:, S+q]),

    dx_flat[:, p] = sum_ij W_ij^T @ G[:, S + p - s_ij]          (a correlation with the flipped taps)
    dW_ij         = sum_p G[:, S + p - s_ij] @ x_flat[:, p]^T    (then times M_ij)

so the input gradient is one GEMM on the stacked slices of G (no scatter-add of T column
blocks), and the weight gradient reuses that same stack.

Speed and memory. The stacked slices are built a chunk of columns at a time, in one work
array reused chunk to chunk (CHUNK_BYTES: no buffer T times the input's size is ever allocated,
whose page faults alone cost about as much as the copy), and each chunk's GEMM writes straight
into the wide grid; nothing stacked is kept. Backward keeps only x, which the graph keeps alive
anyway, and rebuilds x_flat from it (one copy) when the weight gradient needs it. A 1x1 kernel
without padding needs no x_flat at all: it is one GEMM per image on x in its own NCHW layout.

Threads (``minigen.threads``): the columns are split among minigen's threads, each with its
own chunks and its share of dW, and so are the copies around the GEMMs (x_flat, G, the output
and dx, by samples) and a 1x1 kernel's images. The five-layer, 64-channel stack of
``bench_layers.py`` on 32 MNIST-sized images, forward + backward on 2 cores, with chunks of
8 MiB / 2 MiB / 1 MiB / 512 KiB per thread: 274 / 243 / 233 / 254 ms (1 MiB: about one L2).
"""

from ..autograd import Function
from ..backend import get_array_module, unwrap
from ..threads import map_slices, share_out
from .conv import channels_first, check_conv_inputs, pair

__all__ = ["masked_conv2d", "live_taps"]

CHUNK_BYTES = 2 ** 20  # stacked slices built at a time, per thread: about an L2 cache (docstring)
MIN_COLUMNS = 4096  # the least columns (or pixels) worth a thread of their own


def by_samples(copy, like):
    """copy(p) for slices p of the batch (axis 0 of ``like``) split among minigen's threads: the
    copies and elementwise passes around the GEMMs (NumPy runs each on one core)."""
    pixels = like[0].size if like.shape[0] else 1
    map_slices(copy, like.shape[0], like, max(1, 16 * MIN_COLUMNS // pixels))


def live_taps(mask):
    """The kernel offsets [(i, j), ...] where the mask (O, C, kh, kw) has a nonzero entry."""
    alive = (mask != 0).any(axis=(0, 1)).tolist()
    return [(i, j) for i, row in enumerate(alive) for j, live in enumerate(row) if live]


def padding_sides(padding):
    """An int, (ph, pw) or ((top, bottom), (left, right)) -> ((top, bottom), (left, right))."""
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(
            isinstance(p, (tuple, list)) for p in padding):
        sides = tuple(pair(tuple(p), "masked_conv2d: padding") for p in padding)
    else:
        sides = tuple((p, p) for p in pair(padding, "masked_conv2d: padding"))
    if min(min(s) for s in sides) < 0:
        raise ValueError(f"masked_conv2d: padding must be >= 0, got {padding}")
    return sides


def column_step(rows, itemsize):
    """Columns per chunk: a chunk of ``rows`` rows fills about CHUNK_BYTES (at least 64 columns)."""
    return max(64, CHUNK_BYTES // max(1, rows * itemsize))


def stacked_chunks(a, offsets, chunks, start=0):
    """(cols, stack) for every slice of ``chunks`` (slices of columns from ``share_out``, shifted
    by ``start``): stack is (len(offsets) * rows, len(cols)), the column slices a[:, cols + offset]
    stacked. One work array serves every chunk (a fresh one would pay its page faults each time)."""
    xp, rows, work = get_array_module(a), a.shape[0], None
    for chunk in chunks:
        cols, width = slice(start + chunk.start, start + chunk.stop), chunk.stop - chunk.start
        size = len(offsets) * rows * width
        if work is None or work.size < size:
            work = xp.empty(size, dtype=a.dtype)
        stack = work[:size].reshape(len(offsets), rows, width)
        for t, s in enumerate(offsets):
            stack[t] = a[:, cols.start + s:cols.stop + s]
        yield cols, stack.reshape(-1, width)


class MaskedConv2d(Function):
    """y = conv2d(x, W * M, b), stride 1, summed over the live taps of M only (module docstring).

    ``mask``: an array of the weight's shape, or None (every tap live); ``padding`` as in
    ``padding_sides``.
    """

    def __init__(self, mask, padding=0, dilation=1, relu_input=False):
        self.mask, self.padding, self.dilation = mask, padding_sides(padding), pair(dilation, "dilation")
        self.relu_input = relu_input

    def forward(self, x, weight, bias=None):
        check_conv_inputs("masked_conv2d", x, weight, bias, in_axis=1, out_axis=0)
        if self.mask is not None and tuple(self.mask.shape) != tuple(weight.shape):
            raise ValueError(f"masked_conv2d: mask must have the weight's shape {tuple(weight.shape)}, "
                             f"got {tuple(self.mask.shape)}")
        if min(self.dilation) < 1:
            raise ValueError(f"masked_conv2d: dilation must be >= 1, got {self.dilation}")
        xp = get_array_module(x)
        (top, bottom), (left, right) = self.padding
        (dh, dw), (kh, kw) = self.dilation, weight.shape[2:]
        n, c, h, w = x.shape
        o = weight.shape[0]
        hp, wp = h + top + bottom, w + left + right
        span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
        if span[0] > hp or span[1] > wp:
            raise ValueError(f"masked_conv2d: kernel of size {span[0]}x{span[1]} (dilation included) "
                             f"is larger than the padded input {hp}x{wp} (input {h}x{w} plus "
                             f"padding {self.padding})")
        self.out_size = (hp - span[0] + 1, wp - span[1] + 1)
        self.taps = live_taps(self.mask) if self.mask is not None else \
            [(i, j) for i in range(kh) for j in range(kw)]
        self.tap_rows, self.tap_cols = [i for i, _ in self.taps], [j for _, j in self.taps]
        if self.taps:  # padding below / right of what the lowest / rightmost live tap reads: dropped
            hp -= min(bottom, (kh - 1 - max(self.tap_rows)) * dh)
            wp -= min(right, (kw - 1 - max(self.tap_cols)) * dw)
        self.x_shape, self.padded = x.shape, (hp, wp)
        masked = weight if self.mask is None else weight * self.mask
        # W_live (O, T*C): column t*C + c is W_ij[:, c] of live tap t
        w_live = masked[:, :, self.tap_rows, self.tap_cols]  # (O, C, T)
        self.w_live = xp.ascontiguousarray(w_live.transpose(0, 2, 1)).reshape(o, -1)
        out = xp.empty((n, o) + self.out_size, dtype=x.dtype)
        self.pointwise = (kh, kw) == (1, 1) and (hp, wp) == (h, w)
        self.x = x  # the graph keeps x alive anyway: backward rebuilds x_flat from it
        if not self.taps:
            out[...] = 0
        elif self.pointwise:  # one GEMM per image on x as it is
            x3, out3 = x.reshape(n, c, h * w), out.reshape(n, o, h * w)
            map_slices(lambda p: xp.matmul(self.w_live, self.activated(x3[p]), out=out3[p]),
                       n, x, max(1, MIN_COLUMNS // (h * w)))
        else:
            self.shifts = [i * dh * wp + j * dw for i, j in self.taps]
            self.max_shift = max(self.shifts)
            x_flat = self.flat_padded(x)
            y_wide = xp.empty((o, n * hp * wp), dtype=x.dtype)  # only output pixels are read
            length = n * hp * wp - self.max_shift  # L: the last output pixel's column + 1, or more

            def part(chunks):  # chunks of columns from the shared queue
                for cols, stack in stacked_chunks(x_flat, self.shifts, chunks):
                    xp.matmul(self.w_live, stack, out=y_wide[:, cols])
            share_out(part, length, column_step(len(self.taps) * c, x.itemsize), x, MIN_COLUMNS)
            (oh, ow) = self.out_size
            grid = channels_first(y_wide.reshape(o, n, hp, wp)[:, :, :oh, :ow])
            if bias is not None:  # the bias added in the same pass
                by_samples(lambda p: xp.add(grid[p], bias.reshape(1, -1, 1, 1), out=out[p]), out)
                return out
            by_samples(lambda p: xp.copyto(out[p], grid[p]), out)
        if bias is not None:
            out += bias.reshape(1, -1, 1, 1)
        return out

    def activated(self, x):
        """relu(x) with ``relu_input`` (a new array), else x itself."""
        return get_array_module(x).maximum(x, 0) if self.relu_input else x

    def flat_padded(self, x):
        """x_flat (C, N*Hp*Wp): x (relu(x) with ``relu_input``) zero-padded, channels first,
        every padded pixel a column."""
        xp = get_array_module(x)
        n, c, h, w = x.shape
        (top, _), (left, _) = self.padding
        x_pad = xp.zeros((c, n) + self.padded, dtype=x.dtype)
        inside = channels_first(x_pad[:, :, top:top + h, left:left + w])

        def fill(p):  # samples p
            if self.relu_input:
                xp.maximum(x[p], 0, out=inside[p])
            else:
                xp.copyto(inside[p], x[p])
        by_samples(fill, x)
        return x_pad.reshape(c, -1)

    def backward(self, g):
        xp = get_array_module(g)
        need_x, need_w = self.needs_input_grad[:2]
        need_b = len(self.needs_input_grad) > 2 and self.needs_input_grad[2]
        gx = gw = None
        if self.pointwise or not self.taps:
            gx, gw_live = self.pointwise_backward(g, need_x, need_w)
        else:
            gx, gw_live = self.shifted_backward(g, need_x, need_w)
        if gx is not None and self.relu_input:  # d relu(x) / dx
            by_samples(lambda p: xp.multiply(gx[p], self.x[p] > 0, out=gx[p]), gx)
        if need_w:
            gw = xp.zeros(self.input_shapes[1], dtype=g.dtype)
            if gw_live is not None:  # (O, T, C)
                gw[:, :, self.tap_rows, self.tap_cols] = gw_live.transpose(0, 2, 1)
                if self.mask is not None:
                    gw *= self.mask
        gb = g.sum(axis=(0, 2, 3)) if need_b else None
        return (gx, gw) if len(self.needs_input_grad) == 2 else (gx, gw, gb)

    def pointwise_backward(self, g, need_x, need_w):
        """A 1x1 kernel (or no live tap): dx = W^T g and dW = sum_n g_n x_n^T, image by image,
        the images split among minigen's threads."""
        xp = get_array_module(g)
        n, c, h, w = self.x_shape
        if not self.taps:
            return (xp.zeros(self.x_shape, dtype=g.dtype) if need_x else None), None
        g3, x3 = g.reshape(n, -1, h * w), self.x.reshape(n, c, h * w)
        gx = xp.empty(self.x_shape, dtype=g.dtype) if need_x else None

        def part(p):  # images p: their dx and their share of dW
            if need_x:
                xp.matmul(self.w_live.T, g3[p], out=gx.reshape(n, c, h * w)[p])
            if need_w:
                return (g3[p] @ self.activated(x3[p]).swapaxes(1, 2)).sum(axis=0)
        shares = map_slices(part, n, g, max(1, MIN_COLUMNS // (h * w)))
        return gx, (sum(shares)[:, None, :] if need_w else None)

    def shifted_backward(self, g, need_x, need_w):
        """The two gradients of the module docstring, a chunk of columns at a time."""
        xp = get_array_module(g)
        n, c, h, w = self.x_shape
        (hp, wp), (oh, ow) = self.padded, self.out_size
        (top, _), (left, _) = self.padding
        o, size, front, taps = g.shape[1], n * hp * wp, self.max_shift, len(self.taps)
        big_g = xp.zeros((o, front + size), dtype=g.dtype)  # G: g on the wide grid, shifted by S
        g_grid = channels_first(big_g[:, front:].reshape(o, n, hp, wp)[:, :, :oh, :ow])
        by_samples(lambda p: xp.copyto(g_grid[p], g[p]), g)
        gx = gw_live = None
        x_flat = self.flat_padded(self.x) if need_w else None
        if need_x:
            # the input pixels lie in columns first..last of the padded grid (x_flat is zero outside)
            first, last = top * wp + left, ((n - 1) * hp + top + h - 1) * wp + left + w
            gx_flat = xp.empty((c, size), dtype=g.dtype)
            # W_flip (C, T*O): column t*O + o is W_ij[o, :] of live tap t
            w_flip = self.w_live.reshape(o, taps, c).transpose(2, 1, 0).reshape(c, taps * o)
            back = [front - s for s in self.shifts]

            def part(chunks):  # chunks of columns from the shared queue: their dx, share of dW
                gw_stack = xp.zeros((taps * o, c), dtype=g.dtype) if need_w else None
                for cols, g_cols in stacked_chunks(big_g, back, chunks, first):
                    xp.matmul(w_flip, g_cols, out=gx_flat[:, cols])
                    if need_w:
                        gw_stack += g_cols @ x_flat[:, cols].T
                return gw_stack
            shares = share_out(part, last - first, column_step(taps * o, g.itemsize), g, MIN_COLUMNS)
            gx_grid = channels_first(gx_flat.reshape(c, n, hp, wp)[:, :, top:top + h, left:left + w])
            gx = xp.empty(self.x_shape, dtype=g.dtype)
            by_samples(lambda p: xp.copyto(gx[p], gx_grid[p]), gx)
            if need_w:
                gw_live = sum(shares).reshape(taps, o, c).transpose(1, 0, 2)
        elif need_w:  # no input gradient: stack x's T*C rows (fewer than g's T*O for an input layer)
            def part(chunks):  # chunks of columns from the shared queue: their share of dW
                gw_share = xp.zeros((o, taps * c), dtype=g.dtype)
                for cols, x_cols in stacked_chunks(x_flat, self.shifts, chunks):
                    gw_share += big_g[:, front + cols.start:front + cols.stop] @ x_cols.T
                return gw_share
            step = column_step(taps * c, g.itemsize)
            gw_live = sum(share_out(part, size - front, step, g, MIN_COLUMNS)).reshape(o, taps, c)
        return gx, gw_live


def masked_conv2d(x, weight, mask, bias=None, padding=0, dilation=1, relu_input=False):
    """conv2d(x, weight * mask, bias, stride=1, padding, dilation), computing only the kernel
    taps where ``mask`` (an array of the weight's shape, not trained) is nonzero; ``mask=None``:
    every tap. ``padding``: an int, (ph, pw), or ((top, bottom), (left, right)).
    ``relu_input=True``: conv2d(relu(x), ...) with the ReLU applied on the fly, so that the graph
    keeps x (alive anyway where x is a residual stream or another layer's output) instead of
    relu(x) and relu's mask as well."""
    inputs = (x, weight) if bias is None else (x, weight, bias)
    if mask is not None:
        mask = get_array_module(weight).asarray(unwrap(mask))
    return MaskedConv2d(mask, padding, dilation, relu_input)(*inputs)
