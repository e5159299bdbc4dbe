"""NICE on MNIST: test bits/dim after a stated training time beside the published figure, and
one training step beside PyTorch CPU with the same architecture.

Part 1 (--part step): one training step (forward, backward, Adam) of ``minigen.models.NICE``
(784 inputs, --couplings additive couplings with ReLU MLPs of --hidden units, logistic prior,
batch --batch-size, float32) against the same network written in PyTorch with the same weights
and batch, when PyTorch is importable (it is never a dependency). The two losses are printed to
show they agree; median times over --steps interleaved rounds.

Part 2 (--part mnist): NICE trained with Adam (lr 1e-3, betas (0.9, 0.99), eps 1e-4, as the
paper's Sec. 5.1 reads) on the 60,000 training images for --minutes of wall-clock time (or --epochs passes, whichever ends
first). Preprocessing, the NICE paper's (Dinh et al. 2014, Sec. 5.1): pixels k/255 become
y = (k + u) / 256, u ~ U(0, 1) drawn afresh every batch, no logit; the prior is the standard
logistic. Test figures on the 10,000 test images with one fixed dequantisation draw:

    log p(y)   in nats on the [0, 1] scale (the paper's Table 2 reports 1980.50 for MNIST)
    bits/dim = (-log p(y) + 784 log 256) / (784 log 2)   (1980.50 nats <-> 4.36 bits/dim)

The paper trained 4 couplings of 5 x 1000 ReLU units for up to 1500 epochs; the gap printed is
ours minus theirs, after our much shorter training.

    python benchmarks/bench_flows.py --data-dir /work/shared/data/mnist [--minutes 5] [--hidden 1000 ...]
"""
import argparse
import math
import os
import sys
import time

from common import median_times, set_blas_threads  # common does not import NumPy

PUBLISHED_NATS, PUBLISHED_BPD = 1980.50, 4.36


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["step", "mnist", "all"], default="all")
    parser.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files (part mnist)")
    parser.add_argument("--minutes", type=float, default=5.0, help="training time budget (part mnist)")
    parser.add_argument("--epochs", type=int, default=1000, help="at most this many passes (part mnist)")
    parser.add_argument("--couplings", type=int, default=4)
    parser.add_argument("--hidden", type=int, nargs="+", default=[1000] * 5, help="hidden widths per coupling")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--steps", type=int, default=10, help="timed steps in part step (median reported)")
    parser.add_argument("--threads", type=int, default=2, help="BLAS threads")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


if __name__ == "__main__":  # parse now, to set the threads before NumPy starts its BLAS
    ARGS = parse_args()
    set_blas_threads(ARGS.threads)

import numpy as np  # noqa: E402

import minigen  # noqa: E402
from minigen import flows  # noqa: E402
from minigen.data import DataLoader, load_mnist  # noqa: E402
from minigen.models import NICE  # noqa: E402
from minigen.optim import Adam  # noqa: E402


def build(args):
    minigen.manual_seed(args.seed)
    return NICE(784, n_couplings=args.couplings, hidden_dims=tuple(args.hidden), prior="logistic")


def torch_nice(model):
    """The same NICE in PyTorch, weights copied: data -> couplings g_1..g_n -> scaling -> logistic."""
    import torch

    class TorchNICE(torch.nn.Module):
        def __init__(self):
            super().__init__()
            affine, couplings = model.transform[0], list(model.transform)[1:][::-1]  # g_1 first
            self.masks = [torch.tensor(c.mask) for c in couplings]
            self.nets = torch.nn.ModuleList()
            for c in couplings:
                layers = []
                for m in c.net:
                    if isinstance(m, minigen.nn.Linear):
                        lin = torch.nn.Linear(m.in_features, m.out_features)
                        lin.weight.data = torch.tensor(m.weight.numpy().copy())
                        lin.bias.data = torch.tensor(m.bias.numpy().copy())
                        layers.append(lin)
                    else:
                        layers.append(torch.nn.ReLU())
                self.nets.append(torch.nn.Sequential(*layers))
            self.log_scale = torch.nn.Parameter(torch.tensor(affine.log_scale.numpy().copy()))
            self.shift = torch.nn.Parameter(torch.tensor(affine.shift.numpy().copy()))

        def log_prob(self, x):
            for m, net in zip(self.masks, self.nets):
                x = x + (1 - m) * net(x * m)
            h = (x - self.shift) * torch.exp(-self.log_scale)
            log_prior = -torch.nn.functional.softplus(h) - torch.nn.functional.softplus(-h)
            return log_prior.sum(1) - self.log_scale.sum()

    return TorchNICE()


