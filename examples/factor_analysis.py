"""Factor analysis and probabilistic PCA of handwritten digits.

    python examples/factor_analysis.py                       # 8x8 digits, L = 10 factors
    python examples/factor_analysis.py --n-components 20
    python examples/factor_analysis.py --dataset mnist --data-dir DIR --n-train 10000 --n-components 30

Pixels are dequantised (u ~ U(0, 1/16) added to the 17-level digits, U(0, 1/256) to MNIST's 256
levels, as is usual for continuous densities of discrete data): otherwise pixels that are blank
in every training image get noise variances at the floor and test log-likelihoods collapse
(--no-dequantize to see it). Fits FactorAnalysis (EM), PPCA by EM and PPCA in closed form
(Tipping & Bishop 1999) to the training images and prints each model's EM iterations, time and
mean log-likelihood per image on the training and test sets (densities of continuous pixel
values in [0, 1], in nats), and how close PPCA's EM gets to its closed-form maximum. Writes to
--out: fa_components.png and ppca_components.png (rows of W^T, each scaled to [0, 1]; PPCA's
closed-form W is the leading principal directions), fa_noise.png (the per-pixel noise variances
Psi), fa_samples.png and fa_reconstructions.png (test images above W E[z|x] + mu), and
loglik.png (matplotlib only).
"""
import os
import time

import numpy as np

from minigen import backend
from minigen.models import PPCA, FactorAnalysis

from common import (example_parser, import_pyplot, load_images, parse_args, rows_as_images,
                    save_figure, save_grid)


def load(args):
    """(train, test) rows of flattened (dequantised) images and the image side."""
    train, _, test, _ = load_images(args, n_mnist_train=args.n_train)
    side = train.shape[-1]
    rows = [x.reshape(len(x), side * side).astype(np.float64) for x in (train, test)]
    if args.dequantize:
        rng = np.random.default_rng(args.seed)
        step = 1 / 256 if args.dataset == "mnist" else 1 / 16
        rows = [x + step * rng.random(x.shape) for x in rows]
    return rows, side


def plot_histories(histories, closed_form, path):
    plt = import_pyplot(path)
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for name, history in histories.items():
        ax.plot(range(len(history)), history, label=name)
    ax.axhline(closed_form, color="k", linestyle="--", linewidth=1, label="PPCA (closed form)")
    ax.set_xscale("symlog")
    ax.set_xlim(left=0)
    top = max(max(h) for h in histories.values())
    ax.set_ylim(closed_form - 0.5 * (top - closed_form) - 5, top + 0.1 * (top - closed_form) + 1)
    ax.set_xlabel("EM iteration")
    ax.set_ylabel("train log-likelihood per image")
    ax.legend()
    save_figure(fig, path)


def main():
    parser = example_parser(__doc__)
    parser.add_argument("--n-train", type=int, default=10000, help="MNIST training images used")
    parser.add_argument("--n-components", type=int, default=10, help="latent dimension L")
    parser.add_argument("--epochs", "--max-iter", dest="max_iter", type=int, default=1000,
                        help="maximum EM iterations")
    parser.add_argument("--tol", type=float, default=1e-2,
                        help="stop when the total log-likelihood gains less than this")
    parser.add_argument("--no-dequantize", dest="dequantize", action="store_false",
                        help="fit the raw quantised pixel values")
    args = parse_args(parser, "factor_analysis")

    (train, test), side = load(args)
    train, test = (backend.to_device(x, args.device) for x in (train, test))
    L = args.n_components
    print(f"{args.dataset}: {train.shape[0]} training and {test.shape[0]} test images of "
          f"{train.shape[1]} pixels; L={L} latent dimensions")
    models = {"FA (EM)": FactorAnalysis(L, tol=args.tol, max_iter=args.max_iter,
                                        random_state=args.seed),
              "PPCA (EM)": PPCA(L, method="em", tol=args.tol, max_iter=args.max_iter,
                                random_state=args.seed),
              "PPCA (closed form)": PPCA(L, method="closed_form")}
    print(f"{'model':<20} {'iters':>6} {'time':>7} {'train loglik':>13} {'test loglik':>12}")
    for name, model in models.items():
        start = time.perf_counter()
        model.fit(train)
        print(f"{name:<20} {model.n_iter_:>6} {time.perf_counter() - start:>6.2f}s "
              f"{model.score(train):>13.3f} {model.score(test):>12.3f}")
    gap = models["PPCA (closed form)"].score(train) - models["PPCA (EM)"].score(train)
    print(f"PPCA: closed form minus EM, train log-likelihood per image: {gap:.2e}")

    fa, ppca = models["FA (EM)"], models["PPCA (closed form)"]
    for name, images, nrow in [
            ("fa_components.png", rows_as_images(fa.components_, side), L),
            ("ppca_components.png", rows_as_images(ppca.components_, side), L),
            ("fa_noise.png", rows_as_images(fa.noise_variance_[None], side), 1),
            ("fa_samples.png", np.clip(backend.to_numpy(fa.sample(100, random_state=args.seed)),
                                       0, 1).reshape(-1, 1, side, side), 10)]:
        save_grid(images, args.out, name, nrow=nrow)
    x = test[:16]
    reconstruction = fa.transform(x) @ fa.components_ + fa.mean_
    grid = np.clip(backend.to_numpy(backend.get_array_module(x).concatenate([x, reconstruction])),
                   0, 1).reshape(-1, 1, side, side)
    save_grid(grid, args.out, "fa_reconstructions.png", nrow=16)
    plot_histories({name: m.log_likelihood_history_ for name, m in models.items()
                    if name.endswith("(EM)")}, ppca.log_likelihood_history_[-1],
                   os.path.join(args.out, "loglik.png"))


if __name__ == "__main__":
    main()
