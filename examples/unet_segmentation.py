"""Semantic segmentation with a U-Net (Ronneberger et al. 2015; lecture deck 000): every pixel of a
canvas holding two digits is labelled with its digit's class, or background.

    python examples/unet_segmentation.py                 # 16x16 canvases of bundled digits (a few minutes)
    python examples/unet_segmentation.py --epochs 30 --base-channels 32

The task: two 8x8 digits side by side (left/right or top/bottom, each shifted at random along
the other axis) on a 16x16 canvas. A pixel whose intensity is at least 0.25 belongs to its
digit (label 1 + digit class); every other pixel is background (label 0): 11 classes. Training
canvases are built from the training digits, held-out canvases (a fixed set, whatever --seed)
from the shared held-out split, so the test digits were never seen. The U-Net (padded
convolutions: the output map has the canvas's size) is trained with per-pixel cross-entropy.

Reports pixel accuracy, accuracy on digit pixels only, and the mean intersection over union
over the 11 classes on the held-out canvases. Writes to --out: segmentation.png (rows: input
canvas, true labels, predicted labels), loss.png.
"""
import os
import time

import numpy as np

import minigen
import minigen.functional as F
from minigen import backend, nn
from minigen.data import DataLoader
from minigen.optim import Adam
from minigen.utils import progress

from common import (SPLIT_SEED, example_parser, import_pyplot, load_images, parse_args, positive_float,
                    positive_int, save_figure)

FOREGROUND = 0.25  # intensity from which a pixel belongs to its digit
N_CLASSES = 11  # background + the ten digits
CLASS_NAMES = ["bg"] + [str(d) for d in range(10)]


def make_canvases(images, labels, n, rng):
    """n canvases (n, 1, 2s, 2s) of two digits each, and per-pixel labels (n, 2s, 2s)."""
    s = images.shape[-1]
    canvases = np.zeros((n, 1, 2 * s, 2 * s), dtype=np.float32)
    targets = np.zeros((n, 2 * s, 2 * s), dtype=np.int64)
    for k in range(n):
        pair = rng.choice(len(images), 2, replace=False)
        side_by_side = rng.random() < 0.5
        for slot, i in enumerate(pair):
            shift = rng.integers(0, s + 1)  # along the free axis
            top, left = (shift, slot * s) if side_by_side else (slot * s, shift)
            window = (slice(top, top + s), slice(left, left + s))
            canvases[k, 0][window] = images[i, 0]
            targets[k][window] = np.where(images[i, 0] >= FOREGROUND, labels[i] + 1, 0)
    return canvases, targets


def predict(model, x, args, batch_size=500):
    out = []
    with minigen.no_grad():
        for start in range(0, len(x), batch_size):
            logits = model(minigen.tensor(backend.to_device(x[start:start + batch_size], args.device)))
            out.append(logits.numpy().argmax(axis=1))
    return np.concatenate(out)


def scores(pred, target):
    """Pixel accuracy, accuracy on digit pixels, per-class IoU (NaN for a class absent from both)."""
    iou = np.full(N_CLASSES, np.nan)
    for c in range(N_CLASSES):
        union = np.sum((pred == c) | (target == c))
        if union:
            iou[c] = np.sum((pred == c) & (target == c)) / union
    digit = target > 0
    return (pred == target).mean(), (pred[digit] == target[digit]).mean(), iou


