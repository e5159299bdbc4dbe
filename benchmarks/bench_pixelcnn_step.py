"""One training step (forward, backward, Adam) of PixelCNN and of GatedPixelCNN, minigen beside
the same architecture written in PyTorch.

    python benchmarks/bench_pixelcnn_step.py [--threads 2] [--repeats 10] [--batch 32]

Models (float32, the defaults of this script): 28x28 binary images (one channel, V = 2), hidden
width 64, 5 layers, first kernel 7x7: PixelCNN = 7x7 mask-A convolution, 4 residual blocks
(1x1, 3x3 mask B, 1x1), ReLU, 1x1, ReLU, 1x1; GatedPixelCNN = 5 gated layers (vertical stack
(k//2 + 1) x k, horizontal stack 1 x k masked, 1x1 from vertical to horizontal after a shift
down, gate tanh * sigmoid, 1x1 out, residual), then the same output layers. Loss: mean negative
log-likelihood per image (cross-entropy over the V values summed over pixels); Adam, lr 1e-3.

The PyTorch models are built here from the minigen model's own parameters and masks (the same
values, so the same parameter count, checked and printed, and the same first loss, checked):
masked convolutions as conv2d with weight * mask (every tap, as one writes it in PyTorch), the
vertical stack as conv2d on the input padded above only, the shift down as pad and slice. The
two implementations run on the same batch, each timed apart (minigen's steps, then PyTorch's:
the threads of one would spin on a core the other needs); the medians are printed, ratios first.
"""
import argparse

from common import median_times, set_blas_threads


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="BLAS / torch threads")
    parser.add_argument("--repeats", type=int, default=10, help="timed steps of each (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps of each first")
    parser.add_argument("--batch", type=int, default=32, help="images per step")
    parser.add_argument("--hidden", type=int, default=64, help="hidden channels")
    parser.add_argument("--layers", type=int, default=5, help="layers (PixelCNN: 1 + residual blocks)")
    parser.add_argument("--kernel-size", type=int, default=7, help="first layer's kernel")
    return parser.parse_args(argv)


if __name__ == "__main__":  # parse now, to set the threads before NumPy starts its BLAS
    ARGS = parse_args()
    set_blas_threads(ARGS.threads)

import numpy as np  # noqa: E402

import minigen  # noqa: E402
from minigen.models import GatedPixelCNN, PixelCNN  # noqa: E402
from minigen.optim import Adam  # noqa: E402

LR = 1e-3


