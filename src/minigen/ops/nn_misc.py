"""Embedding lookup, dropout, and the LSTM recurrence as one fused Function."""
import numpy

from ..autograd import Function
from ..backend import get_array_module, unwrap
from ..random import get_generator
from .elementwise import mul

__all__ = ["embedding", "dropout", "lstm_recurrence"]


class Embedding(Function):
    """out[..., :] = weight[indices[...], :]; the gradient adds each output row back to its row of weight."""

    def __init__(self, indices):
        self.indices = indices

    def forward(self, weight):
        return weight[self.indices]

    def backward(self, g):
        # Rows hit several times accumulate: one bincount over the flattened (row, column) pairs
        # (deterministic, unlike scattered adds).
        xp = get_array_module(g)
        v, d = self.input_shapes[0]
        flat = (self.indices.reshape(-1, 1) * d + xp.arange(d)).reshape(-1)
        gw = xp.bincount(flat, weights=g.reshape(-1), minlength=v * d)
        return gw.reshape(v, d).astype(g.dtype, copy=False)


def embedding(indices, weight):
    """Rows of ``weight`` (num_embeddings, dim) picked by integer ``indices`` of any shape."""
    indices = unwrap(indices)
    xp = get_array_module(weight)
    indices = xp.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype {indices.dtype}")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, dim), got shape {tuple(weight.shape)}")
    v = weight.shape[0]
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= v):
        raise ValueError(f"embedding: indices must lie in [0, {v}), got values from "
                         f"{int(indices.min())} to {int(indices.max())}")
    return Embedding(indices)(weight)


def dropout(x, p=0.5, training=True, generator=None):
    """Zero each element with probability p and scale the rest by 1/(1-p) (inverted dropout).

    Identity when ``training`` is False or p == 0. The mask is drawn from ``generator``
    (minigen.random.get_generator: None -> the global one, an int -> a fresh seeded one).
    """
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0:
        return x
    xp = get_array_module(x)
    keep = get_generator(generator, xp).random(x.shape) >= p
    scale = 0.0 if p == 1 else 1 / (1 - p)
    return mul(x, keep.astype(x.dtype) * x.dtype.type(scale))


def gate_scale_shift(xp, h, dtype):
    """scale, shift (4H,) with act(z) = scale * tanh(scale * z) + shift for the gates [i, f, g, o]:
    sigmoid(z) = tanh(z/2)/2 + 1/2 for i, f, o and tanh for g. One tanh call serves all four
    gates, and neither form can overflow."""
    scale, shift = xp.full(4 * h, 0.5, dtype=dtype), xp.full(4 * h, 0.5, dtype=dtype)
    scale[2 * h:3 * h], shift[2 * h:3 * h] = 1, 0
    return scale, shift


