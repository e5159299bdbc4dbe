"""Time one CD-1 epoch of minigen's RBM beside the matmul-only lower bound of the same epoch.

    python benchmarks/bench_rbm.py                         # synthetic binary 60000 x 784 data
    python benchmarks/bench_rbm.py --data-dir /path/to/mnist

MNIST-sized: 60000 x 784 visible, 500 hidden, batches of 100, float32 by default. A CD-1 update
does five GEMMs of 2 n D H flops each: v0 W, h0 W^T, v1 W (the three conditionals) and v0^T p(h|v0),
v1^T p(h|v1) (the gradient). The bound times those five GEMMs alone, on arrays of the same shapes
and layouts, in the same run; the ratio is what sampling, sigmoids, updates and Python cost on top.
fit also runs its two per-epoch monitors (reconstruction error and pseudo-likelihood) on 1000 rows,
three more GEMMs (v W, h W^T, v W): the second ratio puts them in the bound too (all the
matmuls of fit's epoch), which matters for small --n-samples. When PyTorch is installed, the same
CD-1 epoch written in PyTorch the way its users would (addmm, sigmoid, bernoulli, in-place addmm_
updates, and fit's two monitors on 1000 rows) is timed apart on as many threads, and its ratio to
the GEMM bound printed: what compiled, vectorised elementwise kernels cost on top of the same
GEMMs. Prints medians over --repeats.

    python benchmarks/bench_rbm.py --threads 1 --n-samples 10000    # one BLAS thread, quick
"""
import argparse
import os
import sys

from common import import_torch, median_times, set_blas_threads

if __name__ == "__main__":  # before NumPy starts its BLAS
    _threads = next((a.split("=", 1)[1] if "=" in a else sys.argv[i + 2]
                     for i, a in enumerate(sys.argv[1:]) if a.startswith("--threads")), None)
    if _threads is not None:
        set_blas_threads(int(_threads))

import numpy as np  # noqa: E402

from minigen.data import binarize_static, load_mnist  # noqa: E402
from minigen.models import RBM  # noqa: E402


def monitor_gemms(X, W, n_rows=1000):
    """The three GEMMs of fit's per-epoch monitors on ``n_rows`` rows (reconstruction: v W, h W^T;
    pseudo-likelihood: v W)."""
    v = X[:n_rows]
    a = v @ W
    a @ W.T
    v @ W


def gemm_epoch(X, W, batch_size):
    """The five GEMMs of a CD-1 epoch, nothing else (the outputs are stand-ins of the right shape)."""
    for start in range(0, len(X), batch_size):
        v0 = X[start:start + batch_size]
        a0 = v0 @ W          # p(h|v0) pre-activation
        a1 = a0 @ W.T        # p(v|h0) pre-activation (h0 has the shape of a0)
        a2 = v0 @ W          # p(h|v1) pre-activation (v1 has the shape of v0)
        v0.T @ a0            # positive statistics v0^T p(h|v0)
        v0.T @ a2            # negative statistics v1^T p(h|v1)
        del a1


