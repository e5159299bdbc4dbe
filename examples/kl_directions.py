"""Reverse vs forward KL: a mean-field Gaussian fitted to a correlated 2-D Gaussian both ways.

Deck 003: variational inference minimises KL(q || p), which is "zero forcing": q must vanish where
p does, so a factorised q squeezes inside the correlated target and underestimates its variances
(1 / Lambda_ii <= Sigma_ii). Minimising KL(p || q) instead is "mass covering": q matches the
marginal variances Sigma_ii and spills outside the target. Both fits run by gradient descent on
minigen tensors (``minigen.models.kl_directions.fit_mean_field_gaussian``) and are printed beside
their closed forms (Bishop, PRML Sec. 10.1.2, Fig. 10.2).

Writes to --out (default out/kl_directions): kl_directions.png, the target's density with the
2-sigma ellipses of both fits, and the KL during the fit.
"""
import numpy as np

from minigen.models.kl_directions import fit_mean_field_gaussian

from common import (example_parser, import_pyplot, parse_args, positive_float, positive_int,
                    save_figure)


def ellipse(mean, cov, radius=2.0, n=200):
    """Points of the radius-sigma ellipse of N(mean, cov)."""
    t = np.linspace(0, 2 * np.pi, n)
    return mean[:, None] + radius * np.linalg.cholesky(cov) @ np.stack([np.cos(t), np.sin(t)])


def main():
    parser = example_parser(__doc__, dataset=False)
    parser.add_argument("--correlation", type=float, default=0.9, help="rho of the target, in (-1, 1)")
    parser.add_argument("--steps", type=positive_int, default=2000)
    parser.add_argument("--lr", type=positive_float, default=0.05)
    args = parse_args(parser, "kl_directions")
    if not -1 < args.correlation < 1:
        parser.error(f"--correlation must lie in (-1, 1), got {args.correlation}")
    mean = np.array([1.0, 0.5])
    sd = np.array([1.0, 1.6])
    cov = np.array([[1.0, args.correlation], [args.correlation, 1.0]]) * np.outer(sd, sd)
    fits = {d: fit_mean_field_gaussian(mean, cov, d, n_steps=args.steps, lr=args.lr)
            for d in ("reverse", "forward")}
    closed = {"reverse": 1 / np.diag(np.linalg.inv(cov)), "forward": np.diag(cov)}
    print(f"target N(mu, Sigma): mu = {mean}, Sigma_11 = {cov[0, 0]:.3f}, Sigma_22 = {cov[1, 1]:.3f}, "
          f"rho = {args.correlation}")
    print(f"{'fit':<18}{'mean':>20}{'variances':>22}{'closed form':>22}{'final KL':>10}")
    for d, (m, s, history) in fits.items():
        name = "KL(q || p)" if d == "reverse" else "KL(p || q)"
        print(f"{name:<18}{np.array2string(m, precision=3):>20}{np.array2string(s, precision=4):>22}"
              f"{np.array2string(closed[d], precision=4):>22}{history[-1]:>10.4f}")

    plt = import_pyplot(args.out)
    if plt is None:
        return
    fig, (ax, ax_kl) = plt.subplots(1, 2, figsize=(12, 5.2), gridspec_kw={"width_ratios": [1.2, 1]})
    g = np.linspace(-4.5, 6.5, 300)
    X, Y = np.meshgrid(g, g)
    diff = np.stack([X - mean[0], Y - mean[1]], axis=-1)
    density = np.exp(-0.5 * np.einsum("...i,ij,...j", diff, np.linalg.inv(cov), diff))
    density /= 2 * np.pi * np.sqrt(np.linalg.det(cov))
    image = ax.imshow(density, origin="lower", extent=(g[0], g[-1], g[0], g[-1]), cmap="Greys")
    fig.colorbar(image, ax=ax, label="target density p(z)")
    ax.plot(*ellipse(mean, cov), "k-", lw=1.5, label="target p, 2 sigma")
    styles = {"reverse": ("tab:red", "q minimising KL(q || p): too narrow"),
              "forward": ("tab:blue", "q minimising KL(p || q): marginals matched")}
    for d, (m, s, _) in fits.items():
        ax.plot(*ellipse(m, np.diag(s)), color=styles[d][0], lw=2, label=styles[d][1])
    ax.set_xlabel("z_1"), ax.set_ylabel("z_2"), ax.set_aspect("equal")
    ax.set_title(f"Mean-field Gaussian fits to a correlated Gaussian (rho = {args.correlation})")
    ax.legend(loc="upper left", fontsize=8)
    for d, (_, _, history) in fits.items():
        ax_kl.semilogx(np.arange(1, len(history) + 1), history, color=styles[d][0], label="KL(q || p)" if d == "reverse" else "KL(p || q)")
    ax_kl.set_xlabel("gradient step (Adam, log scale)"), ax_kl.set_ylabel("KL (nats)")
    ax_kl.set_title("The divergence during the fit"), ax_kl.legend()
    save_figure(fig, f"{args.out}/kl_directions.png")


if __name__ == "__main__":
    main()
