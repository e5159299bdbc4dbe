"""Mean-field variational inference by coordinate ascent (CAVI) on synthetic 2-D mixtures.

    python examples/cavi.py
    python examples/cavi.py --n-samples 3000 --n-clusters 4 --prior-std 8

1. Blei, Kucukelbir & McAuliffe (2017), section 3: data drawn from their model (cluster means
   mu_k ~ N(0, prior_std^2 I), unit-variance clusters), fitted by GaussianMixtureCAVI; prints
   the ELBO trace (it never decreases) and the fitted q(mu_k) beside the true means.
2. Bishop's variational Bayesian GMM (PRML 10.2): BayesianGaussianMixture with more components
   than clusters and a small Dirichlet concentration on elongated clusters; prints the weights,
   most of which the prior drives to zero, and the ELBO trace.
Writes cavi.png (data coloured by assignment, 2-standard-deviation ellipses of the fitted
components, and both ELBO traces per data point) when matplotlib is installed (the examples
extra: pip install -e ".[examples]"); without it the script says that the figure is skipped.
"""
import math
import os
import time

import numpy as np

from minigen import backend
from minigen.models import BayesianGaussianMixture, GaussianMixtureCAVI

from common import (example_parser, import_pyplot, nonnegative_float, parse_args, positive_float,
                    positive_int, save_figure)


def blei_data(rng, n_samples, n_clusters, prior_std):
    """Samples of Blei et al.'s model: returns X, the true means and the labels."""
    mu = rng.normal(size=(n_clusters, 2)) * prior_std
    labels = rng.integers(0, n_clusters, n_samples)
    return mu[labels] + rng.normal(size=(n_samples, 2)), mu, labels


def elongated_data(rng, n_samples):
    """Three anisotropic Gaussian clusters with weights 0.5, 0.3, 0.2."""
    means = np.array([[0.0, 0.0], [6.0, 3.0], [-2.0, 7.0]])
    factors = np.array([[[2.0, 0.0], [1.2, 0.5]], [[0.5, -0.6], [0.0, 1.0]], [[1.5, 1.0], [0.0, 0.4]]])
    labels = rng.choice(3, size=n_samples, p=[0.5, 0.3, 0.2])
    noise = np.einsum("nij,nj->ni", factors[labels], rng.normal(size=(n_samples, 2)))
    return means[labels] + noise


def print_trace(elbo):
    shown = ", ".join(f"{v:.4f}" for v in elbo[:4])
    print(f"   ELBO per point at the start and after sweeps 1-{min(3, len(elbo) - 1)}: {shown}; "
          f"after sweep {len(elbo) - 1}: {elbo[-1]:.6f}; smallest step "
          f"{np.diff(elbo).min() if len(elbo) > 1 else 0:.2e}")


def ellipse(mean, cov, n_std=2.0):
    """Points on the n_std contour of N(mean, cov)."""
    t = np.linspace(0, 2 * math.pi, 100)
    return mean + n_std * np.stack([np.cos(t), np.sin(t)], axis=1) @ np.linalg.cholesky(cov).T


def plot(panels, path):
    plt = import_pyplot(path)
    if plt is None:
        return
    fig, axes = plt.subplots(2, 2, figsize=(10, 8.5))
    for row, (title, X, labels, means, covariances, elbo, truth) in zip(axes, panels):
        ax = row[0]
        ax.scatter(X[:, 0], X[:, 1], c=labels, s=4, cmap="tab10", alpha=0.6)
        ax.set_xlabel("x_1")
        ax.set_ylabel("x_2")
        for m, c in zip(means, covariances):
            ax.plot(*ellipse(m, c).T, "k", linewidth=1.2)
            ax.plot(*m, "k+", markersize=10)
        if truth is not None:
            ax.plot(truth[:, 0], truth[:, 1], "rx", markersize=9, label="true means")
            ax.legend(loc="best")
        ax.set_title(title, fontsize=10)
        ax.set_aspect("equal", adjustable="datalim")
        row[1].plot(range(len(elbo)), elbo, marker=".")
        row[1].set_xscale("symlog")
        row[1].set_xlabel("CAVI sweep (0: the start; symlog scale)")
        row[1].set_ylabel("ELBO per data point (nats)")
        row[1].set_title("ELBO (never decreases)", fontsize=10)
    save_figure(fig, path)


