"""PixelRNN: Row LSTM and Diagonal BiLSTM, exact-likelihood autoregressive models of images.

Lecture deck 002 ("PixelRNN: generate image pixels starting from corner; dependency on previous
pixels modeled using an RNN (LSTM)"). Paper: van den Oord, Kalchbrenner & Kavukcuoglu (2016),
"Pixel Recurrent Neural Networks", Sec. 3.1-3.4. Where minigen follows the paper instead of the
slide: the slide's one LSTM along the raster sequence is the paper's two-dimensional LSTM layers,
which compute a whole row (Row LSTM) or a whole diagonal (Diagonal BiLSTM) per step.

Model. As PixelCNN (``minigen.models.pixelcnn``, same interface, same input checks, likelihood
and sampler): an image x with C channels of H x W pixels, values in {0, ..., V-1}, factorised in
raster order and channel order,

    p(x | y) = prod_i prod_c p(x_{i,c} | x_{<i}, x_{i,<c}, y),   each a V-way softmax (Eq. 1-2).

Network (2016, Sec. 3.4, Table 2): a k x k mask-A convolution (2h channels, h =
``hidden_channels``), then ``n_layers`` residual LSTM layers  x <- x + 1x1(LSTM(x)),  then ReLU,
1x1 mask B, ReLU, 1x1 mask B to C*V logits. Every LSTM layer computes its gates from an
input-to-state part (a masked convolution of the layer input, computed for the whole map at once)
and a state-to-state part (a convolution of the previous step's hidden state), Eq. 3:

    [o, f, i, g] = sigma(K^ss (*) h_{t-1} + K^is (*) x_t),   c_t = f . c_{t-1} + i . g,
    h_t = o . tanh(c_t)       (sigma = logistic for o, f, i and tanh for g).

The state-to-state convolution over a whole row or diagonal is a linear map of the flattened
state, so it is written as one banded matrix (built from the kernel, gradients flow to the
kernel) and the recurrence runs in the fused ``F.lstm_recurrence`` op: a Python loop over rows
or diagonals, never over the pixels within one.

Row LSTM (Sec. 3.1): steps are rows. K^is is a 1 x k convolution along the row, masked (mask B)
so pixel j sees only columns <= j of the layer input; K^ss a 1 x k convolution over the previous
row's hidden state. Pixel (r, c) so sees a triangle above it (it has a blind spot).

Diagonal BiLSTM (Sec. 3.2): the input map is skewed (row r shifted right by r), so each column of
the skewed map is a diagonal of the image. Steps are skewed columns. K^is is a 1x1 convolution,
K^ss a 2 x 1 convolution over the previous column: skewed (r, j) reads (r-1, j-1) and (r, j-1),
i.e. the pixel above and the pixel to the left. The output is unskewed. A second LSTM (own
weights) runs on the horizontally flipped map (right to left); its output, flipped back, is
shifted down one row before being added, so pixel (r, c) gets the right-to-left state of
(r-1, c), which has seen only rows <= r-1: causal, and together the two directions cover the
whole context of the last pixel (no blind spot, tested). One pixel escapes some others, by
causality alone: (r-1, W-1), the end of the previous row, enters the features only at positions
after it, and of those only (r, 0..c) precede (r, c); there only the k x k mask-A layer reaches
into row r-1, up to column c + k//2. So (r, c) does not see (r-1, W-1) when c + k//2 < W - 1
(tested exactly); the paper's figure 4 draws the field as complete.

Channels (Sec. 3.4): with C > 1 every masked layer splits its channels into C consecutive groups
(R before G before B). The LSTM keeps them apart: the input-to-state outputs are laid out hidden
channel by hidden channel (4 gates each), so gate channels of hidden group k see input groups
<= k at the current pixel; the state-to-state part reads only earlier pixels (any group).

``n_classes``: a class-conditional model, with a learnt per-class bias V^T y added to the first
layer's output and to every LSTM layer's gates (PixelCNN's conditioning, 2016b Eq. 4).

``forward(x, y)`` returns the logits (N, V, C, H, W) of every conditional.
"""
import math
import sys

from .. import backend
from .. import functional as F
from ..autograd import Tensor
from ..nn import MaskedConv2d, Module, ModuleList, ReLU, Sequential, init
from ..nn.module import empty_parameter
from ..validation import check_int, check_option
from .pixelcnn import AutoregressiveImageModel, check_odd_kernel, shift_down

__all__ = ["PixelRNN"]


