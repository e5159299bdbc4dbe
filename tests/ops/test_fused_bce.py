"""The fused binary_cross_entropy_with_logits against its plain composition (softplus(x) - x t):
same values and gradients (float64, hypothesis-drawn shapes and values), gradcheck of the fused
kernel, and float32 accuracy where the loss is tiny (its log1p rewrite)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigen
import minigen.functional as F
from devices import on_device, to_host

REDUCTIONS = ["none", "sum", "mean"]
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=5)


@st.composite
def logits_and_targets(draw, low=-40.0, high=40.0):
    shape = draw(SHAPES)
    x = draw(hnp.arrays(np.float64, shape, elements=st.floats(low, high)))
    t = draw(hnp.arrays(np.float64, shape, elements=st.floats(0.0, 1.0)))
    return x, t


def loss_and_grads(fn, x, t, reduction, upstream_seed=0):
    xt = minigen.tensor(x, requires_grad=True)
    tt = minigen.tensor(t, requires_grad=True)
    loss = fn(xt, tt, reduction=reduction)
    upstream = on_device(np.random.default_rng(upstream_seed).standard_normal(loss.shape))
    (loss * upstream).sum().backward()
    return loss.numpy(), to_host(xt.grad), to_host(tt.grad)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@settings(max_examples=10)
@given(case=logits_and_targets())
def test_fused_equals_plain_composition_in_values_and_gradients(reduction, case):
    x, t = case
    fused = loss_and_grads(F.binary_cross_entropy_with_logits, x, t, reduction)
    plain = loss_and_grads(F.binary_cross_entropy_with_logits_reference, x, t, reduction)
    for a, b in zip(fused, plain):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@settings(max_examples=6)
@given(case=logits_and_targets(-6.0, 6.0))
def test_fused_kernel_passes_gradcheck(reduction, case):
    x, t = case
    x = x + 1e-3 * (x == 0)  # away from the one point where finite differences straddle x = 0 unevenly
    assert minigen.gradcheck(
        lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction=reduction),
        [on_device(x), on_device(t)])


def test_float32_keeps_relative_accuracy_where_the_loss_is_tiny():
    # log1p(e) for tiny e: log(1 + e) alone would give 0 here (1 + e rounds to 1 in float32)
    x = np.array([-30.0, -20.0, -17.0, -9.0, 12.0, 25.0, 0.0, 3.0])
    t = np.array([0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.5, 0.25])
    loss = F.binary_cross_entropy_with_logits(minigen.tensor(x.astype(np.float32)),
                                              minigen.tensor(t.astype(np.float32)), reduction="none")
    exact = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))  # float64, no cancellation
    assert loss.dtype == np.float32
    np.testing.assert_allclose(loss.numpy(), exact, rtol=2e-6)


def test_float32_gradient_is_sigmoid_minus_target_in_both_tails():
    x = np.array([-100.0, -30.0, -5.0, 0.0, 5.0, 30.0, 100.0])
    t = np.array([0.0, 0.0, 1.0, 0.5, 0.0, 1.0, 1.0])
    xt = minigen.tensor(x.astype(np.float32), requires_grad=True)
    F.binary_cross_entropy_with_logits(xt, minigen.tensor(t.astype(np.float32)), reduction="sum").backward()
    sigmoid = np.exp(-np.logaddexp(0.0, -x))
    assert xt.grad.dtype == np.float32
    np.testing.assert_allclose(to_host(xt.grad), sigmoid - t, rtol=1e-6, atol=1e-7)
    assert to_host(xt.grad)[1] > 0  # sigmoid(-30) ~ 9e-14 is not rounded to zero


def test_mixed_dtypes_compute_in_the_common_dtype():
    x = minigen.tensor(np.array([0.3, -2.0], dtype=np.float32), requires_grad=True)
    t = minigen.tensor(np.array([1.0, 0.0]))  # float64
    loss = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    assert loss.dtype == np.float64
    loss.sum().backward()
    assert x.grad.dtype == np.float32


def test_bad_reduction_is_rejected_before_any_work():
    x = minigen.tensor(np.zeros(2))
    with pytest.raises(ValueError, match="reduction must be 'sum', 'mean' or 'none', got 'total'"):
        F.binary_cross_entropy_with_logits(x, x, reduction="total")
