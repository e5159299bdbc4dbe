"""PixelCNN and Gated PixelCNN: exact-likelihood autoregressive models of images.

Lecture deck 002 (PixelRNN and PixelCNN, "Improving PixelCNN performance: gated convolutional
layers"). Papers: van den Oord, Kalchbrenner & Kavukcuoglu (2016a), "Pixel Recurrent Neural
Networks"; van den Oord et al. (2016b), "Conditional Image Generation with PixelCNN Decoders".
Where minigen follows the papers instead of the slide: the slide's "dependency on previous pixels"
is made exact by masks (type A first, B after), and each conditional is a V-way softmax (Sec. 5.3
of 2016a), not a continuous density.

Model (2016a, Eq. 1-2). An image x with C channels of H x W pixels, each value in {0, ..., V-1}
(V = ``n_values``: 2 for binary images, 256 for 8-bit ones, K for VQ-VAE codes), is generated
pixel by pixel in raster order (row by row, left to right) and, within a pixel, channel by
channel:

    p(x | y, s) = prod_{i=1}^{HW} prod_{c=1}^{C} p(x_{i,c} | x_{<i}, x_{i,<c}, y, s),

each factor a categorical over V values: the softmax of the V logits the network outputs at
(i, c). The input enters one-hot, so the first layer sees V indicator channels per image channel.
Two optional conditions (2016b, Sec. 2.3): ``y``, a class label (``n_classes``), enters every
layer as a learnt bias V^T y; ``s``, a conditioning map (N, ``cond_channels``, H, W) (for example
VQ-VAE-2's embedded, upsampled top codes), is the paper's location-dependent h: it passes once
through ``cond_layers`` ordinary (unmasked) 3x3 convolutions with ReLUs, m(s) (Eq. 5's m), and
m(s) enters every layer through a 1x1 convolution V * m(s). m(s) does not depend on x, so it may
look anywhere in the map (below and to the right too) without breaking causality in x: output i
sees s within its receptive field (below) widened by ``cond_layers`` pixels on every side.

Causality by masking. A masked convolution zeroes the kernel taps below and to the right of its
centre. The first layer (mask "A") also drops the centre pixel, so output i never sees x_i; later
layers (mask "B") keep the centre, which by then only carries information from x_{<i}. With C > 1
channels the centre tap is split into channel groups (R before G before B, 2016a Sec. 3.4).

Objective: maximum likelihood. log p(x) is a sum of V-way log-softmaxes, computed for all pixels
in one pass (training is parallel, sampling is sequential):

    loss = mean_n [-log p(x_n)]   (nats per image),   bits/dim = -log p(x) / (C H W log 2).

``forward(x, y, cond)`` returns the logits (N, V, C, H, W) of every conditional.

PixelCNN++'s output (Salimans et al. 2017, deck 002): with ``n_mixtures`` K, each conditional
is instead a ``DiscretizedLogisticMixture`` of K logistics over the V levels, and the network
outputs its 3K parameters per pixel and channel (``forward`` then returns (N, 3K, C, H, W)):
far fewer outputs than 256 logits, and neighbouring levels share probability mass.

PixelCNN (2016a, Sec. 3.4, Fig. 5): a k x k mask-A convolution, then residual blocks
x + [ReLU, 1x1 (2h -> h), ReLU, 3x3 mask B (h -> h), ReLU, 1x1 (h -> 2h)](x), then ReLU, 1x1, ReLU,
1x1 to C*V logits. Its receptive field has a blind spot. A path from input to output adds one
kernel offset per layer. The k x k mask-A layer steps a >= 1 rows up with any column shift up to
p = k // 2 to the right (or stays in the row and steps left); a 3x3 mask-B layer can step one
column right only by also stepping one row up. So pixel (r, c) sees (r - a, c + b), a >= 1 rows
up and b >= 1 columns to the right, only when b <= p + min(a - 1, n_layers - 1): the pixels beyond
that diagonal (b >= p + a), though inside the receptive field's bounding box, are never seen. For a
3x3 first layer that is the pixel one row up and two columns right; for the default 7x7, one row up
and four columns right, two up and five right, and so on.

Gated PixelCNN (2016b, Eq. 2-5, Fig. 2). Each layer has a gated activation with the conditions'
biases:

    out = tanh(W_f * x + V_f^T y + V_f * m(s))  (.)  sigmoid(W_g * x + V_g^T y + V_g * m(s))

and two stacks that remove the blind spot: the vertical stack v (kernel (k//2 + 1) x k, covering
the rows above and the current row, all columns within reach) and the horizontal stack h (kernel
1 x k masked to the current row's left part). The vertical stack feeds the horizontal one only
after a shift down by one row, so pixel i sees everything above it within reach and everything to
its left in its own row, and nothing after it:

    v_pre = W_v * v,          v' = gate(v_pre)
    h_pre = W_h * h + 1x1(shift_down(v_pre)),   h' = h + 1x1(gate(h_pre))   (no residual in layer 1)

Sampling: ancestral, in raster order, x_{i,c} ~ softmax(logits_{i,c} / temperature), randomness
only from ``generator``. The logits at pixel (r, c) depend only on the pixels within the
receptive field (``receptive_field`` = rows up, columns left, columns right; derived beside each
model's constructor), all of them already drawn, so each step runs the network on that window
only: a (up + 1) x (left + right + 1) crop instead of the whole image (m(s) is computed once on the
whole map and cropped alike). Because the receptive field composes layer by layer, the zero padding
at the crop's edges only replaces pixels the current logits do not depend on: the window gives the
same logits as the full image (tested against the full recompute, ``window=False``).
"""
import math
import numbers

