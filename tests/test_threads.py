"""minigen.threads: NumPy copies and updates shared among threads give the values of one pass."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigen
from minigen import threads
from minigen.ops import conv

pytestmark = pytest.mark.cpu_only  # threads split NumPy work only; CuPy work is never split


@pytest.fixture
def many_threads(monkeypatch):
    """Three threads, and every copy large enough to be split (the threaded code paths run)."""
    monkeypatch.setitem(threads._threads, "n", 3)
    monkeypatch.setattr(threads, "PARALLEL_BYTES", 0)


def test_run_in_threads_runs_every_task_and_raises_their_errors(many_threads):
    done = []
    threads.run_in_threads([lambda k=k: done.append(k) for k in range(5)])
    assert sorted(done) == list(range(5))

    def fail():
        raise KeyError("in a pool thread")
    with pytest.raises(KeyError, match="in a pool thread"):
        threads.run_in_threads([lambda: None, fail])


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 5), st.integers(1, 7), st.integers(0, 2 ** 16))
def test_assign_in_threads_equals_plain_assignment(n_pairs, rows, seed):
    rng = np.random.default_rng(seed)
    saved = threads._threads["n"], threads.PARALLEL_BYTES
    threads._threads["n"], threads.PARALLEL_BYTES = 3, 0
    try:
        sources = [rng.standard_normal((rows, 4, 3))[:, ::2] for _ in range(n_pairs)]
        targets = [np.zeros((rows, 2, 3)) for _ in range(n_pairs)]
        threads.assign_in_threads(list(zip(targets, sources)))
        for t, s in zip(targets, sources):
            np.testing.assert_array_equal(t, s)
        out = np.zeros((rows, 5))
        threads.run_in_blocks(lambda m: np.add(np.arange(5.0), 1.0, out=out[m]), rows, out)
        np.testing.assert_array_equal(out, np.broadcast_to(np.arange(1.0, 6.0), (rows, 5)))
    finally:
        threads._threads["n"], threads.PARALLEL_BYTES = saved


def assert_threads_change_nothing(run, module, monkeypatch):
    """run() (a list of arrays) is bitwise the same on one thread and on three, with ``module``'s
    chunks as small as they go (many chunks: many threaded copies)."""
    monkeypatch.setattr(module, "CHUNK_BYTES", 1)
    monkeypatch.setitem(threads._threads, "n", 1)
    one = run()
    monkeypatch.setitem(threads._threads, "n", 3)
    monkeypatch.setattr(threads, "PARALLEL_BYTES", 0)
    for a, b in zip(one, run()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("op, weight_shape, kwargs", [
    ("conv2d", (6, 4, 3, 3), dict(padding=1)),
    ("conv2d", (6, 4, 3, 2), dict(stride=2, padding=(1, 0), dilation=(1, 2))),
    ("conv2d", (6, 4, 1, 1), {}),
    ("conv_transpose2d", (4, 6, 4, 4), dict(stride=2, padding=1)),
])
def test_threaded_convolutions_equal_one_thread_exactly(op, weight_shape, kwargs, monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4, 9, 8))
    w = rng.standard_normal(weight_shape)
    b = rng.standard_normal(weight_shape[1] if op == "conv_transpose2d" else weight_shape[0])

    def run():
        xs, ws, bs = (minigen.tensor(a, requires_grad=True) for a in (x, w, b))
        y = getattr(conv, op)(xs, ws, bs, **kwargs)
        y.backward(np.cos(np.arange(y.size)).reshape(y.shape))
        return [y.numpy(), xs.grad, ws.grad, bs.grad]

    assert_threads_change_nothing(run, conv, monkeypatch)


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_set_num_threads_rejects_what_is_not_a_positive_integer(bad):
    with pytest.raises(ValueError, match=r"set_num_threads: n must be a positive integer, got"):
        threads.set_num_threads(bad)


@pytest.mark.parametrize("relu_input", [False, True])
@pytest.mark.parametrize("kernel", [(3, 3), (1, 1), (2, 3)])
def test_threaded_masked_convolutions_equal_one_thread_exactly(kernel, relu_input, monkeypatch):
    from minigen.ops import masked_conv
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4, 7, 6))
    w = rng.standard_normal((5, 4) + kernel)
    mask = (rng.random(w.shape) < 0.6).astype(float)
    b = rng.standard_normal(5)
    padding = ((kernel[0] - 1, 0), (kernel[1] // 2, kernel[1] // 2))

    def run():
        xs, ws, bs = (minigen.tensor(a, requires_grad=True) for a in (x, w, b))
        y = masked_conv.masked_conv2d(xs, ws, mask, bs, padding=padding, relu_input=relu_input)
        y.backward(np.sin(np.arange(y.size)).reshape(y.shape))
        return [y.numpy(), xs.grad, ws.grad, bs.grad]

    assert_threads_change_nothing(run, masked_conv, monkeypatch)
