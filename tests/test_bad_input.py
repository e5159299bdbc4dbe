"""Bad input gets a clear ValueError/TypeError naming the op, what was expected and what was given."""
import numpy as np
import pytest

import minigen
import minigen.functional as F
from devices import on_device


def t(*shape, dtype=np.float64):
    """Ones on the device under test (float ones require grad)."""
    return minigen.tensor(np.ones(shape, dtype), requires_grad=np.dtype(dtype).kind == "f")


def test_matmul_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"(?i)matmul.*\(2, 3\).*\(4, 5\)"):
        t(2, 3) @ t(4, 5)
    with pytest.raises(ValueError, match=r"MatMul.*\(2, 3, 4\).*\(5, 4, 2\)"):
        t(2, 3, 4) @ t(5, 4, 2)  # batch axes that do not broadcast: NumPy's error, wrapped
    with pytest.raises(ValueError, match="at least 1-D"):
        F.matmul(t(), t(3))


@pytest.mark.parametrize("op, name", [(lambda a, b: a + b, "Add"), (lambda a, b: a - b, "Sub"),
                                      (lambda a, b: a * b, "Mul"), (lambda a, b: a / b, "Div"),
                                      (lambda a, b: a ** b, "Pow")])
def test_broadcasting_mismatch_names_the_op_and_both_shapes(op, name):
    with pytest.raises(ValueError, match=rf"{name} got inputs of shapes \(2, 3\) and \(4,\)"):
        op(t(2, 3), t(4))


def test_where_mismatch_names_the_shapes():
    with pytest.raises(ValueError, match=r"Where.*\(2, 3\) and \(2,\)"):
        F.where(on_device(np.ones((2, 3), bool)), t(2, 3), t(2))


def test_backward_on_a_non_scalar_without_grad_explains_what_to_pass():
    y = t(2, 3) * 2.0
    with pytest.raises(ValueError, match=r"single-element.*\(2, 3\).*grad=.*\.sum\(\)\.backward\(\)"):
        y.backward()
    with pytest.raises(ValueError, match=r"grad has shape \(3,\) but the tensor has shape \(2, 3\)"):
        y.backward(np.ones(3))


def test_backward_on_a_tensor_without_grad_says_why():
    with pytest.raises(RuntimeError, match="does not require grad"):
        minigen.tensor(np.ones(2)).sum().backward()


def test_requires_grad_on_an_integer_tensor_is_refused_with_a_reason():
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients.*int64"):
        minigen.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="floating-point"):
        minigen.tensor(np.arange(3)).requires_grad_()


