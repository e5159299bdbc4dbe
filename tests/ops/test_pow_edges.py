"""Gradients of powers where the textbook formula reads 0 * inf (issue 10.6): PyTorch's values,
written out by hand (always) and compared with torch itself (when importable)."""
import numpy as np
import pytest

import minigen
from devices import on_device, to_host


def leaf(values):
    return minigen.tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


def grads(f, *values):
    tensors = [leaf(v) for v in values]
    f(*tensors).sum().backward()
    return [to_host(t.grad) for t in tensors]


# (name, function on tensors, inputs, expected gradients): derivatives that exist, by hand.
CASES = [
    # x^0 = 1 for every x: d/dx = 0, also at x = 0 (formula: 0 * 0^-1 = 0 * inf)
    ("x**0 at 0", lambda x: x ** 0, ([0.0, 2.0],), ([0.0, 0.0],)),
    ("x**0.0 (float) at 0", lambda x: x ** 0.0, ([0.0],), ([0.0],)),
    ("x**array([0, 2]) at 0", lambda x: x ** on_device(np.array([0.0, 2.0])), ([0.0, 0.0],), ([0.0, 0.0],)),
    ("x**2 at 0", lambda x: x ** 2, ([0.0, 3.0],), ([0.0, 6.0],)),
    # a^b with both tensors at a = 0, b = 2: d/da = 2a = 0, d/db = a^b log a -> 0 (formula: 0 * -inf)
    ("a**b at a=0, b=2", lambda a, b: a ** b, ([0.0], [2.0]), ([0.0], [0.0])),
    # a^b at b = 0: d/da = 0 for every a (formula at a = 0: 0 * inf); d/db = 1 * log a: -inf at a = 0 ...
    ("a**b at a=0, b=0 (d/da)", lambda a, b: a ** b, ([0.0, 3.0], [0.0, 0.0]), ([0.0, 0.0], [0.0, np.log(3.0)])),
    # 0.0**y: 0 for y > 0, so d/dy = 0 there (formula: 0 * log 0 = 0 * -inf)
    ("0.0**y", lambda y: 0.0 ** y, ([2.0, 0.5],), ([0.0, 0.0],)),
    ("2.0**y", lambda y: 2.0 ** y, ([3.0],), ([8.0 * np.log(2.0)],)),
]


@pytest.mark.parametrize("f, inputs, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_pow_gradients_where_the_formula_reads_zero_times_infinity(f, inputs, expected):
    for got, want in zip(grads(f, *inputs), expected):
        np.testing.assert_allclose(got, want)


TORCH_CASES = [c for c in CASES if "array" not in c[0]]  # torch has no tensor ** numpy-array


@pytest.mark.parametrize("f, inputs, expected", [c[1:] for c in TORCH_CASES], ids=[c[0] for c in TORCH_CASES])
def test_pow_gradients_match_pytorch(f, inputs, expected):
    torch = pytest.importorskip("torch", reason="torch is only a test reference")
    tensors = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in inputs]
    out = f(*tensors)
    out.sum().backward()
    for got, reference in zip(grads(f, *inputs), tensors):
        np.testing.assert_allclose(got, reference.grad.numpy())
