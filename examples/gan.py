"""Train generative adversarial networks (Goodfellow et al. 2014) on a 2-D ring of eight Gaussians
and on the digits; count the ring's modes the generator covers, and watch for mode collapse.

    python examples/gan.py                            # both tasks (a few minutes on 2 cores)
    python examples/gan.py --task ring --loss minimax # the saturating minimax loss instead
    python examples/gan.py --task digits --digit-steps 6000
    python examples/gan.py --task digits --dataset mnist --data-dir DIR

Ring (Metz et al. 2017's benchmark): eight Gaussians of standard deviation 0.02 on a circle of
radius 2, equally likely. A generated point is "high quality" if it lies within three standard
deviations of a mode's centre; a mode is "covered" if it holds at least 1% of the samples
(2000 per snapshot). A generator that covers fewer modes than eight while its samples are of
high quality has collapsed onto some of them (mode collapse); one that hops from mode to mode
over training shows the game's cycling. Both show in ring.png.

Digits: MLP generator (sigmoid pixels) and discriminator, samples as images. Both use the
non-saturating generator loss by default (--loss minimax for the paper's Eq. 1 loss), Adam with
beta_1 = 0.5, and one discriminator step per generator step (Algorithm 1 with k = 1).

Writes to --out: ring.png (sample snapshots, modes covered and per-mode shares over training),
digits_samples.png (64 samples), digits_loss.png.
"""
import os
import time

import numpy as np

import minigen
from minigen import backend, nn
from minigen.models import GAN
from minigen.optim import Adam
from minigen.utils import progress

from common import (example_parser, import_pyplot, load_images, parse_args, positive_float, positive_int,
                    save_figure, save_grid)

RING_MODES, RING_RADIUS, RING_STD = 8, 2.0, 0.02
ANGLES = 2 * np.pi * np.arange(RING_MODES) / RING_MODES
CENTRES = RING_RADIUS * np.stack([np.cos(ANGLES), np.sin(ANGLES)], axis=1)


def ring_batch(n, rng):
    return (CENTRES[rng.integers(0, RING_MODES, n)] + RING_STD * rng.standard_normal((n, 2))).astype(np.float32)


def mlp(sizes, activation, last=None):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    if last is not None:
        layers.append(last)
    return nn.Sequential(*layers)


def mode_shares(points):
    """Share of the points that are high-quality samples of each mode (8,), and the high-quality share."""
    distance = np.linalg.norm(points[:, None] - CENTRES[None], axis=2)
    nearest, close = distance.argmin(axis=1), distance.min(axis=1) <= 3 * RING_STD
    shares = np.bincount(nearest[close], minlength=RING_MODES) / len(points)
    return shares, close.mean()


def train(gan, batches, steps, lr, args, desc):
    """Algorithm 1 (k = 1) for ``steps`` steps; calls ``batches(step)`` for real data and yields
    (step, d_loss, g_loss) after every step."""
    d_opt = Adam(gan.D.parameters(), lr=lr, betas=(0.5, 0.999))
    g_opt = Adam(gan.G.parameters(), lr=lr, betas=(0.5, 0.999))
    rng = np.random.default_rng(args.seed)
    bar = progress(range(1, steps + 1), desc=desc)
    for step in bar:
        d_loss, g_loss = gan.train_step(backend.to_device(batches(rng), args.device), d_opt, g_opt,
                                        generator=rng, non_saturating=args.loss == "non-saturating")
        if step % 50 == 0:
            bar.set_postfix(d_loss=d_loss, g_loss=g_loss)
        yield step, d_loss, g_loss


def run_ring(args):
    minigen.manual_seed(args.seed)
    gan = GAN(mlp([args.latent_dim, 128, 128, 2], nn.ReLU), mlp([2, 128, 128, 1], nn.ReLU),
              args.latent_dim).to(args.device)
    snapshot_steps = set(np.linspace(0, args.ring_steps, 7).round().astype(int)[1:]) | {200}
    snapshots, curve = {}, []
    start = time.perf_counter()
    for step, _, _ in train(gan, lambda rng: ring_batch(256, rng), args.ring_steps, args.lr, args, "ring"):
        if step % 100 == 0 or step in snapshot_steps:
            points = gan.sample(2000, generator=args.seed + 1).numpy()
            shares, quality = mode_shares(points)
            curve.append((step, int((shares >= 0.01).sum()), quality, shares))
            if step in snapshot_steps:
                snapshots[step] = points
    step, covered, quality, shares = curve[-1]
    print(f"ring: {args.ring_steps} steps in {time.perf_counter() - start:.1f} s; after training "
          f"{covered} of {RING_MODES} modes covered, {quality:.0%} of the samples high quality")
    print("ring: modes covered over training: " + ", ".join(f"{s}: {c}" for s, c, _, _ in curve[::5]))
    most = max(c for _, c, _, _ in curve)
    if covered < RING_MODES:
        print(f"ring: mode collapse: the generator ends on {covered} modes (at most {most} at any snapshot)")
    plot_ring(snapshots, curve, os.path.join(args.out, "ring.png"), args)


