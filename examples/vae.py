"""Train a variational autoencoder, then report its test ELBO and importance-weighted NLL in nats.

    python examples/vae.py                                    # MLP VAE on the bundled 8x8 digits (~1 min, 2 cores)
    python examples/vae.py --latent-dim 2                     # ... with a 2-D latent: the manifold grid
    python examples/vae.py --conditional --beta 2             # class-conditional beta-VAE
    python examples/vae.py --conv                             # convolutional encoder / decoder
    python examples/vae.py --dataset mnist --data-dir DIR --epochs 10

Binarisation: training images are binarised afresh every batch (x ~ Bernoulli(intensity), the
"dynamic" protocol); the test images are binarised once with a fixed seed, so the
reported NLL is a likelihood of fixed binary data. Digits: the shared held-out 300 images are the test
split. --likelihood gaussian trains on the grey levels instead (a learned per-pixel variance;
its NLL is a density, not comparable with the Bernoulli figures).

Writes to --out: samples.png, reconstructions.png (test rows above their reconstructions),
latent_walk.png (the 2-D manifold grid if --latent-dim 2, else each latent axis from -2.5 to
2.5 with the others 0), interpolations.png, model.npz (the weights), loss.png (matplotlib, if
installed).
"""
import os
import statistics
import time

import numpy as np

import minigen
from minigen import backend
from minigen.data import DataLoader, binarize_dynamic
from minigen.models import VAE, ConvVAE
from minigen.models.gradient_estimators import gradient_samples
from minigen.optim import Adam

from common import (binarize_test, example_parser, import_pyplot, is_report_epoch, load_images, parse_args,
                    save_figure, save_grid, train_epoch)


def load(args):
    """(train_x, train_y, test_x, test_y) as NumPy arrays (N, 1, S, S); test images binarised once."""
    train_x, train_y, test_x, test_y = load_images(args)
    if args.likelihood == "bernoulli":
        test_x = binarize_test(test_x)
    return train_x, train_y, test_x, test_y


def build(args, side, n_classes):
    kw = dict(latent_dim=args.latent_dim, likelihood=args.likelihood, beta=args.beta, n_classes=n_classes)
    if args.conv:
        return ConvVAE(1, side, hidden_channels=(32, 64), **kw)
    return VAE((1, side, side), tuple(args.hidden), **kw)


def evaluate(model, x, y, args, n_samples=None):
    """Mean test ELBO (one z per image) and, with n_samples, the IWAE NLL, in nats per image."""
    elbo, nll = [], []
    with minigen.no_grad():
        for start in range(0, len(x), 500):
            xb = backend.to_device(x[start:start + 500], args.device)
            yb = None if y is None else y[start:start + 500]
            elbo.append(model.elbo(xb, yb).elbo.numpy())
            if n_samples:
                nll.append(-model.log_likelihood(xb, n_samples, yb).numpy())
    return float(np.concatenate(elbo).mean()), (float(np.concatenate(nll).mean()) if n_samples else None)


def latent_walk(model, args, labels):
    """The decoded grid: z over normal quantiles (2-D latent), else one latent axis per row."""
    L = model.latent_dim
    if L == 2:
        quantiles = [statistics.NormalDist().inv_cdf(p) for p in np.linspace(0.05, 0.95, 15)]
        z = np.array([[a, b] for b in quantiles[::-1] for a in quantiles])  # rows: z_2 high to low
        nrow = 15
    else:
        values = np.linspace(-2.5, 2.5, 11)
        z = np.zeros((L * len(values), L))
        for j in range(L):
            z[j * len(values):(j + 1) * len(values), j] = values
        nrow = len(values)
    return model.generate(backend.to_device(z.astype(np.float32), args.device), labels), nrow


def plot_losses(history, path):
    plt = import_pyplot(path)
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(5, 3.2))
    epochs = range(1, len(history["train"]) + 1)
    ax.plot(epochs, history["train"], label="train loss (negative beta-ELBO)")
    ax.plot(epochs, history["test"], label="test negative ELBO")
    ax.set_xlabel("epoch")
    ax.set_ylabel("nats per image")
    ax.legend()
    save_figure(fig, path)


