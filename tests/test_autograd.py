"""The backward walk: broadcasting, deep graphs, accumulation, graph freeing, recording switches,
anomaly detection, dtypes and devices, and the Tensor conveniences."""
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigen
import minigen.functional as F
from devices import on_device, to_host
from minigen import Function, Tensor, backend


def leaf(array):
    """A float64 leaf on the device under test."""
    return minigen.tensor(np.asarray(array, dtype=np.float64), requires_grad=True)


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ----------------------------------------------------------------------------- broadcasting

BINARY_OPS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b * b + 1.0),
    "pow": lambda a, b: (a * a + 1.0) ** b,
    "where": lambda a, b: (F.where(on_device(np.array(True)), a, b) * 2.0
                           + F.where(on_device(np.array(False)), a, b)),
    "gaussian_nll_var": lambda a, b: F.gaussian_nll(a + b, b - a, a * a + 1.0, reduction="none"),
}


@pytest.mark.parametrize("name", BINARY_OPS)
@settings(max_examples=10)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3))
def test_binary_op_gradients_are_summed_back_to_each_input_shape(name, shapes):
    """The walk's sum_to gives the gradient of the broadcast computation, summed over the
    broadcast axes: compare with the same op on inputs broadcast by hand (no sum_to involved)."""
    op = BINARY_OPS[name]
    shape_a, shape_b = shapes.input_shapes
    a, b = leaf(randn(*shape_a, seed=1)), leaf(randn(*shape_b, seed=2))
    out = op(a, b)
    upstream = randn(*out.shape, seed=3)
    out.backward(upstream)
    assert a.grad.shape == shape_a and b.grad.shape == shape_b

    full = shapes.result_shape
    a_full, b_full = leaf(np.broadcast_to(a.numpy(), full)), leaf(np.broadcast_to(b.numpy(), full))
    op(a_full, b_full).backward(upstream)
    for small, big, shape in ((a, a_full, shape_a), (b, b_full, shape_b)):
        lead = len(full) - len(shape)
        expected = to_host(big.grad).sum(axis=tuple(range(lead))).sum(
            axis=tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True).reshape(shape)
        np.testing.assert_allclose(to_host(small.grad), expected, rtol=1e-12, atol=1e-12)


@settings(max_examples=10)
@given(shapes=hnp.mutually_broadcastable_shapes(signature=np.matmul.signature, max_dims=3, max_side=3))
def test_matmul_batch_broadcasting_reduces_gradients_to_operand_shapes(shapes):
    shape_a, shape_b = shapes.input_shapes
    a, b = leaf(randn(*shape_a, seed=1)), leaf(randn(*shape_b, seed=2))
    out = a @ b
    g = randn(*out.shape, seed=3)
    out.backward(g)
    assert a.grad.shape == shape_a and b.grad.shape == shape_b
    # Linearity check: <g, a @ b> = <a.grad, a> = <b.grad, b>.
    total = float((g * out.numpy()).sum())
    assert np.isclose((to_host(a.grad) * a.numpy()).sum(), total)
    assert np.isclose((to_host(b.grad) * b.numpy()).sum(), total)


def test_linear_bias_gradient_sums_over_batch_axes():
    x, w, b = leaf(randn(2, 3, 4)), leaf(randn(5, 4)), leaf(randn(5))
    F.linear(x, w, b).sum().backward()
    np.testing.assert_allclose(to_host(b.grad), np.full(5, 6.0))


# ----------------------------------------------------------------------------- deep graphs

def test_a_chain_of_100000_ops_backpropagates_without_recursion():
    limit = sys.getrecursionlimit()
    x = leaf(1.0)
    y, c = x, 1.0 + 1e-5
    for _ in range(100_000):
        y = y * c
    y.backward()
    assert sys.getrecursionlimit() == limit
    np.testing.assert_allclose(to_host(x.grad), c ** 100_000, rtol=1e-9)  # (1 + 1e-5)^1e5 ~ e


# ----------------------------------------------------------------------------- accumulation

def test_a_tensor_used_twice_gets_both_contributions():
    x = leaf([1.0, -2.0, 3.0])
    (x * x).sum().backward()
    np.testing.assert_allclose(to_host(x.grad), 2 * x.numpy())
    x.grad = None
    (x + x).sum().backward()  # both inputs receive the same upstream array: must not alias
    np.testing.assert_allclose(to_host(x.grad), [2.0, 2.0, 2.0])


