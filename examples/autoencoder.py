"""Autoencoders on the digits, and why a plain autoencoder is not a generative model.

Trains, on the shared held-out split of the bundled 8x8 digits (grey levels in [0, 1]):
  - an autoencoder 64-128-2-128-64 (sigmoid output, binary cross-entropy on the grey levels),
  - the same autoencoder as a denoising autoencoder (input corrupted by N(0, 0.3^2) noise),
  - a VAE of the same shape (Bernoulli cross-entropy on the grey levels, 2-D latent).

Writes to --out (default out/autoencoder):
  reconstructions.png   test digits, then the autoencoder's, the denoising autoencoder's (from a
                        noisy copy, shown too) and the VAE's reconstructions, one labelled row each
  random_codes.png      decodings of random codes: z ~ N(0, I) through the autoencoder and the VAE,
                        and z uniform over the box the autoencoder's training codes fill
  codes.png             the 2-D codes of the test digits, coloured by class, for both models, with
                        the VAE prior's 1- and 2-sigma circles
  curves.png            training loss per epoch (reconstruction loss; the VAE's negative ELBO)

The autoencoder's codes lie wherever the encoder happened to put them (their spread is several
times the prior's): random codes from N(0, I) all land in one small region and decode to the same
few shapes over and over. The VAE's KL term pulls its codes onto N(0, I), so random
codes from the prior decode to digits (deck 001: "the autoencoder is not a generative model").
"""
import numpy as np

import minigen
from minigen import backend, optim
from minigen.data import DataLoader
from minigen.models import VAE, Autoencoder
from minigen.utils import progress

from common import (example_parser, import_pyplot, load_images, parse_args, positive_float,
                    positive_int, save_figure, train_epoch)


def train(model, train_x, args, name):
    """Adam on ``model.loss``; returns the mean training loss per epoch."""
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    loader = DataLoader(train_x, batch_size=args.batch_size, shuffle=True, seed=args.seed,
                        device=args.device)
    curve = []
    bar = progress(range(1, args.epochs + 1), desc=f"training {name}")
    for _ in bar:
        model.train()
        curve.append(train_epoch(loader, optimizer, model.loss))
        bar.set_postfix(loss=f"{curve[-1]:.2f}")
    model.eval()
    return curve


