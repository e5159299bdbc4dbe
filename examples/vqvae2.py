"""Train a two-level VQ-VAE-2 on digits, then PixelCNN priors over its code grids (the bottom one
conditioned on the top codes), and generate in two stages.

    python examples/vqvae2.py                        # bundled 8x8 digits: 2x2 top, 4x4 bottom codes
    python examples/vqvae2.py --dataset mnist --data-dir /path/to/mnist --n-train 10000   # 4x4 and 7x7

Stage 1 trains both encoders, both codebooks (exponential moving averages unless --no-ema) and the
decoder on grey-level images (Bernoulli cross-entropy: a distortion in nats, see
minigen.models.vqvae); codes unused over an epoch are restarted at encoder outputs, at both levels.
Stage 2 fits a PixelCNN to the top code grids and a PixelCNN conditioned on the embedded, upsampled
top codes (``VQVAE2.top_condition``) to the bottom grids; their test NLLs (nats per image's code
grids) are printed beside the uniform prior's. Writes to --out:
  reconstructions.png  test images; decoded from the top codes only, the bottom codes only, and both
                       (a level left out enters the decoder as zeros)
  samples.png          test images beside two-stage samples (top ~ PixelCNN, bottom ~ conditional
                       PixelCNN given the top, decoded)
  hierarchy.png        each row: one sampled top grid, decoded with several bottom grids sampled given it
"""
import os
import time

import numpy as np

import minigen
from minigen import backend
from minigen.data import DataLoader
from minigen.models import VQVAE2, PixelCNN
from minigen.optim import Adam
from minigen.utils import progress

from common import (example_parser, load_images, nonnegative_float, parse_args, positive_float,
                    positive_int, train_epoch, usage_error)
from image_figures import save_labelled_rows, save_panels


def in_batches(fn, x, batch_size=500):
    """fn applied to consecutive batches of x; a tuple of concatenated raw arrays per output."""
    parts = [fn(x[b:b + batch_size]) for b in range(0, len(x), batch_size)]
    xp = backend.get_array_module(parts[0][0].data)
    return tuple(xp.concatenate([p[i].data for p in parts]) for i in range(len(parts[0])))


def train_vqvae2(model, train, args):
    opt = Adam(model.parameters(), lr=args.lr)
    loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, seed=args.seed, device=args.device)
    quantizers = (model.quantizer_top, model.quantizer_bottom)
    bar = progress(range(1, args.epochs + 1), desc="VQ-VAE-2")
    for epoch in bar:
        for q in quantizers:
            q.reset_usage()
        total = recon = 0.0
        for x in loader:
            opt.zero_grad()
            parts = model.loss(x)
            parts.total.backward()
            opt.step()
            total += parts.total.item() * len(x)
            recon += parts.reconstruction.item() * len(x)
        perplexity = [q.perplexity() for q in quantizers]
        restarted = sum(model.restart_dead_codes(x, generator=epoch))  # codes unused this epoch
        bar.set_postfix(loss=total / len(train), recon=recon / len(train), top_perplexity=perplexity[0],
                        bottom_perplexity=perplexity[1], restarted=restarted)
    return perplexity


def train_prior(prior, arrays, loss, name, args):
    opt = Adam(prior.parameters(), lr=args.lr)
    loader = DataLoader(*arrays, batch_size=args.batch_size, shuffle=True, seed=args.seed, device=args.device)
    bar = progress(range(1, args.prior_epochs + 1), desc=name)
    for _ in bar:
        bar.set_postfix(nll=train_epoch(loader, opt, loss))


