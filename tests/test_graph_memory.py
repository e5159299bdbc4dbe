"""The recorded graph keeps only what backward needs: an intermediate array that no op saved is
freed as soon as user code drops its tensor, before backward (as in PyTorch)."""
import gc
import weakref

import numpy as np
import pytest

import minigen
import minigen.functional as F
from devices import to_host


def test_an_intermediate_no_op_saved_is_freed_before_backward():
    x = minigen.tensor(np.arange(6.0), requires_grad=True)
    y = x * 2.0            # Mul saves x (a leaf), not y
    z = (y + 1.0).sum()    # Add and Sum save nothing of y
    freed = weakref.ref(y.data)
    del y
    gc.collect()
    assert freed() is None, "the graph kept an array that no backward needs"
    z.backward()
    np.testing.assert_array_equal(to_host(x.grad), np.full(6, 2.0))


def test_an_intermediate_an_op_saved_stays_alive_and_is_used():
    x = minigen.tensor(np.linspace(-1.0, 1.0, 5), requires_grad=True)
    y = F.exp(x)
    z = (y * y).sum()      # Mul saves both operands: y's array must survive `del y`
    kept = weakref.ref(y.data)
    del y
    gc.collect()
    assert kept() is not None
    z.backward()
    np.testing.assert_allclose(to_host(x.grad), 2 * np.exp(2 * np.linspace(-1.0, 1.0, 5)))


def test_in_place_change_of_a_dropped_intermediate_through_a_detached_view_is_caught():
    x = minigen.tensor(np.linspace(0.5, 1.5, 4), requires_grad=True)
    y = F.exp(x)
    z = (y * x).sum()      # Mul saved y's array
    alias = y.detach()     # shares y's memory and its version counter
    del y
    gc.collect()
    alias.add_(1.0)
    with pytest.raises(RuntimeError, match="modified in place"):
        z.backward()


def test_gradients_are_unchanged_when_every_intermediate_is_dropped():
    rng = np.random.default_rng(0)
    w = minigen.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    x = minigen.tensor(rng.standard_normal((5, 4)))

    def loss(keep):
        h = F.relu(x @ w)
        out = (F.tanh(h) + h).sum()
        return out, (h if keep else None)

    grads = []
    for keep in (True, False):
        w.grad = None
        out, _ = loss(keep)
        gc.collect()
        out.backward()
        grads.append(to_host(w.grad))
    np.testing.assert_array_equal(*grads)
