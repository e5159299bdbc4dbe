"""The lecture's A, B, C, D Bayesian network, P(a, b, c, d) = P(a) P(b) P(c | a, b) P(d | c),
with tables and with Gaussian CPDs (lecture deck 000, "Quantitative specification").

    python examples/bayes_net.py                      # 100000 ancestral samples
    python examples/bayes_net.py --n-samples 1000000 --window 0.05

Discrete: the deck's conditional probability tables. The script prints a few ancestral samples,
then exact queries by variable elimination, without evidence and with observed ("shaded")
nodes, beside Monte Carlo estimates by rejection sampling (keep the ancestral samples that agree
with the evidence) with their standard errors and the number of samples kept; it then refits
the tables from the samples by maximum likelihood.

Gaussian: A ~ N(mu_a, S_a), B ~ N(mu_b, S_b), C ~ N(A + B, S_c), D ~ N(mu_d + C, S_d). Exact
means and variances come in closed form (the joint is Gaussian); rejection sampling with a
continuous observation keeps the samples within --window of it, so its estimates carry a small
bias besides their standard error.
"""
import numpy as np

from minigen import backend
from minigen.models import BayesianNetwork

from common import example_parser, parse_args, positive_float, positive_int

PARENTS = {"A": (), "B": (), "C": ("A", "B"), "D": ("C",)}
TABLES = {"A": [0.75, 0.25], "B": [0.33, 0.67],
          "C": [[[0.45, 0.55], [1.0, 0.0]],     # P(c | a0, b0), P(c | a0, b1)
                [[0.9, 0.1], [0.7, 0.3]]],      # P(c | a1, b0), P(c | a1, b1)
          "D": [[0.3, 0.7], [0.5, 0.5]]}        # P(d | c0), P(d | c1)
GAUSSIAN = {"A": ([], 1.0, 1.0), "B": ([], -0.5, 0.5), "C": ([1.0, 1.0], 0.0, 0.3),
            "D": ([1.0], 2.0, 0.2)}             # (weights on the parents, bias, variance)
DISCRETE_QUERIES = [("A", {}), ("C", {}), ("D", {}), ("A", {"D": 1}), ("C", {"D": 1}),
                    ("A", {"C": 1}), ("A", {"C": 1, "B": 1}), ("B", {"C": 0, "A": 0})]
GAUSSIAN_QUERIES = [("C", {}), ("D", {}), ("A", {"D": 3.0}), ("C", {"D": 3.0}), ("A", {"D": 3.0, "B": 0.0})]


def to_array(x, device):
    return backend.to_device(np.asarray(x, dtype=float), device)


def describe(evidence):
    return "P({} | " + ", ".join(f"{k}={v:g}" for k, v in evidence.items()) + ")" if evidence else "P({})"


def discrete_part(args):
    net = BayesianNetwork(PARENTS, {n: 2 for n in PARENTS})
    for node, table in TABLES.items():
        net.set_cpt(node, to_array(table, args.device))
    samples = backend.to_numpy(net.sample(args.n_samples, random_state=args.seed))
    print(f"Discrete network, nodes in topological order {net.nodes}; first ancestral samples:")
    print("   " + "  ".join(net.nodes))
    for row in samples[:5]:
        print("   " + "  ".join(str(v) for v in row))
    print(f"\n{'query':<22} {'value':>5} {'exact':>8} {'rejection sampling':>22} {'kept':>8}")
    for variable, evidence in DISCRETE_QUERIES:
        exact = backend.to_numpy(net.query([variable], evidence))
        keep = np.all([samples[:, net.nodes.index(k)] == v for k, v in evidence.items()], axis=0) \
            if evidence else np.ones(len(samples), dtype=bool)
        kept = samples[keep, net.nodes.index(variable)]
        for value in range(2):
            estimate = np.mean(kept == value)
            se = np.sqrt(estimate * (1 - estimate) / max(len(kept), 1))
            name = describe(evidence).format(f"{variable}={value}")
            print(f"{name:<22} {value:>5} {exact[value]:8.4f} {estimate:13.4f} +- {se:.4f} {len(kept):8d}")
    fitted = BayesianNetwork(PARENTS, net.cardinality).fit(to_array(samples, args.device))
    print(f"\nP(c1 | a, b) refitted from the {args.n_samples} samples (true: 0.55 0 0.1 0.3):",
          np.array2string(backend.to_numpy(fitted.cpts_["C"])[..., 1].ravel(), precision=4))


def gaussian_part(args):
    net = BayesianNetwork(PARENTS, {})
    for node, (weights, bias, variance) in GAUSSIAN.items():
        net.set_cpd(node, to_array(weights, args.device), bias, variance)
    samples = backend.to_numpy(net.sample(args.n_samples, random_state=args.seed + 1))
    print("\nLinear-Gaussian network: A ~ N(1, 1), B ~ N(-0.5, 0.5), C ~ N(A + B, 0.3), "
          "D ~ N(2 + C, 0.2)")
    print(f"rejection sampling keeps the samples within {args.window} of each continuous observation")
    print(f"\n{'query':<22} {'exact mean':>10} {'exact var':>10} {'sampled mean':>20} {'sampled var':>11} {'kept':>8}")
    for variable, evidence in GAUSSIAN_QUERIES:
        mean, cov = (backend.to_numpy(a) for a in net.query([variable], evidence))
        keep = np.all([np.abs(samples[:, net.nodes.index(k)] - v) < args.window for k, v in evidence.items()],
                      axis=0) if evidence else np.ones(len(samples), dtype=bool)
        kept = samples[keep, net.nodes.index(variable)]
        se = kept.std() / np.sqrt(max(len(kept), 1))
        print(f"{describe(evidence).format(variable):<22} {mean[0]:10.4f} {cov[0, 0]:10.4f} "
              f"{kept.mean():11.4f} +- {se:.4f} {kept.var():11.4f} {len(kept):8d}")


def main():
    parser = example_parser(__doc__, dataset=False)
    parser.add_argument("--n-samples", type=positive_int, default=100000, help="ancestral samples")
    parser.add_argument("--window", type=positive_float, default=0.1,
                        help="half-width of the acceptance window around a continuous observation")
    args = parse_args(parser, "bayes_net")
    discrete_part(args)
    gaussian_part(args)


if __name__ == "__main__":
    main()
