"""HierarchicalVAE: bounds against log p(x) by 2-D quadrature on a model with 1-D latents, the
ladder's precision-weighted merge against the product of two Gaussian densities, gradients,
sampling shapes, bad input."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minigen
import minigen.functional as F
from devices import to_host
from minigen import backend
from minigen.models import HierarchicalVAE
from minigen.models.hierarchical_vae import precision_weighted_merge

XP = backend.array_module_for(backend.default_device())
X = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])


def tiny(inference, seed=0):
    minigen.manual_seed(seed)
    return HierarchicalVAE(3, (4,), latent_dims=(1, 1), inference=inference).double()


def log_px_by_quadrature(model, x, half_width=9.0, n=900):
    """log p(x) = log int int p(x | z1) p(z1 | z2) p(z2) dz1 dz2, trapezoid rule on a grid."""
    g = np.linspace(-half_width, half_width, n)
    z1, z2 = np.meshgrid(g, g, indexing="ij")
    with minigen.no_grad():
        mu, logvar = model.priors[0](minigen.Tensor(XP.asarray(g[:, None])))
        mu, var = to_host(mu.data)[:, 0], np.exp(to_host(logvar.data)[:, 0])  # as functions of z2
        logits = to_host(model.decoder(minigen.Tensor(XP.asarray(g[:, None]))).data)  # of z1
    log_pz2 = -0.5 * (z2 ** 2 + math.log(2 * math.pi))
    log_pz1 = -0.5 * ((z1 - mu[None, :]) ** 2 / var[None, :] + np.log(2 * np.pi * var[None, :]))
    out = []
    for row in x:
        log_px_z1 = -np.logaddexp(0, -(2 * row - 1) * logits).sum(axis=1)  # Bernoulli, (n,)
        log_joint = log_px_z1[:, None] + log_pz1 + log_pz2
        peak = log_joint.max()
        out.append(peak + math.log(np.trapezoid(np.trapezoid(np.exp(log_joint - peak), g, axis=1), g)))
    return np.array(out)


@pytest.mark.parametrize("inference", ["bottom_up", "ladder"])
def test_bounds_sit_below_log_px_and_rise_toward_it_with_k(inference):
    model = tiny(inference)
    exact = log_px_by_quadrature(model, X)
    x = XP.asarray(X)
    rng = np.random.default_rng(0) if XP is np else None
    with minigen.no_grad():
        log_w = to_host(model.log_weights(x, 40000, generator=rng).data)  # (40000, N)
    bounds, errors = [], []
    for k in (1, 10, 100):  # L_k by its mean over 40000 / k independent replicates, and its standard error
        replicates = log_w.reshape(-1, k, len(X))
        peak = replicates.max(axis=1, keepdims=True)
        l_k = (peak + np.log(np.exp(replicates - peak).mean(axis=1, keepdims=True)))[:, 0]
        bounds.append(l_k.mean(axis=0))
        errors.append(l_k.std(axis=0) / math.sqrt(len(l_k)))
    slack = [4 * e + 1e-3 for e in errors]
    assert np.all(bounds[0] <= exact + slack[0])                      # the ELBO = L_1 <= log p(x)
    assert np.all(bounds[0] <= bounds[1] + slack[0] + slack[1])       # L_k rises with k ...
    assert np.all(bounds[1] <= bounds[2] + slack[1] + slack[2])
    assert np.all(bounds[2] <= exact + slack[2])                      # ... toward log p(x)
    assert np.all(exact - bounds[0] > 10 * errors[0])                 # the ELBO is not tight here
    estimate = to_host(model.log_likelihood(x, n_samples=20000, generator=rng).data)
    np.testing.assert_allclose(estimate, exact, atol=0.02)


@settings(max_examples=15)
@given(st.floats(-3, 3), st.floats(0.05, 4), st.floats(-3, 3), st.floats(0.05, 4))
def test_ladder_merge_is_the_normalised_product_of_two_gaussians(mu_a, var_a, mu_b, var_b):
    mu, var = precision_weighted_merge(minigen.tensor(mu_a), minigen.tensor(var_a),
                                       minigen.tensor(mu_b), minigen.tensor(var_b))
    g = np.linspace(-15, 15, 200001)
    log_product = -0.5 * ((g - mu_a) ** 2 / var_a + (g - mu_b) ** 2 / var_b)
    density = np.exp(log_product - log_product.max())
    density /= np.trapezoid(density, g)
    mean = np.trapezoid(g * density, g)
    assert float(mu.item()) == pytest.approx(mean, abs=1e-6)
    assert float(var.item()) == pytest.approx(np.trapezoid((g - mean) ** 2 * density, g), rel=1e-5)


@pytest.mark.parametrize("inference", ["bottom_up", "ladder"])
def test_whole_model_gradcheck_with_the_noise_fixed(inference):
    model = HierarchicalVAE(4, ((5,), (3,)), latent_dims=(3, 2), inference=inference).double()
    rng = np.random.default_rng(1)
    x = XP.asarray((rng.random((2, 4)) < 0.5).astype(np.float64))
    eps = [XP.asarray(rng.standard_normal((3, 2, d))) for d in (3, 2)]
    assert minigen.gradcheck(lambda *ps: model.iwae_loss(x, 3, eps=eps), list(model.parameters()))


def test_sample_and_contract_shapes():
    model = HierarchicalVAE((1, 4, 4), (8,), latent_dims=(3, 2))
    assert model.sample(5).shape == (5, 1, 4, 4)
    x = XP.asarray((np.random.default_rng(0).random((6, 1, 4, 4)) < 0.5).astype(np.float32))
    assert model.log_likelihood(x, n_samples=7, batch_size=3).shape == (6,)
    assert model.loss(x).shape == ()


BAD = [
    ("one layer", lambda: HierarchicalVAE(4, (3,), latent_dims=(2,)), ValueError, "at least two"),
    ("inference name", lambda: HierarchicalVAE(4, (3,), (2, 1), inference="top_down"), ValueError, "inference"),
    ("hidden per layer", lambda: HierarchicalVAE(4, ((3,), (3,), (3,)), (2, 1)), ValueError, "one tuple"),
    ("latent float", lambda: HierarchicalVAE(4, (3,), (2.5, 1)), TypeError, "latent_dims"),
    ("x not binary", lambda: HierarchicalVAE(4, (3,), (2, 1)).loss(np.full((2, 4), 2.0)), ValueError, "\\[0, 1\\]"),
    ("x shape", lambda: HierarchicalVAE(4, (3,), (2, 1)).loss(np.zeros((2, 5))), ValueError, "shape"),
    ("x NaN", lambda: HierarchicalVAE(4, (3,), (2, 1)).loss(np.full((2, 4), np.nan)), ValueError, "finite"),
    ("x string", lambda: HierarchicalVAE(4, (3,), (2, 1)).loss("x"), TypeError, "array"),
    ("eps count", lambda: HierarchicalVAE(4, (3,), (2, 1)).loss(np.zeros((2, 4)), eps=[np.zeros((1, 2, 2))]),
     ValueError, "one array per"),
    ("eps shape", lambda: HierarchicalVAE(4, (3,), (2, 1)).loss(
        np.zeros((2, 4)), eps=[np.zeros((1, 2, 3)), np.zeros((1, 2, 1))]), ValueError, "eps\\[0\\]"),
    ("k 0", lambda: HierarchicalVAE(4, (3,), (2, 1)).iwae_bound(np.zeros((2, 4)), 0), ValueError, "k"),
]


@pytest.mark.parametrize("make, error, message", [r[1:] for r in BAD], ids=[r[0] for r in BAD])
def test_bad_input(make, error, message):
    with pytest.raises(error, match=message):
        make()
