"""The MLP VAE's quality on MNIST (IWAE test NLL) and its training speed, beside references.

Part 1 (--part step): one training step (forward, backward, Adam) of ``minigen.models.VAE``
784-512-20-512-784, batch 128, float32, fixed noise, against the hand-written NumPy step of
benchmarks/bench_mlp_vae_step.py (same weights, batch and noise; its reference function is
imported, not copied) and PyTorch if importable. The three losses are printed to show they agree.

Part 2 (--part mnist): VAE 784-400-20 (ReLU, Bernoulli likelihood) trained with Adam (lr 1e-3,
batch 128) for --epochs passes over the 60,000 training images, binarised afresh every batch
(dynamic binarisation); test images are binarised once with seed 12345. Reports seconds per epoch,
the test ELBO and the test NLL by importance weighting (k = --iwae-k samples, Burda et al. 2016)
on the first --nll-images test images. Reference: Burda et al. (2016, Table 1) report 86.76 nats
for a VAE with one stochastic layer (50 latents, two 200-unit tanh layers) trained for 3,280 passes.

    python benchmarks/bench_vae_mnist.py --data-dir /path/to/mnist [--epochs 30] [--iwae-k 1000]
"""
import argparse
import os
import sys
import time

from common import median_times, set_blas_threads, train_epoch  # common does not import NumPy


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["step", "mnist", "all"], default="all")
    parser.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files (part mnist)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--iwae-k", type=int, default=1000)
    parser.add_argument("--nll-images", type=int, default=1000, help="first test images for the IWAE NLL")
    parser.add_argument("--steps", type=int, default=30, help="timed steps in part step (median reported)")
    parser.add_argument("--threads", type=int, default=2, help="BLAS threads")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


if __name__ == "__main__":  # run as a script: parse now, to set the threads before NumPy starts its BLAS
    ARGS = parse_args()
    set_blas_threads(ARGS.threads)

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import bench_mlp_vae_step as ref  # noqa: E402
import minigen  # noqa: E402
from minigen.data import DataLoader, binarize_dynamic, load_mnist  # noqa: E402
from minigen.models import VAE  # noqa: E402
from minigen.optim import Adam  # noqa: E402

TEST_SEED = 12345


def reference_state(model):
    """The library VAE's weights under the reference's names (its mu and logvar heads are separate)."""
    s = {k: np.array(v) for k, v in model.state_dict().items()}
    k = model.latent_dim
    return {"enc.weight": s["encoder.0.weight"], "enc.bias": s["encoder.0.bias"],
            "enc_mu.weight": s["encoder.2.weight"][:k].copy(), "enc_mu.bias": s["encoder.2.bias"][:k].copy(),
            "enc_logvar.weight": s["encoder.2.weight"][k:].copy(), "enc_logvar.bias": s["encoder.2.bias"][k:].copy(),
            "dec.weight": s["decoder.0.weight"], "dec.bias": s["decoder.0.bias"],
            "dec_out.weight": s["decoder.2.weight"], "dec_out.bias": s["decoder.2.bias"]}


def part_step(args):
    x, eps = ref.fixed_batch(128)
    minigen.manual_seed(0)
    model = VAE(784, (512,), 20)
    state = reference_state(model)
    optimizer = Adam(model.parameters(), lr=ref.LR, betas=ref.BETAS, eps=ref.EPS)
    tx, teps = minigen.tensor(x), minigen.tensor(eps)

    def library_step():
        optimizer.zero_grad()
        loss = model.loss(tx, eps=teps)
        loss.backward()
        optimizer.step()
        return loss.item()

    numpy_step = ref.numpy_setup(state, x, eps)
    steps = {"minigen.models.VAE": library_step, "numpy by hand": numpy_step}
    first = {name: step() for name, step in steps.items()}
    times = {name: 1e3 * t for name, t in median_times(steps, args.steps, warmup=5).items()}
    # PyTorch is timed afterwards, alone: once imported, its threads slow NumPy's threaded GEMMs.
    try:
        torch_step, version = ref.torch_setup(state, x, eps, args.threads)
        first[f"pytorch {version}"] = torch_step()
        times[f"pytorch {version}"] = 1e3 * median_times({"t": torch_step}, args.steps, warmup=5)["t"]
    except ImportError:
        print("(PyTorch not importable: its column is skipped)")
    print("loss at step 1: " + ", ".join(f"{name} {value:.4f}" for name, value in first.items()))
    print(f"one training step, VAE 784-512-20-512-784, batch 128, Adam, float32, {args.threads} threads "
          f"(median of {args.steps}; minigen and NumPy interleaved, PyTorch after):")
    ours = times["minigen.models.VAE"]
    for name, ms in times.items():
        print(f"  {name:<22s} {ms:7.2f} ms" + ("" if ms == ours else f"   (minigen / this: {ours / ms:.2f}x)"))


def part_mnist(args):
    if args.data_dir is None:
        raise SystemExit("part mnist needs --data-dir (the folder holding the MNIST IDX files)")
    train_x, _ = load_mnist(args.data_dir, "train")
    test_x, _ = load_mnist(args.data_dir, "test")
    test_x = (np.random.default_rng(TEST_SEED).random(test_x.shape) < test_x).astype(np.float32)
    minigen.manual_seed(args.seed)
    model = VAE(784, (400,), 20)
    optimizer = Adam(model.parameters(), lr=ref.LR)
    loader = DataLoader(train_x, batch_size=128, shuffle=True, seed=args.seed, transform=binarize_dynamic)
    print(f"MNIST: VAE 784-400-20, Bernoulli, dynamic binarisation, Adam lr {ref.LR}, batch 128, "
          f"{args.epochs} epochs, {args.threads} threads")
    epoch_times = []
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        loss = train_epoch(loader, optimizer, model.loss)
        epoch_times.append(time.perf_counter() - start)
        print(f"  epoch {epoch:3d}  train loss {loss:7.2f}  ({epoch_times[-1]:.1f} s)", flush=True)

    start = time.perf_counter()
    with minigen.no_grad():
        elbo = np.concatenate([model.elbo(test_x[i:i + 1000], generator=args.seed).elbo.numpy()
                               for i in range(0, len(test_x), 1000)])
        n = min(args.nll_images, len(test_x))
        log_p = np.concatenate([model.log_likelihood(test_x[i:min(i + 500, n)], args.iwae_k,
                                                     generator=args.seed).numpy() for i in range(0, n, 500)])
    nll_time = time.perf_counter() - start
    print(f"time per epoch: median {np.median(epoch_times):.1f} s (min {min(epoch_times):.1f}, "
          f"max {max(epoch_times):.1f}), {len(loader)} steps per epoch")
    print(f"test ELBO (10000 images, one z each):      {elbo.mean():7.2f} nats")
    print(f"test NLL (IWAE k={args.iwae_k}, {n} images):  {-log_p.mean():7.2f} nats  "
          f"(+- {log_p.std() / np.sqrt(n):.2f} s.e. over images; {nll_time:.0f} s)")
    print(f"reference: 86.76 nats (Burda et al. 2016, Table 1: 1 stochastic layer, 3,280 passes); "
          f"gap {-log_p.mean() - 86.76:+.2f} nats after {args.epochs} epochs")


if __name__ == "__main__":
    if ARGS.part in ("step", "all"):
        part_step(ARGS)
    if ARGS.part in ("mnist", "all"):
        part_mnist(ARGS)
