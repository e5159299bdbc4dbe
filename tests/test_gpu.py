"""On a real GPU: one seeded training step of every model agrees between CPU and GPU (float32
tolerance), and layers' gradients check in float64 on the GPU. Skipped without CuPy and a device.

Each case builds a model on the CPU, copies its state into an identical model on the GPU, feeds
both the same data and the same noise (``HostGenerator``: NumPy draws it, then it moves), takes
one step on each and compares the numbers. The step is plain SGD: Adam's first update is
lr * sign(g), which turns a rounding-level difference in a near-zero gradient into a 2 lr one.
"""
import numpy as np
import pytest

import minigen
import minigen.models
from minigen import backend, nn, optim

pytestmark = [pytest.mark.gpu,  # one-sweep fits stop at max_iter=1 on purpose: no ConvergenceWarning noise
              pytest.mark.filterwarnings("ignore::minigen.models.estimator.ConvergenceWarning")]

DEVICES = ("cpu", "cuda")


class HostGenerator:
    """A Generator that gives every device the same numbers: NumPy draws, then they move."""

    def __init__(self, seed, device):
        self._rng, self._device = np.random.default_rng(seed), device

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        method = getattr(self._rng, name)

        def draw(*args, **kwargs):
            out = method(*args, **kwargs)
            return backend.to_device(out, self._device) if isinstance(out, np.ndarray) else out
        return draw


def model_class(name):
    cls = getattr(minigen.models, name, None)
    if cls is None:
        pytest.skip(f"minigen.models has no {name} yet")
    return cls


def assert_close(gpu, cpu, name, rtol=1e-4, atol=1e-5):
    np.testing.assert_allclose(backend.to_numpy(gpu), backend.to_numpy(cpu), rtol=rtol, atol=atol,
                               err_msg=name)


def binary_images(n, side, seed):
    return (np.random.default_rng(seed).random((n, 1, side, side)) < 0.4).astype(np.float32)


# ----------------------------------------------------------------------------- gradient-trained models

def vae_loss(model, device):
    x = binary_images(16, 8, seed=1).reshape(16, 64)
    eps = np.random.default_rng(2).standard_normal((16, 4))
    return model.loss(minigen.tensor(x, device=device), eps=eps)


def conv_vae_loss(model, device):
    eps = np.random.default_rng(2).standard_normal((16, 4))
    return model.loss(minigen.tensor(binary_images(16, 8, seed=1), device=device), eps=eps)


def pixelcnn_loss(model, device):
    x = binary_images(8, 8, seed=3).astype(np.int64)
    return model.loss(minigen.tensor(x, device=device))


def vqvae_input(device):
    return minigen.tensor(np.random.default_rng(4).random((8, 1, 8, 8)).astype(np.float32), device=device)


def vqvae_loss(model, device, codes):
    return model.loss(vqvae_input(device), codes=backend.to_device(codes, device)).total


GRADIENT_MODELS = {
    "VAE": (lambda cls: cls(64, hidden_dims=(32,), latent_dim=4), vae_loss),
    "ConvVAE": (lambda cls: cls(1, 8, latent_dim=4, hidden_channels=(4, 8)), conv_vae_loss),
    "PixelCNN": (lambda cls: cls(hidden_channels=8, n_layers=3, kernel_size=5), pixelcnn_loss),
    "GatedPixelCNN": (lambda cls: cls(hidden_channels=4, n_layers=3, kernel_size=3), pixelcnn_loss),
    "VQVAE": (lambda cls: cls(hidden_channels=8, num_embeddings=8, embedding_dim=4, n_downsample=1,
                              n_residual=1), vqvae_loss),
    "PixelRNN": (lambda cls: cls(hidden_channels=4, n_layers=2, kernel_size=3, variant="diagonal"),
                 pixelcnn_loss),
}