def test_diamond_graph_accumulates_through_a_shared_intermediate():
    x = leaf([0.5, -1.0])
    h = x.exp()                      # used by three consumers
    z = (h * h + 2.0 * h - h.sum()).sum()
    z.backward()
    e = np.exp(x.numpy())
    np.testing.assert_allclose(to_host(x.grad), (2 * e + 2.0 - 2.0) * e)  # d/dx [sum e^2x + 2e^x - 2 sum e^x]


def test_many_uses_of_one_leaf_accumulate():
    x = leaf(randn(3))
    sum(x * float(k) for k in range(1, 11)).sum().backward()
    np.testing.assert_allclose(to_host(x.grad), np.full(3, 55.0))


class SameArrayTwice(Function):
    """A legal backward that hands the same new array to both inputs."""

    def forward(self, a, b):
        return a + b

    def backward(self, g):
        shared = g * 1.0
        return shared, shared


def test_one_gradient_array_given_to_two_inputs_is_not_aliased_between_their_grads():
    a, b = leaf(np.zeros(3)), leaf(np.zeros(3))
    z = SameArrayTwice()(a, b)
    g = np.array([1.0, 2.0, 3.0])
    z.backward(g, retain_graph=True)
    z.backward(g)
    assert a.grad is not b.grad
    np.testing.assert_allclose(to_host(a.grad), 2 * g)
    np.testing.assert_allclose(to_host(b.grad), 2 * g)


@pytest.mark.parametrize("make", [
    lambda x: x,
    lambda x: x * 1.0,
    lambda x: x + 0.0,
    lambda x: x.reshape(6).reshape(2, 3),
    lambda x: x.T.T,
    lambda x: x[...],
    lambda x: F.broadcast_to(x, (2, 3)),
    lambda x: F.concatenate([x[:1], x[1:]]),
    lambda x: F.where(on_device(np.ones((2, 3), bool)), x, 0.0),
    lambda x: x.astype("float32").astype("float64"),
], ids=["leaf", "mul1", "add0", "reshape", "TT", "getitem", "broadcast", "concatenate", "where",
        "astype"])
def test_leaf_grad_accumulates_across_backward_calls_and_upstream_grad_is_not_mutated(make):
    x = leaf(randn(2, 3))
    g = on_device(randn(2, 3, seed=5))  # on the device, so that backward could alias it
    g_before = to_host(g).copy()
    make(x).backward(g)
    first = to_host(x.grad).copy()
    make(x).backward(g)
    np.testing.assert_array_equal(to_host(g), g_before)
    assert x.grad is not g
    np.testing.assert_allclose(first, g_before, rtol=1e-6)
    np.testing.assert_allclose(to_host(x.grad), 2 * first)


def test_upstream_grad_is_not_mutated_when_two_paths_pass_it_through():
    x = leaf(randn(3))
    g = on_device(np.ones(3))
    y = x + x.reshape(3)  # Add returns g twice; Reshape returns a view of it
    y.backward(g)
    np.testing.assert_array_equal(to_host(g), np.ones(3))
    np.testing.assert_allclose(to_host(x.grad), 2 * np.ones(3))


# ----------------------------------------------------------------------------- freeing the graph

def test_second_backward_raises_a_clear_error_unless_the_graph_is_retained():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_backward_frees_the_saved_arrays():
    x = leaf(randn(4))
    h = x.exp()
    y = (h * x).sum()
    mul = y._creator.inputs[0]._creator
    assert hasattr(mul, "a")
    y.backward()
    assert vars(mul) == {"freed": True}


def test_retain_graph_gives_the_same_gradients_again_accumulated():
    x = leaf([0.3, -0.7])
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = to_host(x.grad).copy()
    y.backward()
    np.testing.assert_allclose(to_host(x.grad), 2 * first)
    np.testing.assert_allclose(first, np.exp(x.numpy()) * (1 + x.numpy()))


# ----------------------------------------------------------------------------- recording switches

def test_no_grad_turns_recording_off_and_restores_it():
    x = leaf([1.0])
    with minigen.no_grad():
        assert not minigen.is_grad_enabled()
        y = x * 2.0
        with minigen.enable_grad():
            z = x * 2.0
    assert minigen.is_grad_enabled()
    assert not y.requires_grad and y._creator is None
    assert z.requires_grad
    with pytest.raises(ZeroDivisionError), minigen.no_grad():
        1 / 0
    assert minigen.is_grad_enabled()


def test_no_grad_works_as_a_decorator():
    @minigen.no_grad()
    def double(t):
        return t * 2.0
    assert not double(leaf([1.0])).requires_grad


def test_detach_stops_gradients_and_shares_data():
    x = leaf([1.0, 2.0])
    d = x.detach()
    assert not d.requires_grad and d.is_leaf and d.data is x.data
    (d * x).sum().backward()
    np.testing.assert_allclose(to_host(x.grad), [1.0, 2.0])  # d is a constant: d/dx (c x) = c


