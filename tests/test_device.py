"""Device handling without a GPU: the fake CuPy of fake_cupy.py plays the GPU ('cuda').

Moves (``tensor(device=)``, ``Tensor.to``, ``Module.to``), the error on inputs from two devices,
optimiser state, DataLoader batches and checkpoints across devices, the default device from
$MINIGEN_DEVICE, and a training step that gives the CPU's numbers on 'cuda'. Without CuPy, a
broken CuPy, a driver or a device, asking for 'cuda' says which is missing (each branch by
monkeypatching). Tests marked ``gpu`` use the real CuPy and are skipped without one.
"""
import sys

import numpy as np
import pytest

import minigen
import minigen.functional as F
from fake_cupy import CUDARuntimeError
from minigen import backend, nn, optim
from minigen.data import DataLoader, binarize_dynamic
from minigen.models import VAE, PixelCNN


def on_host(array):
    return type(array) is np.ndarray


# ----------------------------------------------------------------------------- the fake is CuPy-like

def test_fake_device_arrays_refuse_numpy_as_cupy_arrays_do(fake_cupy):
    a = fake_cupy.asarray(np.arange(3.0))
    assert backend.device_of(a) == "cuda" and backend.get_array_module(a) is fake_cupy
    for leak in (lambda: np.asarray(a), lambda: np.ones(3) + a, lambda: a * np.ones(3),
                 lambda: fake_cupy.exp(np.ones(3)), lambda: np.testing.assert_allclose(a, [0, 1, 2])):
        with pytest.raises(TypeError):
            leak()
    assert isinstance(a.sum(), fake_cupy.ndarray) and isinstance(a[0], fake_cupy.ndarray)  # no scalars
    assert (a + 1).base is None and a[1:].base is not None
    np.testing.assert_array_equal(a.get(), [0.0, 1.0, 2.0])
    with pytest.raises(AttributeError, match="no method 'permutation'"):
        fake_cupy.random.default_rng(0).permutation(3)


