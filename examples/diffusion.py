"""Train a denoising diffusion model (DDPM, Ho et al. 2020) with a U-Net denoiser, then report its
variational bound on the test images in bits per dimension.

    python examples/diffusion.py                          # bundled 8x8 digits (a few minutes, 2 cores)
    python examples/diffusion.py --timesteps 1000 --schedule linear --epochs 300   # the paper's chain
    python examples/diffusion.py --dataset mnist --data-dir DIR --epochs 5 --base-channels 32

Small by default so that it runs in minutes: T = 100 diffusion steps (the paper: 1000), the
cosine schedule (Nichol & Dhariwal 2021; better than the linear one with few steps), and a
depth-2 U-Net with 16 base channels and a 64-d timestep embedding. Training minimises the
simple loss (Eq. 14) with Adam; no EMA of the weights.

Data: the images are quantised to 8 bits (round(255 x)) and scaled to [-1, 1], as in the paper;
the bound (Eq. 5, with the discretised Gaussian decoder of Eq. 13, one draw of x_t per step) is
then a code length for those 8-bit images: bits/dim = nats / (D log 2), and nats per image =
bits/dim * D log 2. Digits: the shared held-out 300 images are the test split (their 17 grey
levels become 17 of the 256 bins). The bound is *not* comparable with the binarised models'
NLLs (different data), only with other 8-bit likelihoods.

Writes to --out: model.npz (the trained model: minigen.models.DDPM.load), samples.png (64 samples), reverse_process.png (rows: samples; columns: x_t
from t = T, pure noise, down to x_0), loss.png (training loss per epoch, and the test bound's
terms per step).
"""
import os
import time

import numpy as np

import minigen
from minigen import backend, nn
from minigen.data import DataLoader
from minigen.models import DDPM
from minigen.optim import Adam
from minigen.utils import progress

from common import (example_parser, import_pyplot, load_images, parse_args, positive_float, positive_int,
                    save_figure, save_grid)


def to_model_scale(images):
    """[0, 1] images -> 8-bit levels -> [-1, 1]: x = -1 + 2 i / 255 (Ho et al., Sec. 3.3)."""
    return (np.round(images * 255) / 127.5 - 1).astype(np.float32)


def to_unit(x):
    """Model-scale images (any range) -> [0, 1] for display (clipped)."""
    return np.clip((backend.to_numpy(x) + 1) / 2, 0, 1)


def evaluate(model, x, args, batch_size=500):
    """Per-step bound terms (N, T + 1) in nats, in batches, one draw of x_t per step."""
    terms = []
    for start in range(0, len(x), batch_size):
        xb = backend.to_device(x[start:start + batch_size], args.device)
        terms.append(model.nll_bound_terms(xb, generator=args.seed + start).numpy())
    return np.concatenate(terms)


