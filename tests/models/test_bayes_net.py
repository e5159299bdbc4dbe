"""BayesianNetwork: the factorisation normalises, sampling, fitting and exact inference agree with
brute-force enumeration of the joint, and linear-Gaussian networks with their closed form."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import minigen
from minigen import backend
from devices import on_device, to_host
from minigen.models import BayesianNetwork
from minigen.validation import NotFittedError

LECTURE_PARENTS = {"A": (), "B": (), "C": ("A", "B"), "D": ("C",)}
LECTURE_CPTS = {"A": [0.75, 0.25], "B": [0.33, 0.67],
                "C": [[[0.45, 0.55], [1.0, 0.0]], [[0.9, 0.1], [0.7, 0.3]]],
                "D": [[0.3, 0.7], [0.5, 0.5]]}


def lecture_network():
    """The deck's A, B, C, D network with its tables (c1 given a0 b1 has probability zero)."""
    net = BayesianNetwork(LECTURE_PARENTS, {n: 2 for n in LECTURE_PARENTS})
    for node, table in LECTURE_CPTS.items():
        net.set_cpt(node, on_device(table))
    return net


def random_network(seed, n_nodes=None, max_parents=2, concentration=1.0):
    """A random DAG (node i's parents among nodes < i, listed in shuffled order so that the
    topological sort has work to do), cardinalities 2-3, CPT rows drawn from a Dirichlet."""
    rng = np.random.default_rng(seed)
    n_nodes = n_nodes or int(rng.integers(2, 6))
    names = [f"X{i}" for i in range(n_nodes)]
    parents = {}
    for i, name in enumerate(names):
        k = int(rng.integers(0, min(i, max_parents) + 1))
        parents[name] = tuple(names[j] for j in rng.choice(i, size=k, replace=False)) if k else ()
    cardinality = {name: int(rng.integers(2, 4)) for name in names}
    order = rng.permutation(n_nodes)
    net = BayesianNetwork({names[i]: parents[names[i]] for i in order}, cardinality)
    for name in names:
        shape = tuple(cardinality[p] for p in parents[name])
        table = rng.dirichlet(np.full(cardinality[name], concentration), size=shape)
        net.set_cpt(name, on_device(table.reshape(shape + (cardinality[name],))))
    return net


def all_assignments(net):
    return np.array(list(itertools.product(*(range(net.cardinality[n]) for n in net.nodes))))


def test_nodes_are_a_topological_order():
    net = random_network(3, n_nodes=6)
    position = {n: i for i, n in enumerate(net.nodes)}
    assert sorted(net.nodes) == sorted(net.parents)
    assert all(position[p] < position[n] for n in net.nodes for p in net.parents[n])


@given(seed=st.integers(0, 2 ** 16))
def test_log_prob_sums_to_one_and_equals_the_joint(seed):
    net = random_network(seed)
    X = all_assignments(net)
    p = np.exp(to_host(net.log_prob(on_device(X))))
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(to_host(net.joint()).ravel(), p, rtol=1e-12, atol=1e-300)
    # a dict of columns is the same data
    columns = {n: on_device(X[:, i]) for i, n in enumerate(net.nodes)}
    np.testing.assert_allclose(to_host(net.log_prob(columns)), np.log(p), rtol=1e-12)