def test_scatter_add_special_and_synchronize_use_the_device_versions(fake_cupy):
    target = fake_cupy.zeros(3)
    backend.scatter_add(target, fake_cupy.asarray([0, 2, 0]), fake_cupy.asarray([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(target.get(), [4.0, 0.0, 2.0])
    assert backend.special(fake_cupy) is sys.modules["cupyx.scipy.special"]
    backend.synchronize("cuda")
    backend.synchronize("cpu")


# ----------------------------------------------------------------------------- tensors

@pytest.mark.parametrize("make", [
    lambda: minigen.tensor([[1.0, 2.0]], device="cuda"),
    lambda: minigen.tensor(np.ones((2, 2)), device="cuda:0"),
    lambda: minigen.zeros(2, 3, device="cuda"),
    lambda: minigen.ones(2, device="cuda"),
    lambda: minigen.randn(2, 3, device="cuda", generator=0),
    lambda: minigen.rand(4, device="cuda", generator=0),
    lambda: minigen.arange(3, device="cuda"),
], ids=["tensor", "tensor-cuda:0", "zeros", "ones", "randn", "rand", "arange"])
def test_factories_put_the_data_on_the_requested_device(fake_cupy, make):
    t = make()
    assert t.device == "cuda" and isinstance(t.data, fake_cupy.ndarray)
    assert "device='cuda'" in repr(t)


def test_tensor_copies_host_data_to_the_device(fake_cupy):
    x = np.array([1.0, 2.0])
    t = minigen.tensor(x, device="cuda")
    x[0] = 5.0
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0])


def test_to_moves_and_back_keeping_values_and_dtype(fake_cupy):
    x = np.arange(6, dtype=np.float64).reshape(2, 3)
    t = minigen.tensor(x, device="cpu")
    g = t.to("cuda")
    assert g.device == "cuda" and g.dtype == np.float64 and isinstance(g.data, fake_cupy.ndarray)
    assert g.to("cuda") is g and t.to("cpu") is t and t.cuda().device == "cuda"
    back = g.cpu()
    assert back.device == "cpu" and on_host(back.data)
    np.testing.assert_array_equal(back.numpy(), x)
    assert g.to("cpu", dtype="float32").dtype == np.float32


def test_to_is_differentiable_in_both_directions(fake_cupy):
    x = minigen.tensor([1.0, -2.0, 3.0], device="cpu", requires_grad=True)
    w = minigen.tensor([0.5, 4.0, -1.0], device="cuda")
    (x.to("cuda", dtype="float64") * w).sum().backward()
    assert on_host(x.grad) and x.grad.dtype == np.float32  # back on x's device, in x's dtype
    np.testing.assert_allclose(x.grad, [0.5, 4.0, -1.0])
    z = minigen.tensor([2.0, 3.0], device="cuda", requires_grad=True)
    (z.to("cpu") ** 2).sum().backward()
    assert isinstance(z.grad, fake_cupy.ndarray)
    np.testing.assert_allclose(backend.to_numpy(z.grad), [4.0, 6.0])
    minigen.gradcheck(lambda a: (a.to("cuda") * a.to("cuda")).to("cpu"),
                      [minigen.tensor([0.3, -1.2], dtype="float64", device="cpu", requires_grad=True)])


@pytest.mark.parametrize("op", [
    lambda a, b: a + b, lambda a, b: a @ b, lambda a, b: F.concatenate([a, b]),
    lambda a, b: F.mse_loss(a, b), lambda a, b: F.where(a > 0, a, b),
], ids=["add", "matmul", "concatenate", "mse_loss", "where"])
def test_inputs_on_two_devices_raise_an_error_naming_both(fake_cupy, op):
    a = minigen.tensor(np.ones((2, 2)), device="cpu")
    b = minigen.tensor(np.ones((2, 2)), device="cuda")
    for first, second in ((a, b), (b, a)):
        with pytest.raises(ValueError, match="cpu and cuda"):
            op(first, second)


def test_a_host_array_meeting_a_cuda_tensor_raises(fake_cupy):
    b = minigen.tensor(np.ones(2), device="cuda")
    with pytest.raises(ValueError, match="cpu and cuda"):
        b * np.ones(2)


# ----------------------------------------------------------------------------- modules and optimisers

def small_net(seed=0):
    """Linear -> BatchNorm1d (buffers: running_mean, running_var) -> ReLU -> Linear, on the CPU."""
    return nn.Sequential(nn.Linear(3, 4, device="cpu", generator=seed), nn.BatchNorm1d(4),
                         nn.ReLU(), nn.Linear(4, 2, device="cpu", generator=seed + 1)).to("cpu")


def batch(device):
    return minigen.tensor(np.linspace(-1, 1, 15, dtype=np.float32).reshape(5, 3), device=device)


def test_module_to_moves_parameters_and_buffers_in_place(fake_cupy):
    net = small_net()
    expected = net(batch("cpu")).numpy()
    net = small_net()
    assert net.to("cuda") is net and net.device == "cuda"
    assert all(isinstance(p.data, fake_cupy.ndarray) for p in net.parameters())
    buffers = dict(net.named_buffers())
    assert {"1.running_mean", "1.running_var"} <= set(buffers)
    assert all(isinstance(b, fake_cupy.ndarray) for b in buffers.values())
    out = net(batch("cuda"))
    assert out.device == "cuda"
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6, atol=1e-7)
    assert isinstance(net[1].running_mean, fake_cupy.ndarray)  # updated in place on the device
    with pytest.raises(ValueError, match="cpu and cuda"):
        net(batch("cpu"))
    net.to("cpu")
    assert all(on_host(p.data) for p in net.parameters())
    assert all(on_host(b) for _, b in net.named_buffers())


OPTIMIZERS = {"SGD": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
              "Adam": lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.1)}