import numpy as np

from .. import backend
from .. import functional as F
from ..autograd import Function, Tensor, no_grad
from ..distributions import Categorical, DiscretizedLogisticMixture
from ..nn import Conv2d, Embedding, MaskedConv2d, Module, ModuleList, ReLU, Sequential, init
from ..numerics import sigmoid
from ..random import get_generator
from ..validation import check_int, numeric_array
from .pixelcnn_fast_sampling import draw_cached

__all__ = ["PixelCNN", "GatedPixelCNN"]


def add_conditions(a, y, s, class_bias, cond_projection):
    """a + V^T y + V * m(s) for a layer's pre-activation a, each term where its condition is given."""
    if y is not None:
        a = a + class_bias(y)[:, :, None, None]
    if s is not None:
        a = a + cond_projection(s)
    return a


class AutoregressiveImageModel(Module):
    """What PixelCNN and GatedPixelCNN share: input checks, conditions, log-likelihood, loss and
    samplers.

    A subclass builds its layers, sets ``receptive_field`` = (rows up, columns left, columns
    right) and implements ``network(h, y, s)``: one-hot input (N, C*V, H, W), labels (N,) or
    None, conditioning features m(s) (N, F, H, W) or None -> logits (N, V, C, H, W).
    """

    def __init__(self, in_channels, n_values, n_classes, cond_channels, cond_layers, hidden_channels,
                 n_mixtures=None):
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", minimum=1)
        self.n_values = check_int(n_values, "n_values", minimum=2)
        self.n_mixtures = None if n_mixtures is None else check_int(n_mixtures, "n_mixtures", minimum=1)
        # numbers the network outputs per pixel and channel: V logits, or a mixture's 3K parameters
        self.n_outputs = self.n_values if self.n_mixtures is None else 3 * self.n_mixtures
        self.n_classes = None if n_classes is None else check_int(n_classes, "n_classes", minimum=1)
        self.cond_channels = None if cond_channels is None else \
            check_int(cond_channels, "cond_channels", minimum=1)
        cond_layers = check_int(cond_layers, "cond_layers", minimum=0)
        if self.cond_channels is not None:
            # m(s): cond_layers unmasked 3x3 convolutions (the map is known in full: no mask)
            widths = [self.cond_channels] + [hidden_channels] * cond_layers
            self.condition = Sequential(*[m for a, b in zip(widths, widths[1:])
                                          for m in (Conv2d(a, b, 3, padding=1), ReLU())])
            self.cond_features = widths[-1]

    def _class_embedding(self, n_features):
        """V^T y for one layer: a zero-initialised table (n_classes, n_features), or None."""
        if self.n_classes is None:
            return None
        table = Embedding(self.n_classes, n_features)
        init.zeros_(table.weight)
        return table

    def _cond_projection(self, n_features):
        """V * m(s) for one layer: a 1x1 convolution from the conditioning features, or None."""
        return None if self.cond_channels is None else Conv2d(self.cond_features, n_features, 1)

    def _output_logits(self, h):
        """The output layers ``self.output`` (ReLU, 1x1, ReLU, 1x1) on h, each ReLU fused into the
        convolution after it, reshaped by ``_logits``."""
        _, conv1, _, conv2 = self.output
        return self._logits(conv2(conv1(h, relu_input=True), relu_input=True))

    def _logits(self, out):
        """Network output (N, C*P, H, W), channel c*P + v -> (N, P, C, H, W), P = ``n_outputs``:
        the V logits, or with ``n_mixtures`` K the 3K parameters of a discretised logistic mixture."""
        N, _, H, W = out.shape
        return out.reshape(N, self.in_channels, self.n_outputs, H, W).permute(0, 2, 1, 3, 4)

    def pixel_distribution(self, params, temperature=1.0):
        """The distribution of pixel values for network outputs ``params`` (..., P): a Categorical
        over the V values, or (``n_mixtures``) PixelCNN++'s ``DiscretizedLogisticMixture`` over V
        levels with parameters [mixture logits, means, log scales] (Salimans et al. 2017). A
        temperature T divides the logits and, for the mixture, multiplies the scales."""
        if self.n_mixtures is None:
            return Categorical(logits=params / temperature)
        K = self.n_mixtures
        return DiscretizedLogisticMixture(params[..., :K] / temperature, params[..., K:2 * K],
                                          params[..., 2 * K:] + math.log(temperature),
                                          n_levels=self.n_values, validate_args=False)

    # -- input checks
    def _xp(self):
        return backend.get_array_module(next(self.parameters()))

    def check_x(self, x, name="x"):
        """``x`` as an int64 array (N, C, H, W) on the model's device with values in [0, V)."""
        data = backend.to_device(numeric_array(x, name), self.device)
        xp = backend.get_array_module(data)
        C, V = self.in_channels, self.n_values
        if data.ndim != 4 or data.shape[1] != C or min(data.shape, default=0) == 0:
            raise ValueError(f"{name} must have shape (N, {C}, H, W) with N, H, W >= 1, got "
                             f"{tuple(data.shape)}")
        if data.dtype.kind == "f":
            if not bool(xp.isfinite(data).all()):
                raise ValueError(f"{name} must hold finite values in [0, {V}), got "
                                 f"{int(xp.isnan(data).sum())} NaN and {int(xp.isinf(data).sum())} "
                                 f"infinite entries")
            if not bool((data == xp.floor(data)).all()):
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
        data = backend.to_device(numeric_array(y, "y"), self.device)
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

    def check_cond(self, cond, shape):
        """The conditioning map as a float tensor (N, cond_channels, H, W) for images of ``shape``
        (N, C, H, W), or None for a model without spatial conditioning. A tensor map on the
        model's device and dtype is passed on as it is, so gradients reach what computed it."""
        if self.cond_channels is None:
            if cond is not None:
                raise ValueError("this model has no spatial conditioning (cond_channels=None) but "
                                 "cond was given")
            return None
        if cond is None:
            raise ValueError(f"this model is conditioned on a map (cond_channels="
                             f"{self.cond_channels}): pass cond of shape (N, {self.cond_channels}, H, W)")
        data = backend.to_device(numeric_array(cond, "cond"), self.device)
        expected = (shape[0], self.cond_channels) + tuple(shape[2:])
        if tuple(data.shape) != expected:
            raise ValueError(f"cond must have shape {expected} (one {self.cond_channels}-channel map "
                             f"per image, of the images' size), got {tuple(data.shape)}")
        xp = backend.get_array_module(data)
        if not bool(xp.isfinite(data).all()):
            raise ValueError("cond must hold finite values, got NaN or infinite entries")
        dtype = next(self.parameters()).dtype
        if isinstance(cond, Tensor) and data is cond.data and data.dtype == dtype:
            return cond  # keep its graph: the map may come from a network trained with this one
        return Tensor(data.astype(dtype, copy=False))

    def features(self, cond):
        """m(s): the (checked) conditioning map tensor through the unmasked convolutions, or None."""
        return None if cond is None else self.condition(cond)

    def one_hot(self, x):
        """Integer x (N, C, H, W) -> float tensor (N, C*V, H, W) whose channel c*V + v is [x_c == v]."""
        xp = backend.get_array_module(x)
        N, C, H, W = x.shape
        values = xp.arange(self.n_values).reshape(1, 1, -1, 1, 1)
        dtype = next(self.parameters()).dtype
        return Tensor((x[:, :, None] == values).astype(dtype).reshape(N, C * self.n_values, H, W))

    # -- likelihood
    def network(self, h, y=None, s=None):
        raise NotImplementedError

    def _checked_logits(self, x, y, cond):
        """(x as int64 array, logits) after checking x, y and cond."""
        x = self.check_x(x)
        s = self.features(self.check_cond(cond, x.shape))
        return x, self.network(self.one_hot(x), self.check_y(y, x.shape[0]), s)

    def forward(self, x, y=None, cond=None):
        """Logits (N, V, C, H, W) of every conditional p(x_{i,c} | x_{<i}, x_{i,<c}, y, s)."""
        return self._checked_logits(x, y, cond)[1]

    def log_prob(self, x, y=None, cond=None):
        """log p(x | y, s) in nats, one value per image (N,): the sum of the conditionals'
        log-softmaxes (or, with ``n_mixtures``, discretised logistic mixtures). ``cond``: the
        conditioning map s (models with ``cond_channels``)."""
        x, logits = self._checked_logits(x, y, cond)
        if self.n_mixtures is None:
            return -F.cross_entropy(logits, x, reduction="none").sum(axis=(1, 2, 3))
        params = logits.permute(0, 2, 3, 4, 1)  # (N, C, H, W, 3K)
        return self.pixel_distribution(params).log_prob(x).sum(axis=(1, 2, 3))

    def loss(self, x, y=None, cond=None):
        """Mean negative log-likelihood in nats per image."""
        return -self.log_prob(x, y, cond).mean()

    @no_grad()
    def bits_per_dim(self, x, y=None, cond=None):
        """-log2 p(x | y, s) / (C H W) per image (N,): the code length per pixel value. An
        evaluation helper: it records no graph (use ``loss`` to train)."""
        x = self.check_x(x)
        return -self.log_prob(x, y, cond) / (math.prod(x.shape[1:]) * math.log(2))

    # -- sampling
    def sample(self, n, shape, y=None, cond=None, temperature=1.0, generator=None, window=True,
               cached=False):
        """``n`` images of ``shape`` (H, W) or (C, H, W) by ancestral sampling in raster order.

        ``y``: a label or n labels (class-conditional models); ``cond``: n conditioning maps
        (n, cond_channels, H, W). ``temperature`` divides the logits (< 1: sharper).
        ``generator``: the source of randomness (None: minigen's global generator, an int: a new
        seeded one). ``window=False`` reruns the network on the whole image at every step (the
        naive sampler, for checking). ``cached=True`` keeps every layer's
        activations and computes one pixel's column per step (``pixelcnn_fast_sampling``): the
        same images, far faster. Returns an int64 tensor (n, C, H, W).
        """
        n = check_int(n, "n", minimum=1)
        if not isinstance(shape, (tuple, list)) or not all(
                isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in shape):
            raise TypeError(f"shape must be a tuple of ints (H, W) or ({self.in_channels}, H, W), "
                            f"got {shape!r}")
        shape = tuple(int(d) for d in shape)
        if len(shape) == 2:
            shape = (self.in_channels,) + shape
        if len(shape) != 3 or shape[0] != self.in_channels or min(shape) < 1:
            raise ValueError(f"shape must be (H, W) or ({self.in_channels}, H, W) with positive "
                             f"sizes, got {shape}")
        x = self._xp().zeros((n,) + shape, dtype=np.int64)
        return self._draw(x, 0, self.check_y(y, n), self.check_cond(cond, x.shape), temperature,
                          generator, window, cached)

    def complete(self, x, n_rows, y=None, cond=None, temperature=1.0, generator=None, window=True,
                 cached=False):
        """Keep the first ``n_rows`` rows of the images ``x`` (N, C, H, W) and sample the rest."""
        x = self.check_x(x).copy()
        n_rows = check_int(n_rows, "n_rows", minimum=0)
        if n_rows > x.shape[2]:
            raise ValueError(f"n_rows={n_rows} exceeds the image height {x.shape[2]}")
        return self._draw(x, n_rows, self.check_y(y, x.shape[0]), self.check_cond(cond, x.shape),
                          temperature, generator, window, cached)

    def _draw(self, x, first_row, y, cond, temperature, generator, window, cached=False):
        """Fill rows first_row.. of x in place, pixel by pixel and channel by channel."""
        if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) \
                or not 0 < temperature < math.inf:
            raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
        xp = backend.get_array_module(x)
        rng = get_generator(generator, xp)
        if cached:
            with no_grad():
                return Tensor(draw_cached(self, x, first_row, y, self.features(cond), temperature, rng))
        _, C, H, W = x.shape
        up, left, right = self.receptive_field
        with no_grad():
            s = self.features(cond)  # m(s) once, on the whole map; each window crops it
            for r in range(first_row, H):
                for c in range(W):
                    # the crop that pixel (r, c)'s logits depend on, or the whole image
                    top, c0 = (max(0, r - up), max(0, c - left)) if window else (0, 0)
                    c1 = min(W, c + right + 1) if window else W
                    crop = x[:, :, top:r + 1, c0:c1] if window else x  # a view: sees each new channel
                    s_crop = None if s is None else (s[:, :, top:r + 1, c0:c1] if window else s)
                    for ch in range(C):
                        out = self.network(self.one_hot(crop), y, s_crop).data[:, :, ch, r - top, c - c0]
                        p = self.pixel_distribution(Tensor(out), temperature)
                        x[:, ch, r, c] = p.sample(generator=rng).data
        return Tensor(x)


