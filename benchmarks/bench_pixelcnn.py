"""PixelCNN on MNIST: test NLL after a short training run, time per epoch, and sampling speed.

    python benchmarks/bench_pixelcnn.py --data-dir /work/shared/data/mnist      # ~10 minutes on 2 cores
    python benchmarks/bench_pixelcnn.py --data-dir /work/shared/data/mnist --epochs 100 --minutes 110 \
        --binarized-mnist /work/shared/data/binarized-mnist/binarized_mnist.npz   # the 2-hour run
    python benchmarks/bench_pixelcnn.py --skip-training                          # sampling speed and memory
    python benchmarks/bench_pixelcnn.py --skip-training --skip-sampling          # peak memory only

On a machine whose cores are shared with other jobs, run with OPENBLAS_NUM_THREADS=1: the
sampler's small GEMMs, split over two BLAS threads while the other core is busy, ran up to 20x
slower here (0.29 instead of 6.3 samples/s for PixelCNN at a load average of 2.5).

Quality. A PixelCNN (7x7 mask A + residual blocks of 3x3 mask B) is trained on the first
--n-train MNIST training images, dynamically binarised (a fresh Bernoulli draw per epoch), for
--epochs epochs with Adam; its exact test NLL is computed on all 10,000 test images, binarised once
with a fixed seed. Reference: van den Oord et al. (2016, "Pixel Recurrent Neural Networks",
Table 4) report 81.30 nats for PixelCNN on (statically) binarised MNIST, with a far larger model
trained far longer; the printed gap is ours minus theirs.

Speed. Samples per second for 28x28 binary images from PixelCNN and GatedPixelCNN (same width and
depth): the cached sampler (every layer's activations kept, one pixel's column
computed per step: Ramachandran et al. 2017), the windowed sampler (the network runs on the crop
that the current pixel's receptive field covers) and the naive sampler that reruns the network on
the whole image for each of the 784 pixels, in the same run (medians of --repeats runs; the
naive one once), all with the same seeds (the images must agree).

Memory. Peak memory (tracemalloc: NumPy registers its allocations with it) of PixelCNN.log_prob on
--memory-batch random 28x28 binary images, recording the graph (as training does: everything
backward needs stays alive until backward) beside the same call under no_grad (what an evaluation
needs), and of bits_per_dim, an evaluation helper that records no graph.
"""
import argparse
import math
import os
import time
import tracemalloc

import numpy as np

import minigen
from minigen.data import DataLoader, binarize_dynamic, load_binarized_mnist, load_mnist
from minigen.models import GatedPixelCNN, PixelCNN
from minigen.optim import Adam

from common import mean_nll, train_epoch

PAPER_NLL = 81.30  # PixelCNN, binarised MNIST (van den Oord et al. 2016a, Table 4)


def make(cls, args):
    return cls(hidden_channels=args.hidden, n_layers=args.layers, kernel_size=args.kernel_size)


def train_and_evaluate(model, args):
    train = load_mnist(args.data_dir, "train")[0][:args.n_train]
    test = binarize_dynamic(load_mnist(args.data_dir, "test")[0], generator=args.seed + 1)
    opt = Adam(model.parameters(), lr=args.lr)
    loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, seed=args.seed,
                        transform=binarize_dynamic)
    times, start = [], time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        tic = time.perf_counter()
        loss = train_epoch(loader, opt, model.loss)
        times.append(time.perf_counter() - tic)
        print(f"  epoch {epoch}: train NLL {loss:.2f} nats ({times[-1]:.1f} s, lr {opt.lr:.2e})",
              flush=True)
        opt.lr *= args.lr_decay
        if args.minutes and time.perf_counter() - start + max(times) > 60 * args.minutes:
            break  # the next epoch would not finish inside the time budget
    if args.save:
        model.save(args.save)
    tic = time.perf_counter()
    nll = mean_nll(model, test)
    per_epoch = float(np.median(times))
    print(f"PixelCNN ({sum(p.size for p in model.parameters())} parameters), {len(times)} epochs of "
          f"{len(train)} images, batch {args.batch_size}, Adam lr {args.lr} (x{args.lr_decay} per "
          f"epoch), {sum(times) / 60:.1f} min of training:")
    print(f"  time per epoch: {per_epoch:.1f} s for {len(train)} images (median), i.e. "
          f"{per_epoch * 60000 / len(train) / 60:.1f} min per full 60,000-image epoch; "
          f"{len(train) / per_epoch:.0f} images/s")
    print(f"  test NLL (10,000 images, dynamically binarised once): {nll:.2f} nats = "
          f"{nll / (784 * math.log(2)):.4f} bits/dim   (evaluation {time.perf_counter() - tic:.1f} s)")
    if args.binarized_mnist:
        static = load_binarized_mnist(args.binarized_mnist, "test")
        static_nll = mean_nll(model, static)
        print(f"  test NLL on the fixed binarised MNIST test split ({len(static)} images, "
              f"Larochelle & Murray's, the paper's): {static_nll:.2f} nats; gap to the paper "
              f"{static_nll - PAPER_NLL:+.2f} nats")
    print(f"  paper: {PAPER_NLL:.2f} nats (static binarisation, much larger model, trained to "
          f"convergence); gap {nll - PAPER_NLL:+.2f} nats")
    return model


