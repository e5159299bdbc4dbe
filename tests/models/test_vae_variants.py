"""VAE variants of the lectures: Gaussian decoders (fixed, per-pixel, z-dependent variance), the
beta-VAE's trade-off, active units, KL warm-up and free bits, the ConvVAE with a spatial latent
grid, and saving / rebuilding a model from its recorded constructor arguments."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigen
from devices import to_host
from minigen import backend
from minigen.data import load_digits
from minigen.models import VAE, ConvVAE
from minigen.models.vae import kl_warmup
from minigen.optim import Adam

XP = backend.array_module_for(backend.default_device())


def arr(a):
    return XP.asarray(np.asarray(a))


def tiny(cls=VAE, seed=0, **kw):
    minigen.manual_seed(seed)
    return cls(**kw).double()


# ---- gradients, noise fixed, inputs drawn by hypothesis ----------------------------------------------------

MLP_VARIANTS = {
    "gaussian fixed": dict(likelihood="gaussian", decoder_variance="fixed", fixed_variance=0.3),
    "gaussian from_z": dict(likelihood="gaussian", decoder_variance="from_z"),
    "bernoulli, labels": dict(n_classes=2),
}


@pytest.mark.parametrize("variant", list(MLP_VARIANTS))
@pytest.mark.parametrize("estimator", ["analytic_kl", "monte_carlo"])
@settings(max_examples=3)
@given(seed=st.integers(0, 2 ** 16))
def test_mlp_variants_pass_gradcheck(variant, estimator, seed):
    kw = MLP_VARIANTS[variant]
    model = tiny(input_dim=5, hidden_dims=(4,), latent_dim=2, **kw)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3, 5)) if kw.get("likelihood") == "gaussian" else (rng.random((3, 5)) < 0.5) * 1.0
    y = arr([0, 1, 1]) if "n_classes" in kw else None
    eps = arr(rng.normal(size=(2, 3, 2)))
    minigen.gradcheck(lambda *ps: model.loss(arr(x), y, n_samples=2, estimator=estimator, eps=eps),
                      list(model.parameters()))


@settings(max_examples=3)
@given(seed=st.integers(0, 2 ** 16))
def test_free_bits_loss_passes_gradcheck(seed):
    model = tiny(input_dim=5, hidden_dims=(4,), latent_dim=3)
    rng = np.random.default_rng(seed)
    x, eps = arr((rng.random((4, 5)) < 0.5) * 1.0), arr(rng.normal(size=(4, 3)))
    kl = to_host(model.elbo(x, eps=eps).kl)
    free_bits = 0.37 * kl.mean() / 3  # between the latents' KLs, away from the kinks in practice
    minigen.gradcheck(lambda *ps: model.loss(x, free_bits=free_bits, kl_weight=0.7, eps=eps),
                      list(model.parameters()))


@settings(max_examples=3)
@given(seed=st.integers(0, 2 ** 16))
def test_spatial_conv_vae_passes_gradcheck(seed):
    model = tiny(ConvVAE, in_channels=1, image_size=8, hidden_channels=(2, 3), latent_shape=(2, 2, 2),
                 likelihood="gaussian", decoder_variance="from_z", n_classes=2)
    rng = np.random.default_rng(seed)
    x, eps = arr(rng.normal(size=(2, 1, 8, 8))), arr(rng.normal(size=(2, 8)))
    minigen.gradcheck(lambda *ps: model.loss(x, arr([1, 0]), eps=eps), list(model.parameters()))


# ---- Gaussian decoders ---------------------------------------------------------------------------------------

def test_only_the_from_z_variance_depends_on_z():
    z = arr(np.random.default_rng(0).normal(size=(2, 2)))
    for variance, depends in (("fixed", False), ("per_pixel", False), ("from_z", True)):
        model = tiny(input_dim=4, hidden_dims=(3,), latent_dim=2, likelihood="gaussian", decoder_variance=variance)
        var = to_host(model.decode(z).variance)
        assert np.all(var >= VAE.MIN_X_VAR * (1 - 1e-9))
        assert (not np.allclose(var[0], var[1])) == depends, variance
    model = tiny(input_dim=4, hidden_dims=(3,), latent_dim=2, likelihood="gaussian", decoder_variance="fixed",
                 fixed_variance=0.25)
    np.testing.assert_array_equal(to_host(model.decode(z).variance), 0.25)


# ---- beta, active units, warm-up and free bits ----------------------------------------------------------------

def test_raising_beta_lowers_the_kl_and_raises_the_reconstruction_error():
    """Same initial weights and batches, three betas (Higgins et al. 2017). Measured (seeds 0 and 1):
    KL about 4 / 1 / 0.02 nats and -E[log p(x|z)] about 25.5 / 26.8 / 27.7 for beta 0.25 / 1 / 4;
    at beta = 4 the posterior collapses (no active unit)."""
    images, _ = load_digits()
    x = arr((np.random.default_rng(0).random(images[:300].shape) < images[:300]).astype(np.float32))
    kl, error, active = [], [], []
    for beta in (0.25, 1.0, 4.0):
        minigen.manual_seed(0)
        model = VAE((1, 8, 8), (32,), 4, beta=beta)
        optimizer = Adam(model.parameters(), lr=3e-3)
        rng = np.random.default_rng(0)
        for _ in range(100):
            optimizer.zero_grad()
            model.loss(x[arr(rng.integers(0, 300, 100))]).backward()  # noise: the global generator, seeded above
            optimizer.step()
        terms = model.elbo(x, n_samples=10, generator=0)
        kl.append(to_host(terms.kl).mean())
        error.append(-to_host(terms.reconstruction).mean())
        active.append(model.active_units(x))
    assert kl[0] > kl[1] > kl[2], kl
    assert error[0] < error[1] < error[2], error
    assert active[0] > active[2], active


def test_active_units_counts_latents_whose_posterior_mean_varies_with_x():
    model = tiny(input_dim=6, hidden_dims=(), latent_dim=3)
    x = arr((np.random.default_rng(0).random((50, 6)) < 0.5) * 1.0)
    model.encoder[0].weight.data[1] = 0.0  # mu_1 ignores x: an inactive (collapsed) unit
    mu = to_host(model.encode(x)[0])
    activity = mu.var(0)
    assert activity[1] == 0 and np.all(activity[[0, 2]] > 0)
    for threshold in (0.0, 0.01, float(np.sort(activity)[1]) * 1.01, 1e6):
        assert model.active_units(x, threshold=threshold) == int((activity > threshold).sum())


def test_kl_warmup_grows_linearly_to_beta():
    assert [kl_warmup(step, 4) for step in (0, 1, 2, 4, 10)] == [0.0, 0.25, 0.5, 1.0, 1.0]
    assert kl_warmup(3, 6, beta=4.0) == 2.0
    assert kl_warmup(0, 0, beta=2.0) == 2.0  # no warm-up
    for bad, message in (((-1, 4), "step must be >= 0"), ((1, -4), "n_warmup must be >= 0"),
                         ((1, 4, float("nan")), "beta must be finite")):
        with pytest.raises(ValueError, match=message):
            kl_warmup(*bad)


def test_free_bits_loss_is_the_formula_and_gives_no_kl_gradient_below_the_floor():
    """loss = -mean_n rec_n + w * sum_j max(lambda, mean_n KL_nj) (Kingma et al. 2016, App. C.8)."""
    model = tiny(input_dim=5, hidden_dims=(4,), latent_dim=3)
    rng = np.random.default_rng(1)
    x, eps = arr((rng.random((6, 5)) < 0.5) * 1.0), arr(rng.normal(size=(6, 3)))
    mu, logvar = (to_host(t) for t in model.encode(x))
    kl_j = (0.5 * (np.exp(logvar) + mu ** 2 - 1 - logvar)).mean(0)
    rec = to_host(model.elbo(x, eps=eps).reconstruction)
    for free_bits in (0.0, float(np.median(kl_j)), 10.0):
        expected = -rec.mean() + 0.5 * np.maximum(free_bits, kl_j).sum()
        got = model.loss(x, kl_weight=0.5, free_bits=free_bits, eps=eps).item()
        np.testing.assert_allclose(got, expected, rtol=1e-12)

    def encoder_gradient(**kw):
        model.zero_grad()
        model.loss(x, eps=eps, **kw).backward()
        return np.concatenate([to_host(p.grad).ravel() for p in model.encoder.parameters()])

    # every latent's KL below the floor: only the reconstruction term moves the encoder
    np.testing.assert_allclose(encoder_gradient(free_bits=10.0), encoder_gradient(kl_weight=0.0), rtol=1e-12)
    assert not np.allclose(encoder_gradient(), encoder_gradient(kl_weight=0.0))


# ---- ConvVAE with a spatial latent grid --------------------------------------------------------------------

def test_spatial_latent_shapes_and_locality():
    """Each latent vector z[:, :, i, j] is decoded through 1x1 then 4x4/stride-2 transposed
    convolutions, so it reaches only the pixels of its own window: rows (and columns) from
    2 (2 i - 1) - 1 to 2 (2 i + 2) + 2 for two layers, clipped to the image."""
    model = tiny(ConvVAE, in_channels=1, image_size=16, hidden_channels=(3, 4), latent_shape=(2, 4, 4))
    assert model.latent_dim == 32
    x = arr((np.random.default_rng(0).random((3, 1, 16, 16)) < 0.5) * 1.0)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (3, 32)
    z = np.random.default_rng(1).normal(size=(1, 2, 4, 4))
    base = to_host(model.decode(arr(z.reshape(1, -1))).logits)[0, 0]
    for i, j in ((0, 0), (2, 3)):
        moved = z.copy()
        moved[0, :, i, j] += 3.0
        changed = np.abs(to_host(model.decode(arr(moved.reshape(1, -1))).logits)[0, 0] - base) > 1e-12
        rows, cols = np.nonzero(changed)
        window = lambda k: (max(0, 2 * (2 * k - 1) - 1), min(15, 2 * (2 * k + 2) + 2))  # noqa: E731
        assert changed.any()
        assert window(i)[0] <= rows.min() and rows.max() <= window(i)[1], (i, rows)
        assert window(j)[0] <= cols.min() and cols.max() <= window(j)[1], (j, cols)
    flat = tiny(ConvVAE, in_channels=1, image_size=16, latent_dim=32, hidden_channels=(3, 4))
    z_flat = np.zeros((1, 32))
    base = to_host(flat.decode(arr(z_flat)).logits)
    z_flat[0, 0] = 3.0
    changed = np.abs(to_host(flat.decode(arr(z_flat)).logits) - base)[0, 0] > 1e-12
    assert changed[7:, 7:].any()  # a flat latent is not local: it reaches pixels outside any one window


def test_conditional_spatial_conv_vae_interface():
    model = tiny(ConvVAE, in_channels=1, image_size=8, hidden_channels=(4, 8), latent_shape=(3, 2, 2), n_classes=10)
    x, labels = load_digits()
    x, y = arr(x[:4]), arr(labels[:4])
    out = model.elbo(x, y, n_samples=3)
    assert all(t.shape == (4,) for t in out)
    assert model.sample(5, y=7, generator=0).shape == (5, 1, 8, 8)
    assert model.reconstruct(x, y).shape == x.shape
    assert model.log_likelihood(x, 10, y).shape == (4,)


# ---- saving and rebuilding --------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: VAE(6, (5,), 2, likelihood="gaussian", decoder_variance="from_z", beta=2.0),
    lambda: VAE(6, (5,), 2, likelihood="gaussian", decoder_variance="fixed", fixed_variance=0.5, n_classes=3),
    lambda: ConvVAE(1, 8, hidden_channels=(2, 3), latent_shape=(2, 2, 2), likelihood="gaussian"),
], ids=["from_z", "fixed, conditional", "conv spatial"])
def test_a_saved_model_is_rebuilt_in_one_call(tmp_path, make):
    minigen.manual_seed(0)
    model = make().double()
    path = tmp_path / "vae.npz"
    model.save(path)
    rebuilt = type(model).load(path)
    assert repr(rebuilt) == repr(model)
    assert eval(repr(model), {"VAE": VAE, "ConvVAE": ConvVAE}).latent_dim == model.latent_dim
    shape = (2,) + model.event_shape
    x, eps = arr(np.random.default_rng(0).normal(size=shape)), arr(np.zeros((2, model.latent_dim)))
    y = arr([0, 2]) if model.n_classes else None
    np.testing.assert_array_equal(to_host(rebuilt.elbo(x, y, eps=eps).elbo), to_host(model.elbo(x, y, eps=eps).elbo))