def part_step(args):
    model = build(args)
    rng = np.random.default_rng(args.seed)
    x = ((rng.integers(0, 256, (args.batch_size, 784)) + rng.random((args.batch_size, 784))) / 256).astype("float32")
    optimizer = Adam(model.parameters(), lr=args.lr)

    def minigen_step():
        optimizer.zero_grad()
        loss = model.loss(x)
        loss.backward()
        optimizer.step()
        return loss.item()

    n_params = sum(p.size for p in model.parameters())
    print(f"NICE step: 784 inputs, {args.couplings} couplings of {args.hidden}, {n_params} parameters, "
          f"batch {args.batch_size}, float32, Adam, {args.threads} BLAS threads")
    try:
        import torch
    except ImportError:
        torch = None
        print("PyTorch is not importable: minigen timed alone")
    fns = {"minigen": minigen_step}
    if torch is not None:
        torch.set_num_threads(args.threads)
        reference = torch_nice(model)
        torch_optimizer = torch.optim.Adam(reference.parameters(), lr=args.lr)
        xt = torch.tensor(x)
        with minigen.no_grad():
            ours = model.loss(x).item()
        theirs = -reference.log_prob(xt).mean().item()
        print(f"loss before the step: minigen {ours:.4f}, PyTorch {theirs:.4f} (difference {abs(ours - theirs):.2e})")

        def torch_step():
            torch_optimizer.zero_grad()
            loss = -reference.log_prob(xt).mean()
            loss.backward()
            torch_optimizer.step()
            return loss.item()
        fns["PyTorch CPU"] = torch_step
    times = median_times(fns, repeats=args.steps, warmup=2)
    for name, t in times.items():
        print(f"  {name:12s} {1000 * t:8.1f} ms per training step")
    if "PyTorch CPU" in times:
        print(f"  minigen / PyTorch: {times['minigen'] / times['PyTorch CPU']:.2f}x")


def test_figures(model, test_x):
    """(mean log p(y) in nats on the [0, 1] scale, bits/dim) with one fixed dequantisation draw."""
    generator = np.random.default_rng(12345)
    total = 0.0
    with minigen.no_grad():
        for start in range(0, len(test_x), 1000):
            y = flows.dequantize(test_x[start:start + 1000], generator=generator)
            total += float(model.log_prob(y).sum().item())
    log_p = total / len(test_x)
    return log_p, (-log_p + 784 * math.log(256)) / (784 * math.log(2))


def part_mnist(args):
    if args.data_dir is None or not os.path.isdir(args.data_dir):
        sys.exit("part mnist needs --data-dir, the folder with the MNIST IDX files")
    (train_x, _), (test_x, _) = load_mnist(args.data_dir, "train"), load_mnist(args.data_dir, "test")
    train_x, test_x = train_x.reshape(len(train_x), -1), test_x.reshape(len(test_x), -1)
    model = build(args)
    optimizer = Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.99), eps=1e-4)
    generator = np.random.default_rng(args.seed)
    loader = DataLoader(train_x, batch_size=args.batch_size, shuffle=True, seed=args.seed)
    print(f"NICE on MNIST: {args.couplings} couplings of {args.hidden}, logistic prior, batch "
          f"{args.batch_size}, Adam lr {args.lr}, budget {args.minutes} min on {args.threads} threads")
    start, epoch, steps = time.perf_counter(), 0, 0
    budget = 60 * args.minutes
    while epoch < args.epochs and time.perf_counter() - start < budget:
        epoch += 1
        total, epoch_steps = 0.0, 0
        for batch in loader:
            optimizer.zero_grad()
            loss = model.loss(flows.dequantize(batch, generator=generator))
            loss.backward()
            optimizer.step()
            total += loss.item()
            steps, epoch_steps = steps + 1, epoch_steps + 1
            if time.perf_counter() - start > budget:
                break
        print(f"epoch {epoch}: {steps} steps, train -log p {total / epoch_steps:.1f} nats "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    log_p, bpd = test_figures(model, test_x)
    elapsed = time.perf_counter() - start
    print(f"after {elapsed / 60:.1f} min ({steps} steps, {steps * args.batch_size / 60000:.2f} epochs):")
    print(f"  test log-likelihood {log_p:8.2f} nats  (NICE paper: {PUBLISHED_NATS:.2f}; gap {PUBLISHED_NATS - log_p:.2f})")
    print(f"  test bits/dim       {bpd:8.3f}       (NICE paper: {PUBLISHED_BPD:.2f};    gap {bpd - PUBLISHED_BPD:+.3f})")


if __name__ == "__main__":
    if ARGS.part in ("step", "all"):
        part_step(ARGS)
    if ARGS.part in ("mnist", "all"):
        part_mnist(ARGS)
