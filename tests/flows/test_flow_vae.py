"""The flow-posterior VAE (VAE(..., posterior_flow=...)): with a 2-D latent, log p(x) by quadrature over z is
exact, and the ELBO of a planar or IAF posterior stays below it, before and after training."""
import math

import numpy as np
import pytest

import minigen
import minigen.functional as F
from devices import on_device, to_host
from minigen.data import load_digits
from minigen.models import VAE
from minigen.optim import Adam


def data(n=12):
    images = load_digits(return_labels=False)[:n].reshape(n, -1)
    return on_device((np.random.default_rng(0).random(images.shape) < images).astype("float64"))


def log_px_by_quadrature(model, x, half_width=6.0, n=97):
    """log p(x) = log sum_grid p(x | z) p(z) dz over a grid of z (the latent is 2-D)."""
    a = np.linspace(-half_width, half_width, n)
    z = on_device(np.stack(np.meshgrid(a, a, indexing="ij"), -1).reshape(-1, 1, 2))  # (G, 1, 2)
    with minigen.no_grad():
        zt = minigen.tensor(z).to(dtype="float64")
        zt = F.broadcast_to(zt, (zt.shape[0], x.shape[0], 2))
        log_joint = to_host(model._log_px(minigen.tensor(x), zt, None) + model._log_prior(zt))  # (G, N)
    top = log_joint.max(0)
    return top + np.log(np.exp(log_joint - top).sum(0) * (a[1] - a[0]) ** 2)


@pytest.mark.parametrize("flow", ["planar", "iaf"])
def test_elbo_never_exceeds_log_px(flow):
    minigen.manual_seed(0)
    model = VAE(64, (32,), latent_dim=2, posterior_flow=flow, flow_length=3).double()
    x = data()
    optimizer = Adam(model.parameters(), lr=3e-3)
    for stage in range(2):  # at initialisation, then after some training
        log_px = log_px_by_quadrature(model, x)
        with minigen.no_grad():
            draws = to_host(model.log_weights(x, 200, generator=np.random.default_rng(stage)))  # (k, N)
        elbo, se = draws.mean(0), draws.std(0) / math.sqrt(len(draws))
        assert np.all(elbo <= log_px + 3 * se + 1e-9), (elbo - log_px, se)
        assert np.all(elbo > log_px - 30)  # a bound, not -inf: the flow's log-dets are finite
        for _ in range(25):
            optimizer.zero_grad()
            loss = model.loss(x)
            loss.backward()
            optimizer.step()


def test_flow_inputs_come_from_the_encoder_and_the_loss_is_gradchecked():
    minigen.manual_seed(1)
    model = VAE(64, (8,), latent_dim=2, posterior_flow="planar", flow_length=2).double()
    assert model.encoder[-1].out_features == 2 * 2 + 2 * (2 * 2 + 1)
    x = data(3)
    eps = np.random.default_rng(0).standard_normal((1, 3, 2))
    assert minigen.gradcheck(lambda *_: model.loss(x, eps=eps), list(model.parameters()))
    with pytest.raises(ValueError, match="free_bits"):
        model.loss(x, free_bits=0.5)
    with pytest.raises(ValueError, match="posterior_flow"):
        VAE(64, posterior_flow="radial")
    with pytest.raises(ValueError, match="free_bits"):
        model.loss(x, free_bits=0.5, estimator="analytic_kl")