def train(net, make_optimizer, device, n_steps=3):
    optimizer = make_optimizer(net.parameters())
    for _ in range(n_steps):
        optimizer.zero_grad()
        (net(batch(device)) ** 2).sum().backward()
        optimizer.step()
    return optimizer


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_state_lives_on_the_parameters_device_and_steps_match(fake_cupy, name):
    params = {}
    for device in ("cpu", "cuda"):
        net = small_net().to(device)
        optimizer = train(net, OPTIMIZERS[name], device)
        state = [a for entry in optimizer.state_dict()["state"].values()
                 for key, a in entry.items() if key != "step"]
        assert state and all(backend.device_of(a) == device for a in state)
        assert all(p.device == device for p in net.parameters())
        params[device] = [p.numpy() for p in net.parameters()]
    for cpu, cuda in zip(params["cpu"], params["cuda"]):
        np.testing.assert_allclose(cuda, cpu, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- data and checkpoints

def test_dataloader_yields_batches_on_the_device(fake_cupy):
    X = np.linspace(0, 1, 20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10)
    host = list(DataLoader(X, y, batch_size=4, shuffle=True, seed=0, device="cpu"))
    device = list(DataLoader(X, y, batch_size=4, shuffle=True, seed=0, device="cuda"))
    assert len(device) == 3
    for (xh, yh), (xd, yd) in zip(host, device):
        assert isinstance(xd, fake_cupy.ndarray) and isinstance(yd, fake_cupy.ndarray)
        np.testing.assert_array_equal(xd.get(), xh)
        np.testing.assert_array_equal(yd.get(), yh)
    for xb in DataLoader(X, batch_size=5, device="cuda", transform=binarize_dynamic):
        assert isinstance(xb, fake_cupy.ndarray)
        assert set(np.unique(xb.get())) <= {0.0, 1.0}


def test_checkpoint_saved_from_cuda_loads_on_cpu_and_back(fake_cupy, tmp_path):
    net = small_net().to("cuda")
    optimizer = train(net, OPTIMIZERS["Adam"], "cuda")
    path = minigen.save({"model": net.state_dict(), "optimizer": optimizer.state_dict()},
                        tmp_path / "checkpoint.npz")
    checkpoint = minigen.load(path)
    assert all(on_host(a) for a in checkpoint["model"].values())

    on_cpu = small_net(seed=7)
    on_cpu.load_state_dict(checkpoint["model"])
    assert all(on_host(p.data) for p in on_cpu.parameters())
    for (name, a), b in zip(net.state_dict().items(), on_cpu.state_dict().values()):
        np.testing.assert_array_equal(backend.to_numpy(a), b, err_msg=name)

    # back on the GPU, optimiser included: the next step is the uninterrupted run's next step
    resumed = small_net(seed=7).to("cuda")
    resumed.load_state_dict(on_cpu.state_dict())
    resumed_optimizer = OPTIMIZERS["Adam"](resumed.parameters())
    resumed_optimizer.load_state_dict(checkpoint["optimizer"])
    assert all(isinstance(p.data, fake_cupy.ndarray) for p in resumed.parameters())
    for model, opt in ((net, optimizer), (resumed, resumed_optimizer)):
        opt.zero_grad()
        (model(batch("cuda")) ** 2).sum().backward()
        opt.step()
    for a, b in zip(net.parameters(), resumed.parameters()):
        np.testing.assert_array_equal(b.numpy(), a.numpy())


# ----------------------------------------------------------------------------- same numbers on both

def vae_loss(model, device):
    rng = np.random.default_rng(1)
    x = (rng.random((6, 16)) < 0.5).astype(np.float32)
    return model.loss(minigen.tensor(x, device=device), eps=rng.standard_normal((6, 2)))


def pixelcnn_loss(model, device):
    x = (np.random.default_rng(2).random((3, 1, 5, 5)) < 0.5).astype(np.int64)
    return model.loss(minigen.tensor(x, device=device))


@pytest.mark.parametrize("make, loss", [
    (lambda: VAE(16, hidden_dims=(8,), latent_dim=2), vae_loss),
    (lambda: PixelCNN(hidden_channels=4, n_layers=2, kernel_size=3), pixelcnn_loss),
], ids=["VAE", "PixelCNN"])
def test_a_training_step_gives_the_same_numbers_on_cuda_and_cpu(fake_cupy, make, loss):
    minigen.manual_seed(0)
    on_cpu = make().to("cpu")
    on_cuda = make().to("cuda")
    on_cuda.load_state_dict(on_cpu.state_dict())
    results = {}
    for device, model in (("cpu", on_cpu), ("cuda", on_cuda)):
        optimizer = optim.Adam(model.parameters(), lr=0.01)
        optimizer.zero_grad()
        value = loss(model, device)
        value.backward()
        optimizer.step()
        assert all(p.device == device for p in model.parameters())
        results[device] = (value.item(), [p.numpy() for p in model.parameters()])
    assert results["cuda"][0] == pytest.approx(results["cpu"][0], rel=1e-6)
    for cpu, cuda in zip(results["cpu"][1], results["cuda"][1]):
        np.testing.assert_allclose(cuda, cpu, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- the default device

def test_default_device_comes_from_the_environment(fake_cupy, monkeypatch):
    monkeypatch.setenv("MINIGEN_DEVICE", "cuda")
    assert backend.default_device() == "cuda"
    assert all(p.device == "cuda" for p in nn.Linear(3, 2).parameters())
    assert minigen.tensor([1.0]).device == "cuda" and minigen.zeros(2).device == "cuda"
    seen = []

    def square(x):
        seen.append(x.device)
        return x * x
    assert minigen.gradcheck(square, [np.array([1.0, -2.0])])  # NumPy inputs go to the device
    assert set(seen) == {"cuda"}
    monkeypatch.setenv("MINIGEN_DEVICE", "cpu")
    assert nn.Linear(3, 2).weight.device == "cpu"
    monkeypatch.setenv("MINIGEN_DEVICE", "tpu")
    with pytest.raises(ValueError, match="'cpu' or 'cuda'"):
        backend.default_device()


def test_parameter_from_host_data_goes_to_the_default_device(fake_cupy, monkeypatch):
    monkeypatch.setenv("MINIGEN_DEVICE", "cuda")
    assert nn.Parameter(np.zeros(3)).device == "cuda"
    assert nn.Parameter([1.0, 2.0]).device == "cuda"
    assert nn.Parameter(np.zeros(3), device="cpu").device == "cpu"
    assert nn.Linear(2, 2, device="cpu").weight.device == "cpu"
    assert nn.Conv2d(1, 2, 3, device="cpu").weight.device == "cpu"


# ----------------------------------------------------------------------------- what is missing

REQUESTS = {
    "tensor": lambda: minigen.tensor([1.0], device="cuda"),
    "Tensor.to": lambda: minigen.tensor([1.0], device="cpu").to("cuda"),
    "Module.to": lambda: nn.Linear(2, 2, device="cpu").to("cuda"),
    "layer": lambda: nn.Linear(2, 2, device="cuda"),
    "DataLoader": lambda: DataLoader(np.zeros((4, 2)), batch_size=2, device="cuda"),
    "synchronize": lambda: backend.synchronize("cuda"),
}


@pytest.mark.parametrize("request_cuda", REQUESTS.values(), ids=REQUESTS.keys())
def test_cuda_without_cupy_says_cupy_is_not_installed(monkeypatch, request_cuda):
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` now fails as if not installed
    with pytest.raises(RuntimeError, match="CuPy is not installed.*cupy-cuda12x"):
        request_cuda()
    assert not backend.cuda_available()


def test_cuda_with_a_cupy_that_fails_to_import_says_so(monkeypatch):
    class BrokenCuPy:  # a finder that fails as a wheel built for another CUDA does
        def find_spec(self, name, path=None, target=None):
            if name == "cupy":
                raise ImportError("libnvrtc.so.12: cannot open shared object file")

    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    monkeypatch.setattr(sys, "meta_path", [BrokenCuPy(), *sys.meta_path])
    with pytest.raises(RuntimeError, match="CuPy failed to import.*libnvrtc"):
        minigen.tensor([1.0], device="cuda")


@pytest.mark.parametrize("device_count, message", [
    (CUDARuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient for "
                      "CUDA runtime version"), "driver is missing or not usable.*nvidia-smi"),
    (CUDARuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected"),
     "no CUDA device was found"),
    (0, "no CUDA device was found"),
], ids=["no-driver", "no-device-error", "zero-devices"])
def test_cuda_without_a_usable_device_says_what_is_missing(fake_cupy, monkeypatch, device_count,
                                                           message):
    def get_device_count():
        if isinstance(device_count, Exception):
            raise device_count
        return device_count

    monkeypatch.setattr(fake_cupy.cuda.runtime, "getDeviceCount", get_device_count)
    for request_cuda in REQUESTS.values():
        with pytest.raises(RuntimeError, match=message):
            request_cuda()
    assert not backend.cuda_available()


# ----------------------------------------------------------------------------- on a real GPU

@pytest.mark.gpu
def test_real_cupy_round_trip():
    cupy = backend.import_cupy()
    t = minigen.tensor([1.0, 2.0], device="cuda", requires_grad=True)
    assert isinstance(t.data, cupy.ndarray) and t.device == "cuda"
    (t * t).sum().backward()
    backend.synchronize("cuda")
    assert isinstance(t.grad, cupy.ndarray)
    np.testing.assert_array_equal(backend.to_numpy(t.grad), [2.0, 4.0])
    np.testing.assert_array_equal(t.cpu().numpy(), [1.0, 2.0])
