"""PixelCNN and Gated PixelCNN: exact-likelihood autoregressive models of images.

Model (van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent Neural Networks", Eq. 1-2).
An image x with C channels of H x W pixels, each value in {0, ..., V-1} (V = ``n_values``: 2 for
binary images, 256 for 8-bit ones, K for VQ-VAE codes), is generated pixel by pixel in raster order
(row by row, left to right) and, within a pixel, channel by channel:

    p(x | y) = prod_{i=1}^{HW} prod_{c=1}^{C} p(x_{i,c} | x_{<i}, x_{i,<c}, y),

each factor a categorical over V values: the softmax of the V logits the network outputs at
(i, c). ``y`` is an optional class label (``n_classes``). The input enters one-hot, so the first
layer sees V indicator channels per image channel.

Causality by masking. A masked convolution zeroes the kernel taps below and to the right of its
centre. The first layer (mask "A") also drops the centre pixel, so output i never sees x_i; later
layers (mask "B") keep the centre, which by then only carries information from x_{<i}. With C > 1
channels the centre tap is split into channel groups (R before G before B, Sec. 3.4).

Objective: maximum likelihood. log p(x | y) is a sum of V-way log-softmaxes, computed for all pixels
in one pass (training is parallel, sampling is sequential):

    loss = mean_n [-log p(x_n | y_n)]   (nats per image),   bits/dim = -log p(x) / (C H W log 2).

PixelCNN (Sec. 3.4, Fig. 5): a k x k mask-A convolution, then residual blocks
x + [ReLU, 1x1 (2h -> h), ReLU, 3x3 mask B (h -> h), ReLU, 1x1 (h -> 2h)](x), then ReLU, 1x1, ReLU,
1x1 to C*V logits. Its receptive field has a blind spot: stacked masked kernels never reach
pixels up and to the right beyond the diagonal (e.g. the pixel one row up, two columns right).

Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders",
Eq. 2-4, Fig. 2). Each layer has a gated activation with class bias V^T y (one-hot y):

    out = tanh(W_f * x + V_f^T y)  (.)  sigmoid(W_g * x + V_g^T y)

and two stacks that remove the blind spot: the vertical stack v (kernel (k//2 + 1) x k, covering
the rows above and the current row, all columns within reach) and the horizontal stack h (kernel
1 x k masked to the current row's left part). The vertical stack feeds the horizontal one only
after a shift down by one row, so pixel i sees everything above it within reach and everything to
its left in its own row, and nothing after it:

    v_pre = W_v * v,          v' = gate(v_pre)
    h_pre = W_h * h + 1x1(shift_down(v_pre)),   h' = h + 1x1(gate(h_pre))   (no residual in layer 1)

Sampling: ancestral, in raster order, x_{i,c} ~ softmax(logits_{i,c} / temperature). The logits at
pixel (r, c) depend only on the pixels within the receptive field (``receptive_field`` = rows up,
columns left, columns right), all of them already drawn, so each step runs the network on that
window only: a (up + 1) x (left + right + 1) crop instead of the whole image. Because the
receptive field composes layer by layer, the zero padding at the crop's edges only replaces pixels
the current logits do not depend on: the window gives the same logits as the full image.
"""
import math
import numbers

import numpy as np

from .. import backend
from .. import functional as F
from ..autograd import Tensor, no_grad
from ..distributions import Categorical
from ..nn import Conv2d, Embedding, MaskedConv2d, Module, ModuleList, ReLU, Sequential, init
from ..random import get_generator
from ..validation import check_int

__all__ = ["PixelCNN", "GatedPixelCNN"]


