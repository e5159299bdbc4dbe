"""LSTMCell and LSTM: the step equations, PyTorch's names/shapes, gradcheck through time, errors."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minigen
import minigen.nn as nn


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def reference_step(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One LSTM step, gate order i, f, g, o (PyTorch's documentation)."""
    z = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    i, f, g, o = np.split(z, 4, axis=1)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c), c


def params(module, suffix=""):
    return [getattr(module, f"{n}{suffix}").numpy() for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]


def t64(a, grad=False):
    return minigen.tensor(a, dtype="float64", requires_grad=grad)


def test_cell_matches_the_step_equations():
    rng = np.random.default_rng(0)
    cell = nn.LSTMCell(3, 5, generator=0).double()
    x, h, c = rng.standard_normal((4, 3)), rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    h1, c1 = cell(t64(x), (t64(h), t64(c)))
    eh, ec = reference_step(x, h, c, *params(cell))
    np.testing.assert_allclose(h1.numpy(), eh, atol=1e-12)
    np.testing.assert_allclose(c1.numpy(), ec, atol=1e-12)
    h0, c0 = cell(t64(x))  # zero initial state
    eh, ec = reference_step(x, 0 * h, 0 * c, *params(cell))
    np.testing.assert_allclose(h0.numpy(), eh, atol=1e-12)


@settings(max_examples=6)
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.booleans(), st.integers(0, 99))
def test_lstm_matches_stepping_the_equations(num_layers, t_len, batch, batch_first, seed):
    rng = np.random.default_rng(seed)
    lstm = nn.LSTM(3, 4, num_layers, batch_first=batch_first, generator=seed).double()
    x = rng.standard_normal((t_len, batch, 3))
    h0, c0 = rng.standard_normal((2, num_layers, batch, 4))
    inp = np.swapaxes(x, 0, 1) if batch_first else x
    out, (h_n, c_n) = lstm(t64(inp), (t64(h0), t64(c0)))
    layer_in = x
    for k in range(num_layers):
        h, c, outs = h0[k], c0[k], []
        for t in range(t_len):
            h, c = reference_step(layer_in[t], h, c, *params(lstm, f"_l{k}"))
            outs.append(h)
        layer_in = np.stack(outs)
        np.testing.assert_allclose(h_n.numpy()[k], h, atol=1e-12)
        np.testing.assert_allclose(c_n.numpy()[k], c, atol=1e-12)
    expected = np.swapaxes(layer_in, 0, 1) if batch_first else layer_in
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-12)


@settings(max_examples=4)
@given(st.integers(5, 7), st.integers(2, 3), st.integers(1, 3), st.booleans(), st.integers(0, 99))
def test_lstm_gradcheck_through_time_and_layers(t_len, num_layers, batch, batch_first, seed):
    """At least 5 time steps and 2 layers, w.r.t. the input, initial states and every parameter."""
    rng = np.random.default_rng(seed)
    lstm = nn.LSTM(3, 4, num_layers, batch_first=batch_first, generator=seed).double()
    x = t64(rng.standard_normal((batch, t_len, 3) if batch_first else (t_len, batch, 3)), True)
    h0 = t64(rng.standard_normal((num_layers, batch, 4)), True)
    c0 = t64(rng.standard_normal((num_layers, batch, 4)), True)

    def run(x, h0, c0, *weights):
        out, (h_n, c_n) = lstm(x, (h0, c0))
        return out, h_n, c_n
    assert minigen.gradcheck(run, [x, h0, c0] + list(lstm.parameters()), n_directions=4)


def test_cell_gradcheck_full_jacobian():
    rng = np.random.default_rng(2)
    cell = nn.LSTMCell(2, 3, bias=False, generator=2).double()
    assert [n for n, _ in cell.named_parameters()] == ["weight_ih", "weight_hh"]
    x, h, c = t64(rng.standard_normal((2, 2)), True), t64(rng.standard_normal((2, 3)), True), \
        t64(rng.standard_normal((2, 3)), True)
    assert minigen.gradcheck(lambda x, h, c: cell(x, (h, c)), [x, h, c])


def test_parameter_names_shapes_and_init():
    minigen.manual_seed(0)
    lstm = nn.LSTM(10, 20, num_layers=2)
    shapes = {n: p.shape for n, p in lstm.named_parameters()}
    assert shapes == {"weight_ih_l0": (80, 10), "weight_hh_l0": (80, 20), "bias_ih_l0": (80,),
                      "bias_hh_l0": (80,), "weight_ih_l1": (80, 20), "weight_hh_l1": (80, 20),
                      "bias_ih_l1": (80,), "bias_hh_l1": (80,)}
    for p in lstm.parameters():
        assert np.abs(p.numpy()).max() <= 1 / np.sqrt(20) and p.dtype == np.float32
    out, (h, c) = lstm(minigen.randn(7, 3, 10))
    assert out.shape == (7, 3, 20) and h.shape == c.shape == (2, 3, 20)
    np.testing.assert_array_equal(out.numpy()[-1], h.numpy()[-1])


def test_against_torch_if_installed():
    torch = pytest.importorskip("torch", reason="torch is not installed; it is only an optional cross-check")
    rng = np.random.default_rng(3)
    ours = nn.LSTM(3, 5, num_layers=2, batch_first=True).double()
    theirs = torch.nn.LSTM(3, 5, num_layers=2, batch_first=True).double()
    with torch.no_grad():
        for name, p in ours.named_parameters():
            getattr(theirs, name).copy_(torch.tensor(p.numpy()))
    x = rng.standard_normal((2, 6, 3))
    out, (h, c) = ours(t64(x))
    t_out, (t_h, t_c) = theirs(torch.tensor(x))
    np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(c.numpy(), t_c.detach().numpy(), atol=1e-12)


def test_bad_input():
    lstm = nn.LSTM(3, 4, num_layers=2)
    with pytest.raises(ValueError, match=r"expected an input \(T, N, I\) with I = 3, got shape \(5, 2, 4\)"):
        lstm(minigen.zeros(5, 2, 4))
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 2, 4\), got \(1, 2, 4\)"):
        lstm(minigen.zeros(5, 2, 3), (minigen.zeros(1, 2, 4), minigen.zeros(1, 2, 4)))
    with pytest.raises(ValueError, match=r"LSTMCell: expected an input of shape \(N, 3\), got \(2, 5\)"):
        nn.LSTMCell(3, 4)(minigen.zeros(2, 5))
    with pytest.raises(ValueError, match=r"hidden_size must be a positive int, got 0"):
        nn.LSTM(3, 0)