class LSTMRecurrenceReference(Function):
    """The LSTM recurrence over a whole sequence, from precomputed input projections (plain path).

    Inputs: xw (T, N, 4H) with xw_t = x_t W_ih^T + b_ih + b_hh (one matmul for all t, done by the
    caller), W_hh (4H, H), h_0 and c_0 (N, H). Gate order i, f, g, o as in PyTorch:

        z_t = xw_t + h_{t-1} W_hh^T = [z_i, z_f, z_g, z_o]
        i, f, o = sigmoid(z_i), sigmoid(z_f), sigmoid(z_o),   g = tanh(z_g)
        c_t = f * c_{t-1} + i * g,     h_t = o * tanh(c_t)

    Output (2, T, N, H): out[0] = h_1..h_T, out[1] = c_1..c_T.

    Backward is backpropagation through time: for t = T..1, with dh, dc the gradients reaching
    h_t and c_t (from the outputs and from step t+1),

        dc += dh * o * (1 - tanh(c_t)^2)
        dz_t = [dc * g, dc * c_{t-1}, dc * i, dh * tanh(c_t)] * act'(z_t)
        dh <- dz_t W_hh,   dc <- dc * f                     (the gradients reaching step t-1)

    with act' = a (1 - a) for the sigmoid gates and 1 - a^2 for g; then dxw = dz and
    dW_hh = sum_t dz_t^T h_{t-1} (one GEMM over all steps).

    This is the reference that ``LSTMRecurrence`` (the fast path, same maths) is tested against:
    one step at a time, the gates from one tanh (``gate_scale_shift``), fresh temporaries.
    """

    def forward(self, xw, w_hh, h0, c0):
        xp = get_array_module(xw, w_hh)
        t_len, n, h4 = xw.shape
        h = h4 // 4
        scale, shift = gate_scale_shift(xp, h, xw.dtype)
        # states[0, t] = h_t, states[1, t] = c_t for t = 0..T; acts[t] = [i, f, g, o] at step t
        self.states = xp.empty((2, t_len + 1, n, h), dtype=xw.dtype)
        self.states[0, 0], self.states[1, 0] = h0, c0
        self.acts = xp.empty((t_len, n, h4), dtype=xw.dtype)
        self.tanh_c = xp.empty((t_len, n, h), dtype=xw.dtype)
        for t in range(t_len):
            a = self.acts[t]
            xp.matmul(self.states[0, t], w_hh.T, out=a)
            a += xw[t]
            a *= scale  # [i, f, g, o] = scale * tanh(scale * z) + shift, see gate_scale_shift
            xp.tanh(a, out=a)
            a *= scale
            a += shift
            i, f, g, o = a[:, :h], a[:, h:2 * h], a[:, 2 * h:3 * h], a[:, 3 * h:]
            c = self.states[1, t + 1]
            xp.multiply(f, self.states[1, t], out=c)
            c += i * g
            xp.tanh(c, out=self.tanh_c[t])
            xp.multiply(o, self.tanh_c[t], out=self.states[0, t + 1])
        self.w_hh = w_hh
        return self.states[:, 1:]

    def backward(self, grad):
        xp = get_array_module(grad)
        t_len, n, h4 = self.acts.shape
        h = h4 // 4
        dz = xp.empty_like(self.acts)  # dL/dz_t for every step
        dh = xp.zeros((n, h), dtype=grad.dtype)  # dL/dh_t and dL/dc_t carried from step t+1
        dc = xp.zeros((n, h), dtype=grad.dtype)
        for t in reversed(range(t_len)):
            a, tanh_c = self.acts[t], self.tanh_c[t]
            i, f, g, o = a[:, :h], a[:, h:2 * h], a[:, 2 * h:3 * h], a[:, 3 * h:]
            dh = dh + grad[0, t]
            dc = dc + grad[1, t] + dh * o * (1 - tanh_c * tanh_c)  # through h_t = o tanh(c_t)
            d = dz[t]
            d[:, :h] = dc * g * i * (1 - i)
            d[:, h:2 * h] = dc * self.states[1, t] * f * (1 - f)
            d[:, 2 * h:3 * h] = dc * i * (1 - g * g)
            d[:, 3 * h:] = dh * tanh_c * o * (1 - o)
            dc = dc * f
            dh = d @ self.w_hh
        need_xw, need_w, need_h0, need_c0 = self.needs_input_grad
        # dW_hh = sum_t dz_t^T h_{t-1}: one GEMM over all steps
        h_prev = self.states[0, :-1].reshape(t_len * n, h)
        gw = dz.reshape(t_len * n, h4).T @ h_prev if need_w else None
        return (dz if need_xw else None), gw, (dh if need_h0 else None), (dc if need_c0 else None)


