"""Train a VQ-VAE on digits, then a PixelCNN prior over its code grids, and generate (two stages).

    python examples/vqvae.py                         # bundled 8x8 digits (4x4 codes), 1-2 minutes on 2 cores
    python examples/vqvae.py --ema                   # codebook by exponential moving averages
    python examples/vqvae.py --dataset mnist --data-dir /path/to/mnist --train-size 10000   # 7x7 codes

Stage 1 trains encoder, codebook and decoder on grey-level images (Bernoulli decoder on
intensities in [0, 1]); codes unused over an epoch are restarted at encoder outputs, and the
epoch's codebook usage and perplexity are printed. Stage 2 fits a PixelCNN with n_values = K to the
code grids of the training images. Writes to --out: reconstructions.png (rows of test images above
their reconstructions), samples.png (prior samples decoded) and codes.png (each code tiled over
the whole grid, decoded).
"""
import time

import numpy as np

import minigen
from minigen import backend
from minigen.data import DataLoader
from minigen.models import VQVAE, PixelCNN
from minigen.optim import Adam

from common import example_parser, is_report_epoch, load_images, parse_args, save_grid, train_epoch


def in_batches(fn, x, batch_size=500):
    """fn applied to consecutive batches of x, results concatenated (raw arrays)."""
    parts = [fn(x[b:b + batch_size]).data for b in range(0, len(x), batch_size)]
    return backend.get_array_module(parts[0]).concatenate(parts)


def train_vqvae(model, train, args):
    opt = Adam(model.parameters(), lr=args.lr)
    loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, seed=args.seed, device=args.device)
    vq = model.quantizer
    for epoch in range(1, args.epochs + 1):
        tic, sums = time.perf_counter(), np.zeros(4)
        vq.reset_usage()
        for x in loader:
            opt.zero_grad()
            parts = model.loss(x)
            parts.total.backward()
            opt.step()
            sums += [p.item() * len(x) for p in parts]
        used, perplexity = int((vq.usage > 0).sum()), vq.perplexity()
        with minigen.no_grad():
            restarted = vq.restart_dead_codes(model.encoder(minigen.tensor(x)), random_state=epoch)
        if is_report_epoch(epoch, args.epochs):
            total, recon, codebook, commitment = sums / len(train)
            print(f"epoch {epoch:3d}: loss {total:7.2f} = reconstruction {recon:7.2f} + codebook "
                  f"{codebook:.3f} + commitment {commitment:.3f}; codes used {used}/{vq.num_embeddings}, "
                  f"perplexity {perplexity:5.2f}, restarted {restarted}  ({time.perf_counter() - tic:.1f} s)")


def train_prior(prior, codes, args):
    opt = Adam(prior.parameters(), lr=args.lr)
    loader = DataLoader(codes, batch_size=args.batch_size, shuffle=True, seed=args.seed, device=args.device)
    for epoch in range(1, args.prior_epochs + 1):
        loss = train_epoch(loader, opt, prior.loss)
        if is_report_epoch(epoch, args.prior_epochs, n_reports=5):
            print(f"prior epoch {epoch:3d}: NLL of the code grids {loss:.2f} nats")


def main():
    parser = example_parser(__doc__)
    parser.add_argument("--train-size", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--epochs", type=int, default=30, help="VQ-VAE epochs")
    parser.add_argument("--prior-epochs", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--codes", type=int, default=32, help="codebook size K")
    parser.add_argument("--dim", type=int, default=8, help="code dimension D")
    parser.add_argument("--beta", type=float, default=0.25)
    parser.add_argument("--ema", action="store_true", help="EMA codebook updates")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    args = parse_args(parser, "vqvae")

    minigen.manual_seed(args.seed)
    train, _, test, _ = load_images(args)
    if args.train_size:
        train = train[:args.train_size]
    _, _, H, W = train.shape
    n_downsample = 1 if H == 8 else 2  # 8x8 -> 4x4 codes, 28x28 -> 7x7
    model = VQVAE(hidden_channels=args.hidden, num_embeddings=args.codes, embedding_dim=args.dim,
                  n_downsample=n_downsample, beta=args.beta, ema=args.ema).to(args.device)
    grid = model.latent_shape((H, W))
    print(f"{args.dataset}: {len(train)} train / {len(test)} test images of {H}x{W} -> {grid[0]}x{grid[1]} "
          f"codes from K={args.codes} (D={args.dim}, {'EMA' if args.ema else 'codebook loss'})")

    start = time.perf_counter()
    train_vqvae(model, train, args)
    print(f"VQ-VAE: {args.epochs} epochs in {time.perf_counter() - start:.1f} s")
    test_d = backend.to_device(test, args.device)
    with minigen.no_grad():
        recon = np.mean([model.loss(test_d[b:b + 500]).reconstruction.item() for b in range(0, len(test), 500)])
    test_codes = in_batches(model.encode, test_d)
    counts = np.bincount(backend.to_numpy(test_codes).reshape(-1), minlength=args.codes)
    p = counts[counts > 0] / counts.sum()
    print(f"test: reconstruction -log p(x|z_q) {recon:.2f} nats per image; codes used {int((counts > 0).sum())}"
          f"/{args.codes}, perplexity {np.exp(-(p * np.log(p)).sum()):.2f}")

    codes = in_batches(model.encode, backend.to_device(train, args.device))[:, None]
    prior = PixelCNN(n_values=args.codes, hidden_channels=args.hidden, n_layers=4,
                     kernel_size=3 if grid[0] <= 4 else 5).to(args.device)
    start = time.perf_counter()
    train_prior(prior, codes, args)
    with minigen.no_grad():
        prior_nll = float(-prior.log_prob(test_codes[:, None]).mean().item())
    print(f"prior: {args.prior_epochs} epochs in {time.perf_counter() - start:.1f} s; test code grids "
          f"{prior_nll:.2f} nats (uniform prior: {grid[0] * grid[1] * np.log(args.codes):.2f})")

    rows = test_d[:10]
    pairs = backend.get_array_module(rows).concatenate([rows, model.reconstruct(rows).data])
    save_grid(pairs, args.out, "reconstructions.png", nrow=10)
    save_grid(model.generate(prior, 100, grid, random_state=args.seed), args.out, "samples.png", nrow=10)
    code_images = model.decode_codes(np.arange(args.codes).reshape(-1, 1, 1).repeat(grid[0], 1).repeat(grid[1], 2))
    save_grid(code_images, args.out, "codes.png", nrow=8, note=" (each code repeated over the whole grid, decoded)")


if __name__ == "__main__":
    main()
