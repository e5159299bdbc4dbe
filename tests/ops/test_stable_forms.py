"""Stable forms: finite values and gradients at logits of +-1000, and agreement with SciPy."""
import numpy as np
import pytest
import scipy.special as sps
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigen
import minigen.functional as F
from devices import on_device, to_host

EXTREME = np.array([[-1000.0, 1000.0, 0.0], [1000.0, 999.0, -3.0], [-1000.0, -1000.0, -999.5]])
TARGET = np.array([[0.0, 1.0, 0.3], [1.0, 0.0, 0.5], [0.2, 1.0, 0.0]])

STABLE = {
    "sigmoid": (F.sigmoid, sps.expit),
    "softplus": (F.softplus, lambda x: np.logaddexp(0.0, x)),
    "logsumexp": (lambda x: F.logsumexp(x, axis=1), lambda x: sps.logsumexp(x, axis=1)),
    "logsumexp_all": (F.logsumexp, sps.logsumexp),
    "softmax": (F.softmax, lambda x: sps.softmax(x, axis=-1)),
    "log_softmax": (F.log_softmax, lambda x: sps.log_softmax(x, axis=-1)),
    "log_softmax_axis0": (lambda x: F.log_softmax(x, axis=0), lambda x: sps.log_softmax(x, axis=0)),
    "bce_with_logits": (lambda x: F.binary_cross_entropy_with_logits(
        x, minigen.tensor(TARGET.astype(x.dtype)), reduction="none"),
                        lambda x: np.logaddexp(0.0, x) - x * TARGET),
    "cross_entropy": (lambda x: F.cross_entropy(x, minigen.tensor([0, 1, 2]), reduction="none"),
                      lambda x: -sps.log_softmax(x, axis=1)[[0, 1, 2], [0, 1, 2]]),
    "elu": (F.elu, lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0)))),
    "tanh": (F.tanh, np.tanh),
}


@pytest.mark.parametrize("name", STABLE)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_finite_values_and_gradients_at_plus_minus_1000(name, dtype):
    fn, ref = STABLE[name]
    x = minigen.tensor(EXTREME.astype(dtype), requires_grad=True)
    with minigen.detect_anomaly():  # raises on the first NaN/inf, forward or backward
        y = fn(x)
        y.backward(on_device(np.random.default_rng(0).standard_normal(y.shape)))
    assert y.dtype == dtype and x.grad.dtype == dtype
    assert np.isfinite(y.numpy()).all() and np.isfinite(to_host(x.grad)).all()
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(y.numpy(), ref(EXTREME), rtol=rtol, atol=1e-30)


@pytest.mark.parametrize("name", ["sigmoid", "softplus", "logsumexp", "log_softmax", "bce_with_logits"])
@settings(max_examples=10)
@given(x=hnp.arrays(np.float64, (3, 3), elements=st.floats(-1000, 1000)))
def test_matches_scipy_on_wide_ranges(name, x):
    fn, ref = STABLE[name]
    # atol: results near 0 (log1p of tiny terms) and the reference's own cancellation
    # (logaddexp(0, 9) - 9) are exact only to ~1e-16 absolute
    np.testing.assert_allclose(fn(minigen.tensor(x)).numpy(), ref(x), rtol=1e-12, atol=1e-13)


def test_saturated_gradients_have_the_right_limits():
    x = minigen.tensor(np.array([-1000.0, 1000.0]), requires_grad=True)
    F.sigmoid(x).sum().backward()
    np.testing.assert_array_equal(to_host(x.grad), [0.0, 0.0])
    x.grad = None
    F.softplus(x).sum().backward()  # d softplus = sigmoid: 0 and 1
    np.testing.assert_array_equal(to_host(x.grad), [0.0, 1.0])
    x.grad = None
    F.logsumexp(x).backward()  # softmax: all the weight on the big one
    np.testing.assert_array_equal(to_host(x.grad), [0.0, 1.0])
    x.grad = None
    F.binary_cross_entropy_with_logits(x, minigen.tensor(np.array([1.0, 0.0])), reduction="sum").backward()
    np.testing.assert_array_equal(to_host(x.grad), [-1.0, 1.0])  # sigmoid(x) - t: confidently wrong


def test_logsumexp_of_all_minus_inf_is_minus_inf_not_nan():
    x = minigen.tensor(np.array([[-np.inf, -np.inf], [0.0, -np.inf]]))
    with np.errstate(divide="ignore"):  # log(0) = -inf is the right answer here
        np.testing.assert_array_equal(F.logsumexp(x, axis=1).numpy(), [-np.inf, 0.0])


def test_relu_of_minus_inf_is_zero():
    np.testing.assert_array_equal(F.relu(minigen.tensor(np.array([-np.inf, 2.0]))).numpy(), [0.0, 2.0])
