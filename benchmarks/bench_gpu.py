"""minigen on the GPU (CuPy) beside PyTorch on the same device, in one run, float32.

Each case runs the same computation in both, on the same weights (PyTorch's copied from
minigen's state_dict), data and noise, and prints the median step time of each and the ratio
minigen / PyTorch; the first step's loss of both is printed too, a check that the two
definitions are the same model. Goals on a GPU: within 3x of PyTorch for the MLP VAE, 5x for
the conv models.

    mlp_vae    a training step (forward, backward, Adam) of models.VAE 784-512-20-512-784, batch 128
    conv_vae   a training step of models.ConvVAE on 1x28x28 (4x4 stride-2 convs 1-32-64, latent 20),
               batch 128
    pixelcnn   a training step of models.PixelCNN on 28x28 binary images (64 channels, 8 layers,
               7x7 mask A), batch 32
    conv2d     forward + backward of Conv2d, N=64, 32 -> 64 channels, 14x14, 3x3 pad 1 (bench_layers.py)
    lstm       forward + backward of LSTM, input 64, hidden 128, 50 steps, batch 32 (bench_layers.py)

then minigen's own GPU-vs-CPU speed-up for the MLP VAE step at batch 1024.

Timing: --warmup untimed steps, then --repeats steps each ended by a device synchronise
(cupy.cuda.Device().synchronize() for minigen, torch.cuda.synchronize() for PyTorch); medians.
PyTorch runs in full float32 (TF32 off for matmuls and cuDNN), as CuPy does by default.

    python benchmarks/bench_gpu.py --device cuda       # on a GPU, CuPy and PyTorch with CUDA
    python benchmarks/bench_gpu.py --device cpu        # the same script on the CPU (NumPy, PyTorch CPU)
"""
import argparse

import numpy as np

import minigen
from minigen import backend, nn, optim
from minigen.models import VAE, ConvVAE, PixelCNN

from common import median_times

GOALS = {"mlp_vae": 3.0, "conv_vae": 5.0, "pixelcnn": 5.0}


def median_ms(step, sync, repeats, warmup):
    """Median milliseconds of ``step`` after ``warmup`` untimed calls, waiting for the device."""
    return 1e3 * median_times({"step": step}, repeats, warmup, sync)["step"]


def binary_images(n, seed=0):
    """MNIST-like binary images (about 13% of pixels on), (n, 1, 28, 28) float32."""
    return (np.random.default_rng(seed).random((n, 1, 28, 28)) < 0.13).astype(np.float32)


# ----------------------------------------------------------------------------- minigen

def training_step(model, loss):
    optimizer = optim.Adam(model.parameters(), lr=1e-3)

    def step():
        optimizer.zero_grad()
        value = loss()
        value.backward()
        optimizer.step()
        return value
    return step


def forward_backward(output, grad):
    def step():
        y = output()
        y.backward(grad)
        return y
    return step


def minigen_vae(device, batch, conv):
    """(model, inputs, step) of a VAE case; every step uses the same noise eps."""
    minigen.manual_seed(0)
    model = (ConvVAE(1, 28, latent_dim=20, hidden_channels=(32, 64)) if conv
             else VAE(784, hidden_dims=(512,), latent_dim=20)).to(device)
    x = binary_images(batch) if conv else binary_images(batch).reshape(batch, 784)
    eps = np.random.default_rng(1).standard_normal((batch, 20)).astype(np.float32)
    x, eps = minigen.tensor(x, device=device), minigen.tensor(eps, device=device)
    return model, (x, eps), training_step(model, lambda: model.loss(x, eps=eps))


def minigen_pixelcnn(device, batch):
    """(model, inputs, step) of the PixelCNN case."""
    minigen.manual_seed(0)
    model = PixelCNN(hidden_channels=64, n_layers=8, kernel_size=7).to(device)
    x = minigen.tensor(binary_images(batch).astype(np.int64), device=device)
    return model, (x,), training_step(model, lambda: model.loss(x))


def minigen_layer(device, layer, shape):
    """(layer, inputs, step) of a layer case: forward + backward with a fixed upstream gradient."""
    minigen.manual_seed(0)
    layer = layer.to(device)
    rng = np.random.default_rng(2)
    x = minigen.tensor(rng.standard_normal(shape).astype(np.float32), device=device, requires_grad=True)
    output = lambda: first(layer(x))  # noqa: E731
    grad = minigen.tensor(rng.standard_normal(output().shape).astype(np.float32), device=device)
    return layer, (x, grad), forward_backward(output, grad)


def first(out):
    """A layer's output: LSTM gives (output, (h_n, c_n))."""
    return out[0] if isinstance(out, tuple) else out


