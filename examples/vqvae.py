"""Train a VQ-VAE on digits, then a PixelCNN prior over its code grids, and generate (two stages).

    python examples/vqvae.py                         # bundled 8x8 digits (4x4 codes), 1-2 minutes on 2 cores
    python examples/vqvae.py --ema                   # codebook by exponential moving averages
    python examples/vqvae.py --dataset mnist --data-dir /path/to/mnist --n-train 10000   # 7x7 codes

Stage 1 trains encoder, codebook and decoder on grey-level images (a Bernoulli cross-entropy on
intensities in [0, 1]: a distortion in nats, not -log p(x | z) for grey pixels, see
minigen.models.vqvae); codes unused over an epoch are restarted at encoder outputs. Codebook use is
counted over each whole epoch (a batch sees too few latents): perplexity exp(H(code frequencies))
is K when all codes are used equally and 1 at codebook collapse. Stage 2 fits a PixelCNN with
n_values = K to the code grids of the training images; its test NLL (nats per code grid) is
printed beside the uniform prior's. Writes to --out:
  codebook_usage.png   perplexity and number of codes used per epoch, and the loss parts
  reconstructions.png  test images (row "data") above their reconstructions
  samples.png          test images beside prior samples, decoded
  codes.png            each code tiled over the whole grid, decoded (what each code draws)
"""
import os
import time

import numpy as np

import minigen
from minigen import backend
from minigen.data import DataLoader
from minigen.models import VQVAE, PixelCNN
from minigen.optim import Adam
from minigen.utils import progress

from common import (example_parser, import_pyplot, load_images, nonnegative_float, parse_args,
                    positive_float, positive_int, save_figure, train_epoch, usage_error)
from image_figures import save_labelled_rows, save_panels


def in_batches(fn, x, batch_size=500):
    """fn applied to consecutive batches of x, results concatenated (raw arrays)."""
    parts = [fn(x[b:b + batch_size]).data for b in range(0, len(x), batch_size)]
    return backend.get_array_module(parts[0]).concatenate(parts)


def train_vqvae(model, train, args):
    """Train; returns per-epoch rows (epoch, total, reconstruction, codebook, commitment,
    codes used, perplexity, restarted), counted over the whole epoch."""
    opt = Adam(model.parameters(), lr=args.lr)
    loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, seed=args.seed, device=args.device)
    vq, history = model.quantizer, []
    bar = progress(range(1, args.epochs + 1), desc="VQ-VAE")
    for epoch in bar:
        sums = np.zeros(4)
        vq.reset_usage()
        for x in loader:
            opt.zero_grad()
            parts = model.loss(x)
            parts.total.backward()
            opt.step()
            sums += [p.item() * len(x) for p in parts]
        used, perplexity = int((vq.usage > 0).sum()), vq.perplexity()
        with minigen.no_grad():
            restarted = vq.restart_dead_codes(model.encoder(minigen.tensor(x)), generator=epoch)
        history.append((epoch, *(sums / len(train)), used, perplexity, restarted))
        bar.set_postfix(loss=history[-1][1], perplexity=perplexity, used=used)
    return history


def plot_usage(history, K, path, title):
    plt = import_pyplot(path)
    if plt is None:
        return
    h = np.array(history)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot(h[:, 0], h[:, 6], "o-", ms=3, label="perplexity exp(H) of the epoch's code frequencies")
    ax1.plot(h[:, 0], h[:, 5], "s-", ms=3, label="codes used at least once in the epoch")
    ax1.bar(h[:, 0], h[:, 7], color="tab:red", alpha=0.4, label="dead codes restarted after the epoch")
    ax1.axhline(K, color="grey", ls="--", lw=1, label=f"codebook size K = {K}")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("number of codes")
    ax1.set_ylim(0, K * 1.1)
    ax1.set_title("codebook usage per epoch")
    ax1.legend(fontsize=7, loc="lower right")
    ax2.plot(h[:, 0], h[:, 2], "o-", ms=3, label="reconstruction (Bernoulli cross-entropy)")
    ax2.plot(h[:, 0], h[:, 3] + h[:, 4], "s-", ms=3, label="codebook + commitment")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("nats / squared units per image")
    ax2.set_yscale("log")
    ax2.set_title("training loss parts (epoch means)")
    ax2.legend(fontsize=7)
    fig.suptitle(title, fontsize=11)
    save_figure(fig, path)


def train_prior(prior, codes, args):
    opt = Adam(prior.parameters(), lr=args.lr)
    loader = DataLoader(codes, batch_size=args.batch_size, shuffle=True, seed=args.seed, device=args.device)
    bar = progress(range(1, args.prior_epochs + 1), desc="PixelCNN prior")
    for epoch in bar:
        bar.set_postfix(nll=train_epoch(loader, opt, prior.loss))


