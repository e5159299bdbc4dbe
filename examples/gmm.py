"""Cluster and sample handwritten digits with a Gaussian mixture fitted by EM.

    python examples/gmm.py                                   # 8x8 digits, K = 5, 10, 20, full covariances
    python examples/gmm.py --covariance-type diag --components 10 20 40
    python examples/gmm.py --dataset mnist --data-dir DIR --n-train 10000 --covariance-type diag

For each K the mixture is fitted on the training images (pixels in [0, 1] as continuous values)
and the script prints the EM iterations, the BIC on the training set, the mean log-likelihood
per test image (a density over R^D in nats, not comparable with discrete-pixel NLLs) and the
cluster purity (the share of training images whose label is the majority label of their
cluster). The model with the lowest BIC is kept: --out gets gmm.png (training data beside 100
draws sorted by component), means.png (the component means with their weights), samples.png
(the plain grid) and em_trace.png (EM trace of the kept model and BIC per K; matplotlib only).
"""
import os
import time

import numpy as np

from minigen import backend
from minigen.models import GaussianMixture
from minigen.utils import progress

from common import (example_parser, import_pyplot, load_images, nonnegative_float, parse_args,
                    positive_int, save_figure, save_grid)
from image_figures import save_labelled_rows, save_panels


def load(args):
    """(train, test) rows of flattened images, their labels and the image side."""
    train, y_train, test, _ = load_images(args, n_mnist_train=args.n_train)
    train, y_train = train[:args.n_train], y_train[:args.n_train]
    side = train.shape[-1]
    flat = [x.reshape(len(x), side * side).astype(args.dtype) for x in (train, test)]
    return flat[0], y_train, flat[1], side


def purity(clusters, labels):
    """Share of samples whose label is the most common label of their cluster."""
    return sum(np.bincount(labels[clusters == k]).max() for k in np.unique(clusters)) / len(labels)


def plot_trace(history, bics, K, path):
    plt = import_pyplot(path)
    if plt is None:
        return
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.4))
    ax.plot(range(len(history)), history, marker=".")
    ax.set_xlabel("EM iteration (0: the k-means start)")
    ax.set_ylabel("train log-likelihood per image (nats)")
    ax.set_title(f"EM trace, K={K} (never decreases)")
    bx.plot(list(bics), list(bics.values()), marker="o")
    bx.set_xlabel("number of components K")
    bx.set_ylabel("train BIC (lower is better)")
    bx.set_title("model selection by BIC")
    save_figure(fig, path)


def main():
    parser = example_parser(__doc__)
    parser.add_argument("--n-train", type=positive_int, default=10000, help="training images used (at most)")
    parser.add_argument("--components", type=positive_int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--covariance-type", default="full",
                        choices=["full", "tied", "diag", "spherical"])
    parser.add_argument("--reg-covar", type=nonnegative_float, default=1e-3,
                        help="added to the covariance diagonals (pixel variances are ~0.1)")
    parser.add_argument("--epochs", "--max-iter", dest="max_iter", type=positive_int, default=100,
                        help="maximum EM iterations")
    parser.add_argument("--n-init", type=positive_int, default=1)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    args = parse_args(parser, "gmm")

    train, y_train, test, side = load(args)
    train, test = (backend.to_device(x, args.device) for x in (train, test))
    print(f"{args.dataset}: {train.shape[0]} training and {test.shape[0]} test images of "
          f"{train.shape[1]} pixels; {args.covariance_type} covariances, reg_covar={args.reg_covar}")
    print(f"{'K':>4} {'iters':>5} {'train BIC':>12} {'test loglik':>12} {'purity':>7} {'time':>7}")
    best, bics = None, {}
    for K in progress(args.components, desc="GMM per K"):
        start = time.perf_counter()
        gmm = GaussianMixture(K, covariance_type=args.covariance_type, reg_covar=args.reg_covar,
                              max_iter=args.max_iter, n_init=args.n_init, random_state=args.seed)
        gmm.fit(train)
        seconds = time.perf_counter() - start
        bic = bics[K] = gmm.bic(train)
        clusters = backend.to_numpy(gmm.predict(train))
        print(f"{K:>4} {gmm.n_iter_:>5} {bic:>12.0f} {gmm.score(test):>12.2f} "
              f"{purity(clusters, y_train):>7.3f} {seconds:>6.1f}s"
              + ("" if gmm.converged_ else "  (not converged)"))
        if best is None or bic < best[0]:
            best = (bic, gmm)
    gmm = best[1]
    print(f"lowest BIC: K={gmm.n_components}")

    samples, labels = gmm.sample(100, random_state=args.seed)
    order = np.argsort(backend.to_numpy(labels), kind="stable")
    samples = np.clip(backend.to_numpy(samples)[order], 0, 1).reshape(-1, 1, side, side)
    save_grid(samples, args.out, "samples.png", nrow=10, note=" (100 draws, sorted by component)")
    weights = backend.to_numpy(gmm.weights_)
    by_weight = np.argsort(-weights)
    means = np.clip(backend.to_numpy(gmm.means_)[by_weight], 0, 1).reshape(-1, 1, side, side)
    save_labelled_rows([("mean mu_k", means[:20])], os.path.join(args.out, "means.png"),
                       f"component means of the K={gmm.n_components} mixture, largest weight first",
                       col_labels=[f"pi={w:.2f}" for w in weights[by_weight][:20]])
    data = backend.to_numpy(train[:100]).reshape(-1, 1, side, side)
    save_panels([("training images", data), ("samples x ~ p(x), sorted by component", samples)],
                os.path.join(args.out, "gmm.png"),
                f"Gaussian mixture, K={gmm.n_components} ({args.covariance_type} covariances), "
                f"test log-likelihood {gmm.score(test):.1f} nats per image (pixels clipped to [0, 1])")
    plot_trace(gmm.log_likelihood_history_, bics, gmm.n_components,
               os.path.join(args.out, "em_trace.png"))


if __name__ == "__main__":
    main()
