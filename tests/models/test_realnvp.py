"""RealNVP: the multi-scale model is one bijection (inverse, log-determinant against a
central-difference Jacobian), bits/dim counts dequantisation and the logit, gradients, training."""
import math
import sys
import os

import numpy as np
import pytest

import minigen
from devices import on_device, to_host
from minigen import flows
from minigen.models import RealNVP

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "flows"))
from flow_helpers import jacobian_log_det  # noqa: E402


def tiny(seed=0, scale=0.1, **kwargs):
    minigen.manual_seed(seed)
    model = RealNVP(1, 4, **{"n_scales": 2, "hidden_channels": 4, "n_blocks": 1, **kwargs}).double()
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data += on_device(scale * rng.standard_normal(p.shape))
    return model


def images(n=3, seed=0, side=4):
    return on_device(np.random.default_rng(seed).uniform(0.02, 0.98, (n, 1, side, side)))


def test_architecture_checkerboard_squeeze_channel_factor_out():
    model = RealNVP(1, 8, n_scales=2)
    scale = model.transform[0]
    assert len(scale.board) == 3 and len(scale.channel) == 3 and len(scale.inner.board) == 4
    assert scale.inner.event_shape == (2, 4, 4)  # 4 channels after the squeeze, half factored out
    masks = [c.mask for c in scale.channel]
    assert all(m.shape == (4, 1, 1) for m in masks)


@pytest.mark.parametrize("n_scales", [1, 2])
def test_the_whole_model_is_a_bijection_with_the_right_log_det(n_scales):
    model = tiny(n_scales=n_scales)
    x = minigen.tensor(images())
    z, log_det = model.transform.inverse(x)
    x_back, log_det_fwd = model.transform(z)
    np.testing.assert_allclose(to_host(x_back), to_host(x), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(to_host(log_det + log_det_fwd), 0, atol=1e-9)
    np.testing.assert_allclose(to_host(log_det), jacobian_log_det(model.transform.inverse, x),
                               rtol=1e-6, atol=1e-6)
    expected = -0.5 * (to_host(z) ** 2).reshape(3, -1).sum(1) - 8 * math.log(2 * math.pi) + to_host(log_det)
    np.testing.assert_allclose(to_host(model.log_prob(x)), expected, rtol=1e-10)


def test_bits_per_dim_is_the_dequantised_nll_with_the_log_256_jacobian():
    model = tiny()
    levels = np.random.default_rng(1).integers(0, 256, (3, 1, 4, 4))
    bpd = to_host(model.bits_per_dim(on_device(levels / 255), generator=np.random.default_rng(7)))
    y = (levels + np.random.default_rng(7).random(levels.shape)) / 256
    nll = -to_host(model.log_prob(on_device(y)))
    np.testing.assert_allclose(bpd, (nll + 16 * math.log(256)) / (16 * math.log(2)), rtol=1e-10)
    same = to_host(model.bits_per_dim(on_device(levels), generator=np.random.default_rng(7)))
    np.testing.assert_allclose(same, bpd, rtol=1e-4)  # integer levels: the same figure (in float32)


def test_gradcheck_of_the_loss_for_every_parameter():
    model = tiny(n_scales=2)
    x = minigen.tensor(images(2))
    assert minigen.gradcheck(lambda *_: model.log_prob(x), list(model.parameters()))


def test_samples_and_training_lower_the_loss():
    minigen.manual_seed(0)
    model = RealNVP(1, 4, n_scales=2, hidden_channels=4, n_blocks=0)
    a = to_host(model.sample(6, generator=np.random.default_rng(0)))
    b = to_host(model.sample(6, generator=np.random.default_rng(0)))
    assert a.shape == (6, 1, 4, 4) and np.array_equal(a, b) and np.isfinite(a).all()
    rng = np.random.default_rng(0)
    data = np.clip(rng.normal(0.5, 0.1, (64, 1, 4, 4)) + np.linspace(-0.3, 0.3, 4), 0.01, 0.99)
    x = on_device(data.astype("float32"))
    optimizer = minigen.optim.Adam(model.parameters(), lr=3e-3)
    first = model.loss(x).item()
    for _ in range(20):
        optimizer.zero_grad()
        loss = model.loss(x)
        loss.backward()
        optimizer.step()
    assert loss.item() < first - 5


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(in_channels=1, image_size=6, n_scales=3), ValueError, "divisible"),
    (dict(in_channels=1, image_size=4, n_scales=3), ValueError, "at least 2"),
    (dict(in_channels=0, image_size=4), ValueError, "in_channels"),
    (dict(in_channels=1, image_size=4, hidden_channels=2.5), TypeError, "hidden_channels"),
    (dict(in_channels=1, image_size=4, logit_alpha=0.5), ValueError, "alpha"),
])
def test_bad_constructor_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        RealNVP(**kwargs)


def test_bad_data():
    model = tiny()
    with pytest.raises(ValueError, match="Logit.inverse: x must lie in"):
        model.log_prob(on_device(np.full((1, 1, 4, 4), 2.0)))
    with pytest.raises(ValueError, match=r"dequantize: x must hold levels in \[0, 1\]"):
        model.bits_per_dim(on_device(np.full((1, 1, 4, 4), 1.5)))
    with pytest.raises(ValueError, match="mask"):
        model.log_prob(on_device(np.full((1, 1, 8, 8), 0.5)))


def test_save_and_load_round_trip(tmp_path):
    model = tiny()
    path = str(tmp_path / "realnvp.npz")
    model.save(path)
    loaded = RealNVP.load(path).double()
    x = images(2)
    np.testing.assert_array_equal(to_host(loaded.log_prob(x)), to_host(model.log_prob(x)))
    np.testing.assert_array_equal(to_host(loaded.sample(3, generator=np.random.default_rng(0))),
                                  to_host(model.sample(3, generator=np.random.default_rng(0))))
