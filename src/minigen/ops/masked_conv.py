"""A convolution that skips the kernel taps its mask zeroes: ``masked_conv2d``.

conv2d(x, W * M) (stride 1) equals conv2d(x, W) restricted to the *live* taps, the kernel
offsets (i, j) where the mask M (O, C, kh, kw) is not all zero. A PixelCNN mask keeps the rows
above the centre and the left half of the centre row: a 3x3 type-B kernel has 5 live taps of 9,
a 7x7 type-A kernel 24 of 49, so skipping the rest saves 4/9 and 25/49 of the work that im2col
on the full kernel (``minigen.ops.conv``, the plain reference) and PyTorch both spend.

Layout: the shifted-slice trick. Pad x, move channels last and flatten every pixel of every
padded image into one row: x_flat (N*Hp*Wp, C). Output pixel (n, r, c) is computed at the row
q = (n*Hp + r)*Wp + c of a "wide" output grid of the same size, and tap (i, j) reads row
q + s_ij with s_ij = i*dh*Wp + j*dw, the same shift for every pixel. So tap (i, j) contributes

    y_wide[0:L] += x_flat[s_ij : s_ij + L] @ W_ij^T,     W_ij = (W * M)[:, :, i, j]   (O, C)

a GEMM on a contiguous slice (no im2col per pixel), with L = N*Hp*Wp - max shift. Rows of the
wide grid that are not output pixels (q in the padding columns/rows) are computed and dropped;
they cost (Hp*Wp)/(OH*OW) - 1 extra work (15% for 3x3 on 28x28). The live taps' slices are laid
side by side into one (L, T*C) matrix so that the T shifted GEMMs are one GEMM with K = T*C
(T GEMMs with K = C would be slow for the C = 1 input layer). Backward, with g_wide the output
gradient placed on the wide grid (zeros elsewhere):

    dW_ij = (g_wide[0:L]^T @ x_flat[s_ij : s_ij + L]) * M_ij
    dx_flat[s_ij : s_ij + L] += g_wide[0:L] @ W_ij                     (for every live tap)
"""
from ..autograd import Function
from ..backend import get_array_module
from .conv import WindowGeometry, check_conv_inputs

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
        (ph, pw), (hp, wp), (dh, dw) = geom.padding, geom.padded, geom.dilation
        n, c, h, w = x.shape
        kh, kw = geom.kernel
        self.taps = live_taps(mask)
        self.shifts = [i * dh * wp + j * dw for i, j in self.taps]
        self.length = n * hp * wp - ((kh - 1) * dh * wp + (kw - 1) * dw)  # L
        self.geom, self.mask, self.x_shape = geom, mask, x.shape
        x_pad = xp.zeros((n, hp, wp, c), dtype=x.dtype)
        x_pad[:, ph:ph + h, pw:pw + w] = x.transpose(0, 2, 3, 1)
        self.x_flat = x_pad.reshape(n * hp * wp, c)
        # W_live (T*C, O): row t*C + c is W_ij[:, c] of live tap t
        rows, cols = zip(*self.taps) if self.taps else ((), ())
        w_live = (weight * mask)[:, :, list(rows), list(cols)]  # (O, C, T)
        self.w_live = xp.ascontiguousarray(w_live.transpose(2, 1, 0)).reshape(-1, weight.shape[0])
        y_wide = xp.zeros((n * hp * wp, weight.shape[0]), dtype=x.dtype)
        if self.taps:
            y_wide[:self.length] = self.live_columns() @ self.w_live
        oh, ow = geom.out_size
        y = y_wide.reshape(n, hp, wp, -1)[:, :oh, :ow].transpose(0, 3, 1, 2)
        if bias is not None:
            y = y + bias.reshape(1, -1, 1, 1)
        return xp.ascontiguousarray(y)

    def live_columns(self):
        """(L, T*C): the slices x_flat[s_t : s_t + L] of the live taps side by side."""
        xp = get_array_module(self.x_flat)
        c = self.x_flat.shape[1]
        cols = xp.empty((self.length, len(self.taps), c), dtype=self.x_flat.dtype)
        for t, s in enumerate(self.shifts):
            cols[:, t] = self.x_flat[s:s + self.length]
        return cols.reshape(self.length, -1)

    def backward(self, g):
        xp = get_array_module(g)
        need_x, need_w = self.needs_input_grad[:2]
        need_b = len(self.needs_input_grad) > 3 and self.needs_input_grad[3]
        n, c, h, w = self.x_shape
        (ph, pw), (hp, wp) = self.geom.padding, self.geom.padded
        oh, ow = self.geom.out_size
        o, length = g.shape[1], self.length
        g_wide = xp.zeros((n, hp, wp, o), dtype=g.dtype)
        g_wide[:, :oh, :ow] = g.transpose(0, 2, 3, 1)
        g_live = g_wide.reshape(-1, o)[:length]  # (L, O)
        gx = gw = None
        if need_w:
            gw = xp.zeros(self.input_shapes[1], dtype=g.dtype)
            if self.taps:
                gw_live = (self.live_columns().T @ g_live).reshape(len(self.taps), c, o)
                rows, cols = zip(*self.taps)
                gw[:, :, list(rows), list(cols)] = gw_live.transpose(2, 1, 0)
                gw *= self.mask
        if need_x:
            gx_flat = xp.zeros((n * hp * wp, c), dtype=g.dtype)
            if self.taps:
                g_cols = (g_live @ self.w_live.T).reshape(length, len(self.taps), c)
                for t, s in enumerate(self.shifts):
                    gx_flat[s:s + length] += g_cols[:, t]
            gx_pad = gx_flat.reshape(n, hp, wp, c)[:, ph:ph + h, pw:pw + w]
            gx = xp.ascontiguousarray(gx_pad.transpose(0, 3, 1, 2))
        gb = g.sum(axis=(0, 2, 3)) if need_b else None
        return gx, gw, None, gb


def masked_conv2d(x, weight, mask, bias=None, padding=0, dilation=1):
    """conv2d(x, weight * mask, bias, stride=1, padding, dilation), computing only the kernel
    taps where ``mask`` (an array of the weight's shape, not trained) is nonzero."""
    inputs = (x, weight, mask) if bias is None else (x, weight, mask, bias)
    return MaskedConv2d(padding, dilation)(*inputs)
