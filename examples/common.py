"""Plumbing shared by the examples: common flags, data splits, training epochs, output files.

Nothing model-specific lives here. A script imports it with ``from common import ...``, which
works from any working directory: Python puts the folder of the script it runs first on
sys.path.
"""
import argparse
import os
import sys

import numpy as np

import minigen
from minigen import backend
from minigen.data import binarize_dynamic, load_digits, load_mnist
from minigen.utils import save_image_grid

DIGITS_TEST = 300  # bundled digits held out as the test set (the other 1497 train)
SPLIT_SEED = 0  # fixes the digits split and the binarisation of its test images


# ----------------------------------------------------------------------------- command line

def example_parser(doc, dataset=True):
    """A parser showing the script's docstring as help; with --dataset and --data-dir unless
    ``dataset=False``. The script adds its own flags, then calls ``parse_args``."""
    parser = argparse.ArgumentParser(description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    if dataset:
        parser.add_argument("--dataset", choices=["digits", "mnist"], default="digits")
        parser.add_argument("--data-dir", default=None,
                            help="folder with the MNIST IDX files (for --dataset mnist)")
    return parser


def positive_int(text):
    """argparse type: an integer >= 1 (else a usage error naming the value)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def nonnegative_float(text):
    """argparse type: a finite real number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not np.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    return value


def positive_float(text):
    """argparse type: a finite real number > 0."""
    value = nonnegative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected a number > 0, got 0")
    return value


def parse_args(parser, name, out_help=None):
    """Add --seed, --device and --out DIR (default out/<name>; None if name is None) and parse."""
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--out", default=None if name is None else os.path.join("out", name),
                        help=out_help or "output folder (default: %(default)s)")
    args = parser.parse_args()
    if args.device == "cuda":
        try:
            backend.import_cupy()
        except RuntimeError as e:
            usage_error(f"--device cuda: {e}")
    return args


# ----------------------------------------------------------------------------- data

def load_images(args, n_mnist_train=None):
    """(train_x, train_y, test_x, test_y): NumPy images (N, 1, H, W) in [0, 1] and int labels.

    --dataset mnist: the official split, read from --data-dir; only the first ``n_mnist_train``
    training images (default: all 60000). digits: the one held-out split every digits example
    shares, whatever --seed: ``DIGITS_TEST`` images chosen by a permutation with the fixed seed
    ``SPLIT_SEED`` are the test set, the other 1497 train. So the test NLLs of all the models
    can be compared (the README's table).
    """
    if args.dataset == "mnist":
        if args.data_dir is None:
            usage_error("--dataset mnist needs --data-dir (the folder with the MNIST IDX files)")
        if not os.path.isdir(args.data_dir):
            usage_error(f"--data-dir {args.data_dir}: no such folder")
        (train_x, train_y), (test_x, test_y) = (load_mnist(args.data_dir, split)
                                                for split in ("train", "test"))
        return train_x[:n_mnist_train], train_y[:n_mnist_train], test_x, test_y
    images, labels = load_digits()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
    test, train = order[:DIGITS_TEST], order[DIGITS_TEST:]
    return images[train], labels[train], images[test], labels[test]


def binarize_test(test_x):
    """The held-out images binarised once, x ~ Bernoulli(intensity) with the fixed seed
    ``SPLIT_SEED``: the fixed binary test set on which every binary model's NLL is reported."""
    return binarize_dynamic(test_x, generator=np.random.default_rng(SPLIT_SEED))


def usage_error(message):
    """Print ``message`` as one line and exit with status 2 (argparse's usage-error status)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def rows_as_images(rows, side):
    """Each row (a weight vector, a component) scaled to [0, 1] on its own, as (N, 1, side, side)."""
    rows = backend.to_numpy(rows)
    low, high = rows.min(axis=1, keepdims=True), rows.max(axis=1, keepdims=True)
    return ((rows - low) / np.maximum(high - low, 1e-12)).reshape(-1, 1, side, side)


# ----------------------------------------------------------------------------- training

def train_epoch(loader, optimizer, loss_fn):
    """One pass over ``loader``: per batch, zero the gradients, backpropagate ``loss_fn(batch)``
    (``loss_fn(*batch)`` for a tuple of arrays) and take an optimizer step. Returns the mean loss
    per example (the batch losses are means over their examples)."""
    total, count = 0.0, 0
    for batch in loader:
        inputs = batch if isinstance(batch, tuple) else (batch,)
        optimizer.zero_grad()
        loss = loss_fn(*inputs)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(inputs[0])
        count += len(inputs[0])
    return total / count


def is_report_epoch(epoch, epochs, n_reports=10):
    """True for the first and the last epoch and about ``n_reports`` evenly spaced in between."""
    return epoch == 1 or epoch % max(1, epochs // n_reports) == 0 or epoch == epochs


def mean_nll(model, x, batch_size=500):
    """Mean -model.log_prob(x) in nats per image, in batches, without building a graph."""
    total = 0.0
    with minigen.no_grad():
        for b in range(0, len(x), batch_size):
            total += float(-model.log_prob(x[b:b + batch_size]).sum().item())
    return total / len(x)


# ----------------------------------------------------------------------------- output files

def save_grid(images, folder, name, nrow, note=""):
    """Write ``images`` (N, C, H, W) in [0, 1] as the PNG grid ``folder/name`` (8x8 digits shown
    4x larger) and print its path, followed by ``note``."""
    upscale = 4 if images.shape[-1] == 8 else 1
    print(f"wrote {save_image_grid(images, os.path.join(folder, name), nrow=nrow, upscale=upscale)}{note}")


def import_pyplot(path):
    """matplotlib.pyplot (file backend), or None and a message that ``path`` is skipped when
    matplotlib is not installed (it is optional)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"matplotlib is not installed: {os.path.basename(path)} skipped")
        return None
    return plt


def save_figure(fig, path):
    """Lay out ``fig``, write it to ``path`` (creating its folder), close it and say so."""
    import matplotlib.pyplot as plt
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")
