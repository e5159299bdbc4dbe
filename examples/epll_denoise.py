"""Denoise digits with a Gaussian-mixture patch prior: EPLL (Zoran & Weiss, ICCV 2011; deck 001).

    python examples/epll_denoise.py                              # 8x8 digits, 4x4 patches, sigma 0.1 and 0.2
    python examples/epll_denoise.py --sigmas 0.2 --components 30 --solvers hqs gradient
    python examples/epll_denoise.py --dataset mnist --data-dir DIR --patch-size 8 --n-test 50

A GaussianMixture is fitted by EM to overlapping p x p patches of the training images (the patch
prior). Noisy test images y = x + sigma eps are restored by minimising the EPLL objective
    f(x) = lambda/2 ||x - y||^2 - sum_i log p(P_i x),   lambda = p^2 / sigma^2
with minigen.models.epll_denoise: half-quadratic splitting ("hqs", the paper) and gradient
descent ("gradient", deck 001; autograd through minigen.models.epll_objective). Prints, for each
noise level, the PSNR of the noisy and restored test images and the objective before and after,
for the mixture prior and for a single Gaussian (K = 1) as a reference; writes denoise.png
(rows: clean, then noisy and restored for each noise level).
"""
import math
import os
import time

import numpy as np

from minigen import backend
from minigen.models import GaussianMixture, epll_denoise, epll_objective
from minigen.models.epll import extract_patches

from common import (example_parser, load_images, nonnegative_float, parse_args, positive_float,
                    positive_int)
from image_figures import save_labelled_rows


def psnr(x, reference):
    """Peak signal-to-noise ratio in dB for images in [0, 1]."""
    return 10 * math.log10(1.0 / float(((x - reference) ** 2).mean()))


def main():
    parser = example_parser(__doc__)
    parser.add_argument("--patch-size", type=positive_int, default=None, help="default 4 (digits), 8 (mnist)")
    parser.add_argument("--components", type=positive_int, default=20)
    parser.add_argument("--reg-covar", type=nonnegative_float, default=1e-4)
    parser.add_argument("--sigmas", type=positive_float, nargs="+", default=[0.1, 0.2],
                        help="noise standard deviations")
    parser.add_argument("--solvers", nargs="+", choices=["hqs", "gradient"], default=["hqs"],
                        help="gradient descent is slow with a many-component prior (its step is "
                             "1 / the largest curvature); try --solvers hqs gradient")
    parser.add_argument("--gradient-steps", type=positive_int, default=200)
    parser.add_argument("--n-train", type=positive_int, default=10000, help="training patches used")
    parser.add_argument("--n-test", type=positive_int, default=300, help="test images to denoise")
    parser.add_argument("--epochs", "--max-iter", dest="max_iter", type=positive_int, default=100,
                        help="maximum EM iterations")
    args = parse_args(parser, "epll_denoise")

    rng = np.random.default_rng(args.seed)  # the training patches and the noise
    train, _, test, _ = load_images(args, n_mnist_train=5000)
    train, test = train[:, 0], test[:args.n_test, 0]
    p = args.patch_size or (8 if args.dataset == "mnist" else 4)
    train, test = (backend.to_device(x.astype(np.float64), args.device) for x in (train, test))
    patches = extract_patches(train, p)
    if len(patches) > args.n_train:
        patches = patches[backend.to_device(rng.permutation(len(patches))[:args.n_train], args.device)]
    xp = backend.get_array_module(test)
    priors = {}
    for K in (1, args.components):
        start = time.perf_counter()
        priors[K] = GaussianMixture(K, reg_covar=args.reg_covar, max_iter=args.max_iter,
                                    random_state=args.seed).fit(patches)
        print(f"patch prior K={K}: EM {priors[K].n_iter_} iterations on {len(patches)} patches of "
              f"{p}x{p} in {time.perf_counter() - start:.1f} s")
    print(f"{args.dataset}: {len(test)} test images; PSNR in dB, objective f per image")
    print(f"{'sigma':>5} {'prior':>6} {'solver':>8} {'PSNR':>7} {'f':>10} {'time':>7}")
    rows = [("clean", test[:12, None])]
    for sigma in args.sigmas:
        noisy = test + sigma * backend.to_device(rng.standard_normal(test.shape), args.device)
        f_noisy = float(epll_objective(noisy, noisy, priors[args.components], sigma).item()) / len(test)
        print(f"{sigma:>5} {'-':>6} {'noisy':>8} {psnr(noisy, test):>7.2f} {f_noisy:>10.1f}")
        rows.append((f"noisy, sigma={sigma}", xp.clip(noisy[:12, None], 0, 1)))
        for K, prior in priors.items():
            for solver in args.solvers:
                start = time.perf_counter()
                restored = epll_denoise(noisy, prior, sigma, patch_size=p, solver=solver,
                                        n_iter=args.gradient_steps)
                seconds = time.perf_counter() - start
                f = float(epll_objective(restored, noisy, prior, sigma).item()) / len(test)
                print(f"{sigma:>5} {'K=' + str(K):>6} {solver:>8} {psnr(xp.clip(restored, 0, 1), test):>7.2f} "
                      f"{f:>10.1f} {seconds:>6.1f}s")
                if K == args.components and solver == args.solvers[0]:
                    rows.append((f"EPLL {solver}, K={K}", xp.clip(restored[:12, None], 0, 1)))
    save_labelled_rows(rows, os.path.join(args.out, "denoise.png"),
                       f"EPLL denoising with a {args.components}-component GMM prior on {p}x{p} patches")


if __name__ == "__main__":
    main()
