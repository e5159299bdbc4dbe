"""layer_norm and batch_norm: formulas, gradcheck, train/eval behaviour, running statistics, errors."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minigen
import minigen.functional as F
import minigen.nn as nn
from devices import on_device, to_host


def t64(a, grad=False):
    return minigen.tensor(a, dtype="float64", requires_grad=grad)


@settings(max_examples=12)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(2, 5), st.integers(1, 2), st.integers(0, 999))
def test_layer_norm_formula_and_gradcheck(a, b, c, k, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((a, b, c)) * 3 + 1
    shape = (b, c)[2 - k:]
    w, bias = rng.standard_normal(shape), rng.standard_normal(shape)
    axes = tuple(range(3 - k, 3))
    mu, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    expected = (x - mu) / np.sqrt(var + 1e-5) * w + bias
    y = F.layer_norm(t64(x), shape, t64(w), t64(bias))
    np.testing.assert_allclose(y.numpy(), expected, atol=1e-12)
    assert minigen.gradcheck(lambda x, w, b: F.layer_norm(x, shape, w, b),
                             [t64(x, True), t64(w, True), t64(bias, True)])
    assert minigen.gradcheck(lambda x: F.layer_norm(x, shape), [t64(x, True)])


@settings(max_examples=12)
@given(st.sampled_from([(4, 3), (3, 2, 5), (2, 3, 3, 2)]), st.integers(0, 999))
def test_batch_norm_gradcheck_train_and_eval(shape, seed):
    rng = np.random.default_rng(seed)
    c = shape[1]
    x, w, b = rng.standard_normal(shape) * 2 - 1, rng.standard_normal(c), rng.standard_normal(c)
    inputs = [t64(x, True), t64(w, True), t64(b, True)]
    assert minigen.gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), inputs)
    mean, var = rng.standard_normal(c), rng.uniform(0.5, 2, c)
    assert minigen.gradcheck(lambda x, w, b: F.batch_norm(x, on_device(mean), on_device(var), w, b, training=False),
                             inputs)


def test_batch_norm_training_standardises_each_channel():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3, 5, 4)) * np.array([1, 5, 0.1])[None, :, None, None] + 7
    y = F.batch_norm(t64(x), None, None, training=True).numpy()
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, atol=1e-3)  # eps = 1e-5 shrinks it a little


def test_running_statistics_follow_pytorch_update():
    rng = np.random.default_rng(1)
    bn = nn.BatchNorm2d(3, momentum=0.2).double()
    mean, var = np.zeros(3), np.ones(3)
    for _ in range(3):
        x = rng.standard_normal((4, 3, 2, 5)) * 2 + 3
        bn(t64(x))
        m = x.size // 3
        mean = 0.8 * mean + 0.2 * x.mean(axis=(0, 2, 3))
        var = 0.8 * var + 0.2 * x.var(axis=(0, 2, 3)) * m / (m - 1)  # unbiased, as PyTorch
    np.testing.assert_allclose(to_host(bn.running_mean), mean, atol=1e-12)
    np.testing.assert_allclose(to_host(bn.running_var), var, atol=1e-12)


def test_eval_mode_uses_running_statistics_and_leaves_them_alone():
    rng = np.random.default_rng(2)
    bn = nn.BatchNorm1d(4).double()
    bn.weight.data[...] = on_device(rng.standard_normal(4))
    bn.bias.data[...] = on_device(rng.standard_normal(4))
    bn.running_mean[...] = on_device(rng.standard_normal(4))
    bn.running_var[...] = on_device(rng.uniform(0.5, 2, 4))
    before = to_host(bn.running_mean), to_host(bn.running_var)
    x = rng.standard_normal((6, 4))
    y = bn.eval()(t64(x)).numpy()
    expected = (x - before[0]) / np.sqrt(before[1] + 1e-5) * bn.weight.numpy() + bn.bias.numpy()
    np.testing.assert_allclose(y, expected, atol=1e-12)
    np.testing.assert_array_equal(to_host(bn.running_mean), before[0])
    np.testing.assert_array_equal(to_host(bn.running_var), before[1])
    # one sample is fine in eval mode, and each sample is normalised independently of the batch
    np.testing.assert_allclose(bn(t64(x[:1])).numpy(), y[:1], atol=1e-12)
    assert not np.allclose(bn.train()(t64(x)).numpy(), y)


def test_batch_norm_1d_on_sequences_and_no_running_stats():
    x = minigen.randn(5, 3, 7)
    bn = nn.BatchNorm1d(3, track_running_stats=False, affine=False)
    assert bn.running_mean is None and list(bn.parameters()) == []
    assert bn.eval()(x).shape == (5, 3, 7)  # batch statistics even in eval mode
    np.testing.assert_allclose(bn(x).numpy().mean(axis=(0, 2)), 0, atol=1e-5)


def test_buffers_and_parameters():
    bn = nn.BatchNorm2d(5)
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var"]
    np.testing.assert_array_equal(bn.weight.numpy(), 1)
    np.testing.assert_array_equal(to_host(bn.running_var), 1)
    ln = nn.LayerNorm((2, 3))
    assert ln.weight.shape == (2, 3) and ln(minigen.randn(4, 2, 3)).shape == (4, 2, 3)


def test_bad_input():
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected a 4-D input, got shape \(2, 3\)"):
        nn.BatchNorm2d(3)(minigen.zeros(2, 3))
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected 3 channels, got 4"):
        nn.BatchNorm2d(3)(minigen.zeros(2, 4, 5, 5))
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected a 2-D or 3-D input"):
        nn.BatchNorm1d(3)(minigen.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"more than 1 value per channel when training, got input of shape \(1, 3\)"):
        nn.BatchNorm1d(3)(minigen.zeros(1, 3))
    with pytest.raises(ValueError, match=r"trailing dimensions are \(4,\), got shape \(2, 5\)"):
        nn.LayerNorm(4)(minigen.zeros(2, 5))
    with pytest.raises(ValueError, match=r"running_mean must have shape \(2,\) .* got \(3,\)"):
        F.batch_norm(minigen.zeros(4, 2), np.zeros(3), np.ones(3))


def test_batch_norm_running_stats_on_another_device_name_both(fake_cupy):
    x = minigen.tensor(np.ones((4, 3)), device="cuda")
    with pytest.raises(ValueError, match="running_mean is on cpu but the input is on cuda"):
        F.batch_norm(x, np.zeros(3), np.ones(3), training=False)
