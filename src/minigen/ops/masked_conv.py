"""A convolution that skips the kernel taps its mask zeroes: ``masked_conv2d``.

conv2d(x, W * M) (stride 1) equals conv2d(x, W) restricted to the *live* taps, the kernel
offsets (i, j) where the mask M (O, C, kh, kw) is not all zero. A PixelCNN mask keeps the rows
above the centre and the left half of the centre row: a 3x3 type-B kernel has 5 live taps of 9,
a 7x7 type-A kernel 24 of 49, so skipping the rest saves 4/9 and 25/49 of the work that im2col
on the full kernel (``minigen.ops.conv``, the plain reference) and PyTorch both spend.

Layout: the shifted-slice trick. Pad x and flatten every pixel of every padded image into one
column of x_flat (C, N*Hp*Wp) (channels first, as ``minigen.ops.conv`` lays out its columns).
Output pixel (n, r, c) is computed at column q = (n*Hp + r)*Wp + c of a "wide" output grid of
the same size, and tap (i, j) reads column q + s_ij with s_ij = i*dh*Wp + j*dw, the same shift
for every pixel. So tap (i, j) contributes

    y_wide[:, 0:L] += W_ij @ x_flat[:, s_ij : s_ij + L],     W_ij = (W * M)[:, :, i, j]   (O, C)

a GEMM on a slice of x_flat (no im2col over every offset), with L = N*Hp*Wp - max shift.
Columns of the wide grid that are not output pixels (q in the padding) are computed and
dropped; they cost (Hp*Wp)/(OH*OW) - 1 extra work (15% for 3x3 on 28x28). The T live taps'
slices are stacked into one (T*C, L) matrix, so that the T shifted GEMMs are one GEMM with
K = T*C (T GEMMs with K = C would be slow for the C = 1 input layer, and each would need its
own pass to add its product in). Backward, with g_wide the output gradient placed on the wide
grid (zeros elsewhere):

    dW_ij = (g_wide[:, 0:L] @ x_flat[:, s_ij : s_ij + L]^T) * M_ij
    dx_flat[:, s_ij : s_ij + L] += W_ij^T @ g_wide[:, 0:L]            (for every live tap)
"""
from ..autograd import Function
from ..backend import get_array_module
from .conv import WindowGeometry, channels_first, check_conv_inputs, from_columns

__all__ = ["masked_conv2d", "live_taps"]


def live_taps(mask):
    """The kernel offsets [(i, j), ...] where the mask (O, C, kh, kw) has a nonzero entry."""
    alive = (mask != 0).any(axis=(0, 1)).tolist()
    return [(i, j) for i, row in enumerate(alive) for j, live in enumerate(row) if live]