def test_lecture_network_joint_is_the_product_of_its_tables():
    net = lecture_network()
    J = to_host(net.joint())
    a, b, c, d = 1, 0, 1, 0
    expected = 0.25 * 0.33 * 0.1 * 0.5  # P(a1) P(b0) P(c1 | a1, b0) P(d0 | c1)
    assert J[a, b, c, d] == pytest.approx(expected)
    assert J[0, 1, 1].sum() == 0  # P(c1 | a0, b1) = 0
    assert np.isneginf(to_host(net.log_prob(on_device([[0, 1, 1, 0]])))[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ancestral_samples_match_the_joint(seed):
    net = random_network(seed, n_nodes=4, concentration=3.0)
    n = 20000
    X = to_host(net.sample(n, random_state=seed))
    assert X.dtype == np.int64 and X.shape == (n, 4)
    shape = tuple(net.cardinality[v] for v in net.nodes)
    observed = np.bincount(np.ravel_multi_index(X.T, shape), minlength=int(np.prod(shape)))
    expected = n * to_host(net.joint()).ravel()
    small = expected < 5  # pool the cells too small for the chi-square approximation
    observed = np.append(observed[~small], observed[small].sum())
    expected = np.append(expected[~small], expected[small].sum())
    keep = expected > 0
    assert stats.chisquare(observed[keep], expected[keep]).pvalue > 1e-3


def brute_force(joint, nodes, variables, evidence):
    """P(variables | evidence) by slicing the joint at the evidence and summing the rest out."""
    index = tuple(evidence.get(n, slice(None)) for n in nodes)
    kept = [n for n in nodes if n not in evidence]
    table = joint[index]
    table = table.sum(axis=tuple(i for i, n in enumerate(kept) if n not in variables))
    table = np.transpose(table, [sorted(variables, key=kept.index).index(v) for v in variables])
    return table / table.sum()


@settings(max_examples=25)
@given(seed=st.integers(0, 2 ** 16), data=st.data())
def test_query_equals_brute_force_conditioning_of_the_joint(seed, data):
    net = random_network(seed, n_nodes=data.draw(st.integers(2, 6)))
    nodes = net.nodes
    shuffled = data.draw(st.permutations(nodes))
    n_query = data.draw(st.integers(1, len(nodes)))
    n_evidence = data.draw(st.integers(0, len(nodes) - n_query))
    variables = list(shuffled[:n_query])
    evidence = {n: data.draw(st.integers(0, net.cardinality[n] - 1))
                for n in shuffled[n_query:n_query + n_evidence]}
    expected = brute_force(to_host(net.joint()), nodes, variables, evidence)
    np.testing.assert_allclose(to_host(net.query(variables, evidence)), expected, rtol=1e-10, atol=1e-14)


def test_lecture_queries_with_and_without_evidence():
    net = lecture_network()
    J = to_host(net.joint())
    np.testing.assert_allclose(to_host(net.query("C")), J.sum(axis=(0, 1, 3)))
    # explaining away: observing C = 1 makes A and B dependent
    posterior = to_host(net.query(["A", "B"], {"C": 1}))
    np.testing.assert_allclose(posterior, J[:, :, 1].sum(axis=-1) / J[:, :, 1].sum())
    assert posterior[1, 1] / posterior[1].sum() != pytest.approx(posterior[:, 1].sum())
    with pytest.raises(ValueError, match="probability zero"):
        BayesianNetwork({"A": (), "B": ("A",)}, {"A": 2, "B": 2}).set_cpt("A", [1.0, 0.0]) \
            .set_cpt("B", [[0.5, 0.5], [0.5, 0.5]]).query("B", {"A": 1})


@pytest.mark.parametrize("seed", [4, 5])
def test_fit_recovers_the_cpts_within_sampling_error(seed):
    net = random_network(seed, n_nodes=4, concentration=2.0)
    n = 20000
    X = net.sample(n, random_state=seed)
    fitted = BayesianNetwork(net.parents, net.cardinality).fit(X)
    X = to_host(X)
    for node in net.nodes:
        p, p_hat = to_host(net.cpts_[node]), to_host(fitted.cpts_[node])
        # the number of samples behind each row: the count of its parent configuration
        family = [net.nodes.index(q) for q in net.parents[node]]
        rows = np.zeros(p.shape[:-1])
        np.add.at(rows, tuple(X[:, family].T), 1)
        se = np.sqrt(p * (1 - p) / np.maximum(rows, 1)[..., None])
        assert np.all(np.abs(p_hat - p) <= 5 * se + 1e-12), node


def test_fit_counts_with_add_alpha_smoothing_by_hand():
    net = BayesianNetwork({"A": (), "B": ("A",)}, {"A": 2, "B": 3})
    X = on_device([[0, 0], [0, 2], [0, 2], [1, 1]])
    net.fit(X, alpha=1.0)
    np.testing.assert_allclose(to_host(net.cpts_["A"]), [4 / 6, 2 / 6])
    np.testing.assert_allclose(to_host(net.cpts_["B"]), [[2 / 6, 1 / 6, 3 / 6], [1 / 4, 2 / 4, 1 / 4]])
    net.fit({"A": on_device([0, 0]), "B": on_device([1, 1])})  # A = 1 never seen: a uniform row
    np.testing.assert_allclose(to_host(net.cpts_["B"]), [[0, 1, 0], [1 / 3, 1 / 3, 1 / 3]])


def gaussian_lecture_network(mu_a=1.0, mu_b=-2.0, var_a=1.0, var_b=0.5, var_c=0.3, mu_d=0.7, var_d=0.2):
    """A ~ N(mu_a, Sa), B ~ N(mu_b, Sb), C ~ N(A + B, Sc), D ~ N(mu_d + C, Sd) (deck 000)."""
    net = BayesianNetwork(LECTURE_PARENTS, {})
    net.set_cpd("A", on_device(np.zeros(0)), mu_a, var_a).set_cpd("B", on_device(np.zeros(0)), mu_b, var_b)
    net.set_cpd("C", on_device([1.0, 1.0]), 0.0, var_c).set_cpd("D", on_device([1.0]), mu_d, var_d)
    return net


def test_linear_gaussian_closed_form_matches_samples_and_the_matrix_formula():
    net = gaussian_lecture_network()
    mean, cov = (to_host(a) for a in net.query(["A", "B", "C", "D"]))
    # independent closed form: x = (I - W)^-1 (b + e), e ~ N(0, diag(v))
    W = np.zeros((4, 4))
    W[2, 0] = W[2, 1] = W[3, 2] = 1.0
    M = np.linalg.inv(np.eye(4) - W)
    b, v = np.array([1.0, -2.0, 0.0, 0.7]), np.array([1.0, 0.5, 0.3, 0.2])
    np.testing.assert_allclose(mean, M @ b, rtol=1e-12)
    np.testing.assert_allclose(cov, M @ np.diag(v) @ M.T, rtol=1e-12)
    n = 100000
    X = to_host(net.sample(n, random_state=0))
    se_mean = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(X.mean(axis=0) - mean) < 5 * se_mean)
    se_cov = np.sqrt((cov ** 2 + np.outer(np.diag(cov), np.diag(cov))) / n)  # Wishart variance
    assert np.all(np.abs(np.cov(X.T) - cov) < 5 * se_cov)
    # conditioning on the shaded D, against the Gaussian conditional computed here
    q_mean, q_cov = (to_host(a) for a in net.query(["A", "C"], {"D": 1.5}))
    S_qe, S_ee = cov[[0, 2], 3], cov[3, 3]
    np.testing.assert_allclose(q_mean, mean[[0, 2]] + S_qe / S_ee * (1.5 - mean[3]), rtol=1e-12)
    np.testing.assert_allclose(q_cov, cov[np.ix_([0, 2], [0, 2])] - np.outer(S_qe, S_qe) / S_ee, rtol=1e-12)
    # the density is that multivariate normal
    np.testing.assert_allclose(to_host(net.log_prob(on_device(X[:5]))),
                               stats.multivariate_normal(mean, cov).logpdf(X[:5]), rtol=1e-10)


def test_conditional_linear_gaussian_log_prob_sampling_and_fit():
    # S discrete, Y continuous root, Z | S, Y ~ N(bias[S] + w[S] Y, var[S])
    net = BayesianNetwork({"S": (), "Y": (), "Z": ("S", "Y")}, {"S": 2})
    net.set_cpt("S", on_device([0.3, 0.7])).set_cpd("Y", on_device(np.zeros(0)), 0.5, 2.0)
    net.set_cpd("Z", on_device([[2.0], [-1.0]]), on_device([0.0, 3.0]), on_device([0.5, 1.5]))
    X = np.array([[0, 0.2, 1.0], [1, -1.0, 2.5]])
    expected = (np.log([0.3, 0.7]) + stats.norm(0.5, np.sqrt(2)).logpdf(X[:, 1])
                + stats.norm([0.4, 4.0], np.sqrt([0.5, 1.5])).logpdf(X[:, 2]))
    np.testing.assert_allclose(to_host(net.log_prob(on_device(X))), expected, rtol=1e-12)
    samples = net.sample(40000, random_state=1)
    fitted = BayesianNetwork(net.parents, net.cardinality).fit(samples)
    np.testing.assert_allclose(to_host(fitted.cpds_["Z"]["weights"]), [[2.0], [-1.0]], atol=0.03)
    np.testing.assert_allclose(to_host(fitted.cpds_["Z"]["bias"]), [0.0, 3.0], atol=0.05)
    np.testing.assert_allclose(to_host(fitted.cpds_["Z"]["variance"]), [0.5, 1.5], rtol=0.05)
    np.testing.assert_allclose(to_host(fitted.cpts_["S"]), [0.3, 0.7], atol=0.015)
    assert fitted.score(samples) == pytest.approx(float(to_host(fitted.score_samples(samples)).mean()))


@pytest.mark.parametrize("net", ["discrete", "gaussian", "fitted gaussian"])
def test_state_dict_round_trip(net, tmp_path):
    net = {"discrete": lambda: random_network(7, n_nodes=4), "gaussian": gaussian_lecture_network,
           "fitted gaussian": lambda: BayesianNetwork(LECTURE_PARENTS, {}).fit(
               gaussian_lecture_network().sample(100, random_state=0))}[net]()
    path = minigen.save(net.state_dict(), tmp_path / "net.npz")
    loaded = BayesianNetwork({"only": ()}, {}).load_state_dict(minigen.load(path),
                                                              device=backend.default_device())
    assert loaded.nodes == net.nodes and repr(loaded) == repr(net)
    X = net.sample(50, random_state=3)
    np.testing.assert_array_equal(to_host(loaded.score_samples(X)), to_host(net.score_samples(X)))
    np.testing.assert_array_equal(to_host(loaded.sample(20, random_state=9)),
                                  to_host(net.sample(20, random_state=9)))


def _joint_too_large():
    return BayesianNetwork({f"X{i}": () for i in range(23)}, {f"X{i}": 2 for i in range(23)}).joint()


def _discrete():
    return BayesianNetwork({"A": (), "B": ("A",)}, {"A": 2, "B": 3})


@pytest.mark.parametrize("make, error, match", [
    (lambda: BayesianNetwork({"A": ("C",), "B": ("A",), "C": ("B",), "D": ()}, {}), ValueError,
     "cycle through the nodes 'A' -> 'B' -> 'C' -> 'A'"),
    (lambda: BayesianNetwork({"A": ("A",)}, {}), ValueError, "cycle through the nodes 'A' -> 'A'"),
    (lambda: BayesianNetwork({"A": (), "B": ("A", "Q")}, {}), ValueError, "node 'B' has an unknown parent 'Q'"),
    (lambda: BayesianNetwork({"A": (), "B": ("A",)}, {"B": 2}), ValueError,
     "discrete node 'B' has continuous parent.* 'A'"),
    (lambda: BayesianNetwork({"A": ()}, {"Z": 2}), ValueError, "cardinality names an unknown node 'Z'"),
    (lambda: BayesianNetwork({"A": ()}, {"A": 0}), ValueError, r"cardinality\['A'\] must be >= 1"),
    (lambda: BayesianNetwork([("A", ())], {}), TypeError, "parents must be a dict"),
    (lambda: _discrete().set_cpt("B", [[0.2, 0.3, 0.5], [0.2, 0.3, 0.6]]), ValueError,
     r"CPT of 'B' must sum to one; the row at parent values \(1,\) sums to 1.1"),
    (lambda: _discrete().set_cpt("B", [0.2, 0.3, 0.5]), ValueError,
     r"CPT of 'B' must have shape \(2, 3\).*got \(3,\)"),
    (lambda: _discrete().set_cpt("A", [1.5, -0.5]), ValueError, "CPT of 'A' must hold finite non-negative"),
    (lambda: _discrete().set_cpt("Q", [0.5, 0.5]), ValueError, "unknown node 'Q'"),
    (lambda: BayesianNetwork({"A": ()}, {}).set_cpt("A", [1.0]), ValueError, "node 'A' is continuous; use set_cpd"),
    (lambda: BayesianNetwork({"A": (), "B": ("A",)}, {}).set_cpd("B", [1.0, 2.0], 0.0, 1.0), ValueError,
     r"weights of 'B' must have shape \(1,\), got \(2,\)"),
    (lambda: BayesianNetwork({"A": ()}, {}).set_cpd("A", np.zeros(0), 0.0, 0.0), ValueError,
     "variance of 'A' must be > 0"),
    (lambda: _discrete().log_prob([[0, 0]]), NotFittedError, "no CPT/CPD for 'A', 'B'"),
    (lambda: _discrete().fit([[0, 3]]), ValueError, r"data\['B'\] must hold integers in \[0, 3\)"),
    (lambda: _discrete().fit([[0, 1, 1]]), ValueError, r"data must have shape \(n_samples, 2\)"),
    (lambda: _discrete().fit({"A": [0]}), ValueError, r"missing \['B'\]"),
    (lambda: _discrete().fit([[0, 1]], alpha=-1.0), ValueError, "alpha must be >= 0"),
    (_joint_too_large, ValueError, r"joint\(\) would have 8388608 entries.*more than 2\^22"),
    (lambda: lecture_network().query(["A"], {"A": 1}), ValueError, r"\['A'\] are both queried and observed"),
    (lambda: lecture_network().query(["E"]), ValueError, "unknown node 'E' in query"),
    (lambda: lecture_network().query(["A"], {"C": 2}), ValueError, r"evidence\['C'\] must be an integer in \[0, 2\)"),
    (lambda: BayesianNetwork({"A": (), "B": ()}, {"A": 2}).set_cpt("A", [0.5, 0.5])
     .set_cpd("B", np.zeros(0), 0.0, 1.0).query("A"), ValueError, "mixes discrete"),
    (lambda: lecture_network().sample(0), ValueError, "n_samples must be >= 1"),
])
def test_bad_input_is_rejected_with_a_clear_message(make, error, match):
    with pytest.raises(error, match=match):
        make()
