"""embedding (lookup, accumulated gradient for repeated indices) and dropout (masks, scaling, eval)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minigen
import minigen.functional as F
import minigen.nn as nn
from devices import on_device, to_host


@settings(max_examples=12)
@given(st.integers(1, 6), st.integers(1, 4), st.lists(st.integers(0, 5), min_size=1, max_size=8),
       st.integers(0, 99))
def test_embedding_lookup_and_gradcheck(v, d, raw, seed):
    idx = np.array([i % v for i in raw]).reshape(1, -1)
    w = np.random.default_rng(seed).standard_normal((v, d))
    wt = minigen.tensor(w, dtype="float64", requires_grad=True)
    np.testing.assert_array_equal(F.embedding(idx, wt).numpy(), w[idx])
    assert minigen.gradcheck(lambda w: F.embedding(idx, w), [wt])


def test_embedding_gradient_accumulates_repeated_rows():
    emb = nn.Embedding(4, 2)
    idx = minigen.tensor(np.array([[3, 1, 3], [3, 0, 1]]))
    out = emb(idx)
    assert out.shape == (2, 3, 2)
    g = np.arange(12, dtype=np.float32).reshape(2, 3, 2)
    out.backward(on_device(g))
    expected = np.zeros((4, 2), dtype=np.float32)
    for (a, b), row in np.ndenumerate(idx.numpy()):
        expected[row] += g[a, b]
    np.testing.assert_array_equal(to_host(emb.weight.grad), expected)
    assert emb.weight.grad.dtype == np.float32


def test_embedding_init_and_errors():
    minigen.manual_seed(0)
    w = nn.Embedding(1000, 8).weight.numpy()
    assert abs(w.mean()) < 0.05 and abs(w.std() - 1) < 0.05  # N(0, 1) as PyTorch
    emb = nn.Embedding(5, 3)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 5\), got values from 0 to 5"):
        emb(np.array([0, 5]))
    with pytest.raises(ValueError, match=r"got values from -1 to 2"):
        emb(np.array([-1, 2]))
    with pytest.raises(TypeError, match=r"indices must be integers, got dtype float64"):
        emb(np.array([0.0, 1.0]))


def test_dropout_is_identity_in_eval_mode_and_for_p_zero():
    x = minigen.randn(4, 5, requires_grad=True)
    layer = nn.Dropout(0.7).eval()
    assert layer(x) is x
    assert F.dropout(x, 0.0) is x


def test_dropout_mask_and_scaling():
    x = minigen.ones(200, 500)
    y = F.dropout(x, 0.3, generator=0).numpy()
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    assert abs(kept.mean() - 0.7) < 0.01
    assert abs(y.mean() - 1) < 0.02  # inverted dropout keeps the expectation
    assert not F.dropout(x, 1.0).numpy().any()


def test_dropout_randomness_comes_from_the_generator():
    x = minigen.ones(3, 50)
    a = F.dropout(x, 0.5, generator=7).numpy()
    np.testing.assert_array_equal(a, F.dropout(x, 0.5, generator=7).numpy())
    minigen.manual_seed(1)
    b = nn.Dropout(0.5)(x).numpy()
    minigen.manual_seed(1)
    np.testing.assert_array_equal(b, nn.Dropout(0.5)(x).numpy())
    assert not np.array_equal(b, nn.Dropout(0.5)(x).numpy())  # the global generator moved on


@settings(max_examples=8)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=4), st.floats(0.05, 0.95), st.integers(0, 99))
def test_dropout_gradient_uses_the_same_mask(shape, p, seed):
    x = minigen.tensor(np.random.default_rng(seed).uniform(0.5, 2, shape), dtype="float64",
                       requires_grad=True)
    assert minigen.gradcheck(lambda x: F.dropout(x, p, generator=seed), [x])
    y = F.dropout(x, p, generator=seed)
    y.sum().backward()
    np.testing.assert_array_equal(to_host(x.grad) != 0, y.numpy() != 0)


def test_dropout_bad_p():
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\], got 1.5"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\], got -0.1"):
        F.dropout(minigen.ones(2), -0.1)
