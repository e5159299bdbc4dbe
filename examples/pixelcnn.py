"""Train a PixelCNN (or Gated PixelCNN) on binarised digits; report the test NLL, sample, complete.

    python examples/pixelcnn.py                      # bundled 8x8 digits, about a minute on 2 cores
    python examples/pixelcnn.py --gated              # Gated PixelCNN (no blind spot)
    python examples/pixelcnn.py --dataset mnist --data-dir /path/to/mnist --n-train 10000 --epochs 5

Training images are binarised dynamically (a fresh Bernoulli draw x_b ~ Bernoulli(intensity) per
epoch); the test images are the shared held-out split, binarised once with a fixed seed. The test
NLL is exact (-log p(x) summed over the autoregressive conditionals), in nats per image and
bits/dim. Writes to --out:
  nll_curve.png    train and test NLL per epoch (nats per image)
  samples.png      binarised test images beside ancestral samples, to judge the samples by
  completions.png  test images, their top half, and completions of the bottom half given the top
"""
import math
import os
import time

import numpy as np

import minigen
from minigen import backend
from minigen.data import DataLoader, binarize_dynamic
from minigen.models import GatedPixelCNN, PixelCNN
from minigen.optim import Adam
from minigen.utils import progress

from common import (binarize_test, example_parser, import_pyplot, load_images, mean_nll, parse_args,
                    positive_float, positive_int, save_figure, train_epoch, usage_error)
from image_figures import save_labelled_rows, save_panels


def plot_nll(history, path, name, dataset):
    plt = import_pyplot(path)
    if plt is None:
        return
    epochs, train, test = np.array(history).T
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, train, "o-", ms=3, label="train (dynamically binarised, mean over the epoch)")
    ax.plot(epochs, test, "s-", ms=3, label="test (held-out split, fixed binarisation)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("negative log-likelihood (nats per image)")
    ax.set_title(f"{name} on {dataset}: exact NLL per epoch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def main():
    parser = example_parser(__doc__)
    parser.add_argument("--n-train", type=positive_int, default=None,
                        help="use only the first N training images")
    parser.add_argument("--gated", action="store_true", help="Gated PixelCNN instead of PixelCNN")
    parser.add_argument("--epochs", type=positive_int, default=30)
    parser.add_argument("--hidden", type=positive_int, default=32, help="hidden channels (even)")
    parser.add_argument("--layers", type=positive_int, default=4, help="masked (or gated) layers")
    parser.add_argument("--kernel-size", type=positive_int, default=5, help="first layer's kernel size (odd)")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--lr", type=positive_float, default=3e-3)
    args = parse_args(parser, name=None, out_help="output folder (default out/pixelcnn or out/gated_pixelcnn)")
    if args.kernel_size % 2 == 0:
        usage_error(f"--kernel-size must be odd (a masked kernel needs a centre), got {args.kernel_size}")
    if not args.gated and args.hidden % 2:
        usage_error(f"--hidden must be even for PixelCNN (its blocks halve it), got {args.hidden}")
    out = args.out or os.path.join("out", "gated_pixelcnn" if args.gated else "pixelcnn")

    minigen.manual_seed(args.seed)
    train, _, test, _ = load_images(args)
    train = train[:args.n_train]
    test_b = backend.to_device(binarize_test(test), args.device)
    _, _, H, W = train.shape
    cls = GatedPixelCNN if args.gated else PixelCNN
    model = cls(hidden_channels=args.hidden, n_layers=args.layers, kernel_size=args.kernel_size).to(args.device)
    n_params = sum(p.size for p in model.parameters())
    print(f"{args.dataset}: {len(train)} train / {len(test)} test images of {H}x{W}, dynamic binarisation; "
          f"{cls.__name__} with {n_params} parameters, receptive field (up, left, right) = "
          f"{model.receptive_field}")

    opt = Adam(model.parameters(), lr=args.lr)
    loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, seed=args.seed,
                        device=args.device, transform=binarize_dynamic)
    history, start = [], time.perf_counter()
    bar = progress(range(1, args.epochs + 1), desc="training")
    for epoch in bar:
        train_nll = train_epoch(loader, opt, model.loss)
        test_nll = mean_nll(model, test_b)
        history.append((epoch, train_nll, test_nll))
        bar.set_postfix(train_nll=train_nll, test_nll=test_nll)
    print(f"trained {args.epochs} epochs in {time.perf_counter() - start:.1f} s; train NLL "
          f"{history[-1][1]:.2f}, best test NLL {min(h[2] for h in history):.2f} (epoch "
          f"{min(history, key=lambda h: h[2])[0]})")
    nll = history[-1][2]
    print(f"test NLL: {nll:.2f} nats per image = {nll / (H * W * math.log(2)):.4f} bits/dim "
          f"(exact, on the shared held-out split binarised once)")
    plot_nll(history, os.path.join(out, "nll_curve.png"), cls.__name__, args.dataset)

    tic = time.perf_counter()
    samples = model.sample(100, (H, W), generator=args.seed).data.astype(np.float32)
    print(f"100 samples in {time.perf_counter() - tic:.1f} s")
    save_panels([("binarised test images (data)", test_b[:100]),
                 (f"{cls.__name__} samples (temperature 1)", samples)],
                os.path.join(out, "samples.png"),
                f"{cls.__name__} on {args.dataset}: data (left) beside samples (right); "
                f"test NLL {nll:.1f} nats")

    n_rows, n_completions = H // 2, 6
    originals = test_b[:8]
    half = originals.copy()
    half[:, :, n_rows:] = 0.5  # shown grey: unknown
    repeated = backend.get_array_module(originals).repeat(originals, n_completions, axis=0)
    completed = model.complete(repeated, n_rows, generator=args.seed).data.astype(np.float32)
    completed = completed.reshape((len(originals), n_completions) + completed.shape[1:])
    xp = backend.get_array_module(originals)
    save_labelled_rows(
        [(f"test image {i + 1}", xp.concatenate([originals[i:i + 1], half[i:i + 1], completed[i]]))
         for i in range(len(originals))],
        os.path.join(out, "completions.png"),
        f"{cls.__name__}: bottom {H - n_rows} rows sampled given the top {n_rows} (grey = unknown)",
        col_labels=["original", "given"] + [f"sample {j + 1}" for j in range(n_completions)])


if __name__ == "__main__":
    main()
