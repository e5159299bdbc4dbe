"""Train a PixelCNN (or Gated PixelCNN) on binarised digits; report the test NLL, sample, complete.

    python examples/pixelcnn.py                      # bundled 8x8 digits, about a minute on 2 cores
    python examples/pixelcnn.py --gated              # Gated PixelCNN (no blind spot)
    python examples/pixelcnn.py --dataset mnist --data-dir /path/to/mnist --train-size 10000 --epochs 5

Training images are binarised dynamically (a fresh Bernoulli draw x_b ~ Bernoulli(intensity) per
epoch); the test images are binarised once, by the same rule with a fixed seed. The test NLL is
exact (-log p(x) summed over the autoregressive conditionals), in nats per image and bits/dim.
Writes to --out: samples.png (ancestral samples) and completions.png (each row: a test image, its
top half alone, then completions of the bottom half sampled given the top half).
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

from common import (binarize_test, example_parser, is_report_epoch, load_images, mean_nll, parse_args, save_grid,
                    train_epoch)


def main():
    parser = example_parser(__doc__)
    parser.add_argument("--train-size", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--gated", action="store_true", help="Gated PixelCNN instead of PixelCNN")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=32, help="hidden channels")
    parser.add_argument("--layers", type=int, default=4, help="masked (or gated) layers")
    parser.add_argument("--kernel-size", type=int, default=5, help="first layer's kernel size")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parse_args(parser, name=None, out_help="output folder (default out/pixelcnn or out/gated_pixelcnn)")
    out = args.out or os.path.join("out", "gated_pixelcnn" if args.gated else "pixelcnn")

    minigen.manual_seed(args.seed)
    train, _, test, _ = load_images(args)
    if args.train_size:
        train = train[:args.train_size]
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
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        tic = time.perf_counter()
        loss = train_epoch(loader, opt, model.loss)
        if is_report_epoch(epoch, args.epochs):
            print(f"epoch {epoch:3d}: train NLL {loss:7.2f} nats  ({time.perf_counter() - tic:.1f} s)")
    print(f"trained {args.epochs} epochs in {time.perf_counter() - start:.1f} s")

    nll = mean_nll(model, test_b)
    print(f"test NLL: {nll:.2f} nats per image = {nll / (H * W * math.log(2)):.4f} bits/dim "
          f"(exact, on the shared held-out split binarised once)")

    tic = time.perf_counter()
    samples = model.sample(100, (H, W), random_state=args.seed).data.astype(np.float32)
    print(f"100 samples in {time.perf_counter() - tic:.1f} s")
    save_grid(samples, out, "samples.png", nrow=10)

    n_rows, n_completions = H // 2, 6
    originals = test_b[:10]
    half = originals.copy()
    half[:, :, n_rows:] = 0.5  # shown grey: unknown
    repeated = backend.get_array_module(originals).repeat(originals, n_completions, axis=0)
    completed = model.complete(repeated, n_rows, random_state=args.seed).data.astype(np.float32)
    completed = completed.reshape((10, n_completions) + completed.shape[1:])
    grid = backend.get_array_module(originals).concatenate(
        [originals[:, None], half[:, None], completed], axis=1).reshape((-1,) + originals.shape[1:])
    save_grid(grid, out, "completions.png", nrow=n_completions + 2)


if __name__ == "__main__":
    main()