def main():
    parser = example_parser(__doc__)
    parser.add_argument("--n-train", type=positive_int, default=None,
                        help="use only the first N training images")
    parser.add_argument("--epochs", type=positive_int, default=30, help="VQ-VAE epochs")
    parser.add_argument("--prior-epochs", type=positive_int, default=30)
    parser.add_argument("--hidden", type=positive_int, default=32, help="hidden channels (even)")
    parser.add_argument("--codes", type=positive_int, default=32, help="codebook size K (>= 2)")
    parser.add_argument("--dim", type=positive_int, default=8, help="code dimension D")
    parser.add_argument("--beta", type=nonnegative_float, default=0.25, help="commitment weight")
    parser.add_argument("--ema", action="store_true", help="EMA codebook updates")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--lr", type=positive_float, default=2e-3)
    args = parse_args(parser, "vqvae")
    if args.codes < 2:
        usage_error(f"--codes must be at least 2 (the prior is a categorical over K codes), got {args.codes}")

    minigen.manual_seed(args.seed)
    train, _, test, _ = load_images(args)
    train = train[:args.n_train]
    _, _, H, W = train.shape
    n_downsample = 1 if H == 8 else 2  # 8x8 -> 4x4 codes, 28x28 -> 7x7
    model = VQVAE(hidden_channels=args.hidden, num_embeddings=args.codes, embedding_dim=args.dim,
                  n_downsample=n_downsample, beta=args.beta, ema=args.ema).to(args.device)
    grid = model.latent_shape((H, W))
    print(f"{args.dataset}: {len(train)} train / {len(test)} test images of {H}x{W} -> {grid[0]}x{grid[1]} "
          f"codes from K={args.codes} (D={args.dim}, {'EMA' if args.ema else 'codebook loss'})")

    start = time.perf_counter()
    history = train_vqvae(model, train, args)
    last = history[-1]
    print(f"VQ-VAE: {args.epochs} epochs in {time.perf_counter() - start:.1f} s; last epoch: loss "
          f"{last[1]:.2f} = reconstruction {last[2]:.2f} + codebook {last[3]:.3f} + commitment "
          f"{last[4]:.3f}; codes used {last[5]}/{args.codes}, perplexity {last[6]:.2f}")
    plot_usage(history, args.codes, os.path.join(args.out, "codebook_usage.png"),
               f"VQ-VAE on {args.dataset} ({'EMA' if args.ema else 'codebook loss'}, K={args.codes}, "
               f"{grid[0]}x{grid[1]} codes)")
    test_d = backend.to_device(test, args.device)
    with minigen.no_grad():
        recon = np.mean([model.loss(test_d[b:b + 500]).reconstruction.item() for b in range(0, len(test), 500)])
    test_codes = in_batches(model.encode, test_d)
    counts = np.bincount(backend.to_numpy(test_codes).reshape(-1), minlength=args.codes)
    p = counts[counts > 0] / counts.sum()
    print(f"test: reconstruction cross-entropy {recon:.2f} nats per image; codes used "
          f"{int((counts > 0).sum())}/{args.codes}, perplexity {np.exp(-(p * np.log(p)).sum()):.2f}")

    codes = in_batches(model.encode, backend.to_device(train, args.device))[:, None]
    prior = PixelCNN(n_values=args.codes, hidden_channels=args.hidden + args.hidden % 2, n_layers=4,
                     kernel_size=3 if grid[0] <= 4 else 5).to(args.device)
    start = time.perf_counter()
    train_prior(prior, codes, args)
    with minigen.no_grad():
        prior_nll = float(-prior.log_prob(test_codes[:, None]).mean().item())
    print(f"prior: {args.prior_epochs} epochs in {time.perf_counter() - start:.1f} s; test code grids "
          f"{prior_nll:.2f} nats (uniform prior: {grid[0] * grid[1] * np.log(args.codes):.2f})")

    rows = test_d[:12]
    save_labelled_rows([("data", rows), ("reconstruction", model.reconstruct(rows).data)],
                       os.path.join(args.out, "reconstructions.png"),
                       f"VQ-VAE: test images and their reconstructions through {grid[0]}x{grid[1]} "
                       f"codes (K={args.codes}); cross-entropy {recon:.1f} nats")
    samples = model.sample(100, prior, grid, generator=args.seed)
    save_panels([("test images (data)", test_d[:100]), ("two-stage samples: codes ~ PixelCNN, decoded", samples)],
                os.path.join(args.out, "samples.png"),
                f"VQ-VAE + PixelCNN prior on {args.dataset}: data beside samples (Bernoulli means)")
    code_images = model.decode_codes(np.arange(args.codes).reshape(-1, 1, 1).repeat(grid[0], 1).repeat(grid[1], 2))
    save_panels([(f"codes 0..{args.codes - 1}, row by row", code_images)], os.path.join(args.out, "codes.png"),
                "each code repeated over the whole grid, decoded", ncol=8)


if __name__ == "__main__":
    main()