def check_odd_kernel(kernel_size):
    """A positive odd int: a masked kernel needs a centre pixel."""
    if check_int(kernel_size, "kernel_size", minimum=1) % 2 == 0:
        raise ValueError(f"kernel_size must be odd (a masked kernel needs a centre pixel), got "
                         f"{kernel_size}")
    return kernel_size


# --------------------------------------------------------------------------- PixelCNN

class ResidualBlock(Module):
    """x + [ReLU, 1x1, ReLU, 3x3 mask B, ReLU, 1x1](x) (+ class and map biases), 2016a Fig. 5."""

    def __init__(self, channels, channel_groups, class_embedding, cond_projection):
        super().__init__()
        mid = channels // 2
        self.reduce = MaskedConv2d(channels, mid, 1, "B", channel_groups=channel_groups)
        self.conv = MaskedConv2d(mid, mid, 3, "B", channel_groups=channel_groups)
        self.expand = MaskedConv2d(mid, channels, 1, "B", channel_groups=channel_groups)
        self.class_bias, self.cond_projection = class_embedding, cond_projection

    def forward(self, x, y=None, s=None):
        # each ReLU fused into the convolution after it (relu_input): the graph keeps no ReLU output
        a = self.conv(self.reduce(x, relu_input=True), relu_input=True)
        a = add_conditions(a, y, s, self.class_bias, self.cond_projection)
        return x + self.expand(a, relu_input=True)