def main():
    parser = example_parser(__doc__)
    parser.add_argument("--n-train", type=positive_int, default=None,
                        help="use only the first N training images")
    parser.add_argument("--epochs", type=positive_int, default=30, help="VQ-VAE-2 epochs")
    parser.add_argument("--prior-epochs", type=positive_int, default=30)
    parser.add_argument("--hidden", type=positive_int, default=32, help="hidden channels (even)")
    parser.add_argument("--codes", type=positive_int, default=16, help="codebook size K per level (>= 2)")
    parser.add_argument("--dim", type=positive_int, default=8, help="code dimension D")
    parser.add_argument("--beta", type=nonnegative_float, default=0.25, help="commitment weight")
    parser.add_argument("--no-ema", action="store_true", help="codebook loss instead of EMA updates")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--lr", type=positive_float, default=2e-3)
    args = parse_args(parser, "vqvae2")
    if args.codes < 2:
        usage_error(f"--codes must be at least 2, got {args.codes}")

    minigen.manual_seed(args.seed)
    train, _, test, _ = load_images(args)
    train = train[:args.n_train]
    _, _, H, W = train.shape
    n_downsample = 1 if H == 8 else 2  # 8x8 -> 4x4 bottom, 2x2 top; 28x28 -> 7x7 and 4x4
    model = VQVAE2(hidden_channels=args.hidden, num_embeddings=args.codes, embedding_dim=args.dim,
                   n_downsample=n_downsample, beta=args.beta, ema=not args.no_ema).to(args.device)
    top_grid, bottom_grid = model.latent_shapes((H, W))
    print(f"{args.dataset}: {len(train)} train / {len(test)} test images of {H}x{W} -> top codes "
          f"{top_grid[0]}x{top_grid[1]}, bottom codes {bottom_grid[0]}x{bottom_grid[1]}, K={args.codes} "
          f"per level (D={args.dim}, {'codebook loss' if args.no_ema else 'EMA'})")

    start = time.perf_counter()
    perplexity = train_vqvae2(model, train, args)
    print(f"VQ-VAE-2: {args.epochs} epochs in {time.perf_counter() - start:.1f} s; last epoch's "
          f"perplexity: top {perplexity[0]:.2f}, bottom {perplexity[1]:.2f} of K={args.codes}")
    model.eval()
    test_d = backend.to_device(test, args.device)
    with minigen.no_grad():
        recon = np.mean([model.loss(test_d[b:b + 500]).reconstruction.item() for b in range(0, len(test), 500)])
    print(f"test: reconstruction cross-entropy {recon:.2f} nats per image")

    top_train, bottom_train = in_batches(model.encode, backend.to_device(train, args.device))
    top_test, bottom_test = in_batches(model.encode, test_d)
    cond_train = model.top_condition(top_train, bottom_grid)
    cond_test = model.top_condition(top_test, bottom_grid)
    width = args.hidden + args.hidden % 2
    top_prior = PixelCNN(n_values=args.codes, hidden_channels=width, n_layers=3, kernel_size=3).to(args.device)
    bottom_prior = PixelCNN(n_values=args.codes, hidden_channels=width, n_layers=4, kernel_size=3,
                            cond_channels=args.dim, cond_layers=2).to(args.device)
    start = time.perf_counter()
    train_prior(top_prior, (top_train[:, None],), top_prior.loss, "top prior", args)
    train_prior(bottom_prior, (bottom_train[:, None], cond_train),
                lambda k, s: bottom_prior.loss(k, cond=s), "bottom prior", args)
    with minigen.no_grad():
        top_nll = float(-top_prior.log_prob(top_test[:, None]).mean().item())
        bottom_nll = float(-bottom_prior.log_prob(bottom_test[:, None], cond=cond_test).mean().item())
    n_codes = top_grid[0] * top_grid[1] + bottom_grid[0] * bottom_grid[1]
    print(f"priors: {args.prior_epochs} epochs each in {time.perf_counter() - start:.1f} s; test code "
          f"grids: top {top_nll:.2f} + bottom given top {bottom_nll:.2f} = {top_nll + bottom_nll:.2f} "
          f"nats (uniform prior: {n_codes * np.log(args.codes):.2f})")

    rows = test_d[:12]
    top, bottom = model.encode(rows)
    save_labelled_rows([("data", rows),
                        ("top codes only", model.decode_codes(top, bottom, levels=("top",)).data),
                        ("bottom codes only", model.decode_codes(top, bottom, levels=("bottom",)).data),
                        ("top and bottom", model.decode_codes(top, bottom).data)],
                       os.path.join(args.out, "reconstructions.png"),
                       f"VQ-VAE-2 reconstructions of test images ({top_grid[0]}x{top_grid[1]} top, "
                       f"{bottom_grid[0]}x{bottom_grid[1]} bottom codes; a level left out decodes as zeros)")
    samples = model.sample(100, top_prior, bottom_prior, (H, W), generator=args.seed)
    save_panels([("test images (data)", test_d[:100]), ("two-stage samples (Bernoulli means)", samples)],
                os.path.join(args.out, "samples.png"),
                f"VQ-VAE-2 + PixelCNN priors on {args.dataset}: data beside samples")
    n_tops, n_bottoms = 6, 8
    tops = top_prior.sample(n_tops, top_grid, generator=args.seed + 1).data[:, 0].repeat(n_bottoms, axis=0)
    bottoms = bottom_prior.sample(len(tops), bottom_grid, cond=model.top_condition(tops, bottom_grid),
                                  generator=args.seed + 2).data[:, 0]
    decoded = model.decode_codes(tops, bottoms).data.reshape(n_tops, n_bottoms, 1, H, W)
    save_labelled_rows([(f"top sample {i + 1}", decoded[i]) for i in range(n_tops)],
                       os.path.join(args.out, "hierarchy.png"),
                       "each row: one sampled top grid, decoded with bottom grids sampled given it",
                       col_labels=[f"bottom {j + 1}" for j in range(n_bottoms)])


if __name__ == "__main__":
    main()