def shift_matrices(offsets, n, like):
    """S (k, n, n) with S[d, l, l + offsets[d]] = 1: where tap d of a kernel reads from l."""
    xp = backend.get_array_module(like)
    return xp.stack([xp.eye(n, k=offset, dtype=like.dtype) for offset in offsets])


def lstm_over_steps(xw, kernel, h, offsets):
    """The 2-D LSTM recurrence over the steps of a map.

    ``xw`` (N, h, 4, L, T): the input-to-state pre-activations, hidden channel by gate, at the L
    positions of each of T steps (a row: L = W columns; a diagonal: L = H rows). ``kernel``
    (4h, h, k): the state-to-state convolution along the L positions of the previous step, tap d
    reading position l + offsets[d] (rows of the kernel gate-major: i, f, g, o). Returns the
    hidden states (N, h, L, T).
    """
    N, _, _, L, T = xw.shape
    # banded matrix of the convolution: W[(g, o, l), (c, l')] = sum_d K[(g, o), c, d] S[d, l, l']
    w_hh = F.einsum("ocd,dlm->olcm", kernel, Tensor(shift_matrices(offsets, L, kernel.data)))
    w_hh = w_hh.reshape(4 * h * L, h * L)
    xw = xw.permute(4, 0, 2, 1, 3).reshape(T, N, 4 * h * L)  # (T, N, [gate, channel, position])
    xp = backend.get_array_module(kernel.data)
    zeros = Tensor(xp.zeros((N, h * L), dtype=kernel.dtype))
    states = F.lstm_recurrence(xw, w_hh, zeros, zeros)[0]  # hidden states (T, N, h L)
    return states.reshape(T, N, h, L).permute(1, 2, 3, 0)


def skew(x):
    """(N, C, H, W) -> (N, C, H, W + H - 1) with row r shifted right by r (zeros elsewhere).

    Pad each row with H zeros and flatten: row r starts at r (W + H) = r (W + H - 1) + r, so reading
    the first H (W + H - 1) entries as rows of W + H - 1 puts row r at columns r..r + W - 1.
    """
    N, C, H, W = x.shape
    flat = F.pad(x, ((0, 0), (0, 0), (0, 0), (0, H))).reshape(N, C, H * (W + H))
    return flat[:, :, :H * (W + H - 1)].reshape(N, C, H, W + H - 1)


def unskew(x, W):
    """The inverse of ``skew``: (N, C, H, W + H - 1) -> (N, C, H, W), row r read from column r on."""
    N, C, H, T = x.shape
    flat = F.pad(x.reshape(N, C, H * T), ((0, 0), (0, 0), (0, H)))
    return flat.reshape(N, C, H, T + 1)[:, :, :, :W]


def flip_columns(x):
    return x[:, :, :, ::-1]


class StateToState(Module):
    """The state-to-state kernel K^ss (4h, h, k) of one LSTM direction, U(-1/sqrt(h k), 1/sqrt(h k))."""

    def __init__(self, hidden, k):
        super().__init__()
        bound = 1 / math.sqrt(hidden * k)
        self.weight = init.uniform_(empty_parameter((4 * hidden, hidden, k)), -bound, bound)


class RowLSTMLayer(Module):
    """x + 1x1(RowLSTM(x)): input-to-state 1 x k mask B, state-to-state 1 x k over the row above."""

    def __init__(self, channels, hidden, kernel_size, groups, class_embedding):
        super().__init__()
        self.hidden = hidden
        self.input_to_state = MaskedConv2d(channels, 4 * hidden, (1, kernel_size), "B",
                                           channel_groups=groups)
        self.state_to_state = StateToState(hidden, kernel_size)
        self.output = MaskedConv2d(hidden, channels, 1, "B", channel_groups=groups)
        self.class_bias = class_embedding

    def forward(self, x, y=None):
        N, _, H, W = x.shape
        a = self.input_to_state(x)
        if y is not None:
            a = a + self.class_bias(y)[:, :, None, None]
        # (N, [hidden, gate], H, W) -> (N, h, 4, W positions, H steps)
        xw = a.reshape(N, self.hidden, 4, H, W).permute(0, 1, 2, 4, 3)
        p = self.state_to_state.weight.shape[2] // 2  # columns c - p .. c + p of the row above
        h = lstm_over_steps(xw, self.state_to_state.weight, self.hidden, range(-p, p + 1))
        return x + self.output(h.permute(0, 1, 3, 2))


