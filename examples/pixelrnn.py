"""Train PixelRNN (Row LSTM and/or Diagonal BiLSTM) on binarised digits beside a PixelCNN trained
the same way; report the exact test NLL, write samples beside data and the NLL-per-epoch curves.

    python examples/pixelrnn.py                        # both variants + PixelCNN, bundled 8x8 digits
    python examples/pixelrnn.py --variant diagonal --layers 7 --epochs 30   # the paper's depth
    python examples/pixelrnn.py --no-pixelcnn --variant row

Training images are binarised dynamically (a fresh Bernoulli draw per epoch, as in
examples/pixelcnn.py); the test images are the shared held-out split, binarised once with a fixed
seed (common.binarize_test). All models get the same epochs, batches, learning rate and seed.
The default sizes are small so that all three models train in a few minutes on 2 cores; the
paper's MNIST model is the Diagonal BiLSTM with 7 layers of h = 16 (--layers 7 --hidden 16).
Measured, default run (OPENBLAS_NUM_THREADS=1 python examples/pixelrnn.py: 6 epochs, about 4.5
minutes on 2 cores shared with other jobs, load average 7-9): test NLL Row LSTM 24.77, Diagonal
BiLSTM 24.52, PixelCNN 24.82 nats per image (70 s, 153 s and 23 s of training).
Measured (OPENBLAS_NUM_THREADS=1 python examples/pixelrnn.py --epochs 10, 2 cores shared with
other jobs, load average ~6; 5.5 minutes in all): test NLL after 10 epochs, nats per image on the
300 held-out 8x8 digits: Row LSTM 24.32 (22,402 parameters, 83 s), Diagonal BiLSTM 24.30 (20,482
parameters, 228 s), PixelCNN 24.65 (9,538 parameters, 22 s). The three are within 0.4 nats here:
on 8x8 images two LSTM layers already see (nearly) the whole context.
Writes to --out (default out/pixelrnn):
  nll_curve.png   test NLL per epoch of every model (nats per image; train NLL dashed)
  samples.png     binarised test images beside the samples of every model
"""
import math
import os
import time

import numpy as np

import minigen
from minigen import backend
from minigen.data import DataLoader, binarize_dynamic
from minigen.models import PixelCNN, PixelRNN
from minigen.optim import Adam
from minigen.utils import progress

from common import (binarize_test, example_parser, import_pyplot, load_images, mean_nll, parse_args,
                    positive_float, positive_int, save_figure, train_epoch)
from image_figures import save_panels


def plot_nll(histories, path, dataset):
    plt = import_pyplot(path)
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (name, history), colour in zip(histories.items(), ["C0", "C1", "C2"]):
        epochs, train, test = np.array(history).T
        ax.plot(epochs, test, "o-", ms=3, color=colour, label=f"{name}: test (fixed binarisation)")
        ax.plot(epochs, train, "--", color=colour, alpha=0.6, label=f"{name}: train (dynamic, epoch mean)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("negative log-likelihood (nats per image)")
    ax.set_title(f"PixelRNN vs PixelCNN on {dataset}: exact NLL per epoch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def train(model, name, train_x, test_b, args):
    """Adam on dynamically binarised batches; returns [(epoch, train NLL, test NLL)]."""
    opt = Adam(model.parameters(), lr=args.lr)
    loader = DataLoader(train_x, batch_size=args.batch_size, shuffle=True, seed=args.seed,
                        device=args.device, transform=binarize_dynamic)
    history, start = [], time.perf_counter()
    bar = progress(range(1, args.epochs + 1), desc=f"training {name}")
    for epoch in bar:
        train_nll = train_epoch(loader, opt, model.loss)
        test_nll = mean_nll(model, test_b)
        history.append((epoch, train_nll, test_nll))
        bar.set_postfix(train_nll=train_nll, test_nll=test_nll)
    print(f"{name}: {sum(p.size for p in model.parameters())} parameters, {args.epochs} epochs in "
          f"{time.perf_counter() - start:.1f} s")
    return history


def main():
    parser = example_parser(__doc__)
    parser.add_argument("--variant", choices=["row", "diagonal", "both"], default="both")
    parser.add_argument("--no-pixelcnn", action="store_true", help="skip the PixelCNN baseline")
    parser.add_argument("--n-train", type=positive_int, default=None,
                        help="use only the first N training images")
    parser.add_argument("--epochs", type=positive_int, default=6)
    parser.add_argument("--hidden", type=positive_int, default=16,
                        help="LSTM state channels h (the residual stream has 2h; PixelCNN gets 2h)")
    parser.add_argument("--layers", type=positive_int, default=2,
                        help="LSTM layers (PixelCNN: this many residual blocks after its first layer)")
    parser.add_argument("--kernel-size", type=positive_int, default=5,
                        help="first (mask-A) layer's kernel size (odd), for all models")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--lr", type=positive_float, default=3e-3)
    parser.add_argument("--n-samples", type=positive_int, default=50)
    args = parse_args(parser, "pixelrnn")
    if args.kernel_size % 2 == 0:
        parser.error(f"--kernel-size must be odd (a masked kernel needs a centre), got {args.kernel_size}")

    train_x, _, test, _ = load_images(args)
    train_x = train_x[:args.n_train]
    test_b = backend.to_device(binarize_test(test), args.device)
    _, _, H, W = train_x.shape
    print(f"{args.dataset}: {len(train_x)} train / {len(test)} test images of {H}x{W}")

    models = {}
    for variant in (["row", "diagonal"] if args.variant == "both" else [args.variant]):
        minigen.manual_seed(args.seed)
        name = "Row LSTM" if variant == "row" else "Diagonal BiLSTM"
        models[name] = PixelRNN(hidden_channels=args.hidden, n_layers=args.layers, variant=variant,
                                kernel_size=args.kernel_size).to(args.device)
    if not args.no_pixelcnn:
        minigen.manual_seed(args.seed)
        models["PixelCNN"] = PixelCNN(hidden_channels=2 * args.hidden, n_layers=args.layers + 1,
                                      kernel_size=args.kernel_size).to(args.device)

    histories, panels = {}, [("binarised test images (data)", test_b[:args.n_samples])]
    for name, model in models.items():
        histories[name] = train(model, name, train_x, test_b, args)
        tic = time.perf_counter()
        samples = model.sample(args.n_samples, (H, W), generator=args.seed).data.astype(np.float32)
        print(f"{name}: {args.n_samples} samples in {time.perf_counter() - tic:.1f} s")
        panels.append((f"{name} samples\n(test NLL {histories[name][-1][2]:.1f} nats)", samples))

    print(f"\ntest NLL after {args.epochs} epochs (exact, nats per image; shared held-out split, "
          f"binarised once):")
    for name, history in histories.items():
        nll = history[-1][2]
        print(f"  {name:16s} {nll:7.2f} nats = {nll / (H * W * math.log(2)):.4f} bits/dim  (best "
              f"{min(h[2] for h in history):.2f} at epoch {min(history, key=lambda h: h[2])[0]})")
    plot_nll(histories, os.path.join(args.out, "nll_curve.png"), args.dataset)
    save_panels(panels, os.path.join(args.out, "samples.png"),
                f"{args.dataset}: data (left) beside ancestral samples (temperature 1) of each model",
                ncol=10)


if __name__ == "__main__":
    main()