def torch_epoch(torch, X, n_hidden, batch_size, learning_rate, seed):
    """A function running one epoch of fit in PyTorch on the CPU: CD-1 updates at momentum 0 (same
    initialisation scale, shuffled batches), then fit's monitors on 1000 rows (the reconstruction
    error, the pseudo-likelihood with one random unit flipped per row)."""
    softplus = torch.nn.functional.softplus
    X = torch.from_numpy(X)
    n, D = X.shape
    generator = torch.Generator().manual_seed(seed)

    def monitors(v, W, b, c):
        h = torch.bernoulli(torch.sigmoid(torch.addmm(c, v, W.T)), generator=generator)
        reconstruction = ((v - torch.sigmoid(torch.addmm(b, h, W))) ** 2).sum(1).mean()
        a = torch.addmm(c, v, W.T)
        units, rows = torch.randint(D, (len(v),), generator=generator), torch.arange(len(v))
        sign = 1 - 2 * v[rows, units]
        dF = -sign * b[units] - (softplus(a + sign[:, None] * W[:, units].T) - softplus(a)).sum(1)
        return float(reconstruction), float((-D * softplus(-dF)).mean())

    def epoch():
        W = 0.01 * torch.randn(n_hidden, D, generator=generator, dtype=X.dtype)  # W^T, as components_
        b, c = torch.zeros(D, dtype=X.dtype), torch.zeros(n_hidden, dtype=X.dtype)
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            v0 = X[order[start:start + batch_size]]
            p_h0 = torch.sigmoid(torch.addmm(c, v0, W.T))
            h0 = torch.bernoulli(p_h0, generator=generator)
            v1 = torch.bernoulli(torch.sigmoid(torch.addmm(b, h0, W)), generator=generator)
            p_h1 = torch.sigmoid(torch.addmm(c, v1, W.T))
            step = learning_rate / len(v0)
            W.addmm_(p_h0.T, v0, alpha=step).addmm_(p_h1.T, v1, alpha=-step)
            b.add_(v0.sum(0) - v1.sum(0), alpha=step)
            c.add_(p_h0.sum(0) - p_h1.sum(0), alpha=step)
        return monitors(X[order[:1000]], W, b, c)
    return epoch


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files (else synthetic data)")
    parser.add_argument("--n-hidden", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--n-samples", type=int, default=60000, help="synthetic data only")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS threads (default: the environment's OPENBLAS_NUM_THREADS or all)")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    if args.data_dir:
        images = load_mnist(args.data_dir, "train")[0]
        X = binarize_static(images, 0.5).reshape(len(images), -1).astype(args.dtype)
        source = f"MNIST from {args.data_dir}, binarised at 0.5"
    else:
        X = (rng.random((args.n_samples, 784)) < 0.13).astype(args.dtype)  # MNIST's fraction of ones
        source = "synthetic Bernoulli(0.13)"
    n, D, H, B = *X.shape, args.n_hidden, args.batch_size
    flops = 5 * 2 * n * D * H
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    print(f"RBM CD-1 epoch: {n} x {D} visible ({source}), {H} hidden, batch {B}, {args.dtype}, "
          f"{os.cpu_count()} CPU cores, BLAS threads {threads}, median of {args.repeats} (interleaved)")

    rbm = RBM(H, k=1, max_iter=1, batch_size=B, learning_rate=0.01, random_state=args.seed,
              dtype=args.dtype)
    W = rng.standard_normal((D, H)).astype(args.dtype)
    times = median_times({"fit": lambda: rbm.fit(X),  # includes the per-epoch monitors on 1000 rows
                          "gemms": lambda: gemm_epoch(X, W, B),
                          "monitor gemms": lambda: monitor_gemms(X, W)}, args.repeats)
    t_fit, t_gemm, t_all = times["fit"], times["gemms"], times["gemms"] + times["monitor gemms"]
    torch = import_torch()
    t_torch = None
    if torch is not None:  # timed apart: PyTorch's threads spin after each call
        torch.set_num_threads(int(args.threads or os.environ.get("OPENBLAS_NUM_THREADS", os.cpu_count())))
        run = torch_epoch(torch, X, H, B, 0.01, args.seed)
        t_torch = median_times({"torch": run}, args.repeats, warmup=1)["torch"]
    monitor_flops = 3 * 2 * min(n, 1000) * D * H
    print(f"ratio fit / GEMM bound: {t_fit / t_gemm:.2f}   (bound with the monitors' GEMMs: "
          f"{t_fit / t_all:.2f})" + ("" if t_torch is None else
                                    f"   PyTorch's epoch / GEMM bound: {t_torch / t_gemm:.2f}, minigen / PyTorch: "
                                    f"{t_fit / t_torch:.2f}"))
    print(f"{'':34s}{'seconds':>10s}{'GFLOP/s':>10s}")
    print(f"{'minigen RBM.fit (1 epoch)':34s}{t_fit:10.3f}{(flops + monitor_flops) / t_fit / 1e9:10.1f}")
    if t_torch is not None:
        print(f"{'PyTorch CD-1 epoch (its monitors)':34s}{t_torch:10.3f}{(flops + monitor_flops) / t_torch / 1e9:10.1f}")
    print(f"{'GEMMs alone (lower bound)':34s}{t_gemm:10.3f}{flops / t_gemm / 1e9:10.1f}")
    print(f"{'GEMMs with the monitors (bound)':34s}{t_all:10.3f}{(flops + monitor_flops) / t_all / 1e9:10.1f}")


if __name__ == "__main__":
    main()
