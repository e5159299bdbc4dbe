"""One code path: every op runs on a strict stand-in for CuPy (see strict_xp.py).

Any op that calls ``np.*`` on data, mixes in a NumPy array, or hands back a plain ndarray fails
here, as it would on the GPU. The whole op table runs forward and backward on StrictArray
inputs (plain pass and gradcheck), checking types and that values equal the NumPy run.
"""
import numpy as np
import pytest
from hypothesis import given, settings

import minigen
from minigen import Function, Tensor
from ops.op_table import OPS, Case, Op, unary
from strict_xp import StrictArray, strict_module, to_plain, to_strict


def as_tuple(out):
    return out if isinstance(out, tuple) else (out,)


def assert_strict(array, what):
    assert isinstance(array, StrictArray), f"{what} is a {type(array).__name__}, not a StrictArray"


def strict_params(params):
    return {k: to_strict(v) if isinstance(v, np.ndarray) else v for k, v in params.items()}


def forward_backward(name, fn, arrays, params, strict):
    """Leaf tensors (float arrays need grad), outputs, and grads after a fixed random upstream."""
    tensors = [Tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    outs = as_tuple(fn(*tensors, **params))
    for i, out in enumerate(outs if strict else ()):
        assert_strict(out.data, f"{name}: output {i}")
    xp = minigen.backend.get_array_module(*arrays)
    rng = np.random.default_rng(0)
    loss = sum((o * xp.asarray(rng.standard_normal(o.shape))).sum() for o in outs)
    loss.backward()
    grads = [t.grad for t in tensors if t.requires_grad]
    for i, grad in enumerate(grads if strict else ()):
        assert_strict(grad, f"{name}: gradient of input {i}")
    return outs, grads


def check_one_code_path(op, case):
    """The op on StrictArrays: strict outputs and grads, equal to the NumPy run; gradcheck passes."""
    arrays = [to_strict(a) for a in case.arrays]
    params = strict_params(case.params)
    outs, grads = forward_backward(op.name, op.fn, arrays, params, strict=True)
    plain_outs, plain_grads = forward_backward(op.name, op.fn, case.arrays, case.params, strict=False)
    for out, plain in zip(outs, plain_outs):
        np.testing.assert_allclose(to_plain(out.data), plain.data, rtol=1e-12, atol=1e-14)
    assert len(grads) == len(plain_grads)
    for grad, plain in zip(grads, plain_grads):
        np.testing.assert_allclose(to_plain(grad), plain, rtol=1e-12, atol=1e-14)
    minigen.gradcheck(lambda *ts: op.fn(*ts, **params), [a.copy() for a in arrays])


@pytest.mark.parametrize("op", OPS, ids=str)
def test_op_runs_on_strict_arrays(op):
    @settings(max_examples=min(3, settings.default.max_examples))
    @given(case=op.inputs)
    def check(case):
        check_one_code_path(op, case)

    check()


# ----------------------------------------------------------------------------- the test can fail

class ExpViaNumpy(Function):
    """Calls np.exp on the data: works on NumPy, breaks on CuPy."""

    def forward(self, x):
        self.out = np.exp(x)
        return self.out

    def backward(self, g):
        return g * self.out


class GradViaNumpyZeros(Function):
    """Builds its gradient from np.zeros: a NumPy array mixed into device data."""

    def forward(self, x):
        return x * 2.0

    def backward(self, g):
        return np.zeros(self.input_shapes[0]) + 2.0 * g


class LeaksNumpyArray(Function):
    """np.asarray silently turns the data into a plain NumPy array, which it hands back."""

    def forward(self, x):
        return np.asarray(x) * 2.0

    def backward(self, g):
        return np.asarray(g) * 2.0


@pytest.mark.parametrize("bad, error", [(ExpViaNumpy, TypeError), (GradViaNumpyZeros, TypeError),
                                        (LeaksNumpyArray, AssertionError)])
def test_an_op_that_bypasses_the_array_module_is_caught(bad, error):
    op = Op(bad.__name__, unary(), lambda x: bad()(x), lambda x: x)
    case = Case([np.array([0.5, -1.0, 2.0])], {})
    with pytest.raises(error, match="StrictArray"):
        check_one_code_path(op, case)
    # ... while the same op runs on NumPy (a CPU tensor, whatever the default device), where the
    # bug stays hidden
    assert minigen.gradcheck(op.fn, [Tensor(case.arrays[0].copy(), requires_grad=True)])


# ----------------------------------------------------------------------------- the double itself

def test_strict_arrays_refuse_numpy_but_keep_their_operators_and_methods():
    a = to_strict(np.arange(6.0).reshape(2, 3))
    for result in (a + 1, -a, a * a, a @ a.T, a > 2, a.sum(axis=0), a.max(keepdims=True),
                   a.reshape(3, 2), a.T, a[0], strict_module.exp(a), strict_module.zeros(3),
                   strict_module.linalg.inv(strict_module.eye(2)),
                   strict_module.random.default_rng(0).standard_normal(2)):
        assert_strict(result, "result")
    for call in (lambda: np.exp(a), lambda: np.concatenate([a, a]), lambda: np.zeros((2, 3)) + a,
                 lambda: a * np.ones(3), lambda: np.sum(a)):
        with pytest.raises(TypeError, match="StrictArray"):
            call()
    assert minigen.backend.get_array_module(Tensor(a)) is strict_module