class AutoregressiveImageModel(Module):
    """What PixelCNN and GatedPixelCNN share: input checks, log-likelihood, loss and samplers.

    A subclass builds its layers, sets ``receptive_field`` = (rows up, columns left, columns
    right) and implements ``network(h, y)``: one-hot input (N, C*V, H, W) -> logits (N, V, C, H, W).
    """

    def __init__(self, in_channels, n_values, n_classes):
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", minimum=1)
        self.n_values = check_int(n_values, "n_values", minimum=2)
        self.n_classes = None if n_classes is None else check_int(n_classes, "n_classes", minimum=1)

    def _class_embedding(self, n_features):
        """V^T y for one layer: a zero-initialised table (n_classes, n_features), or None."""
        if self.n_classes is None:
            return None
        table = Embedding(self.n_classes, n_features)
        init.zeros_(table.weight)
        return table

    def _logits(self, out):
        """Network output (N, C*V, H, W), channel c*V + v -> logits (N, V, C, H, W)."""
        N, _, H, W = out.shape
        return out.reshape(N, self.in_channels, self.n_values, H, W).permute(0, 2, 1, 3, 4)

    # -- input checks
    def _xp(self):
        return backend.get_array_module(next(self.parameters()))

    def check_x(self, x, name="x"):
        """``x`` as an int64 array (N, C, H, W) on the model's device with values in [0, V)."""
        data = x.data if isinstance(x, Tensor) else x
        if not hasattr(data, "shape"):
            data = np.asarray(data)
        data = backend.to_device(data, self.device)
        xp = backend.get_array_module(data)
        C, V = self.in_channels, self.n_values
        if data.ndim != 4 or data.shape[1] != C or data.shape[0] == 0:
            raise ValueError(f"{name} must have shape (N, {C}, H, W) with N >= 1, got {tuple(data.shape)}")
        if data.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold integers in [0, {V}), got dtype {data.dtype}")
        if data.dtype.kind == "f" and not bool((data == xp.floor(data)).all()):
            raise ValueError(f"{name} must hold whole numbers in [0, {V}) (binarise or quantise "
                             f"images first), got non-integer values such as "
                             f"{float(data[data != xp.floor(data)][0])}")
        low, high = float(data.min()), float(data.max())
        if low < 0 or high >= V:
            raise ValueError(f"{name} must hold values in [0, {V}) for a model with n_values={V}, "
                             f"got values in [{low:g}, {high:g}]")
        return data.astype(np.int64, copy=False)

    def check_y(self, y, n):
        """Class labels as an int64 array (n,), or None for an unconditional model."""
        if self.n_classes is None:
            if y is not None:
                raise ValueError("this model is unconditional (n_classes=None) but y was given")
            return None
        if y is None:
            raise ValueError(f"this model is class-conditional (n_classes={self.n_classes}): "
                             f"pass the labels y")
        data = y.data if isinstance(y, Tensor) else y
        data = backend.to_device(data if hasattr(data, "shape") else np.asarray(data), self.device)
        xp = backend.get_array_module(data)
        if data.ndim == 0:
            data = xp.full(n, data)
        if data.shape != (n,) or data.dtype.kind not in "iu":
            raise ValueError(f"y must be {n} integer labels (shape ({n},)), got dtype "
                             f"{data.dtype} and shape {tuple(data.shape)}")
        if int(data.min()) < 0 or int(data.max()) >= self.n_classes:
            raise ValueError(f"y must hold labels in [0, {self.n_classes}), got values in "
                             f"[{int(data.min())}, {int(data.max())}]")
        return data.astype(np.int64, copy=False)

    def one_hot(self, x):
        """Integer x (N, C, H, W) -> float tensor (N, C*V, H, W) whose channel c*V + v is [x_c == v]."""
        xp = backend.get_array_module(x)
        N, C, H, W = x.shape
        values = xp.arange(self.n_values).reshape(1, 1, -1, 1, 1)
        dtype = next(self.parameters()).dtype
        return Tensor((x[:, :, None] == values).astype(dtype).reshape(N, C * self.n_values, H, W))

    # -- likelihood
    def network(self, h, y=None):
        raise NotImplementedError

    def forward(self, x, y=None):
        """Logits (N, V, C, H, W) of every conditional p(x_{i,c} | x_{<i}, x_{i,<c}, y)."""
        x = self.check_x(x)
        return self.network(self.one_hot(x), self.check_y(y, x.shape[0]))

    def log_prob(self, x, y=None):
        """log p(x | y) in nats, one value per image (N,): the sum of the conditionals' log-softmaxes."""
        x = self.check_x(x)
        logits = self.network(self.one_hot(x), self.check_y(y, x.shape[0]))
        return -F.cross_entropy(logits, x, reduction="none").sum(axis=(1, 2, 3))

    def loss(self, x, y=None):
        """Mean negative log-likelihood in nats per image."""
        return -self.log_prob(x, y).mean()

    def bits_per_dim(self, x, y=None):
        """-log2 p(x | y) / (C H W) per image (N,): the code length per pixel value."""
        x = self.check_x(x)
        return -self.log_prob(x, y) / (math.prod(x.shape[1:]) * math.log(2))

    # -- sampling
    def sample(self, n, shape, y=None, temperature=1.0, random_state=None, window=True):
        """``n`` images of ``shape`` (H, W) or (C, H, W) by ancestral sampling in raster order.

        ``y``: a label or n labels (class-conditional models). ``temperature`` divides the logits
        (< 1: sharper). ``window=False`` reruns the network on the whole image at every step (the
        naive sampler, for checking). Returns an int64 tensor (n, C, H, W).
        """
        n = check_int(n, "n", minimum=1)
        shape = tuple(shape)
        if len(shape) == 2:
            shape = (self.in_channels,) + shape
        if len(shape) != 3 or shape[0] != self.in_channels or min(shape) < 1:
            raise ValueError(f"shape must be (H, W) or ({self.in_channels}, H, W) with positive "
                             f"sizes, got {shape}")
        x = self._xp().zeros((n,) + shape, dtype=np.int64)
        return self._draw(x, 0, self.check_y(y, n), temperature, random_state, window)

    def complete(self, x, n_rows, y=None, temperature=1.0, random_state=None, window=True):
        """Keep the first ``n_rows`` rows of the images ``x`` (N, C, H, W) and sample the rest."""
        x = self.check_x(x).copy()
        n_rows = check_int(n_rows, "n_rows", minimum=0)
        if n_rows > x.shape[2]:
            raise ValueError(f"n_rows={n_rows} exceeds the image height {x.shape[2]}")
        return self._draw(x, n_rows, self.check_y(y, x.shape[0]), temperature, random_state, window)

    def _draw(self, x, first_row, y, temperature, random_state, window):
        """Fill rows first_row.. of x in place, pixel by pixel and channel by channel."""
        if not (isinstance(temperature, numbers.Real) and temperature > 0):
            raise ValueError(f"temperature must be a positive number, got {temperature!r}")
        xp = backend.get_array_module(x)
        rng = get_generator(random_state, xp)
        _, C, H, W = x.shape
        up, left, right = self.receptive_field
        with no_grad():
            for r in range(first_row, H):
                for c in range(W):
                    # the crop that pixel (r, c)'s logits depend on, or the whole image
                    top, c0 = (max(0, r - up), max(0, c - left)) if window else (0, 0)
                    c1 = min(W, c + right + 1) if window else W
                    crop = x[:, :, top:r + 1, c0:c1] if window else x  # a view: sees each new channel
                    for ch in range(C):
                        logits = self.network(self.one_hot(crop), y).data[:, :, ch, r - top, c - c0]
                        p = Categorical(logits=logits / temperature)
                        x[:, ch, r, c] = p.sample(generator=rng).data
        return Tensor(x)