class LSTMRecurrence(Function):
    """The LSTM recurrence, fast path: same inputs, outputs and maths as ``LSTMRecurrenceReference``.

    Inputs xw (T, N, 4H) = x_t W_ih^T + b_ih + b_hh for every t, W_hh (4H, H), h_0, c_0 (N, H);
    output (2, T, N, H) = (h_1..h_T, c_1..c_T). Gate order i, f, g, o as in PyTorch.

    Forward, per step, with q = (1, 1, 2, 1) over the gate blocks [i, f, g, o]:

        e_t = exp(-q z_t) = exp(h_{t-1} (-q W_hh)^T + (-q xw_t))     (the -q folded into W_hh, xw once)
        i, f, o = 1 / (1 + e),   g = tanh(z_g) = 2 / (1 + e_g) - 1       (tanh(x) = 2 sigmoid(2x) - 1)
        c_t = f * c_{t-1} + i * g,   tanh(c_t) = 2 / (1 + exp(-2 c_t)) - 1,   h_t = o * tanh(c_t)

    Why: on CPUs without AVX-512 NumPy's float32 exp costs well under its tanh (measured on the
    project's AVX2 EPYC: 2.3 against 5.4 ns per element on (32, 512), 6 against 26 us on (32, 128)),
    and the extra passes (+1, a division) cost about 0.5 ns per element. For z -> -inf,
    exp(-q z) overflows to inf (its warning is silenced) and 1 / (1 + inf) = 0 exactly; for
    z -> +inf, exp underflows to 0 and the gate is exactly 1 (tanh exactly -1 and 1): no NaN,
    no warning.

    Backward (BPTT, as in the reference): the factors that do not depend on the carried dh, dc
    are computed for all steps at once before the loop, in the buffer that becomes dz,

        P_t = [g i (1 - i), c_{t-1} f (1 - f), i (1 - g^2), tanh(c_t) o (1 - o)],
        Q_t = o (1 - tanh(c_t)^2),

    so that each step is: dh += dL/dh_t, dc += dL/dc_t + dh Q_t, dz_t = [dc, dc, dc, dh] * P_t,
    dc <- dc f, dh <- dz_t W_hh (a GEMM into a buffer). dxw = dz, dW_hh = sum_t dz_t^T h_{t-1}.
    """

    def forward(self, xw, w_hh, h0, c0):
        xp = get_array_module(xw, w_hh)
        t_len, n, h4 = xw.shape
        h = h4 // 4
        one, two, minus_two = (xw.dtype.type(v) for v in (1, 2, -2))  # NumPy scalars: no casting per call
        q = xp.ones(h4, dtype=xw.dtype)
        q[2 * h:3 * h] = 2
        # states[0, t] = h_t, states[1, t] = c_t for t = 0..T; acts[t] = [i, f, g, o] at step t
        self.states = xp.empty((2, t_len + 1, n, h), dtype=xw.dtype)
        self.states[0, 0], self.states[1, 0] = h0, c0
        self.acts = xp.empty((t_len, n, h4), dtype=xw.dtype)  # C order whatever xw's layout
        xp.multiply(xw, -q, out=self.acts)  # -q xw_t for every t, then the activations in place
        self.tanh_c = xp.empty((t_len, n, h), dtype=xw.dtype)
        w_neg_t = (w_hh * -q[:, None]).T  # (-q W_hh)^T, (H, 4H): BLAS reads the transpose in place
        recurrent = xp.empty((n, h4), dtype=xw.dtype)
        i_g = xp.empty((n, h), dtype=xw.dtype)
        with numpy.errstate(over="ignore"):  # exp(large) = inf is wanted: 1 / (1 + inf) = 0
            for t in range(t_len):
                a = self.acts[t]
                xp.matmul(self.states[0, t], w_neg_t, out=recurrent)
                a += recurrent  # a = -q z_t
                xp.exp(a, out=a)
                a += one
                xp.divide(q, a, out=a)  # sigmoid for i, f, o; 2 sigmoid(2 z_g) for g
                i, f, g, o = a[:, :h], a[:, h:2 * h], a[:, 2 * h:3 * h], a[:, 3 * h:]
                g -= one
                c, tanh_c = self.states[1, t + 1], self.tanh_c[t]
                xp.multiply(f, self.states[1, t], out=c)
                xp.multiply(i, g, out=i_g)
                c += i_g
                xp.multiply(c, minus_two, out=tanh_c)  # tanh(c) = 2 / (1 + exp(-2 c)) - 1
                xp.exp(tanh_c, out=tanh_c)
                tanh_c += one
                xp.divide(two, tanh_c, out=tanh_c)
                tanh_c -= one
                xp.multiply(o, tanh_c, out=self.states[0, t + 1])
        self.w_hh = w_hh
        return self.states[:, 1:]

    def backward(self, grad):
        xp = get_array_module(grad)
        t_len, n, h4 = self.acts.shape
        h = h4 // 4
        gates = self.acts.reshape(t_len, n, 4, h)
        i, f, g, o = (gates[:, :, k] for k in range(4))
        tanh_c, c_prev = self.tanh_c, self.states[1, :-1]
        one = grad.dtype.type(1)
        # P_t for all t (see the docstring), in the buffer that becomes dz
        dz = xp.empty((t_len, n, h4), dtype=grad.dtype)
        xp.subtract(one, self.acts, out=dz)
        p = dz.reshape(t_len, n, 4, h)
        p *= gates  # a (1 - a) for every gate
        xp.multiply(g, g, out=p[:, :, 2])
        xp.subtract(one, p[:, :, 2], out=p[:, :, 2])  # 1 - g^2 for the cell candidate
        p[:, :, 0] *= g
        p[:, :, 1] *= c_prev
        p[:, :, 2] *= i
        p[:, :, 3] *= tanh_c
        q = xp.multiply(tanh_c, tanh_c)
        xp.subtract(one, q, out=q)
        q *= o  # Q_t = o (1 - tanh(c_t)^2)
        dh = xp.zeros((n, h), dtype=grad.dtype)  # dL/dh_t and dL/dc_t carried from step t+1
        dc = xp.zeros((n, h), dtype=grad.dtype)
        dc_from_h = xp.empty((n, h), dtype=grad.dtype)
        for t in reversed(range(t_len)):
            dh += grad[0, t]
            xp.multiply(dh, q[t], out=dc_from_h)  # through h_t = o tanh(c_t)
            dc += dc_from_h
            dc += grad[1, t]
            p[t, :, :3] *= dc[:, None, :]  # dz_t = [dc, dc, dc, dh] * P_t
            p[t, :, 3] *= dh
            dc *= f[t]
            xp.matmul(dz[t], self.w_hh, out=dh)
        need_xw, need_w, need_h0, need_c0 = self.needs_input_grad
        # dW_hh = sum_t dz_t^T h_{t-1}: one GEMM over all steps
        h_prev = self.states[0, :-1].reshape(t_len * n, h)
        gw = dz.reshape(t_len * n, h4).T @ h_prev if need_w else None
        return (dz if need_xw else None), gw, (dh if need_h0 else None), (dc if need_c0 else None)


def lstm_recurrence(xw, w_hh, h0, c0, reference=False):
    """Run the LSTM recurrence (see ``LSTMRecurrence``); returns (2, T, N, H): hidden and cell states.

    ``reference=True`` runs the plain ``LSTMRecurrenceReference`` instead (same values and gradients).
    """
    if xw.ndim != 3 or xw.shape[2] % 4:
        raise ValueError(f"lstm_recurrence: xw must be (T, N, 4H), got shape {tuple(xw.shape)}")
    t_len, n, h4 = xw.shape
    h = h4 // 4
    if tuple(w_hh.shape) != (h4, h):
        raise ValueError(f"lstm_recurrence: W_hh must have shape ({h4}, {h}), got {tuple(w_hh.shape)}")
    for name, s in (("h0", h0), ("c0", c0)):
        if tuple(s.shape) != (n, h):
            raise ValueError(f"lstm_recurrence: {name} must have shape ({n}, {h}), got {tuple(s.shape)}")
    return (LSTMRecurrenceReference if reference else LSTMRecurrence)()(xw, w_hh, h0, c0)