def test_comparisons_make_boolean_tensors_without_grad():
    x = leaf([1.0, 2.0, 3.0])
    for mask in (x > 1.5, x <= 2.0, x == 2.0, x != 2.0, x >= x, x < 2):
        assert mask.dtype == bool and not mask.requires_grad
    np.testing.assert_array_equal((x > 1.5).numpy(), [False, True, True])


# ----------------------------------------------------------------------------- anomaly detection

def test_detect_anomaly_names_the_forward_op_that_made_a_nan():
    x = leaf([1.0, 2.0, 3.0])
    with np.errstate(all="ignore"), minigen.detect_anomaly():
        y = x - 2.0  # fine
        with pytest.raises(FloatingPointError, match=r"Log .*forward.*\(3,\)"):
            y.log()
    with np.errstate(all="ignore"):
        assert np.isnan(y.log().numpy()[0])  # off again outside the block


def test_detect_anomaly_names_the_backward_op_that_made_an_inf():
    x = leaf([0.0, 4.0])
    with np.errstate(all="ignore"), minigen.detect_anomaly():
        y = (x.sqrt() * 3.0).sum()  # forward is finite: sqrt(0) = 0
        with pytest.raises(FloatingPointError, match=r"Sqrt .*backward.*\(2,\)"):
            y.backward()


def test_without_detect_anomaly_nan_passes_silently():
    x = leaf([-1.0])
    with np.errstate(all="ignore"):
        y = x.log().sum()
        y.backward()
    assert np.isnan(y.item())


# ----------------------------------------------------------------------------- dtypes and devices

SCALAR_OPS = {
    "mul": lambda x: x * 2.0, "rmul": lambda x: 2.0 * x, "div": lambda x: x / 3,
    "rdiv": lambda x: 3.0 / x, "add": lambda x: x + 1, "rsub": lambda x: 1.0 - x,
    "pow": lambda x: x ** 2.5, "rpow": lambda x: 2.0 ** x, "clip": lambda x: F.clip(x, 0.2, 0.8),
    "where": lambda x: F.where(x.data > 0.5, x, 0.0), "leaky_relu": lambda x: F.leaky_relu(x, 0.1),
    "elu": lambda x: F.elu(x, 1.5), "mean": lambda x: x.mean(), "var": lambda x: F.var(x, ddof=1),
    "gaussian_nll": lambda x: F.gaussian_nll(x, x * 0.5, 0.3),
    "pad": lambda x: F.pad(x, 1, value=0.5), "softmax": lambda x: F.softmax(x),
}


@pytest.mark.parametrize("name", SCALAR_OPS)
def test_float32_stays_float32_with_python_scalars(name):
    x = minigen.tensor(np.array([0.25, 0.5, 0.75], np.float32), requires_grad=True)
    y = SCALAR_OPS[name](x)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_float64_works_end_to_end():
    x = leaf([0.1, 0.2])
    y = F.log_softmax(x * 3.0).sum()
    y.backward()
    assert y.dtype == np.float64 and x.grad.dtype == np.float64


def test_astype_is_differentiable_and_casts_the_gradient_back():
    x = minigen.tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    y = x.astype("float64")
    assert y.dtype == np.float64
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(to_host(x.grad), [2.0, 4.0])


def test_mixing_devices_raises_naming_both(monkeypatch):
    on_gpu = np.ones(3)  # pretend this array lives on the GPU

    def fake_device_of(array):
        array = array.data if isinstance(array, Tensor) else array
        return "cuda" if array is on_gpu else "cpu"

    monkeypatch.setattr(backend, "device_of", fake_device_of)
    gpu, cpu = Tensor(on_gpu, requires_grad=True), Tensor(np.ones(3))
    assert gpu.device == "cuda" and cpu.device == "cpu"
    with pytest.raises(ValueError, match=r"Add.*cpu and cuda"):
        gpu + cpu
    with pytest.raises(ValueError, match=r"Mul.*cpu and cuda"):
        cpu * on_gpu  # a raw array on the other device counts too
    with pytest.raises(ValueError, match=r"MatMul.*cpu and cuda"):
        F.matmul(cpu, gpu)


# ----------------------------------------------------------------------------- Tensor conveniences

