"""Loss details beyond the op table: clamping, reductions and layouts as in PyTorch."""
import numpy as np
import pytest

import minigen
import minigen.functional as F
from devices import on_device, to_host


def test_gaussian_nll_clamps_var_in_value_but_lets_its_gradient_through():
    eps = 1e-6
    var = minigen.tensor(np.array([1e-9, 0.5]), requires_grad=True)
    x, t = minigen.tensor(np.array([0.1, 0.2])), minigen.tensor(np.zeros(2))
    loss = F.gaussian_nll(x, t, var, eps=eps, reduction="none")
    clamped = np.maximum(var.numpy(), eps)
    np.testing.assert_allclose(loss.numpy(), 0.5 * (np.log(clamped) + x.numpy() ** 2 / clamped))
    loss.sum().backward()
    grad = to_host(var.grad)
    np.testing.assert_allclose(grad, 0.5 * (1 / clamped - x.numpy() ** 2 / clamped ** 2))
    assert grad[0] != 0  # a var stuck below eps can still move


def test_gaussian_nll_accepts_a_number_an_array_or_a_broadcasting_tensor_as_var():
    x, t = minigen.tensor(np.ones((2, 3))), minigen.tensor(np.zeros((2, 3)))
    by_number = F.gaussian_nll(x, t, 0.5, reduction="sum").item()
    by_array = F.gaussian_nll(x, t, on_device(np.full((2, 1), 0.5)), reduction="sum").item()
    by_tensor = F.gaussian_nll(x, t, minigen.tensor(np.full(3, 0.5)), reduction="sum").item()
    assert by_number == pytest.approx(by_array) == pytest.approx(by_tensor)


@pytest.mark.parametrize("reduction, expected", [("sum", 6.0), ("mean", 1.0), ("none", None)])
def test_reductions(reduction, expected):
    x, t = minigen.tensor(np.ones((2, 3))), minigen.tensor(np.zeros((2, 3)))
    out = F.mse_loss(x, t, reduction=reduction)
    if expected is None:
        assert out.shape == (2, 3)
    else:
        assert out.item() == expected


def test_cross_entropy_spatial_layout_equals_flattened_layout():
    rng = np.random.default_rng(0)
    logits, target = rng.standard_normal((2, 4, 3)), on_device(rng.integers(0, 4, (2, 3)))
    spatial = F.cross_entropy(minigen.tensor(logits), target, reduction="none").numpy()
    flat = F.cross_entropy(minigen.tensor(logits.transpose(0, 2, 1).reshape(6, 4)), target.reshape(6),
                           reduction="none").numpy()
    np.testing.assert_allclose(spatial.reshape(6), flat)
