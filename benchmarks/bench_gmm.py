"""Time one EM iteration of a full-covariance GaussianMixture beside its matmul-only lower bound.

    python benchmarks/bench_gmm.py                                # synthetic 60000 x 784, K = 10
    python benchmarks/bench_gmm.py --n-samples 10000              # a smaller run
    python benchmarks/bench_gmm.py --data-dir DIR                 # MNIST training images
    python benchmarks/bench_gmm.py --data-dir DIR --pca 50        # MNIST projected on 50 principal axes

One EM iteration is exactly what GaussianMixture.fit runs per iteration: the M step (N_k, means,
K covariances as (sqrt(r_k) * (X - mu_k))^T (sqrt(r_k) * (X - mu_k)), their Cholesky factors and
the triangular inverses) and the E step (K whitenings (X - mu_k) @ P_k, log-sum-exp). Its
GEMMs alone, timed on arrays of the same shapes in the same run, bound it from below:
    E step  K x (N, D) @ (D, D)                       2 N D^2 K flops
    M step  (K, N) @ (N, D) and K x (D, N) @ (N, D)   2 N D K + N D^2 K flops (A^T A is a SYRK)
Prints the medians of --repeats runs (minigen and the GEMMs take turns in each repeat), the GEMM
rate and the ratio EM iteration / GEMM bound.
"""
import argparse
import warnings
import os
import time

import numpy as np

from minigen import backend
from minigen.data import load_mnist
from minigen.models import GaussianMixture
from minigen.models.estimator import ConvergenceWarning

from common import median_times


def load_data(args):
    if args.data_dir is None:
        rng = np.random.default_rng(args.seed)
        X = rng.standard_normal((args.n_samples, args.n_features)).astype(args.dtype)
        return X, "synthetic"
    X = load_mnist(args.data_dir, "train")[0][:args.n_samples].reshape(-1, 784).astype(np.float64)
    name = "MNIST"
    if args.pca:
        Xc = X - X.mean(axis=0)
        _, U = np.linalg.eigh(Xc.T @ Xc)
        X, name = Xc @ U[:, ::-1][:, :args.pca], f"MNIST, PCA to {args.pca} dims"
    return X.astype(args.dtype), name


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-samples", type=int, default=60000)
    parser.add_argument("--n-features", type=int, default=784, help="synthetic data only")
    parser.add_argument("--n-components", type=int, default=10)
    parser.add_argument("--data-dir", default=None, help="folder with the MNIST IDX files")
    parser.add_argument("--pca", type=int, default=0, help="project MNIST on this many axes")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--reg-covar", type=float, default=1e-3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args()

    X, name = load_data(args)
    X = backend.to_device(X, args.device)
    xp = backend.get_array_module(X)

    def sync():  # GPU kernels run asynchronously: wait for them before reading the clock
        backend.synchronize(args.device)

    (N, D), K = X.shape, args.n_components
    print(f"{name}: N={N}, D={D}, K={K}, full covariances, {args.dtype}, device {args.device}, "
          f"{os.cpu_count()} CPUs, medians of {args.repeats}")

    start = time.perf_counter()
    with warnings.catch_warnings():  # one iteration on purpose: not converged
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm = GaussianMixture(K, reg_covar=args.reg_covar, max_iter=1, init_params="k-means++",
                              random_state=args.seed).fit(X)
    print(f"setup (k-means++ init + 1 EM iteration): {time.perf_counter() - start:.1f}s")
    log_resp, _ = gmm._e_step(X)
    resp = xp.exp(log_resp)

    rng = np.random.default_rng(args.seed)
    P = backend.to_device(rng.standard_normal((K, D, D)).astype(args.dtype), args.device)
    A = X + 0  # a contiguous operand like sqrt(r_k) * (X - mu_k)

    def e_gemms():
        for k in range(K):
            X @ P[k]

    def m_gemms():
        resp.T @ X
        for _ in range(K):
            A.T @ A

    times = median_times({"M": lambda: gmm._m_step(X, resp, iteration=1),
                          "E": lambda: gmm._e_step(X), "M gemms": m_gemms, "E gemms": e_gemms},
                         args.repeats, sync=sync)
    t_m, t_e, t_m_gemm, t_e_gemm = times["M"], times["E"], times["M gemms"], times["E gemms"]
    flops_e, flops_m = 2 * N * D * D * K, N * D * D * K + 2 * N * D * K
    rows = [("E step", t_e, t_e_gemm, flops_e), ("M step", t_m, t_m_gemm, flops_m),
            ("EM iteration", t_e + t_m, t_e_gemm + t_m_gemm, flops_e + flops_m)]
    print(f"{'':<14}{'minigen':>10}{'GEMMs only':>12}{'ratio':>8}{'GEMM GFLOP/s':>14}")
    for label, t, t_gemm, flops in rows:
        print(f"{label:<14}{t:>9.3f}s{t_gemm:>11.3f}s{t / t_gemm:>8.2f}{flops / t_gemm / 1e9:>14.1f}")
    print(f"one EM iteration holds {(flops_e + flops_m) / 1e9:.1f} GFLOP of GEMM work; minigen "
          f"sustains {(flops_e + flops_m) / (t_e + t_m) / 1e9:.1f} GFLOP/s on it")


if __name__ == "__main__":
    main()