@pytest.mark.parametrize("name", GRADIENT_MODELS)
def test_training_step_agrees_on_cpu_and_gpu(name):
    make, loss_of = GRADIENT_MODELS[name]
    cls = model_class(name)
    minigen.manual_seed(0)
    models = {"cpu": make(cls).to("cpu"), "cuda": make(cls).to("cuda")}
    models["cuda"].load_state_dict(models["cpu"].state_dict())
    # VQ-VAE: both take the CPU's codes; a near-tie in the nearest-code search may go either
    # way in float32 (test_vqvae_nearest_codes_agree checks the search itself)
    fixed = {"codes": models["cpu"].encode(vqvae_input("cpu")).numpy()} if name == "VQVAE" else {}
    results = {}
    for device, model in models.items():
        optimizer = optim.SGD(model.parameters(), lr=0.05)
        optimizer.zero_grad()
        loss = loss_of(model, device, **fixed)
        loss.backward()
        grads = [backend.to_numpy(p.grad).copy() for p in model.parameters()]
        optimizer.step()
        assert all(p.device == device for p in model.parameters())
        results[device] = loss.item(), grads, [p.numpy().copy() for p in model.parameters()]
    (loss_cpu, grads_cpu, params_cpu), (loss_gpu, grads_gpu, params_gpu) = results["cpu"], results["cuda"]
    assert loss_gpu == pytest.approx(loss_cpu, rel=1e-4)
    names = [n for n, _ in models["cpu"].named_parameters()]
    for n, g_gpu, g_cpu in zip(names, grads_gpu, grads_cpu):
        assert_close(g_gpu, g_cpu, f"gradient of {n}", rtol=1e-3, atol=1e-4 * (np.abs(g_cpu).max() + 1e-12))
    for n, p_gpu, p_cpu in zip(names, params_gpu, params_cpu):
        assert_close(p_gpu, p_cpu, f"{n} after the step")


def test_vqvae_nearest_codes_agree():
    cls = model_class("VQVAE")
    minigen.manual_seed(0)
    make, _ = GRADIENT_MODELS["VQVAE"]
    on_cpu, on_gpu = make(cls).to("cpu"), make(cls).to("cuda")
    on_gpu.load_state_dict(on_cpu.state_dict())
    codes_cpu = on_cpu.encode(vqvae_input("cpu")).numpy()
    codes_gpu = on_gpu.encode(vqvae_input("cuda")).numpy()
    assert (codes_gpu == codes_cpu).mean() > 0.95  # all but float32 near-ties


# ----------------------------------------------------------------------------- EM / CAVI / CD models

def blobs(n=90, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 1.0], [0.0, 4.0, -1.0]])
    return centres[rng.integers(0, 3, n)] + rng.standard_normal((n, 3)) * np.array([1.0, 0.5, 0.8])


def fit_on_both(make, X):
    """{device: model fitted on X moved there}, with the same host-drawn randomness."""
    return {device: make(HostGenerator(0, device)).fit(backend.to_device(X, device))
            for device in DEVICES}


def assert_attributes_agree(fits, names):
    for name in names:
        assert_close(getattr(fits["cuda"], name), getattr(fits["cpu"], name), name, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "tied", "spherical"])
def test_gaussian_mixture_em_step_agrees(covariance_type):
    cls = model_class("GaussianMixture")
    fits = fit_on_both(lambda rng: cls(3, covariance_type=covariance_type, max_iter=1,
                                       init_params="random", random_state=rng), blobs())
    assert_attributes_agree(fits, ["weights_", "means_", "covariances_", "precisions_cholesky_"])
    assert fits["cuda"].lower_bound_ == pytest.approx(fits["cpu"].lower_bound_, rel=1e-6)


@pytest.mark.parametrize("name", ["FactorAnalysis", "PPCA"])
def test_factor_analysis_em_step_agrees(name):
    cls = model_class(name)
    fits = fit_on_both(lambda rng: cls(2, max_iter=1, random_state=rng), blobs())
    assert_attributes_agree(fits, ["components_", "noise_variance_", "mean_"])
    np.testing.assert_allclose(fits["cuda"].log_likelihood_history_,
                               fits["cpu"].log_likelihood_history_, rtol=1e-6)