def plot_reverse_process(trajectory, T, path, n_columns=11):
    """Rows: samples; columns: x_t for t from T (noise) down to 0 (trajectory[k] is x_{T-k})."""
    plt = import_pyplot(path)
    if plt is None:
        return
    steps = np.linspace(T, 0, n_columns).round().astype(int)
    n = trajectory.shape[1]
    fig, axes = plt.subplots(n, n_columns, figsize=(1.1 * n_columns, 1.1 * n + 0.6))
    for j, t in enumerate(steps):
        for i in range(n):
            ax = axes[i, j]
            ax.imshow(to_unit(trajectory[T - t, i, 0]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, j].set_title(f"t = {t}", fontsize=9)
    for i in range(n):
        axes[i, 0].set_ylabel(f"sample {i + 1}", fontsize=8)
    fig.suptitle("reverse process (Algorithm 2): x_T ~ N(0, I) on the left, x_0 on the right")
    save_figure(fig, path)


def plot(history, terms, dims, path):
    plt = import_pyplot(path)
    if plt is None:
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.plot(range(1, len(history) + 1), history)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("simple loss (mean squared noise error)")
    ax1.set_title("training loss (Eq. 14)")
    bits = terms.mean(axis=0) / (dims * np.log(2))
    T = len(bits) - 1
    ax2.semilogy(np.arange(1, T), np.maximum(bits[1:T], 1e-8), label="KL terms L_t, t = 1..T-1")
    ax2.semilogy([0], [bits[0]], "o", label=f"decoder L_0 = {bits[0]:.3f}")
    ax2.semilogy([T], [max(bits[T], 1e-8)], "s", label=f"prior L_T = {bits[T]:.1e}")
    ax2.set_xlabel("step t (0-based)")
    ax2.set_ylabel("bits per dimension")
    ax2.set_title(f"test bound by term: total {bits.sum():.3f} bits/dim")
    ax2.legend(fontsize=8)
    save_figure(fig, path)


def main():
    parser = example_parser(__doc__)
    parser.add_argument("--epochs", type=positive_int, default=None, help="default: 30 on digits, 5 on MNIST")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--lr", type=positive_float, default=2e-3)
    parser.add_argument("--timesteps", type=positive_int, default=100, help="diffusion steps T (paper: 1000)")
    parser.add_argument("--schedule", choices=["linear", "cosine"], default="cosine")
    parser.add_argument("--base-channels", type=positive_int, default=16)
    parser.add_argument("--time-dim", type=positive_int, default=64, help="timestep embedding size (even)")
    parser.add_argument("--n-train", type=positive_int, default=None, help="use only this many training images")
    parser.add_argument("--eval-images", type=positive_int, default=None,
                        help="test images for the bound (default: all on digits, 1000 on MNIST)")
    args = parse_args(parser, "diffusion")
    mnist = args.dataset == "mnist"
    args.epochs = args.epochs or (5 if mnist else 30)
    args.eval_images = args.eval_images or (1000 if mnist else None)

    minigen.manual_seed(args.seed)
    train_x, _, test_x, _ = load_images(args, n_mnist_train=args.n_train)
    train_x, test_x = to_model_scale(train_x[:args.n_train]), to_model_scale(test_x[:args.eval_images])
    shape = train_x.shape[1:]
    dims = int(np.prod(shape))
    denoiser = nn.UNet(shape[0], shape[0], base_channels=args.base_channels, depth=2,
                       time_embedding_dim=args.time_dim)
    model = DDPM(denoiser, shape, timesteps=args.timesteps, beta_schedule=args.schedule).to(args.device)
    optimizer = Adam(model.parameters(), lr=args.lr)
    print(f"{args.dataset}: {len(train_x)} train / {len(test_x)} test images of {shape}, 8-bit, scaled to [-1, 1]")
    print(f"DDPM: T = {args.timesteps}, {args.schedule} schedule; U-Net with "
          f"{sum(p.size for p in model.parameters())} parameters")

    loader = DataLoader(train_x, batch_size=args.batch_size, shuffle=True, seed=args.seed, device=args.device)
    history = []
    start = time.perf_counter()
    bar = progress(range(args.epochs), desc="training")
    for _ in bar:
        total = 0.0
        for xb in loader:
            optimizer.zero_grad()
            loss = model.loss(xb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(xb)
        history.append(total / len(train_x))
        bar.set_postfix(loss=history[-1])
    train_time = time.perf_counter() - start
    print(f"trained {args.epochs} epochs in {train_time:.1f} s; final simple loss {history[-1]:.4f}")
    os.makedirs(args.out, exist_ok=True)
    model.save(os.path.join(args.out, "model.npz"))
    print(f"wrote {os.path.join(args.out, 'model.npz')} (DDPM.load(path) rebuilds it)")

    model.eval()
    start = time.perf_counter()
    terms = evaluate(model, test_x, args)
    bound = terms.sum(axis=1)
    per_dim = np.log(2) * dims
    print(f"test bound: {bound.mean() / per_dim:.3f} bits/dim = {bound.mean():.1f} nats per image "
          f"(+- {bound.std() / np.sqrt(len(bound)) / per_dim:.3f} bits/dim standard error; {len(test_x)} "
          f"held-out images, {time.perf_counter() - start:.1f} s)")
    print(f"  decoder L_0 {terms[:, 0].mean() / per_dim:.3f}, KL terms {terms[:, 1:-1].sum(1).mean() / per_dim:.3f}, "
          f"prior L_T {terms[:, -1].mean() / per_dim:.2e} bits/dim")

    start = time.perf_counter()
    samples = model.sample(64, generator=args.seed)
    save_grid(to_unit(samples.numpy()), args.out, "samples.png", nrow=8,
              note=f" (64 samples, {time.perf_counter() - start:.1f} s)")
    _, trajectory = model.sample(8, generator=args.seed + 1, return_trajectory=True)
    plot_reverse_process(trajectory.numpy(), args.timesteps, os.path.join(args.out, "reverse_process.png"))
    plot(history, terms, dims, os.path.join(args.out, "loss.png"))


if __name__ == "__main__":
    main()
