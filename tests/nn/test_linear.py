"""Linear: layout, PyTorch's default init, forward, gradients (gradcheck and hand backprop), training."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minigen
import minigen.functional as F
from devices import to_host
from minigen import nn


def test_layout_dtype_and_default_init_bounds():
    layer = nn.Linear(300, 200)
    assert layer.weight.shape == (200, 300) and layer.bias.shape == (200,)
    assert layer.weight.dtype == np.float32 and layer.bias.dtype == np.float32
    bound = 1 / math.sqrt(300)
    for p in (layer.weight, layer.bias):
        assert np.abs(p.numpy()).max() <= bound
    # U(-b, b) has variance b^2 / 3: 60,000 draws pin it to within a few percent.
    assert layer.weight.numpy().var() == pytest.approx(bound ** 2 / 3, rel=0.03)
    assert layer.weight.numpy().mean() == pytest.approx(0, abs=0.02 * bound)
    assert nn.Linear(3, 2, bias=False).bias is None
    assert nn.Linear(3, 2, dtype="float64").weight.dtype == np.float64
    assert repr(layer) == "Linear(in_features=300, out_features=200)"  # the constructor call


def test_init_follows_the_generator():
    a, b = nn.Linear(4, 3, generator=5), nn.Linear(4, 3, generator=5)
    np.testing.assert_array_equal(a.weight.numpy(), b.weight.numpy())
    minigen.manual_seed(1)
    c = nn.Linear(4, 3)
    minigen.manual_seed(1)
    np.testing.assert_array_equal(nn.Linear(4, 3).weight.numpy(), c.weight.numpy())


def test_forward_is_x_wt_plus_b_on_any_leading_axes():
    layer = nn.Linear(5, 3)
    x = np.random.default_rng(0).standard_normal((2, 4, 5)).astype(np.float32)
    expected = x @ layer.weight.numpy().T + layer.bias.numpy()
    np.testing.assert_allclose(layer(minigen.tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-6)


shapes = st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 4))


@settings(max_examples=10)
@given(shapes, st.booleans(), st.integers(0, 2 ** 16))
def test_gradcheck_linear(shape, bias, seed):
    n, d_in, d_out = shape
    layer = nn.Linear(d_in, d_out, bias=bias, dtype="float64", generator=seed)
    x = minigen.randn(n, d_in, dtype="float64", generator=seed + 1, requires_grad=True)
    params = list(layer.parameters())

    def f(x, *ps):
        return F.linear(x, *ps)

    assert minigen.gradcheck(f, [x] + params)


@settings(max_examples=8)
@given(shapes, st.integers(1, 6), st.integers(0, 2 ** 16))
def test_gradcheck_mlp(shape, hidden, seed):
    n, d_in, d_out = shape
    mlp = nn.Sequential(nn.Linear(d_in, hidden, generator=seed), nn.Tanh(),
                        nn.Linear(hidden, d_out, generator=seed + 1)).double()
    x = minigen.randn(n, d_in, dtype="float64", generator=seed + 2, requires_grad=True)
    params = list(mlp.parameters())

    def f(x, w1, b1, w2, b2):  # the same weights, passed in so gradcheck can perturb them
        return mlp(x)

    assert minigen.gradcheck(f, [x] + params)


def test_mlp_gradients_match_hand_derived_backprop():
    """L = 1/2 sum (W2 tanh(W1 x + b1) + b2 - y)^2, backprop written out by hand."""
    rng = np.random.default_rng(3)
    mlp = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    x, y = rng.standard_normal((5, 4)), rng.standard_normal((5, 2))
    out = mlp(minigen.tensor(x))
    (0.5 * F.sum((out - minigen.tensor(y)) ** 2)).backward()

    w1, b1, w2, b2 = (p.numpy() for p in mlp.parameters())
    h = np.tanh(x @ w1.T + b1)
    d_out = h @ w2.T + b2 - y                   # dL/d out
    d_pre = (d_out @ w2) * (1 - h ** 2)         # dL/d (W1 x + b1)
    expected = [d_pre.T @ x, d_pre.sum(0), d_out.T @ h, d_out.sum(0)]
    for p, g in zip(mlp.parameters(), expected):
        np.testing.assert_allclose(to_host(p.grad), g, rtol=1e-10, atol=1e-12)


def test_sgd_linear_regression_converges_to_least_squares():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3))
    y = X @ np.array([1.5, -2.0, 0.5]) + 0.3 + 0.1 * rng.standard_normal(64)
    A = np.hstack([X, np.ones((64, 1))])
    w_ls = np.linalg.lstsq(A, y, rcond=None)[0]

    model = nn.Linear(3, 1, dtype="float64", generator=0)
    optimizer = minigen.optim.SGD(model.parameters(), lr=0.1, momentum=0.5)
    x_t, y_t = minigen.tensor(X), minigen.tensor(y[:, None])
    for _ in range(300):
        optimizer.zero_grad()
        F.mse_loss(model(x_t), y_t).backward()
        optimizer.step()
    np.testing.assert_allclose(model.weight.numpy()[0], w_ls[:3], atol=1e-8)
    np.testing.assert_allclose(model.bias.numpy()[0], w_ls[3], atol=1e-8)
