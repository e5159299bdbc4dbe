"""``LSTMCell`` and ``LSTM`` with PyTorch's parameter names, shapes, gate order and init.

Gate order i, f, g, o (Hochreiter & Schmidhuber 1997; PyTorch's layout): rows 0:H of the weights
belong to the input gate, H:2H to the forget gate, 2H:3H to the cell candidate, 3H:4H to the
output gate. The step equations are in ``minigen.ops.nn_misc.LSTMRecurrence`` (the fast path;
``LSTMRecurrenceReference`` is the plain one it is tested against). The input projection
x W_ih^T + b_ih + b_hh of a whole sequence is one matmul; only h_{t-1} W_hh^T is computed step
by step, inside one fused Function.
"""
import math

from .. import backend
from .. import functional as F
from . import init
from ..validation import check_positive_int
from .module import Module, empty_parameter

__all__ = ["LSTMCell", "LSTM"]


def _lstm_parameters(module, suffix, input_size, hidden_size, bias, device, dtype, generator):
    """weight_ih (4H, I), weight_hh (4H, H), bias_ih, bias_hh (4H,), all ~ U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1 / math.sqrt(hidden_size)
    shapes = {"weight_ih": (4 * hidden_size, input_size), "weight_hh": (4 * hidden_size, hidden_size)}
    if bias:
        shapes.update(bias_ih=(4 * hidden_size,), bias_hh=(4 * hidden_size,))
    for name, shape in shapes.items():
        setattr(module, name + suffix,
                init.uniform_(empty_parameter(shape, device, dtype), -bound, bound, generator))


def _run_layer(x, weight_ih, weight_hh, bias_ih, bias_hh, h0, c0):
    """One LSTM layer over x (T, N, I): returns the (2, T, N, H) hidden and cell states.

    The input projection is one (T N, I) x (I, 4H) GEMM (NumPy would run a 3-D x as T GEMMs).
    """
    bias = None if bias_ih is None else bias_ih + bias_hh
    t_len, n, _ = x.shape
    xw = F.linear(F.reshape(x, t_len * n, x.shape[2]), weight_ih, bias)
    return F.lstm_recurrence(F.reshape(xw, t_len, n, xw.shape[1]), weight_hh, h0, c0)


def _zeros(like, shape):
    xp = backend.get_array_module(like)
    return xp.zeros(shape, dtype=like.dtype)


class LSTMCell(Module):
    """One LSTM step: forward(x (N, I), (h, c) (N, H) each, or None for zeros) -> (h', c')."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None, generator=None):
        super().__init__()
        check_positive_int("LSTMCell", "input_size", input_size)
        check_positive_int("LSTMCell", "hidden_size", hidden_size)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        _lstm_parameters(self, "", input_size, hidden_size, bias, device, dtype, generator)

    def forward(self, x, hx=None):
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"LSTMCell: expected an input of shape (N, {self.input_size}), got "
                             f"{tuple(x.shape)}")
        n, hidden = x.shape[0], self.hidden_size
        h, c = (_zeros(self.weight_ih.data, (n, hidden)),) * 2 if hx is None else hx
        states = _run_layer(F.unsqueeze(x, 0), self.weight_ih, self.weight_hh,
                            getattr(self, "bias_ih", None), getattr(self, "bias_hh", None), h, c)
        return states[0, 0], states[1, 0]


class LSTM(Module):
    """A stack of ``num_layers`` LSTM layers over a sequence, as in PyTorch.

    Parameters weight_ih_l{k}, weight_hh_l{k}, bias_ih_l{k}, bias_hh_l{k}.
    forward(x, (h0, c0)=None): x (T, N, I), or (N, T, I) if batch_first; h0, c0 (num_layers, N, H)
    (zeros if None). Returns output (T, N, H) (or (N, T, H)): the last layer's h_t for every t,
    and (h_n, c_n), each (num_layers, N, H): every layer's final states.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 device=None, dtype=None, generator=None):
        super().__init__()
        check_positive_int("LSTM", "input_size", input_size)
        check_positive_int("LSTM", "hidden_size", hidden_size)
        check_positive_int("LSTM", "num_layers", num_layers)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first = bias, batch_first
        for k in range(num_layers):
            _lstm_parameters(self, f"_l{k}", input_size if k == 0 else hidden_size, hidden_size,
                             bias, device, dtype, generator)

    def forward(self, x, hx=None):
        if x.ndim != 3 or x.shape[2] != self.input_size:
            layout = "(N, T, I)" if self.batch_first else "(T, N, I)"
            raise ValueError(f"LSTM: expected an input {layout} with I = {self.input_size}, got "
                             f"shape {tuple(x.shape)}")
        if self.batch_first:
            x = F.transpose(x, 1, 0, 2)
        n, hidden = x.shape[1], self.hidden_size
        if hx is None:
            h0 = c0 = _zeros(self.weight_ih_l0.data, (self.num_layers, n, hidden))
        else:
            h0, c0 = hx
            for name, s in (("h0", h0), ("c0", c0)):
                if tuple(s.shape) != (self.num_layers, n, hidden):
                    raise ValueError(f"LSTM: {name} must have shape ({self.num_layers}, {n}, "
                                     f"{hidden}), got {tuple(s.shape)}")
        h_n, c_n = [], []
        for k in range(self.num_layers):
            p = {name: getattr(self, f"{name}_l{k}", None)
                 for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
            states = _run_layer(x, p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"],
                                h0[k], c0[k])
            x = states[0]
            h_n.append(states[0, -1])
            c_n.append(states[1, -1])
        output = F.transpose(x, 1, 0, 2) if self.batch_first else x
        return output, (F.stack(h_n), F.stack(c_n))