def plot_segmentations(x, target, pred, path, n=8):
    plt = import_pyplot(path)
    if plt is None:
        return
    from matplotlib.colors import BoundaryNorm, ListedColormap
    colours = ["black"] + [plt.cm.tab10(i) for i in range(10)]
    cmap, norm = ListedColormap(colours), BoundaryNorm(np.arange(-0.5, N_CLASSES), N_CLASSES)
    fig, axes = plt.subplots(3, n, figsize=(1.6 * n + 1.2, 5.4))
    rows = [("input", x[:n, 0], dict(cmap="gray", vmin=0, vmax=1)),
            ("true labels", target[:n], dict(cmap=cmap, norm=norm)),
            ("U-Net prediction", pred[:n], dict(cmap=cmap, norm=norm))]
    for r, (name, images, style) in enumerate(rows):
        for j in range(n):
            shown = axes[r, j].imshow(images[j], interpolation="nearest", **style)
            axes[r, j].set_xticks([])
            axes[r, j].set_yticks([])
        axes[r, 0].set_ylabel(name)
        if r == 2:
            bar = fig.colorbar(shown, ax=axes[1:, :].ravel().tolist(), ticks=range(N_CLASSES), fraction=0.02)
            bar.ax.set_yticklabels(CLASS_NAMES)
            bar.set_label("class (bg = background)")
    fig.suptitle("held-out canvases: per-pixel digit classes")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=100)  # not tight_layout: the shared colour bar spans two rows
    plt.close(fig)
    print(f"wrote {path}")


def plot_loss(history, path):
    plt = import_pyplot(path)
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(range(1, len(history) + 1), history)
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy (nats per pixel)")
    ax.set_title("training loss")
    save_figure(fig, path)


def main():
    parser = example_parser(__doc__)
    parser.add_argument("--epochs", type=positive_int, default=12)
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--lr", type=positive_float, default=2e-3)
    parser.add_argument("--base-channels", type=positive_int, default=16)
    parser.add_argument("--depth", type=positive_int, default=2)
    parser.add_argument("--n-train", type=positive_int, default=1500, help="training canvases")
    parser.add_argument("--n-test", type=positive_int, default=300, help="held-out canvases")
    args = parse_args(parser, "unet_segmentation")

    minigen.manual_seed(args.seed)
    train_images, train_labels, test_images, test_labels = load_images(args)
    train_x, train_t = make_canvases(train_images, train_labels, args.n_train, np.random.default_rng(args.seed))
    test_x, test_t = make_canvases(test_images, test_labels, args.n_test, np.random.default_rng(SPLIT_SEED))
    size = train_x.shape[-1]
    model = nn.UNet(1, N_CLASSES, base_channels=args.base_channels, depth=args.depth).to(args.device)
    print(f"{args.n_train} training / {args.n_test} held-out {size}x{size} canvases; "
          f"{(train_t == 0).mean():.0%} of the training pixels are background")
    print(f"U-Net: depth {args.depth}, {args.base_channels} base channels, "
          f"{sum(p.size for p in model.parameters())} parameters")

    optimizer = Adam(model.parameters(), lr=args.lr)
    loader = DataLoader(train_x, train_t, batch_size=args.batch_size, shuffle=True, seed=args.seed,
                        device=args.device)
    history = []
    start = time.perf_counter()
    bar = progress(range(args.epochs), desc="training")
    for _ in bar:
        total = 0.0
        for xb, tb in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(minigen.tensor(xb)), tb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(xb)
        history.append(total / len(train_x))
        bar.set_postfix(loss=history[-1])
    print(f"trained {args.epochs} epochs in {time.perf_counter() - start:.1f} s")

    model.eval()
    pred = predict(model, test_x, args)
    accuracy, digit_accuracy, iou = scores(pred, test_t)
    print(f"held-out canvases: pixel accuracy {accuracy:.3f}, on digit pixels {digit_accuracy:.3f}, "
          f"mean IoU {np.nanmean(iou):.3f} over {np.sum(~np.isnan(iou))} classes")
    print("IoU per class: " + ", ".join(f"{name} {v:.2f}" for name, v in zip(CLASS_NAMES, iou)))
    always_background = scores(np.zeros_like(test_t), test_t)[0]
    print(f"(predicting background everywhere would score pixel accuracy {always_background:.3f})")
    plot_segmentations(test_x, test_t, pred, os.path.join(args.out, "segmentation.png"))
    plot_loss(history, os.path.join(args.out, "loss.png"))


if __name__ == "__main__":
    main()