def plot_ring(snapshots, curve, path, args):
    plt = import_pyplot(path)
    if plt is None:
        return
    steps = sorted(snapshots)
    fig = plt.figure(figsize=(2.4 * len(steps), 7))
    grid = fig.add_gridspec(2, len(steps), height_ratios=[1, 1.1])
    for j, step in enumerate(steps):
        ax = fig.add_subplot(grid[0, j])
        ax.scatter(*snapshots[step].T, s=2, alpha=0.3, color="tab:blue")
        ax.scatter(*CENTRES.T, s=25, marker="x", color="tab:red")
        ax.set_xlim(-2.8, 2.8)
        ax.set_ylim(-2.8, 2.8)
        ax.set_aspect("equal")
        ax.set_title(f"step {step}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.axes[0].set_ylabel("2000 samples (x: mode centres)")
    ax = fig.add_subplot(grid[1, : len(steps) // 2])
    ax.plot([c[0] for c in curve], [c[1] for c in curve], label="modes covered (>= 1% of samples)")
    ax.plot([c[0] for c in curve], [8 * c[2] for c in curve], label="8 x share of high-quality samples")
    ax.set_ylim(0, 8.5)
    ax.set_xlabel("training step")
    ax.set_ylabel("count")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("coverage over training")
    ax = fig.add_subplot(grid[1, len(steps) // 2:])
    shares = np.array([c[3] for c in curve]).T
    image = ax.imshow(shares, aspect="auto", cmap="viridis", vmin=0, vmax=max(0.25, shares.max()),
                      extent=(curve[0][0], curve[-1][0], RING_MODES - 0.5, -0.5), interpolation="nearest")
    ax.set_xlabel("training step")
    ax.set_ylabel("mode (angle / 45 degrees)")
    ax.set_title("share of samples at each mode (1/8 = 0.125 is perfect)")
    fig.colorbar(image, ax=ax, label="share of samples")
    fig.suptitle(f"GAN on a ring of 8 Gaussians ({args.loss} generator loss)")
    save_figure(fig, path)


def run_digits(args):
    minigen.manual_seed(args.seed)
    train_x = load_images(args)[0]
    side = train_x.shape[-1]
    train_x = train_x.reshape(len(train_x), -1).astype(np.float32)
    d = train_x.shape[1]
    gan = GAN(mlp([args.latent_dim, 256, 256, d], nn.ReLU, nn.Sigmoid()),
              mlp([d, 256, 256, 1], lambda: nn.LeakyReLU(0.2)), args.latent_dim).to(args.device)
    history = []
    start = time.perf_counter()
    batches = lambda rng: train_x[rng.integers(0, len(train_x), 64)]  # noqa: E731
    for step, d_loss, g_loss in train(gan, batches, args.digit_steps, args.lr, args, "digits"):
        history.append((d_loss, g_loss))
    print(f"digits: {args.digit_steps} steps in {time.perf_counter() - start:.1f} s")
    samples = gan.sample(64, generator=args.seed).numpy().reshape(-1, 1, side, side)
    save_grid(samples, args.out, "digits_samples.png", nrow=8, note=" (64 samples)")
    # the nearest training image of each sample: near 0 would mean the generator copies
    distance = np.sqrt(((samples.reshape(64, 1, -1) - train_x[None]) ** 2).sum(axis=2)).min(axis=1)
    typical = np.sqrt(((train_x[:64, None] - train_x[None, 64:]) ** 2).sum(axis=2)).min(axis=1)
    print(f"digits: distance from a sample to its nearest training image {np.median(distance):.2f} "
          f"(median; between training images: {np.median(typical):.2f})")
    plot_losses(np.array(history), os.path.join(args.out, "digits_loss.png"), args)


def plot_losses(history, path, args):
    plt = import_pyplot(path)
    if plt is None:
        return
    window = 50
    smooth = np.array([np.convolve(h, np.ones(window) / window, mode="valid") for h in history.T])
    steps = np.arange(window, len(history) + 1)
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.plot(steps, smooth[0], label="discriminator loss (-V)")
    ax.plot(steps, smooth[1], label=f"generator loss ({args.loss})")
    ax.axhline(np.log(4), color="gray", linestyle=":", label="log 4 (-V at the game's optimum)")
    ax.set_xlabel("training step")
    ax.set_ylabel(f"nats (mean over {window} steps)")
    ax.set_title("GAN on the digits")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def main():
    parser = example_parser(__doc__)
    parser.add_argument("--task", choices=["ring", "digits", "both"], default="both")
    parser.add_argument("--loss", choices=["non-saturating", "minimax"], default="non-saturating")
    parser.add_argument("--ring-steps", type=positive_int, default=3000)
    parser.add_argument("--digit-steps", type=positive_int, default=4000)
    parser.add_argument("--latent-dim", type=positive_int, default=16)
    parser.add_argument("--lr", type=positive_float, default=1e-3)
    args = parse_args(parser, "gan")
    os.makedirs(args.out, exist_ok=True)
    if args.task in ("ring", "both"):
        run_ring(args)
    if args.task in ("digits", "both"):
        run_digits(args)


if __name__ == "__main__":
    main()