def time_sampling(model, args):
    """Samples/s of the cached sampler, the windowed one and the naive full
    recompute, the first two medians of --repeats runs, the naive one run once; all with the same
    seeds, so the images must be identical. Returns {sampler: samples/s, "same": bool}."""
    name = type(model).__name__
    model.eval()
    samplers = {"cached": {"cached": True}, "windowed": {}, "naive": {"window": False}}
    times, images = {k: [] for k in samplers}, {}
    for r in range(args.repeats):
        for key, kwargs in samplers.items():
            if key == "naive" and r < args.repeats - 1:
                continue
            tic = time.perf_counter()
            images[key] = model.sample(args.n_samples, (28, 28), generator=r, **kwargs).numpy()
            times[key].append(time.perf_counter() - tic)
    rates = {k: args.n_samples / float(np.median(t)) for k, t in times.items()}
    same = all((images[k] == images["naive"]).all() for k in images)
    print(f"  {name:14s} receptive field (up, left, right) {model.receptive_field}: "
          + ", ".join(f"{k} {rates[k]:.2f} samples/s" for k in samplers)
          + "; speed-up over naive: " + ", ".join(f"{k} {rates[k] / rates['naive']:.1f}x" for k in samplers
                                                  if k != "naive")
          + (f", cached over windowed {rates['cached'] / rates['windowed']:.1f}x" if "cached" in rates else "")
          + f"; same samples for the same seed: {same}")
    return {**rates, "same": same}


def peak_memory(fn):
    """(peak bytes allocated while fn() runs and its result is alive, result), by tracemalloc."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = fn()
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


def measure_memory(args):
    model = make(PixelCNN, args)
    x = np.random.default_rng(args.seed).integers(0, 2, (args.memory_batch, 1, 28, 28))
    gib = 2 ** 30
    recorded, lp = peak_memory(lambda: model.log_prob(x))
    del lp  # frees the graph before the next measurement
    with minigen.no_grad():
        unrecorded, _ = peak_memory(lambda: model.log_prob(x))
    bpd, out = peak_memory(lambda: model.bits_per_dim(x))
    print(f"peak memory of log_prob on {args.memory_batch} 28x28 images (hidden {args.hidden}, "
          f"{args.layers} layers, first kernel {args.kernel_size}; tracemalloc):")
    print(f"  recording the graph: {recorded / gib:.3f} GiB;  under no_grad: {unrecorded / gib:.3f} GiB "
          f"(ratio {recorded / unrecorded:.1f}x);  bits_per_dim (records no graph: "
          f"{not out.requires_grad}): {bpd / gib:.3f} GiB")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--skip-sampling", action="store_true")
    parser.add_argument("--n-train", type=int, default=60000)
    parser.add_argument("--memory-batch", type=int, default=256, help="images for the memory measurement")
    parser.add_argument("--epochs", type=int, default=2, help="at most this many epochs")
    parser.add_argument("--minutes", type=float, default=None,
                        help="training time budget: stop before an epoch that would overrun it")
    parser.add_argument("--lr-decay", type=float, default=1.0, help="lr factor after each epoch")
    parser.add_argument("--binarized-mnist", default=None,
                        help="binarized_mnist.npz: also report the NLL on its fixed test split")
    parser.add_argument("--save", default=None, help="save the trained PixelCNN to this file")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--kernel-size", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--n-samples", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not args.skip_training and args.data_dir is None:
        raise SystemExit("pass --data-dir (the folder holding the MNIST IDX files) or --skip-training")

    # Timings on a shared machine depend on what else runs; say so beside them.
    threads = os.environ.get("OPENBLAS_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "default"))
    print(f"{os.cpu_count()} CPUs, BLAS threads: {threads}, load average (1 min) at start: "
          f"{os.getloadavg()[0]:.2f}")
    minigen.manual_seed(args.seed)
    pixelcnn = make(PixelCNN, args)
    if not args.skip_training:
        start = time.perf_counter()
        train_and_evaluate(pixelcnn, args)
        print(f"  (training and evaluation took {(time.perf_counter() - start) / 60:.1f} min)")
    if not args.skip_sampling:
        print(f"sampling 28x28 binary images, hidden {args.hidden}, {args.layers} layers, first "
              f"kernel {args.kernel_size}:")
        for model in (pixelcnn, make(GatedPixelCNN, args)):
            time_sampling(model, args)
    measure_memory(args)
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