def main():
    parser = example_parser(__doc__, dataset=False)
    parser.add_argument("--n-samples", type=positive_int, default=1000)
    parser.add_argument("--n-clusters", type=positive_int, default=5)
    parser.add_argument("--prior-std", type=positive_float, default=5.0, help="sigma of the prior on means")
    parser.add_argument("--n-components", type=positive_int, default=10,
                        help="components of the Bayesian GMM (more than its 3 clusters)")
    parser.add_argument("--weight-concentration", type=positive_float, default=1e-2,
                        help="Dirichlet alpha_0 of the Bayesian GMM")
    parser.add_argument("--epochs", "--max-iter", dest="max_iter", type=positive_int, default=500,
                        help="maximum CAVI sweeps")
    parser.add_argument("--tol", type=nonnegative_float, default=1e-8,
                        help="stop when the ELBO per data point changes by at most this")
    args = parse_args(parser, "cavi")
    rng = np.random.default_rng(args.seed)

    X, mu, _ = blei_data(rng, args.n_samples, args.n_clusters, args.prior_std)
    start = time.perf_counter()
    cavi = GaussianMixtureCAVI(args.n_clusters, prior_std=args.prior_std, max_iter=args.max_iter,
                               tol=args.tol, random_state=args.seed)
    cavi.fit(backend.to_device(X, args.device))
    print(f"1. GaussianMixtureCAVI, {args.n_samples} points, K={args.n_clusters}: {cavi.n_iter_} "
          f"sweeps in {time.perf_counter() - start:.2f}s, converged={cavi.converged_}")
    elbo = np.array(cavi.elbo_history_)
    print_trace(elbo)
    m, s2 = backend.to_numpy(cavi.m_), backend.to_numpy(cavi.s2_)
    for k in range(args.n_clusters):
        nearest = mu[np.argmin(((mu - m[k]) ** 2).sum(axis=1))]
        print(f"   q(mu_{k}) = N([{m[k, 0]:6.2f}, {m[k, 1]:6.2f}], {s2[k]:.4f} I)   "
              f"nearest true mean [{nearest[0]:6.2f}, {nearest[1]:6.2f}]")
    phi = backend.to_numpy(cavi.phi_)
    panels = [("Blei et al. CAVI: black + = E_q[mu_k], red x = true means,\n2-sd circles of N(E_q[mu_k], I); colour: argmax phi", X, phi.argmax(axis=1), m,
               [np.eye(2)] * len(m), elbo, mu)]

    Y = elongated_data(rng, args.n_samples)
    start = time.perf_counter()
    bgmm = BayesianGaussianMixture(args.n_components,
                                   weight_concentration_prior=args.weight_concentration,
                                   max_iter=args.max_iter, tol=args.tol, random_state=args.seed)
    bgmm.fit(backend.to_device(Y, args.device))
    weights = backend.to_numpy(bgmm.weights_)
    active = weights > 0.01
    print(f"2. BayesianGaussianMixture, K={args.n_components}, alpha_0={args.weight_concentration}: "
          f"{bgmm.n_iter_} sweeps in {time.perf_counter() - start:.2f}s, converged={bgmm.converged_}")
    print_trace(np.array(bgmm.elbo_history_))
    print(f"   weights: {np.array2string(np.sort(weights)[::-1], precision=3)}")
    print(f"   effective components (weight > 0.01): {active.sum()} (true: 3)")
    panels.append((f"Bayesian GMM, K={args.n_components}, alpha_0={args.weight_concentration}:\n"
                   f"2-sd ellipses of the {active.sum()} components with E[pi_k] > 0.01", Y,
                   backend.to_numpy(bgmm.predict(Y)), backend.to_numpy(bgmm.means_)[active],
                   backend.to_numpy(bgmm.covariances_)[active],
                   np.array(bgmm.elbo_history_), None))
    plot(panels, os.path.join(args.out, "cavi.png"))


if __name__ == "__main__":
    main()