@pytest.mark.parametrize("call, pattern", [
    (lambda: t(2, 3).reshape(4), r"Reshape got inputs of shapes \(2, 3\).*reshape"),
    (lambda: t(2, 3).transpose(0, 5), r"not a permutation .* shape \(2, 3\)"),
    (lambda: t(2, 3).sum(axis=2), r"axis 2 is out of range for a tensor with 2 dimensions"),
    (lambda: t(2, 3).sum(axis=(0, -2)), r"repeats an axis"),
    (lambda: F.var(t(1, 3), axis=0, ddof=1), r"ddof=1 leaves no degrees of freedom"),
    (lambda: F.concatenate([t(2, 3), t(2, 4)], axis=0), r"Concatenate got inputs of shapes \(2, 3\) and \(2, 4\)"),
    (lambda: F.stack([t(2, 3), t(3, 2)]), r"Stack got inputs of shapes \(2, 3\) and \(3, 2\)"),
    (lambda: F.split(t(5), 2), r"size 5 does not divide into 2 parts"),
    (lambda: F.split(t(5), [2, 2]), r"sizes \[2, 2\] do not add up to 5"),
    (lambda: F.pad(t(2, 3), ((1, 1), (1, -1))), r"non-negative integer widths"),
    (lambda: F.broadcast_to(t(2, 3), (4, 3)), r"BroadcastTo got inputs of shapes \(2, 3\)"),
    (lambda: t(3).expand(-1, 3), r"-1 is not allowed for the new leading axes"),
    (lambda: F.einsum("ij,jk->ik", t(2, 3), t(3)), r"term 'jk' needs a 2-D operand, got shape \(3,\)"),
    (lambda: F.einsum("ij,jk->ik", t(2, 3)), r"names 2 operands but 1 were given"),
    (lambda: F.einsum("ii->i", t(2, 2)), r"repeated index"),
    (lambda: F.linear(t(4, 3), t(5, 2)), r"input of shape \(4, 3\) needs a weight of shape \(out_features, 3\), got \(5, 2\)"),
    (lambda: F.mse_loss(t(3), t(4)), r"mse_loss: input shape \(3,\) and target shape \(4,\) differ"),
    (lambda: F.binary_cross_entropy_with_logits(t(3), t(2, 3)), r"input shape \(3,\) and target shape \(2, 3\)"),
    (lambda: F.gaussian_nll(t(3), t(2), 1.0), r"gaussian_nll: input shape \(3,\) and target shape \(2,\)"),
    (lambda: F.mse_loss(t(3), t(3), reduction="avg"), r"reduction must be 'sum', 'mean' or 'none', got 'avg'"),
    (lambda: F.cross_entropy(t(4, 3), t(3, dtype=np.int64)), r"logits of shape \(4, 3\) need targets of shape \(4,\), got \(3,\)"),
    (lambda: F.cross_entropy(t(2, 3), minigen.tensor([0, 3])), r"targets must lie in \[0, 3\), got values in \[0, 3\]"),
    (lambda: F.cross_entropy(t(2), minigen.tensor([0, 1])), r"logits of shape \(2,\)"),
])
def test_shape_and_setting_errors_are_clear_value_errors(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def test_cross_entropy_refuses_float_targets():
    with pytest.raises(TypeError, match="integer class indices, got dtype float64"):
        F.cross_entropy(t(2, 3), minigen.tensor(np.array([0.0, 1.0])))


def test_index_out_of_range_is_an_index_error():
    with pytest.raises(IndexError):
        t(3)[5]


def test_item_of_many_elements_and_bad_device_names():
    with pytest.raises(ValueError, match=r"one element, got shape \(2,\)"):
        t(2).item()
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda', got 'tpu'"):
        t(2).to("tpu")


# One row per bad input to the engine's entry points (issue 10.7, 10.13): one failing row does
# not hide the next. (call, expected exception, pattern the message must match)
ENGINE_BAD_INPUT = [
    ("tensor of a string", lambda: minigen.tensor("abc"), TypeError, r"numbers or booleans.*'abc'"),
    ("tensor of None", lambda: minigen.tensor(None), TypeError, r"numbers or booleans.*None"),
    ("tensor of an object array", lambda: minigen.tensor(np.array([1, None], dtype=object)),
     TypeError, r"numbers or booleans"),
    ("tensor of a list of strings", lambda: minigen.tensor(["a", "b"]), TypeError, r"dtype <U1"),
    ("tensor of a ragged list", lambda: minigen.tensor([[1.0, 2.0], [3.0]]), ValueError,
     r"tensor: data is a ragged nested list.*1, 2"),
    ("Tensor() of a list", lambda: minigen.Tensor([1.0, 2.0]), TypeError,
     r"Tensor\(data\) wraps a NumPy or CuPy array, got a list.*minigen.tensor"),
    ("Tensor() of a string array", lambda: minigen.Tensor(np.array(["a"])), TypeError,
     r"numbers or booleans.*<U1"),
    ("tensor + 'a'", lambda: t(2) + "a", TypeError, r"Add: operand 2 .*got 'a' \(str\)"),
    ("tensor + None", lambda: t(2) + None, TypeError, r"Add: operand 2 .*got None"),
    ("None * tensor", lambda: None * t(2), TypeError, r"Mul: operand 1 .*got None"),
    ("squeeze(1) of a 0-d tensor", lambda: t().squeeze(1), ValueError,
     r"squeeze: axis 1 is out of range for a 0-d tensor"),
    ("squeeze(3) of a 2-d tensor", lambda: t(2, 1).squeeze(3), ValueError,
     r"squeeze: axis 3 is out of range for a tensor of shape \(2, 1\)"),
    ("manual_seed(1.7)", lambda: minigen.manual_seed(1.7), TypeError, r"seed must be an integer, got 1.7"),
    ("manual_seed(-1)", lambda: minigen.manual_seed(-1), ValueError, r"seed must be >= 0, got -1"),
    ("Linear(2.5, 3)", lambda: minigen.nn.Linear(2.5, 3), TypeError,
     r"Linear: in_features must be a positive int, got 2.5 \(float\)"),
    ("Linear(0, 3)", lambda: minigen.nn.Linear(0, 3), ValueError, r"Linear: in_features .* got 0"),
    ("Linear(3, 2) on 5 features", lambda: minigen.nn.Linear(3, 2)(minigen.randn(4, 5)),
     ValueError, r"features"),
    ("Conv2d(kernel_size=0)", lambda: minigen.nn.Conv2d(1, 2, kernel_size=0), ValueError,
     r"Conv2d: kernel_size must be >= 1, got 0"),
    ("Conv2d(kernel_size=1.5)", lambda: minigen.nn.Conv2d(1, 2, kernel_size=1.5), TypeError,
     r"Conv2d: kernel_size must be an int or a pair"),
    ("Conv2d(in_channels=0)", lambda: minigen.nn.Conv2d(0, 2, 3), ValueError, r"in_channels"),
    ("check_array of a ragged list", lambda: minigen.validation.check_array([[1.0, 2.0], [3.0]]),
     ValueError, r"X is a ragged nested list"),
    ("SGD(lr='fast')", lambda: minigen.optim.SGD([t(2)], lr="fast"), TypeError, r"SGD: lr must be a real"),
    ("SGD(lr=-1)", lambda: minigen.optim.SGD([t(2)], lr=-1), ValueError, r"SGD: lr must be >= 0"),
    ("Adam(betas=0.9)", lambda: minigen.optim.Adam([t(2)], betas=0.9), TypeError, r"betas must be a pair"),
    ("Adam(betas=(0.9, 1.0))", lambda: minigen.optim.Adam([t(2)], betas=(0.9, 1.0)), ValueError,
     r"betas\[1\] must be < 1"),
    ("no_grad(3)", lambda: minigen.no_grad(3), TypeError, r"no_grad\(\) takes no arguments"),
    ("save_image_grid(upscale=1.5)", lambda: minigen.utils.save_image_grid(
        np.zeros((1, 4, 4)), "unused.png", upscale=1.5), TypeError, r"upscale must be an integer"),
]


@pytest.mark.parametrize("call, error, pattern", [row[1:] for row in ENGINE_BAD_INPUT],
                         ids=[row[0] for row in ENGINE_BAD_INPUT])
def test_engine_bad_input_is_a_clear_error(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()
