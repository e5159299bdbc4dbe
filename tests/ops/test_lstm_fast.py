"""The fast LSTM recurrence (gates from exp, backward factors precomputed) against the plain
reference: same values and every gradient (float64, hypothesis-drawn shapes), gradcheck of the
fast kernel, saturated gates exact and silent (|z| = 1e4), float32 kept float32."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minigen
import minigen.functional as F
from minigen.ops.nn_misc import LSTMRecurrence, LSTMRecurrenceReference


def draw_inputs(t_len, n, h, seed, dtype="float64", scale=2.0):
    """xw (T, N, 4H), W_hh (4H, H), h0, c0 (N, H) and an upstream gradient (2, T, N, H)."""
    rng = np.random.default_rng(seed)
    arrays = (scale * rng.standard_normal((t_len, n, 4 * h)), rng.standard_normal((4 * h, h)),
              rng.standard_normal((n, h)), rng.standard_normal((n, h)))
    grad = rng.standard_normal((2, t_len, n, h))
    return [a.astype(dtype) for a in arrays], grad.astype(dtype)


def run(arrays, grad, reference):
    """Outputs and the gradients of <grad, outputs> w.r.t. xw, W_hh, h0, c0, as NumPy arrays."""
    inputs = [minigen.tensor(a, requires_grad=True) for a in arrays]
    out = F.lstm_recurrence(*inputs, reference=reference)
    out.backward(minigen.tensor(grad).data)
    return [out.numpy()] + [minigen.backend.to_numpy(x.grad) for x in inputs]


@settings(max_examples=12)
@given(st.integers(1, 6), st.integers(1, 3), st.integers(1, 4), st.integers(0, 10**6), st.booleans())
def test_fast_matches_reference_values_and_every_gradient(t_len, n, h, seed, strided_xw):
    arrays, grad = draw_inputs(t_len, n, h, seed)
    if strided_xw:  # xw as a non-contiguous view (batch-major memory), as callers may pass it
        arrays[0] = np.ascontiguousarray(arrays[0].swapaxes(0, 1)).swapaxes(0, 1)
    fast, plain = run(arrays, grad, False), run(arrays, grad, True)
    for name, a, b in zip(["states", "d xw", "d W_hh", "d h0", "d c0"], fast, plain):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=name)


def test_fast_is_the_default_and_the_reference_is_a_different_path():
    arrays, _ = draw_inputs(2, 2, 3, 0)
    assert type(F.lstm_recurrence(*[minigen.tensor(a, requires_grad=True) for a in arrays])._creator) \
        is LSTMRecurrence
    out = F.lstm_recurrence(*[minigen.tensor(a, requires_grad=True) for a in arrays], reference=True)
    assert type(out._creator) is LSTMRecurrenceReference


@settings(max_examples=6)
@given(st.integers(1, 4), st.integers(1, 2), st.integers(1, 3), st.integers(0, 10**6))
def test_fast_gradcheck(t_len, n, h, seed):
    arrays, _ = draw_inputs(t_len, n, h, seed, scale=1.0)
    inputs = [minigen.tensor(a, requires_grad=True) for a in arrays]
    assert minigen.gradcheck(lambda *xs: F.lstm_recurrence(*xs), inputs, n_directions=4)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_saturated_gates_are_exact_and_silent(dtype):
    """z = +-1e4 makes every gate exactly 0 or 1 (and tanh exactly +-1): no overflow warning,
    no NaN, the states follow the equations exactly and the backward is finite."""
    h, big = 2, 1e4
    # unit 0: i = 1, f = 0, g = 1, o = 1 -> c = 1, h = tanh(1);
    # unit 1: i = 0, f = 1, g = -1, o = 1 -> c = c0 = -3e4 (tanh(c) exactly -1), h = -1
    xw = np.array([[[big, -big, -big, big, big, -big, big, big]]])  # [i0 i1 | f0 f1 | g0 g1 | o0 o1]
    w_hh, h0, c0 = np.zeros((4 * h, h)), np.zeros((1, h)), np.array([[5.0, -3 * big]])
    arrays = [a.astype(dtype) for a in (xw, w_hh, h0, c0)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any RuntimeWarning (overflow, invalid) fails the test
        fast = run(arrays, np.ones((2, 1, 1, h), dtype), False)
    states = fast[0]
    np.testing.assert_array_equal(states[1, 0, 0], np.array([1, -3 * big], dtype))  # c_1 exact
    np.testing.assert_allclose(states[0, 0, 0], np.array([np.tanh(1), -1]), rtol=1e-6)
    assert states[0, 0, 0, 1] == -1  # tanh(-3e4) exactly -1
    for g in fast:
        assert g.dtype == np.dtype(dtype) and np.all(np.isfinite(g))


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_every_gate_saturates_to_exactly_zero_or_one(sign):
    """All z = sign * 1e4 in float32: sigmoid gates exactly (1 + sign) / 2, g exactly sign."""
    t_len, n, h = 2, 3, 4
    xw = np.full((t_len, n, 4 * h), sign * 1e4, dtype=np.float32)
    fn = LSTMRecurrence()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fn.forward(xw, np.zeros((4 * h, h), np.float32), np.zeros((n, h), np.float32),
                   np.zeros((n, h), np.float32))
    acts = fn.acts.reshape(t_len, n, 4, h)
    expected = np.array([(1 + sign) / 2, (1 + sign) / 2, sign, (1 + sign) / 2], np.float32)
    np.testing.assert_array_equal(acts, np.broadcast_to(expected[:, None], acts.shape))


@pytest.mark.parametrize("reference", [False, True])
def test_float32_stays_float32_and_agrees_with_float64(reference):
    arrays, grad = draw_inputs(5, 3, 4, 7)
    exact = run(arrays, grad, True)
    single = run([a.astype(np.float32) for a in arrays], grad.astype(np.float32), reference)
    for a, b in zip(single, exact):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
