"""NICE: volume-preserving couplings plus a diagonal scaling; the density integrates to one
(2-D, both priors), bits/dim, gradients, training, bad input."""
import math

import numpy as np
import pytest

import minigen
from devices import on_device, to_host
from minigen.models import NICE


def tiny(prior="logistic", seed=0, scale=0.3, **kwargs):
    minigen.manual_seed(seed)
    model = NICE(2, n_couplings=3, hidden_dims=(8,), prior=prior, **kwargs).double()
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data += on_device(scale * rng.standard_normal(p.shape))
    return model


@pytest.mark.parametrize("prior", ["logistic", "normal"])
def test_density_integrates_to_one(prior):
    model = tiny(prior)
    axis = np.linspace(-15, 15, 601)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    with minigen.no_grad():
        density = np.exp(to_host(model.log_prob(on_device(grid)))).reshape(601, 601)
    assert abs(np.trapezoid(np.trapezoid(density, axis, axis=1), axis) - 1) < 1e-3


def test_log_prob_is_prior_plus_scaling_only():
    """Additive couplings have unit Jacobian: log p(x) = log p_H(h) + sum(s), s the log-scales."""
    model = tiny()
    x = minigen.tensor(on_device(np.random.default_rng(0).standard_normal((5, 2))))
    h, log_det = model.transform.inverse(x)
    np.testing.assert_allclose(to_host(log_det), -to_host(model.transform[0].log_scale).sum(), rtol=1e-12)
    h = to_host(h)
    logistic = -np.logaddexp(0, h) - np.logaddexp(0, -h)
    np.testing.assert_allclose(to_host(model.log_prob(x)), logistic.sum(1) + to_host(log_det), rtol=1e-12)


def test_bits_per_dim_and_image_input():
    minigen.manual_seed(0)
    model = NICE(16, n_couplings=2, hidden_dims=(8,), logit_alpha=0.05).double()
    levels = np.random.default_rng(0).integers(0, 256, (3, 1, 4, 4))
    bpd = to_host(model.bits_per_dim(on_device(levels), generator=np.random.default_rng(3)))
    y = (levels + np.random.default_rng(3).random(levels.shape)) / 256
    nll = -to_host(model.log_prob(on_device(y.reshape(3, 16))))
    np.testing.assert_allclose(bpd, (nll + 16 * math.log(256)) / (16 * math.log(2)), rtol=1e-10)


def test_gradcheck_and_sampling():
    model = tiny()
    x = minigen.tensor(on_device(np.random.default_rng(1).standard_normal((3, 2))))
    assert minigen.gradcheck(lambda *_: model.log_prob(x), list(model.parameters()))
    a = to_host(model.sample(1000, generator=np.random.default_rng(0)))
    assert a.shape == (1000, 2) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, to_host(model.sample(1000, generator=np.random.default_rng(0))))


def test_training_lowers_the_loss():
    minigen.manual_seed(0)
    model = NICE(2, n_couplings=4, hidden_dims=(16,), prior="normal")
    rng = np.random.default_rng(0)
    z = rng.standard_normal(256)
    x = on_device(np.stack([z, 0.5 * z ** 2 + 0.1 * rng.standard_normal(256)], 1).astype("float32"))
    optimizer = minigen.optim.Adam(model.parameters(), lr=1e-2)
    first = model.loss(x).item()
    for _ in range(60):
        optimizer.zero_grad()
        loss = model.loss(x)
        loss.backward()
        optimizer.step()
    assert loss.item() < first - 0.3


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(input_dim=1), ValueError, "input_dim"),
    (dict(input_dim=4, n_couplings=0), ValueError, "n_couplings"),
    (dict(input_dim=4, prior="gaussian"), ValueError, "prior"),
    (dict(input_dim=4, hidden_dims=(0,)), ValueError, "hidden_dims"),
])
def test_bad_constructor_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        NICE(**kwargs)


def test_save_and_load_round_trip(tmp_path):
    model = tiny()
    path = str(tmp_path / "nice.npz")
    model.save(path)
    loaded = NICE.load(path).double()
    x = on_device(np.random.default_rng(2).standard_normal((4, 2)))
    np.testing.assert_array_equal(to_host(loaded.log_prob(x)), to_host(model.log_prob(x)))
