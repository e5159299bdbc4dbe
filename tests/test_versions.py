"""The version counter (issue 10.2): a tensor that a Function saved for backward and that was
then updated in place through the library makes backward raise, naming the op and the tensor,
instead of returning the gradient at the new values."""
import threading

import numpy as np
import pytest

import minigen
import minigen.functional as F
from devices import on_device
from minigen import nn


def leaf(values):
    return minigen.tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


def test_optimizer_step_between_forward_and_backward_raises():
    w = nn.Parameter(np.array([1.0, 2.0]))
    opt = minigen.optim.SGD([w], lr=0.1)
    loss = (w * w).sum()
    w.grad = on_device(np.ones(2))
    opt.step()
    with pytest.raises(RuntimeError, match=r"Mul saved for backward \(its input 1, of shape \(2,\)\)"):
        loss.backward()


@pytest.mark.parametrize("update", [
    lambda model: model.load_state_dict({k: v + 1 for k, v in model.state_dict().items()}),
    lambda model: model.to(dtype="float64"),
    lambda model: nn.init.zeros_(model.weight),
    lambda model: minigen.optim.Adam(model.parameters()).step() if _with_grads(model) else None,
    lambda model: minigen.optim.ReferenceSGD(model.parameters(), lr=1.0).step() if _with_grads(model) else None,
], ids=["load_state_dict", "Module.to", "init", "Adam.step", "ReferenceSGD.step"])
def test_every_in_place_update_of_the_library_is_tracked(update):
    model = nn.Linear(3, 2)
    loss = model(minigen.ones(4, 3)).sum()
    update(model)
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


def _with_grads(model):
    for p in model.parameters():
        p.grad = on_device(np.ones(p.shape, dtype=p.dtype))
    return True


def test_in_place_methods_bump_the_version_and_refuse_recording():
    x = leaf([1.0, 2.0])
    y = x.exp()  # Exp saves its output
    with minigen.no_grad():
        y.mul_(2.0)
    with pytest.raises(RuntimeError, match=r"Exp saved for backward \(its output"):
        y.sum().backward()
    with pytest.raises(RuntimeError, match="add_: an in-place update of a tensor that requires grad"):
        x.add_(1.0)
    before = x._version
    with minigen.no_grad():
        x.add_(1.0).sub_(0.5, alpha=2).div_(2.0).copy_(on_device(np.array([3.0, 4.0]))).clamp_(max=3.5)
    assert x._version == before + 5
    np.testing.assert_allclose(x.numpy(), [3.0, 3.5])


def test_ops_that_save_nothing_of_the_changed_tensor_still_work():
    """As in PyTorch: x + 1 keeps no copy of x, so changing x afterwards is harmless."""
    x = leaf([1.0, 2.0])
    loss = (x + 1.0).sum()
    with minigen.no_grad():
        x.mul_(3.0)
    loss.backward()
    np.testing.assert_array_equal(minigen.backend.to_numpy(x.grad), [1.0, 1.0])


def test_detach_shares_the_version_counter():
    x = leaf([1.0, 2.0])
    loss = (x * x).sum()
    x.detach().zero_()
    with pytest.raises(RuntimeError, match="Mul saved"):
        loss.backward()


def test_writing_into_data_is_not_tracked_as_documented():
    x = leaf([1.0, 2.0])
    loss = (x * x).sum()
    x.data[...] = 0.0
    loss.backward()  # silently uses the new values, exactly as PyTorch's .data
    np.testing.assert_array_equal(minigen.backend.to_numpy(x.grad), [0.0, 0.0])


# ---------------------------------------------------------------- recording switches (10.3)

def test_no_grad_is_a_decorator_with_and_without_parentheses():
    @minigen.no_grad
    def bare(x):
        return x * 2.0

    @minigen.no_grad()
    def called(x):
        return x * 2.0

    x = leaf([1.0])
    assert not bare(x).requires_grad and not called(x).requires_grad
    assert (x * 2.0).requires_grad and bare.__name__ == "bare"

    @minigen.enable_grad
    def inside(x):
        return x * 2.0

    with minigen.no_grad():
        assert inside(x).requires_grad


def test_grad_mode_and_anomaly_mode_are_per_thread():
    """A thread inside no_grad()/detect_anomaly() does not switch them for another thread."""
    entered, release = threading.Event(), threading.Event()
    seen = {}

    def other():
        with minigen.no_grad(), minigen.detect_anomaly():
            entered.set()
            release.wait(5)
            seen["other"] = (leaf([1.0]) * 2.0).requires_grad

    thread = threading.Thread(target=other)
    thread.start()
    entered.wait(5)
    seen["main"] = (leaf([1.0]) * 2.0).requires_grad
    with np.errstate(divide="ignore"):
        F.log(leaf([0.0]))  # -inf: would raise here if anomaly mode leaked into this thread
    release.set()
    thread.join(5)
    assert seen == {"main": True, "other": False}
    with minigen.no_grad():
        result = []
        worker = threading.Thread(target=lambda: result.append(minigen.is_grad_enabled()))
        worker.start()
        worker.join(5)
    assert result == [True]  # a new thread starts with recording on, as in PyTorch
