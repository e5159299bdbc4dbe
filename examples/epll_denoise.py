"""Denoise digits with a Gaussian-mixture patch prior: EPLL (Zoran & Weiss, ICCV 2011).

    python examples/epll_denoise.py                              # 8x8 digits, 4x4 patches, sigma 0.1
    python examples/epll_denoise.py --sigma 0.2 --components 30
    python examples/epll_denoise.py --dataset mnist --data-dir DIR --patch-size 8

A GMM is fitted by EM to all overlapping p x p patches of the training images. A noisy image
y = x + sigma * eps is restored by maximising the expected patch log-likelihood
    lambda/2 ||x - y||^2 - sum_i log p(P_i x)        (P_i extracts patch i)
with half-quadratic splitting: auxiliary patches z_i and a penalty beta/2 ||P_i x - z_i||^2,
alternating for increasing beta (lambda = p^2 / sigma^2, beta = [1, 4, 8, 16, 32] / sigma^2,
the paper's schedule):
  z step  per patch v = P_i x, the most likely component under the noisy prior,
          k = argmax_k log pi_k + log N(v | mu_k, Sigma_k + I / beta),
          then its Wiener estimate z = mu_k + Sigma_k (Sigma_k + I / beta)^-1 (v - mu_k)
  x step  x = (lambda y + beta sum_i P_i^T z_i) / (lambda + beta sum_i P_i^T P_i)   (pixelwise)
Prints the PSNR of the noisy and the restored test images, for the mixture prior and for a
single-Gaussian prior (K = 1) as a reference, and writes denoise.png (rows of clean / noisy /
restored images).
"""
import math
import time

import numpy as np

from minigen import backend
from minigen.models import GaussianMixture
from minigen.models.gmm import gaussian_log_prob, precision_cholesky

from common import example_parser, load_images, parse_args, save_grid


def extract_patches(images, p):
    """(N * h * w, p * p) all overlapping p x p patches of (N, H, W) images, h = H - p + 1."""
    xp = backend.get_array_module(images)
    n, H, W = images.shape
    h, w = H - p + 1, W - p + 1
    patches = xp.empty((n, h, w, p, p), dtype=images.dtype)
    for a in range(p):  # one strided copy per offset in the patch
        for b in range(p):
            patches[:, :, :, a, b] = images[:, a:a + h, b:b + w]
    return patches.reshape(-1, p * p)


def sum_patches(patches, shape, p):
    """sum_i P_i^T z_i: add every patch back at its place in (N, H, W) images."""
    xp = backend.get_array_module(patches)
    n, H, W = shape
    h, w = H - p + 1, W - p + 1
    patches = patches.reshape(n, h, w, p, p)
    images = xp.zeros(shape, dtype=patches.dtype)
    for a in range(p):
        for b in range(p):
            images[:, a:a + h, b:b + w] += patches[:, :, :, a, b]
    return images


def epll_denoise(y, gmm, sigma, p, betas=(1, 4, 8, 16, 32)):
    """Half-quadratic splitting for the EPLL objective; y: (N, H, W) noisy images."""
    xp = backend.get_array_module(y)
    lam = p * p / sigma ** 2
    counts = sum_patches(xp.ones_like(extract_patches(y, p)), y.shape, p)  # sum_i P_i^T P_i
    eye = xp.eye(p * p, dtype=y.dtype)
    x = y
    for beta in (b / sigma ** 2 for b in betas):
        noisy_cov = gmm.covariances_ + eye / beta
        v = extract_patches(x, p)
        log_post = (gaussian_log_prob(v, gmm.means_, precision_cholesky(noisy_cov))
                    + xp.log(gmm.weights_))
        k_best = xp.argmax(log_post, axis=1)
        wiener = xp.linalg.solve(noisy_cov, gmm.covariances_)  # (Sigma + I/beta)^-1 Sigma = A_k^T
        z = xp.empty_like(v)
        for k in range(len(gmm.weights_)):
            idx = xp.nonzero(k_best == k)[0]
            z[idx] = gmm.means_[k] + (v[idx] - gmm.means_[k]) @ wiener[k]
        x = (lam * y + beta * sum_patches(z, y.shape, p)) / (lam + beta * counts)
    return x


def psnr(x, reference):
    """Peak signal-to-noise ratio in dB for images in [0, 1]."""
    return 10 * math.log10(1.0 / float(((x - reference) ** 2).mean()))


def main():
    parser = example_parser(__doc__)
    parser.add_argument("--patch-size", type=int, default=None, help="default 4 (digits), 8 (mnist)")
    parser.add_argument("--components", type=int, default=20)
    parser.add_argument("--reg-covar", type=float, default=1e-4)
    parser.add_argument("--sigma", type=float, default=0.1, help="noise standard deviation")
    parser.add_argument("--n-train-patches", type=int, default=20000)
    parser.add_argument("--n-test", type=int, default=300, help="test images to denoise")
    parser.add_argument("--epochs", "--max-iter", dest="max_iter", type=int, default=100,
                        help="maximum EM iterations")
    args = parse_args(parser, "epll_denoise")

    rng = np.random.default_rng(args.seed)  # the digits' split, the training patches, the noise
    train, _, test, _ = load_images(args, n_mnist_train=5000)
    train, test = train[:, 0], test[:args.n_test, 0]
    p = args.patch_size or (8 if args.dataset == "mnist" else 4)
    train, test = (backend.to_device(x.astype(np.float64), args.device) for x in (train, test))
    patches = extract_patches(train, p)
    if len(patches) > args.n_train_patches:
        patches = patches[backend.to_device(rng.permutation(len(patches))[:args.n_train_patches],
                                            args.device)]
    xp = backend.get_array_module(test)
    noisy = test + args.sigma * backend.to_device(rng.standard_normal(test.shape), args.device)
    print(f"{args.dataset}: prior fitted on {len(patches)} patches of {p}x{p}; "
          f"{len(test)} test images, noise sigma={args.sigma}")
    print(f"noisy                 PSNR {psnr(noisy, test):6.2f} dB")
    for K in (1, args.components):
        start = time.perf_counter()
        gmm = GaussianMixture(K, reg_covar=args.reg_covar, max_iter=args.max_iter,
                              random_state=args.seed).fit(patches)
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        restored = xp.clip(epll_denoise(noisy, gmm, args.sigma, p), 0, 1)
        print(f"EPLL, GMM K={K:<3}     PSNR {psnr(restored, test):6.2f} dB   (EM {gmm.n_iter_} "
              f"iterations {fit_seconds:.1f}s, denoising {time.perf_counter() - start:.1f}s)")
    n_show = min(16, len(test))
    grid = xp.concatenate([test[:n_show], xp.clip(noisy[:n_show], 0, 1), restored[:n_show]])
    save_grid(grid[:, None], args.out, "denoise.png", nrow=n_show,
              note=f" (rows: clean, noisy, restored with K={args.components})")


if __name__ == "__main__":
    main()
