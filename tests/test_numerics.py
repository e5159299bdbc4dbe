"""minigen.numerics' sigmoid and softplus (one exp, a compensated log(1 + e)) against SciPy."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.special import expit

from minigen.numerics import exp_neg_abs, log1p_unit, sigmoid, softplus

pytestmark = pytest.mark.cpu_only  # raw NumPy arrays in, compared with SciPy


@settings(max_examples=25, deadline=None)
@given(hnp.arrays(np.float64, st.integers(1, 50),
                  elements=st.floats(-700, 700, allow_nan=False, allow_subnormal=False)))
def test_float64_sigmoid_and_softplus_match_scipy_to_a_few_ulps(x):
    np.testing.assert_allclose(sigmoid(x), expit(x), rtol=4e-16, atol=0)
    np.testing.assert_allclose(softplus(x), np.logaddexp(0.0, x), rtol=4e-16, atol=1e-300)


def test_float32_relative_accuracy_over_the_normal_range():
    x = np.linspace(-80, 80, 20001).astype(np.float32)
    exact = x.astype(np.float64)
    assert sigmoid(x).dtype == softplus(x).dtype == np.float32
    assert np.max(np.abs(sigmoid(x) - expit(exact)) / expit(exact)) < 1e-6
    assert np.max(np.abs(softplus(x) - np.logaddexp(0, exact)) / np.logaddexp(0, exact)) < 1e-6


def test_log1p_unit_restores_the_digits_that_1_plus_e_rounds_away():
    e = np.array([1e-12, 3e-9, 0.25, 1.0])
    y, u = log1p_unit(e)
    np.testing.assert_allclose(y, np.log1p(e), rtol=1e-15)
    np.testing.assert_array_equal(u, 1 + e)


def test_extremes_and_0d_inputs_are_exact_and_silent():
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        big = np.array([-1e4, -800.0, 0.0, 800.0, 1e4])
        np.testing.assert_array_equal(sigmoid(big), [0.0, 0.0, 0.5, 1.0, 1.0])
        np.testing.assert_array_equal(softplus(big), [0.0, 0.0, np.log(2.0), 800.0, 1e4])
        np.testing.assert_array_equal(exp_neg_abs(np.array([np.inf, -np.inf])), [0.0, 0.0])
        assert float(sigmoid(np.array(0.3))) == pytest.approx(expit(0.3), rel=1e-15)
        assert float(softplus(np.float32(2.0))) == pytest.approx(np.logaddexp(0, 2.0), rel=1e-6)


@settings(max_examples=10, deadline=None)
@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(1, 6)),
                  elements=st.floats(-120, 120, width=32, allow_nan=False)))
def test_sigmoid_into_out_and_in_place_equals_the_new_array(x):
    """sigmoid(x, out=buffer) and sigmoid(x, out=x) write the same values as sigmoid(x) and
    return the array they wrote; infinities give exactly 0 and 1."""
    expected = sigmoid(x)
    buffer = np.empty_like(x)
    assert sigmoid(x, out=buffer) is buffer
    np.testing.assert_array_equal(buffer, expected)
    y = x.copy()
    assert sigmoid(y, out=y) is y
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(sigmoid(np.array([-np.inf, np.inf], np.float32)), [0.0, 1.0])
