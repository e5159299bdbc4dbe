"""GroupNorm, SiLU and SinusoidalTimestepEmbedding layers: what they promise, and their errors.

(Forward values against NumPy references and gradients against finite differences are rows of
the op table: group_norm, silu, timestep_embedding.)"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.spatial.distance import pdist

import minigen
import minigen.functional as F
import minigen.nn as nn
from devices import on_device, to_host


def t64(a, grad=False):
    return minigen.tensor(a, dtype="float64", requires_grad=grad)


@settings(max_examples=10)
@given(st.sampled_from([(1, 2), (2, 4), (4, 8), (8, 8), (3, 6)]), st.integers(1, 3), st.integers(0, 999))
def test_group_norm_standardises_each_group_of_each_sample(groups_channels, n, seed):
    groups, channels = groups_channels
    x = np.random.default_rng(seed).standard_normal((n, channels, 3, 4)) * 5 + 2
    layer = nn.GroupNorm(groups, channels).double()
    y = to_host(layer(t64(x))).reshape(n, groups, -1)
    np.testing.assert_allclose(y.mean(axis=2), 0, atol=1e-10)
    np.testing.assert_allclose(y.var(axis=2), 1, rtol=1e-4)  # var / (var + eps)
    # statistics are per sample: normalising one sample alone gives the same rows
    np.testing.assert_allclose(to_host(layer(t64(x[:1]))), y[:1].reshape((1, channels, 3, 4)), atol=1e-12)


def test_group_norm_one_group_is_layer_norm_and_c_groups_is_instance_norm():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 6, 3, 3)), rng.standard_normal(6), rng.standard_normal(6)
    ln = F.layer_norm(t64(x), (6, 3, 3))
    np.testing.assert_allclose(to_host(F.group_norm(t64(x), 1)), to_host(ln), atol=1e-12)
    inst = (x - x.mean(axis=(2, 3), keepdims=True)) / np.sqrt(x.var(axis=(2, 3), keepdims=True) + 1e-5)
    np.testing.assert_allclose(to_host(F.group_norm(t64(x), 6, t64(w), t64(b))),
                               inst * w[:, None, None] + b[:, None, None], atol=1e-12)


def test_group_norm_matches_torch():
    torch = pytest.importorskip("torch", reason="torch is an optional reference")
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((2, 8, 5, 3)), rng.standard_normal(8), rng.standard_normal(8)
    expected = torch.nn.functional.group_norm(torch.tensor(x), 4, torch.tensor(w), torch.tensor(b)).numpy()
    np.testing.assert_allclose(to_host(F.group_norm(t64(x), 4, t64(w), t64(b))), expected, atol=1e-10)


def test_silu_layer_and_its_derivative_at_known_points():
    x = t64(np.array([-2.0, 0.0, 1.0]), grad=True)
    y = nn.SiLU()(x)
    s = 1 / (1 + np.exp(-np.array([-2.0, 0.0, 1.0])))
    np.testing.assert_allclose(to_host(y), np.array([-2.0, 0.0, 1.0]) * s)
    y.sum().backward()
    np.testing.assert_allclose(to_host(x.grad), [s[0] * (1 - 2 * (1 - s[0])), 0.5, s[2] * (2 - s[2])])


def test_timestep_embedding_codes_are_distinct_bounded_and_smooth_in_t():
    emb = nn.SinusoidalTimestepEmbedding(32)
    codes = to_host(emb(on_device(np.arange(1000))))
    assert codes.shape == (1000, 32) and codes.dtype == np.float32
    assert np.abs(codes).max() <= 1
    np.testing.assert_allclose((codes ** 2).sum(axis=1), 16, rtol=1e-5)  # sin^2 + cos^2 per frequency
    assert pdist(codes).min() > 1e-2  # every step has its own code
    assert np.linalg.norm(codes[1] - codes[0]) < np.linalg.norm(codes[500] - codes[0])  # near steps, near codes
    real = to_host(emb(t64(np.array([3.0]))))
    np.testing.assert_allclose(real[0], codes[3], atol=1e-6)  # integer and real times agree


@pytest.mark.parametrize("make, error, pattern", [
    (lambda: nn.GroupNorm(3, 8), ValueError, "divisible by num_groups"),
    (lambda: nn.GroupNorm(0, 8), ValueError, "num_groups must be a positive int"),
    (lambda: nn.GroupNorm(2, 4)(minigen.zeros(2, 3, 4, 4)), ValueError, r"expected an input \(N, 4"),
    (lambda: F.group_norm(minigen.zeros(2, 6, 3), 4), ValueError, "dividing the 6 channels"),
    (lambda: F.group_norm(minigen.zeros(2, 6, 3), 2, minigen.ones(5)), ValueError, r"weight must have shape \(6,\)"),
    (lambda: nn.SinusoidalTimestepEmbedding(7), ValueError, "dim must be even"),
    (lambda: nn.SinusoidalTimestepEmbedding(2.5), TypeError, "dim must be an integer"),
    (lambda: F.timestep_embedding(minigen.zeros(3), 0), ValueError, "even integer >= 2"),
    (lambda: F.timestep_embedding(minigen.zeros(3), 4, max_period=1.0), ValueError, "max_period must be > 1"),
])
def test_bad_input(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()
