"""Train a binary RBM on binarised digits by CD-k (or PCD), then estimate its log-likelihood by AIS.

    python examples/rbm.py                                  # bundled 8x8 digits, under a minute on 2 cores
    python examples/rbm.py --persistent --learning-rate 0.005 --epochs 300   # PCD-1 needs smaller steps
    python examples/rbm.py --dataset mnist --data-dir /path/to/mnist --n-hidden 500 --epochs 10 --batch-size 100

Images are binarised at 0.5 (static binarisation). Writes to --out: samples.png (Gibbs chains
after --n-gibbs steps, showing p(v|h)), filters.png (the columns of W, each scaled to [0, 1]),
reconstructions.png (data rows above p(v|h) rows) and monitors.png (if matplotlib is installed).
"""
import math
import os
import time

import numpy as np

from minigen import backend
from minigen.data import binarize_static
from minigen.models import RBM

from common import (example_parser, import_pyplot, load_images, parse_args, rows_as_images,
                    save_figure, save_grid)


def load(args):
    """Binary (train, test) rows of flattened images and the image side."""
    train, _, test, _ = load_images(args)
    side = train.shape[-1]
    return (binarize_static(x, 0.5).reshape(len(x), side * side) for x in (train, test)), side


def plot_monitors(history, path):
    plt = import_pyplot(path)
    if plt is None:
        return
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, (name, values) in zip(axes, history.items()):
        ax.plot(range(1, len(values) + 1), values, marker=".")
        ax.set_xlabel("epoch")
        ax.set_title(name.replace("_", " "))
    save_figure(fig, path)


def main():
    parser = example_parser(__doc__)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--n-hidden", type=int, default=100)
    parser.add_argument("--k", type=int, default=1, help="Gibbs steps per update (CD-k / PCD-k)")
    parser.add_argument("--persistent", action="store_true", help="persistent CD (Tieleman 2008)")
    parser.add_argument("--learning-rate", type=float, default=0.05)
    parser.add_argument("--momentum", type=float, default=0.5)
    parser.add_argument("--weight-decay", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--n-gibbs", type=int, default=1000, help="Gibbs steps for the samples")
    parser.add_argument("--ais-betas", type=int, default=10000)
    parser.add_argument("--ais-runs", type=int, default=100)
    args = parse_args(parser, "rbm")

    (train, test), side = load(args)
    print(f"{args.dataset}: {len(train)} train / {len(test)} test images of {side}x{side}, binarised at 0.5")
    rbm = RBM(side * side, args.n_hidden, random_state=args.seed, device=args.device)
    start = time.perf_counter()
    rbm.fit(train, k=args.k, persistent=args.persistent, learning_rate=args.learning_rate,
            epochs=args.epochs, batch_size=args.batch_size, momentum=args.momentum,
            weight_decay=args.weight_decay)
    history = rbm.history_
    method = f"{'PCD' if args.persistent else 'CD'}-{args.k}"
    print(f"{method}, {args.epochs} epochs in {time.perf_counter() - start:.1f} s; "
          f"last epoch: reconstruction error {history['reconstruction_error'][-1]:.3f}, "
          f"pseudo-log-likelihood {history['pseudo_log_likelihood'][-1]:.2f} nats")
    for name, x in (("train", train), ("test", test)):
        print(f"reconstruction error ({name}): {rbm.reconstruction_error(x, random_state=args.seed):.3f} "
              f"(squared error per image, sum over {side * side} pixels)")

    start = time.perf_counter()
    log_z, (low, high) = rbm.log_partition_ais(n_betas=args.ais_betas, n_runs=args.ais_runs,
                                               random_state=args.seed, return_bounds=True)
    print(f"AIS ({args.ais_betas} temperatures, {args.ais_runs} runs, {time.perf_counter() - start:.1f} s): "
          f"log Z = {log_z:.2f}  (+-3 std. err.: [{low:.2f}, {high:.2f}])")
    if min(rbm.n_visible, rbm.n_hidden) <= 20:
        print(f"exact log Z = {rbm.log_partition():.2f}")
    for name, x in (("train", train), ("test", test)):
        ll = rbm.log_likelihood(x, log_Z=log_z)  # log p(v) = -F(v) - log Z: Z's interval reversed
        spread = f"[{ll + log_z - high:.2f}, {ll + log_z - low:.2f}]" if math.isfinite(low) else "unbounded"
        print(f"log-likelihood ({name}, AIS): {ll:.2f} nats per image  (+-3 std. err.: {spread})")

    samples = rbm.sample(100, n_gibbs=args.n_gibbs, random_state=args.seed, return_probabilities=True)
    rows = test[:10]
    recon = rbm.prob_v_given_h(rbm.sample_h_given_v(rows, random_state=args.seed))
    pictures = {"samples.png": samples,
                "filters.png": rows_as_images(rbm.W[:, :100].T, side),  # hidden unit j: W[:, j]
                "reconstructions.png": np.concatenate([backend.to_numpy(rows), backend.to_numpy(recon)])}
    for name, images in pictures.items():
        save_grid(backend.to_numpy(images).reshape(-1, 1, side, side), args.out, name, nrow=10)
    plot_monitors(history, os.path.join(args.out, "monitors.png"))


if __name__ == "__main__":
    main()
