"""Train a variational autoencoder; report its test ELBO split into reconstruction and KL, the active
latent units, the importance-weighted NLL, the variances of the two ELBO estimators and the
amortisation gap, in nats.

    python examples/vae.py                                    # MLP VAE on the bundled 8x8 digits (~1 min, 2 cores)
    python examples/vae.py --latent-dim 2                     # ... with a 2-D latent: the manifold grid
    python examples/vae.py --beta 4                           # beta-VAE: watch the posterior collapse ...
    python examples/vae.py --beta 4 --kl-warmup 100 --free-bits 0.5    # ... and two remedies
    python examples/vae.py --conditional                      # class-conditional: style (z) vs content (y)
    python examples/vae.py --conv --latent-grid 2             # ConvVAE with a 2 x 2 x 2 spatial latent grid
    python examples/vae.py --likelihood gaussian --decoder-variance from_z
    python examples/vae.py --dataset mnist --data-dir DIR --epochs 10

Binarisation: training images are binarised afresh every batch (x ~ Bernoulli(intensity), the
"dynamic" protocol); the test images are the shared held-out split binarised once with a fixed
seed, so the reported NLL is a likelihood of fixed binary data, comparable across the examples.
--likelihood gaussian trains on the grey levels instead (its NLL is a density, not comparable
with the Bernoulli figures).

Posterior collapse: when the KL term wins, q(z | x) = p(z) for every x, the decoder ignores z and
every sample is the same average image. The script counts the active units (Burda et al. 2016:
Var_x E_q[z_u] > 0.01) and warns when none is left. --kl-warmup EPOCHS raises the KL weight
linearly from 0 to beta over that many epochs; --free-bits NATS stops pushing any latent's KL
below NATS (Kingma et al. 2016).

Writes to --out: training.png (test -ELBO = reconstruction + KL per epoch, the KL weight, active
units), samples.png (data beside samples; one class per row if --conditional),
reconstructions.png (data rows above their reconstructions), latent_walk.png (each latent axis
from -2.5 to 2.5 with the others 0, or the 2-D manifold grid), interpolations.png,
style_content.png (--conditional: z fixed per row, the class per column), model.npz
(``VAE.load(path)`` / ``minigen.load_model(path)`` rebuilds the model).
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
from minigen.models.vae import kl_warmup
from minigen.optim import Adam
from minigen.utils import progress

from common import (binarize_test, example_parser, import_pyplot, load_images, nonnegative_float, parse_args,
                    positive_float, positive_int, save_figure, train_epoch, usage_error)
from image_figures import save_labelled_rows, save_panels

EVAL_BATCH = 500


def load(args):
    """(train_x, train_y, test_x, test_y) as NumPy arrays (N, 1, S, S); test images binarised once."""
    train_x, train_y, test_x, test_y = load_images(args)
    if args.n_train is not None:
        train_x, train_y = train_x[:args.n_train], train_y[:args.n_train]
    if args.likelihood == "bernoulli":
        test_x = binarize_test(test_x)
    return train_x, train_y, test_x, test_y


def build(args, side, n_classes):
    kw = dict(likelihood=args.likelihood, beta=args.beta, n_classes=n_classes,
              decoder_variance=args.decoder_variance if args.likelihood == "gaussian" else None)
    if args.conv:
        hidden = (32, 64)
        if args.latent_grid is None:
            return ConvVAE(1, side, args.latent_dim, hidden_channels=hidden, **kw)
        s = side // 2 ** len(hidden)
        return ConvVAE(1, side, hidden_channels=hidden, latent_shape=(args.latent_grid, s, s), **kw)
    return VAE((1, side, side), tuple(args.hidden), args.latent_dim, **kw)


def batches(x, y, args):
    """(x, y) chunks of EVAL_BATCH images on the device (y None for an unconditional model)."""
    for start in range(0, len(x), EVAL_BATCH):
        yield (backend.to_device(x[start:start + EVAL_BATCH], args.device),
               None if y is None else y[start:start + EVAL_BATCH])


def evaluate(model, x, y, args):
    """Mean test ELBO, reconstruction term E_q[log p(x|z)] and KL (one z per image), and the
    number of active units, in nats per image."""
    terms = []
    with minigen.no_grad():
        for xb, yb in batches(x, y, args):
            out = model.elbo(xb, yb, generator=args.seed)
            terms.append(np.stack([out.elbo.numpy(), out.reconstruction.numpy(), out.kl.numpy()], 1))
    elbo, reconstruction, kl = np.concatenate(terms).mean(0)
    active = model.active_units(backend.to_device(x, args.device), y)
    return {"elbo": float(elbo), "reconstruction": float(reconstruction), "kl": float(kl), "active": active}


def test_nll(model, x, y, args):
    """Mean -L_k over the images (the IWAE bound, k = --iwae-k), with a progress line."""
    nll = []
    bar = progress(list(batches(x, y, args)), desc=f"IWAE NLL (k={args.iwae_k})")
    for xb, yb in bar:
        nll.append(-model.log_likelihood(xb, args.iwae_k, yb, generator=args.seed).numpy())
    return float(np.concatenate(nll).mean())


def estimator_variances(model, x, y, args, draws=200):
    """Per-image variance of the one-sample ELBO under deck 004's estimators A ("monte_carlo":
    log p(x, z) - log q(z | x)) and B ("analytic_kl": log p(x | z) - KL), averaged over the images."""
    xp = backend.get_array_module(x)
    tiled = xp.tile(x, (draws, 1, 1, 1))
    labels = None if y is None else np.tile(y, draws)
    variances = {}
    with minigen.no_grad():
        for estimator in ("monte_carlo", "analytic_kl"):
            values = model.elbo(tiled, labels, estimator=estimator, generator=args.seed).elbo.numpy()
            variances[estimator] = float(values.reshape(draws, len(x)).var(0, ddof=1).mean())
    return variances


def latent_rows(model, args, label, activity):
    """Rows of decoded images for latent_walk.png: one row per latent axis (values -2.5..2.5, the
    others 0), labelled with its activity Var_x E_q[z_j | x], or the 2-D manifold grid (z over
    normal quantiles, z_2 falling down the rows)."""
    L = model.latent_dim
    if L == 2:
        q = [statistics.NormalDist().inv_cdf(p) for p in np.linspace(0.05, 0.95, 12)]
        z = np.array([[a, b] for b in q[::-1] for a in q])
        row_names = [f"z2 = {b:+.2f}" for b in q[::-1]]
        col_labels = [f"{a:+.1f}" for a in q]
        title = "decoded means over the 2-D latent: z1 along the columns, z2 down the rows"
    else:
        values = np.linspace(-2.5, 2.5, 11)
        axes = range(min(L, 16))
        z = np.zeros((len(axes) * len(values), L))
        for row, j in enumerate(axes):
            z[row * len(values):(row + 1) * len(values), j] = values
        row_names = [f"z{j + 1} (activity {activity[j]:.2f})" for j in axes]
        col_labels = [f"{v:+.1f}" for v in values]
        title = ("latent walk: one latent dimension per row from -2.5 to +2.5 (columns), the others 0\n"
                 "activity = Var_x E_q[z_j | x] over the test images; a unit with activity <= 0.01 is inactive")
    labels = None if label is None else np.full(len(z), label)
    images = model.generate(backend.to_device(z.astype(np.float32), args.device), labels).numpy()
    n = len(col_labels)
    return [(name, images[i * n:(i + 1) * n]) for i, name in enumerate(row_names)], col_labels, title


def as_images(x, side):
    return np.clip(backend.to_numpy(x), 0, 1).reshape(-1, 1, side, side)


def plot_training(history, path, args):
    plt = import_pyplot(path)
    if plt is None:
        return
    epochs = np.arange(1, len(history) + 1)
    get = lambda key: np.array([h[key] for h in history])  # noqa: E731
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    ax = axes[0]
    ax.plot(epochs, get("train_loss"), label="train loss (weighted KL + rec., free bits)", color="0.6")
    ax.plot(epochs, -get("elbo"), label="test -ELBO = reconstruction + KL")
    ax.plot(epochs, -get("reconstruction"), label="test reconstruction -E_q[log p(x|z)]")
    ax.set_xlabel("epoch")
    ax.set_ylabel("nats per image")
    ax.set_title("negative ELBO and its reconstruction term")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot(epochs, get("kl"), color="C3", label="test KL(q(z|x) || p(z))")
    ax.set_xlabel("epoch")
    ax.set_ylabel("KL, nats per image", color="C3")
    ax.set_title(f"KL term (free bits {args.free_bits} nats per latent)")
    weight = ax.twinx()
    weight.plot(epochs, get("kl_weight"), "k--", label="KL weight (warm-up to beta)")
    weight.set_ylabel("KL weight")
    weight.set_ylim(0, max(args.beta, 1e-3) * 1.1)
    lines = ax.get_legend_handles_labels()
    more = weight.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="lower right")
    ax = axes[2]
    ax.plot(epochs, get("active"), color="C2")
    ax.set_ylim(-0.3, history[0]["latent_dim"] + 0.3)
    ax.set_xlabel("epoch")
    ax.set_ylabel("active units (Var_x E_q[z_u] > 0.01)")
    ax.set_title(f"active latent units, of {history[0]['latent_dim']}")
    fig.suptitle(f"VAE training on {args.dataset} (beta {args.beta}, KL warm-up {args.kl_warmup} epochs)")
    save_figure(fig, path)


def main():
    parser = example_parser(__doc__)
    parser.add_argument("--conv", action="store_true", help="ConvVAE instead of the MLP VAE")
    parser.add_argument("--latent-grid", type=positive_int, default=None, metavar="C",
                        help="with --conv: a spatial latent of C channels on the encoder's feature grid")
    parser.add_argument("--conditional", action="store_true", help="class-conditional VAE (labels to encoder and decoder)")
    parser.add_argument("--beta", type=nonnegative_float, default=1.0, help="weight of the KL term (beta-VAE)")
    parser.add_argument("--kl-warmup", type=nonnegative_float, default=0.0, metavar="EPOCHS",
                        help="raise the KL weight linearly from 0 to beta over EPOCHS epochs (default 0: none)")
    parser.add_argument("--free-bits", type=nonnegative_float, default=0.0, metavar="NATS",
                        help="free bits: no pressure on a latent's batch-mean KL below NATS (default 0)")
    parser.add_argument("--latent-dim", type=positive_int, default=8)
    parser.add_argument("--hidden", type=positive_int, nargs="+", default=None,
                        help="MLP hidden sizes (default: 256 256 on digits, 400 on MNIST)")
    parser.add_argument("--likelihood", choices=["bernoulli", "gaussian"], default="bernoulli")
    parser.add_argument("--decoder-variance", choices=["fixed", "per_pixel", "from_z"], default="per_pixel",
                        help="the Gaussian decoder's variance (with --likelihood gaussian)")
    parser.add_argument("--epochs", type=positive_int, default=None, help="default: 300 on digits, 10 on MNIST")
    parser.add_argument("--batch-size", type=positive_int, default=None, help="default: 64 on digits, 128 on MNIST")
    parser.add_argument("--n-train", type=positive_int, default=None, help="train on the first N training images")
    parser.add_argument("--lr", type=positive_float, default=1e-3)
    parser.add_argument("--iwae-k", type=positive_int, default=1000, help="importance samples for the test NLL")
    parser.add_argument("--nll-images", type=positive_int, default=None,
                        help="test images for the IWAE NLL (default: all on digits, 1000 on MNIST)")
    args = parse_args(parser, "vae")
    if args.latent_grid is not None and not args.conv:
        usage_error("--latent-grid needs --conv (a spatial latent lives on the ConvVAE's feature grid)")
    mnist = args.dataset == "mnist"
    args.hidden = args.hidden or ([400] if mnist else [256, 256])
    args.epochs = args.epochs or (10 if mnist else 300)
    args.batch_size = args.batch_size or (128 if mnist else 64)
    args.nll_images = args.nll_images or (1000 if mnist else None)

    minigen.manual_seed(args.seed)
    train_x, train_y, test_x, test_y = load(args)
    side = train_x.shape[-1]
    model = build(args, side, 10 if args.conditional else None).to(args.device)
    optimizer = Adam(model.parameters(), lr=args.lr)
    print(f"{args.dataset}: {len(train_x)} train / {len(test_x)} test images of {side}x{side}; "
          f"{'binarised dynamically (test: the shared held-out split, binarised once)' if args.likelihood == 'bernoulli' else 'grey levels'}")
    print(model)

    transform = binarize_dynamic if args.likelihood == "bernoulli" else None  # the global generator, seeded above
    arrays = (train_x, train_y) if args.conditional else (train_x,)
    loader = DataLoader(*arrays, batch_size=args.batch_size, shuffle=True, seed=args.seed,
                        device=args.device, transform=transform)
    test_labels = test_y if args.conditional else None
    monitor_x = test_x[:1000]
    monitor_y = None if test_labels is None else test_labels[:1000]
    steps_done = 0

    def loss(*batch):  # model.loss(x[, y]) with the warm-up's KL weight for this step
        nonlocal steps_done
        weight = kl_warmup(steps_done / len(loader), args.kl_warmup, args.beta)
        steps_done += 1
        return model.loss(*batch, kl_weight=weight, free_bits=args.free_bits)

    history = []
    start = time.perf_counter()
    bar = progress(range(1, args.epochs + 1), desc="training")
    for epoch in bar:
        train_loss = train_epoch(loader, optimizer, loss)
        history.append(dict(evaluate(model, monitor_x, monitor_y, args), train_loss=train_loss,
                            kl_weight=kl_warmup(epoch, args.kl_warmup, args.beta), latent_dim=model.latent_dim))
        h = history[-1]
        bar.set_postfix(test_elbo=h["elbo"], kl=h["kl"], active=h["active"])
    train_time = time.perf_counter() - start
    print(f"trained {args.epochs} epochs in {train_time:.1f} s ({train_time / args.epochs:.2f} s/epoch)")

    model.eval()
    final = evaluate(model, test_x, test_labels, args)
    n_nll = len(test_x) if args.nll_images is None else min(args.nll_images, len(test_x))
    nll = test_nll(model, test_x[:n_nll], None if test_labels is None else test_labels[:n_nll], args)
    print(f"test ELBO {final['elbo']:.2f} nats per image = reconstruction E_q[log p(x|z)] "
          f"{final['reconstruction']:.2f} - KL {final['kl']:.2f} ({len(test_x)} images, one z each)")
    print(f"active latent units: {final['active']} of {model.latent_dim} (Var_x E_q[z_u] > 0.01)")
    if final["active"] == 0:
        print(f"WARNING: posterior collapse: no latent unit is active (KL {final['kl']:.3f} nats): q(z|x) is "
              f"the prior for every image, the decoder ignores z and every sample is the same average image. "
              f"Lower --beta (now {args.beta}), or add --kl-warmup EPOCHS or --free-bits NATS.")
    elif final["active"] < model.latent_dim:
        print(f"note: {model.latent_dim - final['active']} latent units are inactive (collapsed onto the prior)")
    print(f"test NLL (IWAE, k={args.iwae_k}): {nll:.2f} nats per image ({n_nll} images)")

    # deck 004's two ELBO estimators on the trained model
    xb = backend.to_device(test_x[:100], args.device)
    yb = None if test_labels is None else test_labels[:100]
    var = estimator_variances(model, xb, yb, args)
    lower, higher = sorted(var, key=var.get)
    print(f"one-sample ELBO estimator variance (mean over 100 test images, 200 draws each): "
          f"A (monte_carlo: log p(x,z) - log q(z|x)) {var['monte_carlo']:.3g}, "
          f"B (analytic_kl: log p(x|z) - KL) {var['analytic_kl']:.3g}; {lower} is lower here, "
          f"by a factor {var[higher] / max(var[lower], 1e-30):.1f}")

    # the amortisation gap: the encoder's q against per-image optimised Gaussians
    mu, logvar = model.refine_posterior(xb, 100, 0.05, yb, generator=args.seed)
    with minigen.no_grad():
        encoder_elbo = model.elbo(xb, yb, n_samples=100, generator=args.seed).elbo.numpy().mean()
        refined_elbo = model.elbo(xb, yb, n_samples=100, posterior=(mu, logvar), generator=args.seed).elbo.numpy().mean()
    print(f"amortisation gap on 100 test images: ELBO {encoder_elbo:.2f} with the encoder's q, "
          f"{refined_elbo:.2f} after 100 Adam steps on each image's own (mu, logvar): "
          f"{refined_elbo - encoder_elbo:.2f} nats")

    # the lecture's claim, measured: pathwise gradients have lower variance than REINFORCE
    xg = backend.to_device(test_x[:32], args.device)
    yg = None if test_labels is None else test_labels[:32]
    encoder = [p for name, p in model.named_parameters() if name.startswith(("encoder.", "to_latent."))]
    variances = {name: float(backend.to_numpy(gradient_samples(model, xg, name, 100, encoder, yg, args.seed)
                                              ).var(0).sum())
                 for name in ("reparameterised", "score_function")}
    print(f"encoder gradient variance (trace, 100 one-sample draws on 32 test images): reparameterised "
          f"{variances['reparameterised']:.3g}, score function {variances['score_function']:.3g} "
          f"({variances['score_function'] / variances['reparameterised']:.0f}x higher)")

    os.makedirs(args.out, exist_ok=True)
    plot_training(history, os.path.join(args.out, "training.png"), args)
    name = (f"{type(model).__name__} (beta {args.beta}, {final['active']} of {model.latent_dim} units active"
            f"{': POSTERIOR COLLAPSE' if final['active'] == 0 else ''})")
    if args.conditional:
        rows = [(f"class {k}", as_images(model.sample(10, y=k, generator=args.seed + k), side)) for k in range(10)]
        save_labelled_rows(rows, os.path.join(args.out, "samples.png"),
                           f"{name}: samples, one class per row (means of p(x|z,y), z ~ p(z))")
    else:
        save_panels([("test images (data)", as_images(test_x[:100], side)),
                     ("samples: means of p(x|z), z ~ p(z)", as_images(model.sample(100, generator=args.seed), side))],
                    os.path.join(args.out, "samples.png"), f"{name}: data (left) beside samples (right)")
    rows = []
    for block in range(3):
        idx = slice(10 * block, 10 * block + 10)
        xs = backend.to_device(test_x[idx], args.device)
        ys = None if test_labels is None else test_labels[idx]
        rows += [("data", as_images(test_x[idx], side)), ("reconstruction", as_images(model.reconstruct(xs, ys), side))]
    save_labelled_rows(rows, os.path.join(args.out, "reconstructions.png"),
                       f"{name}: test images and their reconstructions (mean of p(x | z = mu(x)))")
    mu, _ = model.encode(backend.to_device(test_x, args.device), test_labels)
    walk, col_labels, title = latent_rows(model, args, 3 if args.conditional else None, mu.numpy().var(0))
    save_labelled_rows([(n, as_images(im, side)) for n, im in walk], os.path.join(args.out, "latent_walk.png"),
                       f"{title}{' (class 3)' if args.conditional else ''}", col_labels)
    steps = 10
    pairs_a = backend.to_device(test_x[30:36], args.device)
    pairs_b = backend.to_device(test_x[36:42], args.device)
    path = model.interpolate(pairs_a, pairs_b, steps, None if test_labels is None else test_labels[30:36]).numpy()
    save_labelled_rows([(f"pair {i + 1}", as_images(path[i], side)) for i in range(len(path))],
                       os.path.join(args.out, "interpolations.png"),
                       "decoded means along z = (1 - t) mu(x_a) + t mu(x_b)", [f"t={t:.2f}" for t in np.linspace(0, 1, steps)])
    if args.conditional:
        z = model.prior().sample((8,), generator=args.seed + 100)
        rows = [(f"z #{i + 1}", as_images(model.generate(z[i:i + 1].data.repeat(10, axis=0), np.arange(10)), side))
                for i in range(8)]
        save_labelled_rows(rows, os.path.join(args.out, "style_content.png"),
                           "style vs content: one z per row (style), the class y per column (content)",
                           [f"y={k}" for k in range(10)])
    model.save(os.path.join(args.out, "model.npz"))
    print(f"wrote {os.path.join(args.out, 'model.npz')} ({type(model).__name__}.load(path) rebuilds the model)")


if __name__ == "__main__":
    main()
