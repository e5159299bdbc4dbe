"""Factor analysis and probabilistic PCA of handwritten digits.

    python examples/factor_analysis.py                       # 8x8 digits, L = 10 factors
    python examples/factor_analysis.py --n-components 20
    python examples/factor_analysis.py --dataset mnist --data-dir DIR --n-train 10000 --n-components 30

Pixels are dequantised (u ~ U(0, 1/16) added to the 17-level digits, U(0, 1/256) to MNIST's 256
levels, as is usual for continuous densities of discrete data): otherwise pixels that are blank
in every training image get noise variances at the floor and test log-likelihoods collapse
(--no-dequantize to see it). Fits FactorAnalysis by EM from the PPCA solution (the default) and
from a random start, PPCA by EM and PPCA in closed form (Tipping & Bishop 1999) to the training
images and prints each model's EM iterations, time and mean log-likelihood per image on the
training and test sets (densities of continuous pixel values in [0, 1], in nats), and how close
PPCA's EM gets to its closed-form maximum. Writes to --out (matplotlib only): components.png
(rows of W^T of FA and of closed-form PPCA, each scaled to [0, 1]), fa_noise.png (the per-pixel
noise variances Psi, with a colour bar), fa_samples.png (test images beside FA samples),
fa_reconstructions.png (test images above W E[z|x] + mu) and loglik.png (the EM traces).
"""
import os
import time
import warnings

import numpy as np

from minigen import backend
from minigen.models import PPCA, FactorAnalysis
from minigen.models.estimator import ConvergenceWarning

from common import (example_parser, import_pyplot, load_images, nonnegative_float, parse_args,
                    positive_int, rows_as_images, save_figure)
from image_figures import save_labelled_rows, save_panels


def load(args):
    """(train, test) rows of flattened (dequantised) images and the image side."""
    train, _, test, _ = load_images(args, n_mnist_train=args.n_train)
    train = train[:args.n_train]
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
    ax.set_xlabel("EM iteration (symlog scale)")
    ax.set_ylabel("train log-likelihood per image (nats)")
    ax.set_title("EM traces: FA from the PPCA start converges in few iterations", fontsize=9)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_noise(psi, side, path):
    plt = import_pyplot(path)
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(5, 3.8))
    image = ax.imshow(backend.to_numpy(psi).reshape(side, side), cmap="viridis",
                      interpolation="nearest")
    fig.colorbar(image, ax=ax, label="noise variance psi_d")
    ax.set_title("FA: per-pixel noise variance", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    save_figure(fig, path)


def main():
    parser = example_parser(__doc__)
    parser.add_argument("--n-train", type=positive_int, default=10000, help="training images used (at most)")
    parser.add_argument("--n-components", type=positive_int, default=10, help="latent dimension L")
    parser.add_argument("--epochs", "--max-iter", dest="max_iter", type=positive_int, default=1000,
                        help="maximum EM iterations")
    parser.add_argument("--tol", type=nonnegative_float, default=1e-5,
                        help="stop when the log-likelihood per image changes by at most this")
    parser.add_argument("--no-dequantize", dest="dequantize", action="store_false",
                        help="fit the raw quantised pixel values")
    args = parse_args(parser, "factor_analysis")

    (train, test), side = load(args)
    train, test = (backend.to_device(x, args.device) for x in (train, test))
    L = args.n_components
    print(f"{args.dataset}: {train.shape[0]} training and {test.shape[0]} test images of "
          f"{train.shape[1]} pixels; L={L} latent dimensions")
    models = {"FA (EM, PPCA start)": FactorAnalysis(L, tol=args.tol, max_iter=args.max_iter,
                                        random_state=args.seed),
              "FA (EM, random start)": FactorAnalysis(L, tol=args.tol, max_iter=args.max_iter,
                                                      init="random", random_state=args.seed),
              "PPCA (EM)": PPCA(L, method="em", tol=args.tol, max_iter=args.max_iter,
                                random_state=args.seed),
              "PPCA (closed form)": PPCA(L, method="closed_form")}
    print(f"{'model':<22} {'iters':>6} {'time':>7} {'train loglik':>13} {'test loglik':>12}")
    for name, model in models.items():
        start = time.perf_counter()
        with warnings.catch_warnings():  # reported in the table instead
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(train)
        print(f"{name:<22} {model.n_iter_:>6} {time.perf_counter() - start:>6.2f}s "
              f"{model.score(train):>13.3f} {model.score(test):>12.3f}"
              + ("" if model.converged_ else "  (max_iter reached)"))
    gap = models["PPCA (closed form)"].score(train) - models["PPCA (EM)"].score(train)
    print(f"PPCA: closed form minus EM, train log-likelihood per image: {gap:.2e}")

    fa, ppca = models["FA (EM, PPCA start)"], models["PPCA (closed form)"]
    images = lambda x: np.clip(backend.to_numpy(x), 0, 1).reshape(-1, 1, side, side)  # noqa: E731
    save_labelled_rows([("FA: W^T rows", rows_as_images(fa.components_, side)),
                        ("PPCA: W^T rows", rows_as_images(ppca.components_, side))],
                       os.path.join(args.out, "components.png"),
                       f"the L={L} loading vectors (columns of W), each scaled to [0, 1]",
                       col_labels=[f"factor {j + 1}" for j in range(L)])
    plot_noise(fa.noise_variance_, side, os.path.join(args.out, "fa_noise.png"))
    save_panels([("test images", images(test[:50])),
                 ("FA samples x = W z + mu + noise", images(fa.sample(50, random_state=args.seed)))],
                os.path.join(args.out, "fa_samples.png"),
                f"factor analysis, L={L}: test log-likelihood {fa.score(test):.1f} nats per image")
    x = test[:12]
    reconstruction = fa.transform(x) @ fa.components_ + fa.mean_
    save_labelled_rows([("test image", images(x)), ("W E[z|x] + mu", images(reconstruction))],
                       os.path.join(args.out, "fa_reconstructions.png"),
                       f"factor analysis reconstructions from the posterior mean of z (L={L})")
    plot_histories({name: m.log_likelihood_history_ for name, m in models.items()
                    if "(EM" in name}, ppca.log_likelihood_history_[-1],
                   os.path.join(args.out, "loglik.png"))


if __name__ == "__main__":
    main()