class DiagonalBiLSTMLayer(Module):
    """x + 1x1(left-to-right + shift_down(right-to-left)) of two diagonal LSTMs over skew(x)."""

    def __init__(self, channels, hidden, groups, class_embedding):
        super().__init__()
        self.hidden = hidden
        self.input_to_state = ModuleList([
            MaskedConv2d(channels, 4 * hidden, 1, "B", channel_groups=groups) for _ in range(2)])
        self.state_to_state = ModuleList([StateToState(hidden, 2) for _ in range(2)])
        self.output = MaskedConv2d(hidden, channels, 1, "B", channel_groups=groups)
        self.class_bias = class_embedding

    def direction(self, x, k, y):
        """Diagonal LSTM number k over the map x (N, 2h, H, W) -> hidden states (N, h, H, W)."""
        N, _, H, W = x.shape
        a = self.input_to_state[k](skew(x))  # (N, [hidden, gate], H, W + H - 1)
        if y is not None:
            a = a + self.class_bias(y)[:, :, None, None]
        xw = a.reshape(N, self.hidden, 4, H, W + H - 1)
        # the 2 x 1 kernel's taps read rows r - 1 and r of the previous column
        h = lstm_over_steps(xw, self.state_to_state[k].weight, self.hidden, (-1, 0))
        return unskew(h, W)

    def forward(self, x, y=None):
        left_to_right = self.direction(x, 0, y)
        right_to_left = flip_columns(self.direction(flip_columns(x), 1, y))
        return x + self.output(left_to_right + shift_down(right_to_left))


class PixelRNN(AutoregressiveImageModel):
    """PixelRNN: a ``kernel_size`` x ``kernel_size`` mask-A layer (2h channels), ``n_layers``
    residual Row LSTM or Diagonal BiLSTM layers (``variant`` "row" or "diagonal") with h =
    ``hidden_channels`` (a multiple of in_channels), then ReLU, 1x1, ReLU, 1x1 (mask B) to logits.

    ``row_kernel_size``: k of the Row LSTM's 1 x k input-to-state and state-to-state convolutions
    (3 in the paper). ``n_classes``: class-conditional model p(x | y). ``forward`` returns the
    logits (N, V, C, H, W).
    """

    def __init__(self, in_channels=1, n_values=2, hidden_channels=16, n_layers=7, variant="row",
                 n_classes=None, kernel_size=7, row_kernel_size=3):
        in_channels = check_int(in_channels, "in_channels", minimum=1)
        check_int(n_layers, "n_layers", minimum=1)
        check_odd_kernel(kernel_size)
        if check_int(row_kernel_size, "row_kernel_size", minimum=1) % 2 == 0:
            raise ValueError(f"row_kernel_size must be odd (the row convolutions are centred), got "
                             f"{row_kernel_size}")
        check_option(variant, "variant", ("row", "diagonal"))
        if check_int(hidden_channels, "hidden_channels", minimum=1) % in_channels:
            raise ValueError(f"hidden_channels must be a multiple of in_channels = {in_channels}, "
                             f"got {hidden_channels}")
        super().__init__(in_channels, n_values, n_classes, None, 0, hidden_channels)
        self.variant = variant
        C, V, h = self.in_channels, self.n_values, hidden_channels
        self.input_conv = MaskedConv2d(C * V, 2 * h, kernel_size, "A", channel_groups=C)
        self.input_class_bias = self._class_embedding(2 * h)
        if variant == "row":
            layers = [RowLSTMLayer(2 * h, h, row_kernel_size, C, self._class_embedding(4 * h))
                      for _ in range(n_layers)]
        else:
            layers = [DiagonalBiLSTMLayer(2 * h, h, C, self._class_embedding(4 * h))
                      for _ in range(n_layers)]
        self.layers = ModuleList(layers)
        self.output = Sequential(
            ReLU(), MaskedConv2d(2 * h, 2 * h, 1, "B", channel_groups=C),
            ReLU(), MaskedConv2d(2 * h, C * V, 1, "B", channel_groups=C))
        # The LSTM state carries information across the whole image, so the logits of pixel
        # (r, c) may depend on every row above and on all of row r: the sampler crops nothing
        # but the rows below r (they are never read; the recurrences run top-down).
        self.receptive_field = (sys.maxsize, sys.maxsize, sys.maxsize)

    def network(self, h, y=None, s=None):
        x = self.input_conv(h)
        if y is not None:
            x = x + self.input_class_bias(y)[:, :, None, None]
        for layer in self.layers:
            x = layer(x, y)
        return self._logits(self.output(x))
