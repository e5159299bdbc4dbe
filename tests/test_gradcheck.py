"""gradcheck itself: it must catch wrong backward passes, say where, and refuse meaningless checks."""
import numpy as np
import pytest

import minigen
import minigen.functional as F
from devices import to_host
from minigen import Function, GradcheckError, Tensor, backend, gradcheck


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


class SquareMissingFactor2(Function):
    """x^2 with the classic bug: backward forgets the 2."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, g):
        return g * self.x


class TripleWrongAtOneElement(Function):
    """3x, but the gradient of one element (``bad``, a flat index) is 1.5 times too big."""

    def __init__(self, bad):
        self.bad = bad

    def forward(self, x):
        return 3 * x

    def backward(self, g):
        gx = 3 * g
        gx.reshape(-1)[self.bad] *= 1.5
        return gx


class SumAxisIgnoringG(Function):
    """x.sum(axis=1) whose backward broadcasts ones instead of g: right only for g = 1."""

    def forward(self, x):
        return x.sum(axis=1)

    def backward(self, g):
        return backend.get_array_module(g).ones(self.input_shapes[0])


class DoubleWithDefaultGrad(Function):
    """2x whose backward treats an all-zero upstream gradient as 'no gradient given' = ones."""

    def forward(self, x):
        return 2 * x

    def backward(self, g):
        if not g.any():
            g = np.ones_like(g)
        return 2 * g


def test_correct_ops_pass_in_both_modes():
    small, large = randn(3, 4), randn(10, 12)  # 12 <= 64 elements: full Jacobian; 120: directions
    assert gradcheck(lambda x: F.softplus(x) * x, [small])
    assert gradcheck(lambda x: F.softplus(x) * x, [large])
    assert gradcheck(lambda a, b: a @ b, [randn(8, 9), randn(9, 7, seed=1)])


def test_full_jacobian_mode_reports_the_worst_element_and_by_how_much():
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda x: SquareMissingFactor2()(x), [randn(2, 3)])
    message = str(info.value)
    assert "input 0" in message and "shape (2, 3)" in message and "at element (" in message
    assert "analytic" in message and "numeric" in message and "difference" in message
    assert "6 of 6 elements disagree" in message


def test_full_jacobian_mode_points_at_the_one_wrong_element():
    with pytest.raises(GradcheckError, match=r"at element \(1, 2\).*1 of 12 elements disagree"):
        gradcheck(lambda x: TripleWrongAtOneElement(bad=6)(x), [randn(3, 4)])


def test_directional_mode_catches_a_missing_factor_and_names_the_input():
    with pytest.raises(GradcheckError, match=r"directional derivative mismatch.*per input: input 0"):
        gradcheck(lambda x: SquareMissingFactor2()(x), [randn(20, 10)])
    # small inputs can be forced into directional mode too
    with pytest.raises(GradcheckError, match="directional"):
        gradcheck(lambda x: SquareMissingFactor2()(x), [randn(3)], full_jacobian_max=0)


def test_directional_mode_then_locates_the_one_wrong_element():
    x, c = randn(20, 10), randn(20, 10, seed=1)  # 400 elements in all: directional mode
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda x, c: TripleWrongAtOneElement(bad=37)(x) + c, [x, c])
    message = str(info.value)
    assert "directional" in message
    assert "element by element: gradient mismatch for input 0 (shape (20, 10)) at element (3, 7)" in message


def test_only_the_wrong_input_is_blamed():
    a, b = randn(3), randn(3, seed=1)
    with pytest.raises(GradcheckError, match="for input 1"):
        gradcheck(lambda a, b: a + SquareMissingFactor2()(b), [a, b])


def test_a_nonzero_gradient_for_a_zero_upstream_gradient_is_caught():
    x = randn(4)
    with pytest.raises(GradcheckError, match="zero upstream gradient gave a non-zero gradient"):
        gradcheck(lambda x: DoubleWithDefaultGrad()(x), [x])
    assert gradcheck(lambda x: DoubleWithDefaultGrad()(x), [x], check_zero_grad=False)


def test_random_upstream_catches_a_bug_that_an_all_ones_upstream_misses():
    x = minigen.tensor(randn(3, 4), requires_grad=True)
    SumAxisIgnoringG()(x).backward(np.ones(3))
    np.testing.assert_array_equal(to_host(x.grad), np.ones((3, 4)))  # right for g = 1, so a ones-check passes
    with pytest.raises(GradcheckError):
        gradcheck(lambda x: SumAxisIgnoringG()(x), [randn(3, 4)])


def test_float32_inputs_are_refused():
    with pytest.raises(TypeError, match="float64.*float32.*double"):
        gradcheck(lambda x: x * 2.0, [randn(3).astype(np.float32)])
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda x: x * 2.0, [Tensor(np.ones(3, np.float32), requires_grad=True)])


def test_meaningless_checks_are_refused():
    with pytest.raises(ValueError, match="nothing to check"):
        gradcheck(lambda x: x * 2.0, [Tensor(np.ones(3))])
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(ValueError, match="leaf"):
        gradcheck(lambda y: y * 2.0, [x * 1.0])


def test_tuple_outputs_integer_constants_and_constant_tensors():
    assert gradcheck(lambda x: tuple(F.split(x, [1, 2], axis=1)), [randn(2, 3)])
    target = np.array([0, 2, 1])
    assert gradcheck(lambda x, t: F.cross_entropy(x, t), [randn(3, 4), target])
    const = minigen.tensor(randn(3))  # no requires_grad: passed through, not checked
    assert gradcheck(lambda x, c: x * c, [randn(3), const])


def test_inputs_are_restored_and_left_without_grads():
    x = minigen.tensor(randn(3, 3), requires_grad=True)
    before = x.numpy().copy()
    gradcheck(lambda x: x.exp(), [x])
    np.testing.assert_array_equal(x.numpy(), before)
    assert x.grad is None


def test_a_parameter_used_through_a_closure_is_checked_in_place():
    """Inputs are perturbed in place, so a model's own parameter can be passed and used inside fn."""
    W = minigen.tensor(randn(3, 2), requires_grad=True)
    x = minigen.tensor(randn(4, 3))
    assert gradcheck(lambda _: (x @ W).tanh(), [W])
    with pytest.raises(GradcheckError):
        gradcheck(lambda _: SquareMissingFactor2()(x @ W), [W])


def test_a_backward_with_a_wrongly_shaped_gradient_is_reported():
    class WrongShape(Function):
        def forward(self, x):
            return x * 2

        def backward(self, g):
            return g[:1]

    with pytest.raises(RuntimeError, match=r"WrongShape.backward returned a gradient of shape \(1,\) "
                                           r"for an input of shape \(3,\)"):
        gradcheck(lambda x: WrongShape()(x), [randn(3)])


def test_gradcheck_is_public_api():
    assert minigen.gradcheck is gradcheck and issubclass(GradcheckError, AssertionError)