def test_tensor_factory_dtypes_follow_pytorch():
    assert minigen.tensor([1.5, 2.0]).dtype == np.float32
    assert minigen.tensor(1.5).dtype == np.float32
    assert minigen.tensor([1, 2]).dtype == np.int64
    assert minigen.tensor([True, False]).dtype == bool
    for dtype in (np.float64, np.float16, np.int32, np.uint8):
        assert minigen.tensor(np.zeros(2, dtype)).dtype == dtype
    assert minigen.tensor([1, 2], dtype="float64").dtype == np.float64
    assert minigen.arange(3).dtype == np.int64 and minigen.arange(0.0, 1.0, 0.5).dtype == np.float32
    assert minigen.zeros(2).dtype == np.float32 and minigen.randn(2, 3, generator=0).shape == (2, 3)
    source = np.zeros(2)
    t = minigen.tensor(source)
    source[0] = 5.0
    assert t.data[0] == 0.0  # a copy


def test_tensor_accessors():
    x = minigen.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    assert x.shape == (2, 2) and x.ndim == 2 and x.size == 4 and len(x) == 2
    assert x.device == backend.default_device() and x.to(x.device) is x and x.cpu().device == "cpu"
    assert x[0, 1].item() == 2.0 and isinstance(x[0, 1].item(), float)
    assert float(x[1, 1]) == 4.0 and int(x[1, 0]) == 3
    assert bool(x[0, 0] > 0.5) and not bool(x[0, 0] > 1.5)
    with pytest.raises(ValueError, match="one element"):
        x.item()
    assert isinstance(x.numpy(), np.ndarray)
    assert x.astype("float64").dtype == np.float64 and x.double().dtype == np.float64
    assert x.float() is x
    np.testing.assert_array_equal(x.T.numpy(), x.numpy().T)
    assert x.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert [row.shape for row in x] == [(2,), (2,)]
    with pytest.raises(TypeError, match="0-d"):
        list(x[0, 0])


@pytest.mark.cpu_only  # a CPU tensor is its own cpu() and shares its memory with numpy()
def test_cpu_conversions_do_not_copy():
    x = minigen.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert x.device == "cpu" and x.to("cpu") is x and x.cpu() is x
    assert np.shares_memory(x.numpy(), x.data)


def test_zero_dimensional_results_and_grads_are_arrays_not_numpy_scalars(xp):
    x = leaf(2.0)
    y = x * 3.0  # NumPy returns a scalar for 0-d arithmetic
    assert isinstance(y.data, xp.ndarray) and isinstance(Tensor(np.float64(1.0)).data, np.ndarray)
    y.backward()
    assert isinstance(x.grad, xp.ndarray) and x.grad.shape == ()
    x.grad[...] = 0.0  # writable in place, like any other gradient


def test_indexing_with_a_boolean_tensor_from_a_comparison():
    x = leaf([-1.0, 2.0, -3.0, 4.0])
    x[x > 0].sum().backward()
    np.testing.assert_array_equal(to_host(x.grad), [0.0, 1.0, 0.0, 1.0])


def test_rpow_values_and_gradient():
    x = leaf([0.5, -1.0])
    y = 2.0 ** x
    np.testing.assert_allclose(y.numpy(), 2.0 ** x.numpy())
    y.sum().backward()
    np.testing.assert_allclose(to_host(x.grad), 2.0 ** x.numpy() * np.log(2.0))
    base = on_device(np.array([3.0, 0.5]))
    z = base ** x  # an array base (NumPy or CuPy) defers to Tensor.__rpow__
    assert isinstance(z, Tensor)
    np.testing.assert_allclose(z.numpy(), to_host(base) ** x.numpy())


@pytest.mark.parametrize("symbol", ["*", "+", "-", "/", "@", "**"])
def test_an_array_on_the_left_returns_a_tensor(symbol):
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    a = on_device(np.array([[2.0, 1.0], [0.5, 3.0]]))  # NumPy, or CuPy on the GPU run
    y = eval(f"a {symbol} x")  # the array defers to the Tensor's reflected operator
    assert isinstance(y, Tensor) and y.requires_grad
    np.testing.assert_allclose(y.numpy(), to_host(eval(f"a {symbol} x.data")))


def test_backward_on_a_leaf_accumulates_a_copy():
    x = leaf([1.0, 2.0])
    g = on_device(np.array([0.5, 0.5]))
    x.backward(g)
    x.backward(g)
    assert x.grad is not g
    np.testing.assert_allclose(to_host(x.grad), [1.0, 1.0])
    np.testing.assert_allclose(to_host(g), [0.5, 0.5])


@settings(max_examples=10)
@given(st.integers(1, 4))
def test_gradient_of_sum_of_squares_is_twice_the_input(n):
    x = leaf(randn(n, seed=n))
    (x ** 2).sum().backward()
    np.testing.assert_allclose(to_host(x.grad), 2 * x.numpy())