class MaskedConv2d(Function):
    """y = conv2d(x, W * M, b), stride 1, summed over the live taps of M only (module docstring)."""

    def __init__(self, padding=0, dilation=1):
        self.padding, self.dilation = padding, dilation

    def forward(self, x, weight, mask, bias=None):
        check_conv_inputs("masked_conv2d", x, weight, bias, in_axis=1, out_axis=0)
        if tuple(mask.shape) != tuple(weight.shape):
            raise ValueError(f"masked_conv2d: mask must have the weight's shape {tuple(weight.shape)}, "
                             f"got {tuple(mask.shape)}")
        xp = get_array_module(x)
        geom = WindowGeometry("masked_conv2d", x.shape[2:], weight.shape[2:], 1, self.padding,
                              self.dilation)
        (hp, wp), (dh, dw), (kh, kw) = geom.padded, geom.dilation, geom.kernel
        n, c = x.shape[:2]
        o = weight.shape[0]
        self.taps = live_taps(mask)
        self.tap_rows, self.tap_cols = [i for i, _ in self.taps], [j for _, j in self.taps]
        self.shifts = [i * dh * wp + j * dw for i, j in self.taps]
        self.length = n * hp * wp - ((kh - 1) * dh * wp + (kw - 1) * dw)  # L
        self.geom, self.mask, self.x_shape = geom, mask, x.shape
        x_pad = xp.zeros((c, n) + geom.padded, dtype=x.dtype)
        x_pad[geom.unpadded()] = channels_first(x)
        self.x_flat = x_pad.reshape(c, n * hp * wp)
        # W_live (O, T*C): column t*C + c is W_ij[:, c] of live tap t
        w_live = (weight * mask)[:, :, self.tap_rows, self.tap_cols]  # (O, C, T)
        self.w_live = xp.ascontiguousarray(w_live.transpose(0, 2, 1)).reshape(o, -1)
        y_wide = xp.zeros((o, n * hp * wp), dtype=x.dtype)
        # the live columns (T*C, L) stay for the weight gradient, freed as soon as it has used them
        self.cols = self.live_columns() if self.taps else None
        if self.taps:
            y_wide[:, :self.length] = self.w_live @ self.cols
        return from_columns(self.on_output_grid(y_wide), n, geom.out_size, bias)

    def on_output_grid(self, wide):
        """(O, N*Hp*Wp) on the wide grid -> (O, N*OH*OW) on the output pixels (a copy)."""
        xp = get_array_module(wide)
        (hp, wp), (oh, ow), n = self.geom.padded, self.geom.out_size, self.x_shape[0]
        grid = wide.reshape(-1, n, hp, wp)[:, :, :oh, :ow]
        return xp.ascontiguousarray(grid).reshape(wide.shape[0], -1)

    def live_columns(self):
        """(T*C, L): the slices x_flat[:, s_t : s_t + L] of the live taps, stacked."""
        xp = get_array_module(self.x_flat)
        c = self.x_flat.shape[0]
        cols = xp.empty((len(self.taps), c, self.length), dtype=self.x_flat.dtype)
        for t, s in enumerate(self.shifts):
            cols[t] = self.x_flat[:, s:s + self.length]
        return cols.reshape(-1, self.length)

    def backward(self, g):
        xp = get_array_module(g)
        need_x, need_w = self.needs_input_grad[:2]
        need_b = len(self.needs_input_grad) > 3 and self.needs_input_grad[3]
        n, c = self.x_shape[:2]
        (hp, wp), (oh, ow) = self.geom.padded, self.geom.out_size
        o, length = g.shape[1], self.length
        g_wide = xp.zeros((o, n, hp, wp), dtype=g.dtype)
        g_wide[:, :, :oh, :ow] = channels_first(g)
        g_live = g_wide.reshape(o, -1)[:, :length]  # (O, L)
        gx = gw = None
        cols, self.cols = self.cols, None  # a second backward (retain_graph) rebuilds them
        if need_w:
            gw = xp.zeros(self.input_shapes[1], dtype=g.dtype)
            if self.taps:
                cols = self.live_columns() if cols is None else cols
                gw_live = (g_live @ cols.T).reshape(o, len(self.taps), c)
                gw[:, :, self.tap_rows, self.tap_cols] = gw_live.transpose(0, 2, 1)
                gw *= self.mask
        del cols
        if need_x:
            gx_flat = xp.zeros((c, n * hp * wp), dtype=g.dtype)
            if self.taps:
                g_cols = (self.w_live.T @ g_live).reshape(len(self.taps), c, length)
                for t, s in enumerate(self.shifts):
                    gx_flat[:, s:s + length] += g_cols[t]
            gx_pad = gx_flat.reshape((c, n) + self.geom.padded)[self.geom.unpadded()]
            gx = xp.ascontiguousarray(channels_first(gx_pad))
        gb = g.sum(axis=(0, 2, 3)) if need_b else None
        return gx, gw, None, gb


def masked_conv2d(x, weight, mask, bias=None, padding=0, dilation=1):
    """conv2d(x, weight * mask, bias, stride=1, padding, dilation), computing only the kernel
    taps where ``mask`` (an array of the weight's shape, not trained) is nonzero."""
    inputs = (x, weight, mask) if bias is None else (x, weight, mask, bias)
    return MaskedConv2d(padding, dilation)(*inputs)