def minigen_case(name, device):
    """(model, inputs, step) of a case in minigen."""
    if name in ("mlp_vae", "conv_vae"):
        return minigen_vae(device, 128, conv=name == "conv_vae")
    if name == "pixelcnn":
        return minigen_pixelcnn(device, 32)
    if name == "conv2d":
        return minigen_layer(device, nn.Conv2d(32, 64, 3, padding=1), (64, 32, 14, 14))
    return minigen_layer(device, nn.LSTM(64, 128), (50, 32, 64))


# ----------------------------------------------------------------------------- PyTorch

def torch_models(torch):
    """PyTorch twins of the minigen models, with minigen's parameter and buffer names."""
    tnn, tf = torch.nn, torch.nn.functional

    def vae_loss(mu_logvar, decode, x, eps):
        mu, logvar = mu_logvar.chunk(2, dim=1)
        logits = decode(mu + torch.exp(0.5 * logvar) * eps)
        bce = tf.binary_cross_entropy_with_logits(logits, x, reduction="none")
        reconstruction = -bce.flatten(1).sum(1)
        kl = 0.5 * (torch.exp(logvar) + mu * mu - 1 - logvar).sum(1)
        return (kl - reconstruction).mean()

    class VAE(tnn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = tnn.Sequential(tnn.Linear(784, 512), tnn.ReLU(), tnn.Linear(512, 40))
            self.decoder = tnn.Sequential(tnn.Linear(20, 512), tnn.ReLU(), tnn.Linear(512, 784))

        def loss(self, x, eps):
            return vae_loss(self.encoder(x), self.decoder, x, eps)

    class ConvVAE(tnn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = tnn.Sequential(tnn.Conv2d(1, 32, 4, 2, 1), tnn.ReLU(),
                                          tnn.Conv2d(32, 64, 4, 2, 1), tnn.ReLU(), tnn.Flatten())
            self.to_latent = tnn.Linear(64 * 7 * 7, 40)
            self.from_latent = tnn.Sequential(tnn.Linear(20, 64 * 7 * 7), tnn.ReLU())
            self.decoder = tnn.Sequential(tnn.ConvTranspose2d(64, 32, 4, 2, 1), tnn.ReLU(),
                                          tnn.ConvTranspose2d(32, 1, 4, 2, 1))

        def loss(self, x, eps):
            decode = lambda z: self.decoder(self.from_latent(z).reshape(-1, 64, 7, 7))  # noqa: E731
            return vae_loss(self.to_latent(self.encoder(x)), decode, x, eps)

    class MaskedConv2d(tnn.Conv2d):
        def __init__(self, n_in, n_out, k):
            super().__init__(n_in, n_out, k, padding=k // 2)
            self.register_buffer("mask", torch.ones_like(self.weight))  # minigen's is copied in

        def forward(self, x):
            return tf.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)

    class ResidualBlock(tnn.Module):
        def __init__(self, h):
            super().__init__()
            self.reduce = MaskedConv2d(h, h // 2, 1)
            self.conv = MaskedConv2d(h // 2, h // 2, 3)
            self.expand = MaskedConv2d(h // 2, h, 1)

        def forward(self, x):
            return x + self.expand(torch.relu(self.conv(torch.relu(self.reduce(torch.relu(x))))))

    class PixelCNN(tnn.Module):
        def __init__(self, h=64, n_layers=8, k=7, n_values=2):
            super().__init__()
            self.n_values = n_values
            self.input_conv = MaskedConv2d(n_values, h, k)
            self.blocks = tnn.ModuleList([ResidualBlock(h) for _ in range(n_layers - 1)])
            self.output = tnn.Sequential(tnn.ReLU(), MaskedConv2d(h, h, 1), tnn.ReLU(),
                                         MaskedConv2d(h, n_values, 1))

        def loss(self, x):
            N, C, H, W = x.shape
            values = torch.arange(self.n_values, device=x.device).reshape(1, 1, -1, 1, 1)
            h = self.input_conv((x[:, :, None] == values).float().reshape(N, C * self.n_values, H, W))
            for block in self.blocks:
                h = block(h)
            logits = self.output(h).reshape(N, C, self.n_values, H, W).permute(0, 2, 1, 3, 4)
            return tf.cross_entropy(logits, x, reduction="none").sum((1, 2, 3)).mean()

    return {"mlp_vae": VAE, "conv_vae": ConvVAE, "pixelcnn": PixelCNN,
            "conv2d": lambda: tnn.Conv2d(32, 64, 3, padding=1), "lstm": lambda: tnn.LSTM(64, 128)}


def torch_case(torch, name, model, inputs, device):
    """The case's step in PyTorch: the twin model with minigen's weights, on copies of the inputs."""
    twin = torch_models(torch)[name]().to(device)
    twin.load_state_dict({k: torch.from_numpy(backend.to_numpy(v).copy())  # strict: names and
                          for k, v in model.state_dict().items()})         # shapes must match
    tensors = [torch.from_numpy(t.numpy().copy()).to(device).requires_grad_(t.requires_grad)
               for t in inputs]
    if name in ("mlp_vae", "conv_vae", "pixelcnn"):
        optimizer = torch.optim.Adam(twin.parameters(), lr=1e-3)

        def step():
            optimizer.zero_grad()
            value = twin.loss(*tensors)
            value.backward()
            optimizer.step()
            return value
        return step
    x, grad = tensors
    return forward_backward(lambda: first(twin(x)), grad)


def run_case(name, device, torch, args):
    """Times (ms) of minigen and PyTorch (None without it) and the losses of their first steps."""
    model, inputs, ours = minigen_case(name, device)
    theirs = None if torch is None else torch_case(torch, name, model, inputs, device)  # same weights
    first_ours = scalar(ours(), name)
    ours_ms = median_ms(ours, lambda: backend.synchronize(device), args.repeats, args.warmup)
    if theirs is None:
        return ours_ms, None, first_ours, None
    first_theirs = scalar(theirs(), name)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    return ours_ms, median_ms(theirs, sync, args.repeats, args.warmup), first_ours, first_theirs


def scalar(out, name):
    """A training step's loss, or the sum of a layer's output: both frameworks must agree."""
    return float((out.sum() if name in ("conv2d", "lstm") else out).item())


LABELS = {"mlp_vae": "MLP VAE step 784-512-20, batch 128",
          "conv_vae": "ConvVAE step 1x28x28, batch 128",
          "pixelcnn": "PixelCNN step 28x28 binary, batch 32",
          "conv2d": "conv2d fwd+bwd 64x32x14x14 -> 64, 3x3",
          "lstm": "LSTM fwd+bwd 64 -> 128, 50 steps, b 32"}


def describe(device, torch):
    parts = [f"NumPy {np.__version__}"]
    if device == "cuda":
        cupy = backend.import_cupy()
        name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
        parts.insert(0, f"{name.decode() if isinstance(name, bytes) else name}, CuPy {cupy.__version__}")
    if torch is not None:
        threads = "" if device == "cuda" else f" ({torch.get_num_threads()} threads)"
        parts.append(f"PyTorch {torch.__version__}{threads}")
    return ", ".join(parts)


def load_torch(device):
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed: its column stays empty")
        return None
    if device == "cuda" and not torch.cuda.is_available():
        print("this PyTorch has no CUDA: its column stays empty")
        return None
    torch.backends.cuda.matmul.allow_tf32 = False  # full float32, as CuPy (CUPY_TF32 unset)
    torch.backends.cudnn.allow_tf32 = False
    return torch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--repeats", type=int, default=20, help="timed steps per case (median)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--cases", nargs="+", choices=list(LABELS), default=list(LABELS))
    parser.add_argument("--no-torch", action="store_true", help="minigen only")
    args = parser.parse_args()
    if args.device == "cuda":
        backend.import_cupy()  # a clear message if CuPy, the driver or a device is missing
    torch = None if args.no_torch else load_torch(args.device)
    print(f"device {args.device}: {describe(args.device, torch)}; float32; median of {args.repeats} "
          f"steps after {args.warmup} warm-up\n")
    print(f"{'case':<40s} {'minigen':>10s} {'PyTorch':>10s} {'ratio':>7s} {'goal':>6s}   "
          f"first loss / output sum (minigen, PyTorch)")
    for name in args.cases:
        ours_ms, theirs_ms, first_ours, first_theirs = run_case(name, args.device, torch, args)
        ratio = f"{ours_ms / theirs_ms:6.2f}x" if theirs_ms else "      -"
        theirs = f"{theirs_ms:8.2f}ms" if theirs_ms else "         -"
        goal = f"<={GOALS[name]:g}x" if name in GOALS else ""
        check = f"{first_ours:.6g}"
        if first_theirs is not None:
            difference = abs(first_ours - first_theirs) / max(abs(first_theirs), 1e-30)
            check += f", {first_theirs:.6g} (rel. diff {difference:.1e})"
        print(f"{LABELS[name]:<40s} {ours_ms:8.2f}ms {theirs} {ratio} {goal:>6s}   {check}", flush=True)

    print("\nminigen MLP VAE step at batch 1024 (Adam):")
    times = {}
    for device in dict.fromkeys(["cpu", args.device]):
        _, _, step = minigen_vae(device, 1024, conv=False)
        sync = lambda: backend.synchronize(device)  # noqa: E731
        times[device] = median_ms(step, sync, max(3, args.repeats // 4), 2)
        print(f"  {device}: {times[device]:.2f} ms")
    if args.device == "cuda":
        print(f"  GPU-vs-CPU speed-up: {times['cpu'] / times['cuda']:.1f}x")
    else:
        print("  (run with --device cuda for the GPU-vs-CPU speed-up)")


if __name__ == "__main__":
    main()