class PixelCNN(AutoregressiveImageModel):
    """PixelCNN with a ``kernel_size`` (odd) mask-A layer and ``n_layers - 1`` residual blocks.

    ``hidden_channels`` (2h in the paper) is the width of the residual stream; it must be a
    multiple of 2 * in_channels. ``n_classes``: class-conditional model p(x | y).
    ``cond_channels``: a model p(x | s) conditioned on a map s (N, cond_channels, H, W) through
    ``cond_layers`` unmasked 3x3 convolutions (width ``hidden_channels``) and a 1x1 convolution
    into the first layer and every block. ``forward`` returns the logits (N, V, C, H, W).
    """

    def __init__(self, in_channels=1, n_values=2, hidden_channels=64, n_layers=8, kernel_size=7,
                 n_classes=None, cond_channels=None, cond_layers=2, n_mixtures=None):
        in_channels = check_int(in_channels, "in_channels", minimum=1)
        check_int(n_layers, "n_layers", minimum=1)
        check_odd_kernel(kernel_size)
        if check_int(hidden_channels, "hidden_channels", minimum=2) % (2 * in_channels):
            raise ValueError(f"hidden_channels must be a multiple of 2 * in_channels = "
                             f"{2 * in_channels}, got {hidden_channels}")
        super().__init__(in_channels, n_values, n_classes, cond_channels, cond_layers, hidden_channels,
                         n_mixtures)
        C, V = self.in_channels, self.n_values
        self.input_conv = MaskedConv2d(C * V, hidden_channels, kernel_size, "A", channel_groups=C)
        self.input_class_bias = self._class_embedding(hidden_channels)
        self.input_cond_projection = self._cond_projection(hidden_channels)
        self.blocks = ModuleList([
            ResidualBlock(hidden_channels, C, self._class_embedding(hidden_channels // 2),
                          self._cond_projection(hidden_channels // 2))
            for _ in range(n_layers - 1)])
        self.output = Sequential(
            ReLU(), MaskedConv2d(hidden_channels, hidden_channels, 1, "B", channel_groups=C),
            ReLU(), MaskedConv2d(hidden_channels, C * self.n_outputs, 1, "B", channel_groups=C))
        # Receptive field, derived. Output (r, c) of a stride-1 masked k x k layer (padding k//2)
        # reads input rows r - k//2 .. r (the mask zeroes the rows below, and in row r the columns
        # right of c) and columns c - k//2 .. c + k//2. A path through the stack picks one kernel
        # offset per layer and the offsets add, so the reaches add: the k x k mask-A layer gives
        # k//2 rows up and k//2 columns to either side; each of the n_layers - 1 blocks has one
        # 3x3 mask-B layer (1 row, 1 column each way; its 1x1s and the output 1x1s reach 0):
        #     up = k//2 + (n_layers - 1),   left = right = k//2 + (n_layers - 1).
        # Every dependence lies in that box (tested), though not every pixel of the box is a
        # dependence (the blind spot of the module docstring).
        reach = kernel_size // 2 + n_layers - 1
        self.receptive_field = (reach, reach, reach)

    def network(self, h, y=None, s=None):
        x = add_conditions(self.input_conv(h), y, s, self.input_class_bias,
                                 self.input_cond_projection)
        for block in self.blocks:
            x = block(x, y, s)
        return self._output_logits(x)


# --------------------------------------------------------------------------- Gated PixelCNN

class Gate(Function):
    """tanh(a_f) * sigmoid(a_g) in one op (``gate``), with its derivatives written out:

        d/da_f = g * sigmoid(a_g) * (1 - tanh(a_f)^2),
        d/da_g = g * tanh(a_f) * sigmoid(a_g) * (1 - sigmoid(a_g)).
    """

    def __init__(self, channel_groups):
        self.groups = channel_groups

    def forward(self, a):
        N, two_h, H, W = a.shape
        halves = a.reshape(N, self.groups, 2, two_h // (2 * self.groups), H, W)
        self.a_shape = halves.shape
        self.t = backend.get_array_module(a).tanh(halves[:, :, 0])
        self.s = sigmoid(halves[:, :, 1])
        return (self.t * self.s).reshape(N, two_h // 2, H, W)

    def backward(self, g):
        xp = backend.get_array_module(g)
        t, s = self.t, self.s
        g_s = g.reshape(t.shape) * s
        ga = xp.empty(self.a_shape, dtype=g.dtype)
        xp.multiply(g_s, 1 - t * t, out=ga[:, :, 0])
        g_s *= t
        xp.multiply(g_s, 1 - s, out=ga[:, :, 1])
        return ga.reshape(self.input_shapes[0])


def gate(a, channel_groups):
    """tanh(a_f) * sigmoid(a_g), with a_f and a_g the two halves of every channel group of a."""
    return Gate(channel_groups)(a)


def gate_reference(a, channel_groups):
    """``gate`` composed of minigen's tanh, sigmoid, slices and product (what Gate must equal)."""
    N, two_h, H, W = a.shape
    a = a.reshape(N, channel_groups, 2, two_h // (2 * channel_groups), H, W)
    return (F.tanh(a[:, :, 0]) * F.sigmoid(a[:, :, 1])).reshape(N, two_h // 2, H, W)


class ShiftDown(Function):
    """Every row one down, row 0 zeros (``shift_down``); backward shifts the gradient back up."""

    def forward(self, a):
        out = backend.get_array_module(a).empty_like(a)
        out[:, :, 0] = 0
        out[:, :, 1:] = a[:, :, :-1]
        return out

    def backward(self, g):
        ga = backend.get_array_module(g).empty_like(g)
        ga[:, :, :-1] = g[:, :, 1:]
        ga[:, :, -1] = 0
        return ga


def shift_down(a):
    """Move every row one down (row 0 becomes zeros): row r then holds what was at row r - 1."""
    return ShiftDown()(a)


def shift_down_reference(a):
    """``shift_down`` as zero padding above and a slice (what ShiftDown must equal)."""
    return F.pad(a, ((0, 0), (0, 0), (1, 0), (0, 0)))[:, :, :-1]


class GatedLayer(Module):
    """One gated layer with vertical and horizontal stacks (Fig. 2 of the Gated PixelCNN paper).

    ``forward`` runs every convolution through ``F.masked_conv2d``: the vertical one with its p
    rows of padding above only, so that it computes exactly the H rows kept (``Conv2d`` pads
    both sides and computes p rows more), the 1x1 ones as one GEMM per image; and the gate and
    the shift as single ops. ``reference`` is the same layer written plainly (Conv2d with a
    slice, the composed gate, pad and slice), which ``forward`` must equal (tested).
    """

    def __init__(self, in_channels, channels, kernel_size, first, channel_groups, class_embeddings,
                 cond_projections):
        super().__init__()
        p = kernel_size // 2
        self.groups, self.first = channel_groups, first
        # rows r-p..r, columns c-p..c+p: ``forward`` pads p rows above only; the module's own
        # padding (p above and below, then keep the first H output rows) is ``reference``'s
        self.vertical = Conv2d(in_channels, 2 * channels, (p + 1, kernel_size), padding=(p, p))
        # row r, columns c-p..c (c-p..c-1 in the first layer)
        self.horizontal = MaskedConv2d(in_channels, 2 * channels, (1, kernel_size),
                                       "A" if first else "B", channel_groups=channel_groups)
        self.vertical_to_horizontal = Conv2d(2 * channels, 2 * channels, 1)
        self.horizontal_out = MaskedConv2d(channels, channels, 1, "B", channel_groups=channel_groups)
        self.class_v, self.class_h = class_embeddings
        self.cond_v, self.cond_h = cond_projections

    def forward(self, v, h, y=None, s=None):
        p = self.vertical.padding[0]
        v_pre = F.masked_conv2d(v, self.vertical.weight, None, self.vertical.bias, ((p, 0), (p, p)))
        to_h = self.vertical_to_horizontal
        h_pre = self.horizontal(h) + F.masked_conv2d(shift_down(v_pre), to_h.weight, None, to_h.bias)
        return self._gated(v_pre, h_pre, h, y, s, gate)

    def reference(self, v, h, y=None, s=None):
        """``forward`` computed plainly (see the class docstring)."""
        v_pre = self.vertical(v)[:, :, :v.shape[2]]
        h_pre = self.horizontal.reference(h) + self.vertical_to_horizontal(shift_down_reference(v_pre))
        return self._gated(v_pre, h_pre, h, y, s, gate_reference)

    def _gated(self, v_pre, h_pre, h, y, s, gate_fn):
        v_pre = add_conditions(v_pre, y, s, self.class_v, self.cond_v)
        h_pre = add_conditions(h_pre, y, s, self.class_h, self.cond_h)
        h_out = self.horizontal_out(gate_fn(h_pre, self.groups))
        return gate_fn(v_pre, self.groups), (h_out if self.first else h + h_out)


class GatedPixelCNN(AutoregressiveImageModel):
    """Gated PixelCNN: ``n_layers`` gated layers (the first with ``kernel_size``, odd, the others
    3), ``hidden_channels`` (a multiple of in_channels) per stack, then ReLU, 1x1, ReLU, 1x1.

    ``n_classes`` and ``cond_channels`` / ``cond_layers`` as in ``PixelCNN``: the class bias and
    the 1x1 projection of m(s) enter both stacks of every layer. ``forward`` returns the logits
    (N, V, C, H, W).
    """

    def __init__(self, in_channels=1, n_values=2, hidden_channels=64, n_layers=8, kernel_size=7,
                 n_classes=None, cond_channels=None, cond_layers=2, n_mixtures=None):
        in_channels = check_int(in_channels, "in_channels", minimum=1)
        check_int(n_layers, "n_layers", minimum=1)
        check_odd_kernel(kernel_size)
        if check_int(hidden_channels, "hidden_channels", minimum=1) % in_channels:
            raise ValueError(f"hidden_channels must be a multiple of in_channels = {in_channels}, "
                             f"got {hidden_channels}")
        super().__init__(in_channels, n_values, n_classes, cond_channels, cond_layers, hidden_channels,
                         n_mixtures)
        C, V = self.in_channels, self.n_values
        two_h = 2 * hidden_channels
        self.layers = ModuleList([
            GatedLayer(C * V if l == 0 else hidden_channels, hidden_channels,
                       kernel_size if l == 0 else 3, l == 0, C,
                       (self._class_embedding(two_h), self._class_embedding(two_h)),
                       (self._cond_projection(two_h), self._cond_projection(two_h)))
            for l in range(n_layers)])
        self.output = Sequential(
            ReLU(), MaskedConv2d(hidden_channels, hidden_channels, 1, "B", channel_groups=C),
            ReLU(), MaskedConv2d(hidden_channels, C * self.n_outputs, 1, "B", channel_groups=C))
        # Receptive field, derived (p = kernel_size // 2; layer l = 1..n_layers).
        # Vertical stack: layer 1's (p+1) x k kernel makes v_1 at row r read rows r-p..r, columns
        # c-p..c+p; each later (2 x 3) layer adds 1 row up and 1 column each way, so v_pre of
        # layer l reads rows r-(p+l-1)..r and columns c-(p+l-1)..c+(p+l-1).
        # Horizontal stack: layer 1's 1 x k mask A reads row r, columns c-p..c-1; each later
        # 1 x 3 mask B adds 1 column left: h reads row r back to column c-(p+n_layers-1).
        # The link: h_pre of layer l adds shift_down(v_pre of layer l), which moves that window
        # one row down, i.e. one row further up from the reader's point of view: rows
        # r-1-(p+l-1)..r-1. It is largest in the last layer. With reach = p + n_layers - 1:
        #     up = reach + 1 (the shift's extra row),   left = right = reach,
        # and every pixel of the box above row r and of row r left of c is seen (tested exactly).
        reach = kernel_size // 2 + n_layers - 1
        self.receptive_field = (reach + 1, reach, reach)

    def network(self, h, y=None, s=None):
        v = h
        for layer in self.layers:
            v, h = layer(v, h, y, s)
        return self._output_logits(h)