def main():
    parser = example_parser(__doc__)
    parser.add_argument("--conv", action="store_true", help="ConvVAE instead of the MLP VAE")
    parser.add_argument("--conditional", action="store_true", help="class-conditional VAE (labels to encoder and decoder)")
    parser.add_argument("--beta", type=float, default=1.0, help="weight of the KL term (beta-VAE)")
    parser.add_argument("--latent-dim", type=int, default=8)
    parser.add_argument("--hidden", type=int, nargs="+", default=None,
                        help="MLP hidden sizes (default: 256 256 on digits, 400 on MNIST)")
    parser.add_argument("--likelihood", choices=["bernoulli", "gaussian"], default="bernoulli")
    parser.add_argument("--epochs", type=int, default=None, help="default: 300 on digits, 10 on MNIST")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 64 on digits, 128 on MNIST")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--iwae-k", type=int, default=1000, help="importance samples for the test NLL")
    parser.add_argument("--nll-images", type=int, default=None,
                        help="test images for the IWAE NLL (default: all on digits, 1000 on MNIST)")
    args = parse_args(parser, "vae")
    mnist = args.dataset == "mnist"
    args.hidden = args.hidden or ([400] if mnist else [256, 256])
    args.epochs = args.epochs if args.epochs is not None else (10 if mnist else 300)
    args.batch_size = args.batch_size or (128 if mnist else 64)
    args.nll_images = args.nll_images or (1000 if mnist else None)

    minigen.manual_seed(args.seed)
    train_x, train_y, test_x, test_y = load(args)
    side = train_x.shape[-1]
    n_classes = 10 if args.conditional else None
    model = build(args, side, n_classes).to(args.device)
    optimizer = Adam(model.parameters(), lr=args.lr)
    print(f"{args.dataset}: {len(train_x)} train / {len(test_x)} test images of {side}x{side}; "
          f"{'binarised dynamically (test: the shared held-out split, binarised once)' if args.likelihood == 'bernoulli' else 'grey levels'}")
    print(model)

    transform = binarize_dynamic if args.likelihood == "bernoulli" else None  # the global generator, seeded above
    arrays = (train_x, train_y) if args.conditional else (train_x,)
    loader = DataLoader(*arrays, batch_size=args.batch_size, shuffle=True, seed=args.seed,
                        device=args.device, transform=transform)
    test_labels = test_y if args.conditional else None
    history = {"train": [], "test": []}
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        history["train"].append(train_epoch(loader, optimizer, model.loss))  # model.loss(x[, y])
        history["test"].append(-evaluate(model, test_x[:1000], None if test_labels is None else test_labels[:1000], args)[0])
        if is_report_epoch(epoch, args.epochs):
            print(f"epoch {epoch:4d}  train loss {history['train'][-1]:8.3f}  test -ELBO {history['test'][-1]:8.3f}  "
                  f"({time.perf_counter() - start:.1f} s)")
    train_time = time.perf_counter() - start

    model.eval()
    n_nll = len(test_x) if args.nll_images is None else min(args.nll_images, len(test_x))
    start = time.perf_counter()
    elbo, _ = evaluate(model, test_x, test_labels, args)
    _, nll = evaluate(model, test_x[:n_nll], None if test_labels is None else test_labels[:n_nll], args,
                      n_samples=args.iwae_k)
    print(f"trained {args.epochs} epochs in {train_time:.1f} s ({train_time / args.epochs:.2f} s/epoch)")
    print(f"test ELBO: {elbo:.2f} nats per image ({len(test_x)} images, one z each)")
    print(f"test NLL (IWAE, k={args.iwae_k}): {nll:.2f} nats per image ({n_nll} images, "
          f"{time.perf_counter() - start:.1f} s)")

    # the lecture's claim, measured: pathwise gradients have lower variance than REINFORCE
    xb = backend.to_device(test_x[:32], args.device)
    yb = None if test_labels is None else test_labels[:32]
    encoder = [p for name, p in model.named_parameters() if name.startswith(("encoder.", "to_latent."))]
    variances = {name: float(backend.to_numpy(gradient_samples(model, xb, name, 100, encoder, yb, args.seed)
                                              ).var(0).sum())
                 for name in ("reparameterised", "score_function")}
    print(f"encoder gradient variance (trace, 100 one-sample draws on 32 test images): reparameterised "
          f"{variances['reparameterised']:.3g}, score function {variances['score_function']:.3g} "
          f"({variances['score_function'] / variances['reparameterised']:.0f}x higher)")

    os.makedirs(args.out, exist_ok=True)
    sample_labels = np.repeat(np.arange(10), 10) if args.conditional else None  # one class per row
    walk, walk_rows = latent_walk(model, args, 3 if args.conditional else None)
    rows = backend.to_device(test_x[:10], args.device)
    row_labels = None if test_labels is None else test_labels[:10]
    pairs_a, pairs_b = backend.to_device(test_x[10:18], args.device), backend.to_device(test_x[18:26], args.device)
    pictures = {
        "samples.png": (model.sample(100, sample_labels, generator=args.seed), 10),
        "reconstructions.png": (np.concatenate([backend.to_numpy(rows),
                                                model.reconstruct(rows, row_labels).numpy()]), 10),
        "latent_walk.png": (walk, walk_rows),
        "interpolations.png": (model.interpolate(pairs_a, pairs_b, 10,
                                                 None if test_labels is None else test_labels[10:18]), 10),
    }
    for name, (images, nrow) in pictures.items():
        save_grid(backend.to_numpy(images).reshape(-1, 1, side, side), args.out, name, nrow=nrow)
    minigen.save({"model": model.state_dict()}, os.path.join(args.out, "model.npz"))
    print(f"wrote {os.path.join(args.out, 'model.npz')} (minigen.load(path)['model'] -> load_state_dict)")
    plot_losses(history, os.path.join(args.out, "loss.png"))


if __name__ == "__main__":
    main()
