"""Train a binary RBM on digits by CD-k (or PCD), then estimate its test log-likelihood by AIS.

    python examples/rbm.py                                  # bundled 8x8 digits, about a minute on 2 cores
    python examples/rbm.py --persistent --learning-rate 0.005 --epochs 300   # PCD-1 needs smaller steps
    python examples/rbm.py --dataset mnist --data-dir /path/to/mnist --n-hidden 500 --epochs 10 --n-train 10000

The RBM is trained on the grey levels as probabilities (CD then uses them as the data's
expectations, the same in expectation as re-binarising every epoch); its log-likelihood is
reported on the shared held-out split binarised once (common.binarize_test), in nats per image,
with log Z from annealed importance sampling (and exactly when the smaller layer is <= 20 units).
Writes to --out: rbm.png (filters, samples beside binarised test data, reconstructions, training
monitors) and the grids samples.png, filters.png.
"""
import math
import os
import time

import numpy as np

from minigen import backend
from minigen.models import RBM

from common import (binarize_test, example_parser, import_pyplot, load_images, nonnegative_float,
                    parse_args, positive_float, positive_int, rows_as_images, save_figure,
                    save_grid, usage_error)
from image_figures import save_labelled_rows, save_panels


def plot_monitors(history, path):
    plt = import_pyplot(path)
    if plt is None:
        return
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    labels = {"reconstruction_error": "squared error per image (sum over pixels)",
              "pseudo_log_likelihood": "pseudo-log-likelihood per image (nats)"}
    for ax, (name, values) in zip(axes, history.items()):
        ax.plot(range(1, len(values) + 1), values, marker=".")
        ax.set_xlabel("epoch")
        ax.set_ylabel(labels[name], fontsize=8)
        ax.set_title(name.replace("_", " ") + " (1000 training rows)", fontsize=9)
    save_figure(fig, path)


def main():
    parser = example_parser(__doc__)
    parser.add_argument("--epochs", type=positive_int, default=100)
    parser.add_argument("--n-train", type=positive_int, default=None, help="training images used (default all)")
    parser.add_argument("--n-hidden", type=positive_int, default=100)
    parser.add_argument("--k", type=positive_int, default=1, help="Gibbs steps per update (CD-k / PCD-k)")
    parser.add_argument("--persistent", action="store_true", help="persistent CD (Tieleman 2008)")
    parser.add_argument("--learning-rate", type=positive_float, default=0.05)
    parser.add_argument("--momentum", type=nonnegative_float, default=0.5, help="in [0, 1)")
    parser.add_argument("--weight-decay", type=nonnegative_float, default=1e-3)
    parser.add_argument("--batch-size", type=positive_int, default=20)
    parser.add_argument("--n-gibbs", type=positive_int, default=1000, help="Gibbs steps for the samples")
    parser.add_argument("--ais-betas", type=positive_int, default=10000, help="AIS temperatures (>= 2)")
    parser.add_argument("--ais-runs", type=positive_int, default=100)
    args = parse_args(parser, "rbm")
    if args.momentum >= 1:
        usage_error(f"--momentum must be in [0, 1), got {args.momentum}")
    if args.ais_betas < 2:
        usage_error(f"--ais-betas must be >= 2, got {args.ais_betas}")

    train, _, test, _ = load_images(args, n_mnist_train=args.n_train)
    train = train[:args.n_train]
    side = train.shape[-1]
    train = train.reshape(len(train), side * side).astype(np.float64)
    test_binary = binarize_test(test).reshape(len(test), side * side)
    print(f"{args.dataset}: {len(train)} training images (grey levels as probabilities), "
          f"{len(test)} binarised test images of {side}x{side}")
    rbm = RBM(args.n_hidden, k=args.k, persistent=args.persistent, learning_rate=args.learning_rate,
              max_iter=args.epochs, batch_size=args.batch_size, momentum=args.momentum,
              weight_decay=args.weight_decay, n_gibbs=args.n_gibbs, random_state=args.seed,
              device=args.device, verbose=True)
    start = time.perf_counter()
    rbm.fit(train)
    history = rbm.history_
    method = f"{'PCD' if args.persistent else 'CD'}-{args.k}"
    print(f"{method}, {args.epochs} epochs in {time.perf_counter() - start:.1f} s; "
          f"last epoch: reconstruction error {history['reconstruction_error'][-1]:.3f}, "
          f"pseudo-log-likelihood {history['pseudo_log_likelihood'][-1]:.2f} nats")
    error = float(rbm.reconstruction_error(test_binary, random_state=args.seed).mean())
    print(f"reconstruction error (test): {error:.3f} (squared error per image, sum over {side * side} pixels)")

    start = time.perf_counter()
    log_z, (low, high) = rbm.log_partition_ais(n_betas=args.ais_betas, n_runs=args.ais_runs,
                                               random_state=args.seed, return_bounds=True)
    print(f"AIS ({args.ais_betas} temperatures, {args.ais_runs} runs, {time.perf_counter() - start:.1f} s): "
          f"log Z = {log_z:.2f}  (+-3 std. err.: [{low:.2f}, {high:.2f}])")
    if min(side * side, args.n_hidden) <= 20:
        print(f"exact log Z = {rbm.log_partition():.2f}")
    # score_samples uses the exact log Z when the smaller layer has <= 20 units, else the AIS one
    # just stored; log p(v) = -F(v) - log Z, so Z's interval reverses into the likelihood's
    nll = -rbm.score(test_binary)
    spread = (f"[{nll - log_z + low:.2f}, {nll - log_z + high:.2f}]" if math.isfinite(low)
              and min(side * side, args.n_hidden) > 20 else "exact log Z" if
              min(side * side, args.n_hidden) <= 20 else "unbounded")
    print(f"test NLL (shared held-out split, binarised once): {nll:.2f} nats per image  "
          f"(+-3 std. err. of AIS: {spread})")

    samples = backend.to_numpy(rbm.sample(50, random_state=args.seed, return_probabilities=True))
    filters = rows_as_images(rbm.components_[:50], side)  # hidden unit j: row j of W^T
    rows = test_binary[:10]
    recon = backend.to_numpy(rbm.gibbs(rows, 1, random_state=args.seed, return_probabilities=True))
    images = lambda x: backend.to_numpy(x).reshape(-1, 1, side, side)  # noqa: E731
    save_grid(images(samples), args.out, "samples.png", nrow=10,
              note=f" (p(v|h) after {args.n_gibbs} Gibbs steps)")
    save_grid(filters, args.out, "filters.png", nrow=10, note=" (rows of W^T, each scaled to [0, 1])")
    save_panels([("binarised test images", images(test_binary[:50])),
                 (f"samples: p(v|h) after {args.n_gibbs} Gibbs steps", images(samples)),
                 ("filters: 50 rows of W^T, each scaled to [0, 1]", filters)],
                os.path.join(args.out, "rbm.png"),
                f"RBM, {args.n_hidden} hidden units, {method}, {args.epochs} epochs; "
                f"test NLL {nll:.1f} nats")
    save_labelled_rows([("test image", images(rows)), ("p(v|h), h ~ p(h|v)", images(recon))],
                       os.path.join(args.out, "reconstructions.png"), "RBM reconstructions")
    plot_monitors(history, os.path.join(args.out, "monitors.png"))


if __name__ == "__main__":
    main()