def image_rows(plt, rows, labels, path, title):
    """One labelled row of 8x8 images per entry of ``rows`` (each (n, 8, 8) in [0, 1])."""
    n = rows[0].shape[0]
    fig, axes = plt.subplots(len(rows), n, figsize=(0.9 * n + 1.6, 1.0 * len(rows) + 0.6))
    for r, (images, label) in enumerate(zip(rows, labels)):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(images[c], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(title)
    save_figure(fig, path)


def main():
    parser = example_parser(__doc__, dataset=False)
    parser.add_argument("--epochs", type=positive_int, default=150)
    parser.add_argument("--batch-size", type=positive_int, default=100)
    parser.add_argument("--lr", type=positive_float, default=2e-3)
    parser.add_argument("--noise-std", type=positive_float, default=0.3,
                        help="corruption of the denoising autoencoder's input")
    parser.set_defaults(dataset="digits", data_dir=None)  # the bundled digits only
    args = parse_args(parser, "autoencoder")
    minigen.manual_seed(args.seed)
    train_x, _, test_x, test_y = load_images(args)
    flat = lambda x: x.reshape(len(x), -1)  # noqa: E731
    train_x, test_x = flat(train_x), flat(test_x)
    print(f"digits: {len(train_x)} train / {len(test_x)} test images, 64 pixels in [0, 1]")

    models = {"autoencoder": Autoencoder(64, (128,), latent_dim=2, loss="bce"),
              "denoising autoencoder": Autoencoder(64, (128,), latent_dim=2, loss="bce",
                                                   noise_std=args.noise_std),
              "VAE": VAE(64, (128,), latent_dim=2)}
    curves = {}
    for name, model in models.items():
        model.to(args.device)
        curves[name] = train(model, train_x, args, name)
    ae, dae, vae = models.values()

    test = backend.to_device(test_x, args.device)
    rng = np.random.default_rng(args.seed)
    noisy = np.clip(test_x + args.noise_std * rng.standard_normal(test_x.shape), 0, 1).astype(np.float32)
    with minigen.no_grad():
        recon = {"autoencoder": ae.reconstruct(test), "VAE": vae.reconstruct(test),
                 "denoising autoencoder": dae.reconstruct(backend.to_device(noisy, args.device))}
        errors = {name: float(((backend.to_numpy(r.data).reshape(len(test_x), -1) - test_x) ** 2)
                              .sum(axis=1).mean()) for name, r in recon.items()}
        codes = {"autoencoder": backend.to_numpy(ae.encode(test).data),
                 "VAE": backend.to_numpy(vae.encode(test)[0].data)}
        train_codes = backend.to_numpy(ae.encode(backend.to_device(train_x, args.device)).data)
        z = rng.standard_normal((12, 2)).astype(np.float32)
        low, high = train_codes.min(axis=0), train_codes.max(axis=0)
        box = (low + (high - low) * rng.random((12, 2))).astype(np.float32)
        random = {"autoencoder, z ~ N(0, I)": ae.decode(backend.to_device(z, args.device)),
                  "autoencoder, z in its code box": ae.decode(backend.to_device(box, args.device)),
                  "VAE, z ~ N(0, I)": vae.generate(backend.to_device(z, args.device))}
    print("test squared reconstruction error per image (sum over 64 pixels):")
    for name, err in errors.items():
        print(f"  {name:<24s} {err:7.3f}" + ("   (from a noisy input)" if "denoising" in name else ""))
    for name, c in codes.items():
        print(f"std of the test codes per latent axis, {name}: "
              f"{', '.join(f'{v:.2f}' for v in c.std(axis=0))}  (the VAE prior's: 1, 1)")

    plt = import_pyplot(args.out)
    if plt is None:
        return
    img = lambda t, n=12: backend.to_numpy(t.data if isinstance(t, minigen.Tensor) else t)[:n].reshape(n, 8, 8)  # noqa: E731
    image_rows(plt, [img(test_x), img(recon["autoencoder"]), img(noisy), img(recon["denoising autoencoder"]),
                     img(recon["VAE"])],
               ["test digit", "autoencoder", "noisy input", "denoising AE", "VAE"],
               f"{args.out}/reconstructions.png", "Reconstructions of held-out digits")
    image_rows(plt, [img(v) for v in random.values()], list(random),
               f"{args.out}/random_codes.png",
               "Decoding random codes: only the VAE's prior matches where its codes are")

    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, (name, c) in zip(axes, codes.items()):
        points = ax.scatter(c[:, 0], c[:, 1], c=test_y, cmap="tab10", s=12, vmin=-0.5, vmax=9.5)
        if name == "VAE":
            t = np.linspace(0, 2 * np.pi, 200)
            for r in (1, 2):
                ax.plot(r * np.cos(t), r * np.sin(t), "k--", lw=0.8)
        ax.set_title(f"{name}: codes of the test digits" + (" (prior 1, 2 sigma)" if name == "VAE" else ""))
        ax.set_xlabel("z_1"), ax.set_ylabel("z_2"), ax.set_aspect("equal", adjustable="datalim")
    fig.colorbar(points, ax=axes, ticks=range(10), label="digit class")
    fig.savefig(f"{args.out}/codes.png", dpi=100)
    print(f"wrote {args.out}/codes.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, curve in curves.items():
        ax.plot(range(1, len(curve) + 1), curve, label=name + (" (negative ELBO)" if name == "VAE" else ""))
    ax.set_xlabel("epoch"), ax.set_ylabel("training loss per image (nats)")
    ax.set_title("Training curves"), ax.legend()
    save_figure(fig, f"{args.out}/curves.png")


if __name__ == "__main__":
    main()