# --------------------------------------------------------------------------- PixelCNN

class ResidualBlock(Module):
    """x + [ReLU, 1x1, ReLU, 3x3 mask B, ReLU, 1x1](x) (+ class bias), PixelRNN paper Fig. 5."""

    def __init__(self, channels, channel_groups, class_embedding):
        super().__init__()
        mid = channels // 2
        self.reduce = MaskedConv2d(channels, mid, 1, "B", channel_groups=channel_groups)
        self.conv = MaskedConv2d(mid, mid, 3, "B", channel_groups=channel_groups)
        self.expand = MaskedConv2d(mid, channels, 1, "B", channel_groups=channel_groups)
        self.class_bias = class_embedding

    def forward(self, x, y=None):
        a = self.conv(F.relu(self.reduce(F.relu(x))))
        if y is not None:
            a = a + self.class_bias(y)[:, :, None, None]
        return x + self.expand(F.relu(a))


class PixelCNN(AutoregressiveImageModel):
    """PixelCNN with a ``kernel_size`` mask-A layer and ``n_layers - 1`` residual blocks.

    ``hidden_channels`` (2h in the paper) is the width of the residual stream; it must be a
    multiple of 2 * in_channels. ``n_classes``: class-conditional model p(x | y).
    """

    def __init__(self, in_channels=1, n_values=2, hidden_channels=64, n_layers=8, kernel_size=7,
                 n_classes=None):
        super().__init__(in_channels, n_values, n_classes)
        check_int(n_layers, "n_layers", minimum=1)
        C, V = self.in_channels, self.n_values
        if check_int(hidden_channels, "hidden_channels", minimum=2) % (2 * C):
            raise ValueError(f"hidden_channels must be a multiple of 2 * in_channels = {2 * C}, "
                             f"got {hidden_channels}")
        self.input_conv = MaskedConv2d(C * V, hidden_channels, kernel_size, "A", channel_groups=C)
        self.input_class_bias = self._class_embedding(hidden_channels)
        self.blocks = ModuleList([
            ResidualBlock(hidden_channels, C, self._class_embedding(hidden_channels // 2))
            for _ in range(n_layers - 1)])
        self.output = Sequential(
            ReLU(), MaskedConv2d(hidden_channels, hidden_channels, 1, "B", channel_groups=C),
            ReLU(), MaskedConv2d(hidden_channels, C * V, 1, "B", channel_groups=C))
        kh, kw = self.input_conv.kernel_size
        self.receptive_field = (kh // 2 + n_layers - 1,) + (kw // 2 + n_layers - 1,) * 2

    def network(self, h, y=None):
        x = self.input_conv(h)
        if y is not None:
            x = x + self.input_class_bias(y)[:, :, None, None]
        for block in self.blocks:
            x = block(x, y)
        return self._logits(self.output(x))


# --------------------------------------------------------------------------- Gated PixelCNN

def gate(a, channel_groups):
    """tanh(a_f) * sigmoid(a_g), with a_f and a_g the two halves of every channel group of a."""
    N, two_h, H, W = a.shape
    a = a.reshape(N, channel_groups, 2, two_h // (2 * channel_groups), H, W)
    return (F.tanh(a[:, :, 0]) * F.sigmoid(a[:, :, 1])).reshape(N, two_h // 2, H, W)


def shift_down(a):
    """Move every row one down (row 0 becomes zeros): row r then holds what was at row r - 1."""
    return F.pad(a, ((0, 0), (0, 0), (1, 0), (0, 0)))[:, :, :-1]


class GatedLayer(Module):
    """One gated layer with vertical and horizontal stacks (Fig. 2 of the Gated PixelCNN paper)."""

    def __init__(self, in_channels, channels, kernel_size, first, channel_groups, class_embeddings):
        super().__init__()
        p = kernel_size // 2
        self.groups, self.first = channel_groups, first
        # rows r-p..r (padding p above and below, then keep the first H output rows), columns c-p..c+p
        self.vertical = Conv2d(in_channels, 2 * channels, (p + 1, kernel_size), padding=(p, p))
        # row r, columns c-p..c (c-p..c-1 in the first layer)
        self.horizontal = MaskedConv2d(in_channels, 2 * channels, (1, kernel_size),
                                       "A" if first else "B", channel_groups=channel_groups)
        self.vertical_to_horizontal = Conv2d(2 * channels, 2 * channels, 1)
        self.horizontal_out = MaskedConv2d(channels, channels, 1, "B", channel_groups=channel_groups)
        if class_embeddings is not None:
            self.class_v, self.class_h = class_embeddings

    def forward(self, v, h, y=None):
        v_pre = self.vertical(v)[:, :, :v.shape[2]]
        h_pre = self.horizontal(h) + self.vertical_to_horizontal(shift_down(v_pre))
        if y is not None:
            v_pre = v_pre + self.class_v(y)[:, :, None, None]
            h_pre = h_pre + self.class_h(y)[:, :, None, None]
        h_out = self.horizontal_out(gate(h_pre, self.groups))
        return gate(v_pre, self.groups), h_out if self.first else h + h_out


class GatedPixelCNN(AutoregressiveImageModel):
    """Gated PixelCNN: ``n_layers`` gated layers (the first with ``kernel_size``, the others 3),
    ``hidden_channels`` (a multiple of in_channels) per stack, then ReLU, 1x1, ReLU, 1x1."""

    def __init__(self, in_channels=1, n_values=2, hidden_channels=64, n_layers=8, kernel_size=7,
                 n_classes=None):
        super().__init__(in_channels, n_values, n_classes)
        check_int(n_layers, "n_layers", minimum=1)
        C, V = self.in_channels, self.n_values
        if check_int(hidden_channels, "hidden_channels", minimum=1) % C:
            raise ValueError(f"hidden_channels must be a multiple of in_channels = {C}, got "
                             f"{hidden_channels}")
        if check_int(kernel_size, "kernel_size", minimum=1) % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        two_h = 2 * hidden_channels
        self.layers = ModuleList([
            GatedLayer(C * V if l == 0 else hidden_channels, hidden_channels,
                       kernel_size if l == 0 else 3, l == 0, C,
                       None if n_classes is None else
                       (self._class_embedding(two_h), self._class_embedding(two_h)))
            for l in range(n_layers)])
        self.output = Sequential(
            ReLU(), MaskedConv2d(hidden_channels, hidden_channels, 1, "B", channel_groups=C),
            ReLU(), MaskedConv2d(hidden_channels, C * V, 1, "B", channel_groups=C))
        reach = kernel_size // 2 + n_layers - 1
        self.receptive_field = (reach + 1, reach, reach)

    def network(self, h, y=None):
        v = h
        for layer in self.layers:
            v, h = layer(v, h, y)
        return self._logits(self.output(h))