def torch_pixelcnn(torch, p, m, n_blocks):
    """PixelCNN's network on the one-hot images, from parameters p and masks m (dicts by name)."""
    tf = torch.nn.functional

    def conv(name, x, padding=0):
        return tf.conv2d(x, p[name + ".weight"] * m[name + ".mask"], p[name + ".bias"], padding=padding)

    def network(h):
        x = conv("input_conv", h, m["input_conv.mask"].shape[-1] // 2)
        for b in range(n_blocks):
            a = conv(f"blocks.{b}.conv", torch.relu(conv(f"blocks.{b}.reduce", torch.relu(x))), 1)
            x = x + conv(f"blocks.{b}.expand", torch.relu(a))
        return conv("output.3", torch.relu(conv("output.1", torch.relu(x))))
    return network


def torch_gated(torch, p, m, n_layers):
    """GatedPixelCNN's network on the one-hot images, from parameters p and masks m."""
    tf = torch.nn.functional

    def masked(name, x, padding=(0, 0)):
        return tf.conv2d(x, p[name + ".weight"] * m[name + ".mask"], p[name + ".bias"], padding=padding)

    def gate(a):
        f, g = a.chunk(2, dim=1)
        return torch.tanh(f) * torch.sigmoid(g)

    def network(h):
        v = h
        for l in range(n_layers):
            name = f"layers.{l}"
            k = p[name + ".vertical.weight"].shape[-1]
            v_pre = tf.conv2d(tf.pad(v, (k // 2, k // 2, k // 2, 0)), p[name + ".vertical.weight"],
                              p[name + ".vertical.bias"])
            shifted = tf.pad(v_pre, (0, 0, 1, 0))[:, :, :-1]
            h_pre = masked(name + ".horizontal", h, (0, k // 2)) + tf.conv2d(
                shifted, p[name + ".vertical_to_horizontal.weight"], p[name + ".vertical_to_horizontal.bias"])
            h_out = masked(name + ".horizontal_out", gate(h_pre))
            v, h = gate(v_pre), (h_out if l == 0 else h + h_out)
        return masked("output.3", torch.relu(masked("output.1", torch.relu(h))))
    return network


def torch_step_for(torch, model, network, x, threads):
    """(step function, parameter count, first loss) of the PyTorch copy of ``model``."""
    torch.set_num_threads(threads)
    p = {name: torch.tensor(t.numpy(), requires_grad=True) for name, t in model.named_parameters()}
    m = {name: torch.tensor(minigen.backend.to_numpy(a)) for name, a in model.named_buffers()}
    net = network(torch, p, m, len(getattr(model, "blocks", getattr(model, "layers", []))))
    optimizer = torch.optim.Adam(p.values(), lr=LR)
    tx = torch.from_numpy(x)
    one_hot = torch.nn.functional.one_hot(tx[:, 0], 2).permute(0, 3, 1, 2).float()

    def loss():
        logits = net(one_hot).reshape(len(x), 1, 2, *x.shape[2:]).permute(0, 2, 1, 3, 4)
        return torch.nn.functional.cross_entropy(logits, tx, reduction="sum") / len(x)

    def step():
        optimizer.zero_grad()
        value = loss()
        value.backward()
        optimizer.step()
    first = loss().item()
    return step, sum(t.numel() for t in p.values()), first


def minigen_step_for(model, x):
    optimizer = Adam(model.parameters(), lr=LR)

    def step():
        optimizer.zero_grad()
        loss = model.loss(x)
        loss.backward()
        optimizer.step()
    return step, sum(t.size for t in model.parameters()), model.loss(x).item()


def main(args):
    try:
        import torch
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, (args.batch, 1, 28, 28))
    print(f"one training step (forward, backward, Adam), 28x28 binary, batch {args.batch}, hidden "
          f"{args.hidden}, {args.layers} layers, first kernel {args.kernel_size}, float32, "
          f"{args.threads} BLAS/torch threads, medians of {args.repeats} steps, each timed apart")
    results = []
    for cls, network in ((PixelCNN, torch_pixelcnn), (GatedPixelCNN, torch_gated)):
        minigen.manual_seed(0)
        model = cls(hidden_channels=args.hidden, n_layers=args.layers, kernel_size=args.kernel_size)
        fns = {}
        fns["minigen"], count, first = minigen_step_for(model, x)
        line = f"{cls.__name__}: {count} parameters"
        if torch is not None:
            fns["pytorch"], torch_count, torch_first = torch_step_for(torch, model, network, x, args.threads)
            if torch_count != count or abs(torch_first - first) > 1e-3 * abs(first):
                raise RuntimeError(f"{cls.__name__}: the PyTorch copy differs: {torch_count} parameters, "
                                   f"first loss {torch_first} (minigen: {count}, {first})")
            line += f" (PyTorch {torch_count}), first loss {first:.3f} nats (PyTorch {torch_first:.3f})"
        print(line, flush=True)
        results.append((cls.__name__, {name: median_times({name: fn}, args.repeats, warmup=args.warmup)[name]
                                       for name, fn in fns.items()}))
    for name, t in results:
        if "pytorch" in t:
            print(f"{name} training step: minigen / PyTorch {t['minigen'] / t['pytorch']:.2f}x")
    for name, t in results:
        theirs = f", PyTorch {1e3 * t['pytorch']:.1f} ms" if "pytorch" in t else " (PyTorch not installed)"
        print(f"{name} training step: minigen {1e3 * t['minigen']:.1f} ms{theirs}")


if __name__ == "__main__":
    main(ARGS)