def test_bayesian_gaussian_mixture_sweep_agrees():
    cls = model_class("BayesianGaussianMixture")
    fits = fit_on_both(lambda rng: cls(3, max_iter=1, init_params="random", random_state=rng), blobs())
    assert_attributes_agree(fits, ["weight_concentration_", "means_", "degrees_of_freedom_",
                                   "scale_cholesky_"])
    assert fits["cuda"].lower_bound_ == pytest.approx(fits["cpu"].lower_bound_, rel=1e-6)


def test_cavi_sweep_agrees():
    cls = model_class("GaussianMixtureCAVI")
    fits = fit_on_both(lambda rng: cls(3, max_iter=1, random_state=rng), blobs())
    assert_attributes_agree(fits, ["m_", "s2_", "phi_"])
    assert fits["cuda"].lower_bound_ == pytest.approx(fits["cpu"].lower_bound_, rel=1e-6)


def binary_rows(n, d, seed):
    return (np.random.default_rng(seed).random((n, d)) < 0.3).astype(np.float64)


def test_rbm_cd1_step_agrees():
    # float64, so that no uniform draw falls between the two devices' rounding of p(h|v)
    cls = model_class("RBM")
    v = binary_rows(32, 16, seed=5)
    rbm_cpu = cls(8, max_iter=1, random_state=0, dtype="float64").fit(v)
    rbms = {"cpu": rbm_cpu,
            "cuda": cls(8, dtype="float64").load_state_dict(rbm_cpu.state_dict(), device="cuda")}
    grads = {device: rbm.cd_gradient(backend.to_device(v, device),
                                     random_state=HostGenerator(1, device))[:3]
             for device, rbm in rbms.items()}
    for name, g_gpu, g_cpu in zip(("grad_W", "grad_b", "grad_c"), grads["cuda"], grads["cpu"]):
        assert_close(g_gpu, g_cpu, name, rtol=1e-6, atol=1e-9)


def test_dbn_greedy_epoch_agrees():
    cls = model_class("DBN")
    X = binary_rows(40, 16, seed=6)
    dbns = {device: cls((8, 4), max_iter=1, batch_size=20, random_state=HostGenerator(0, device),
                        dtype="float64", device=device).fit(backend.to_device(X, device))
            for device in DEVICES}
    for layer, (rbm_gpu, rbm_cpu) in enumerate(zip(dbns["cuda"].rbms_, dbns["cpu"].rbms_)):
        for name in ("components_", "intercept_visible_", "intercept_hidden_"):
            assert_close(getattr(rbm_gpu, name), getattr(rbm_cpu, name), f"layer {layer} {name}",
                         rtol=1e-6, atol=1e-9)


# ----------------------------------------------------------------------------- float64 gradchecks

LAYERS = {
    "conv2d": (lambda: nn.Conv2d(2, 3, 3, stride=2, padding=1), (2, 2, 5, 5)),
    "conv_transpose2d": (lambda: nn.ConvTranspose2d(2, 3, 4, stride=2, padding=1), (2, 2, 3, 3)),
    "masked_conv2d": (lambda: nn.MaskedConv2d(2, 4, 3, "B"), (2, 2, 4, 4)),
    "lstm": (lambda: nn.LSTM(3, 4), (5, 2, 3)),
}


@pytest.mark.parametrize("name", LAYERS)
def test_layer_gradcheck_in_float64_on_the_gpu(name):
    make, shape = LAYERS[name]
    layer = make().to("cuda", dtype="float64")
    x = minigen.tensor(np.random.default_rng(7).standard_normal(shape), dtype="float64",
                       device="cuda", requires_grad=True)
    params = list(layer.parameters())
    assert all(p.device == "cuda" and p.dtype == np.float64 for p in params)

    def output(x, *params):
        out = layer(x)
        return out[0] if isinstance(out, tuple) else out  # LSTM: (output, (h_n, c_n))
    assert minigen.gradcheck(output, [x, *params])
