"""IsingModel: exact enumeration, mean field's lower bound and its monotone coordinate ascent,
its fixed point, Gibbs against enumeration, and loopy BP exact on trees."""
import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import minigen
from minigen import backend
from devices import on_device, to_host
from minigen.models import IsingModel
from minigen.models.estimator import ConvergenceWarning


def random_grid(seed, height, width, scale=1.0):
    """A grid with random couplings of both signs and random fields."""
    rng = np.random.default_rng(seed)
    J = to_host(IsingModel.grid(height, width, 1.0).J) * rng.normal(0, scale, (height * width,) * 2)
    J = np.triu(J, 1)
    return IsingModel(on_device(J + J.T), on_device(rng.normal(0, scale, height * width)))


def brute_force_log_partition(model):
    J, h = to_host(model.J), to_host(model.h)
    n = len(h)
    terms = [sum(J[i, j] * s[i] * s[j] for i in range(n) for j in range(i + 1, n)) + np.dot(h, s)
             for s in itertools.product([-1, 1], repeat=n)]
    return np.logaddexp.reduce(terms)


def test_grid_couplings_energy_and_log_partition_by_brute_force():
    model = IsingModel.grid(2, 3, coupling=0.7, field=on_device([[0.1, -0.2, 0.3], [0.0, 0.5, -0.4]]))
    J = to_host(model.J)
    assert J.sum() == pytest.approx(2 * 7 * 0.7)  # 7 edges of a 2 x 3 lattice
    assert J[0, 1] == J[0, 3] == 0.7 and J[0, 4] == 0 and J[2, 3] == 0
    s = np.array([1, -1, -1, 1, 1, -1.0])
    expected = -sum(J[i, j] * s[i] * s[j] for i in range(6) for j in range(i + 1, 6)) - to_host(model.h) @ s
    assert float(model.energy(on_device(s))) == pytest.approx(expected)
    assert model.log_partition() == pytest.approx(brute_force_log_partition(model), rel=1e-12)


def test_exact_log_prob_normalises_and_exact_samples_match_it():
    model = random_grid(0, 1, 3)
    states = np.array(list(itertools.product([-1.0, 1.0], repeat=3)))
    p = np.exp(to_host(model.score_samples(on_device(states))))
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    s = to_host(model.sample(20000, random_state=0))
    observed = np.bincount(((s + 1) / 2).astype(int) @ np.array([4, 2, 1]), minlength=8)
    assert stats.chisquare(observed, 20000 * p).pvalue > 1e-3


@settings(max_examples=10)
@given(seed=st.integers(0, 2 ** 16), size=st.sampled_from([(3, 3), (4, 4)]),
       scale=st.floats(0.1, 1.5), damping=st.sampled_from([0.0, 0.5]))
def test_mean_field_elbo_is_a_lower_bound_and_never_decreases(seed, size, scale, damping):
    model = random_grid(seed, *size, scale=scale)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a slow damped run still must ascend
        result = model.mean_field(max_iter=50, tol=1e-12, damping=damping,
                                  init=on_device(np.random.default_rng(seed).uniform(-1, 1, size[0] * size[1])))
    history = np.array(result.elbo_history)
    assert np.all(np.diff(history) >= -1e-12 * np.abs(history[1:]).max())
    assert result.elbo == history[-1] <= model.log_partition() + 1e-12
    assert result.elbo == pytest.approx(model.mean_field_elbo(result.magnetisation))


def test_mean_field_elbo_equals_a_direct_kl_computation():
    # ELBO(m) = E_q[-E(s)] + H(q) = log Z - KL(q || p), with q the product of independent spins
    model = random_grid(1, 2, 2)
    m = np.array([0.3, -0.6, 0.9, 0.0])
    states = np.array(list(itertools.product([-1.0, 1.0], repeat=4)))
    q = np.prod((1 + states * m) / 2, axis=1)
    log_p = to_host(model.score_samples(on_device(states)))
    kl = np.sum(q * (np.log(q) - log_p))
    assert model.mean_field_elbo(on_device(m)) == pytest.approx(model.log_partition() - kl, rel=1e-12)


@pytest.mark.parametrize("coupling, field", [(0.3, 0.1), (0.8, 0.0), (-0.5, 0.4)])
def test_mean_field_fixed_point(coupling, field):
    model = IsingModel.grid(4, 4, coupling, field)
    init = on_device(np.linspace(-0.9, 0.9, 16))
    result = model.mean_field(max_iter=2000, tol=1e-14, init=init)
    assert result.converged
    m, J, h = to_host(result.magnetisation), to_host(model.J), to_host(model.h)
    np.testing.assert_allclose(m, np.tanh(h + J @ m), atol=1e-6)


def test_gibbs_magnetisations_match_enumeration_within_monte_carlo_error():
    model = random_grid(2, 3, 3, scale=0.6)
    n = 3000
    s = to_host(model.gibbs_sample(n, n_sweeps=40, random_state=0))
    exact = to_host(model.exact_magnetisation())
    standard_error = np.sqrt((1 - exact ** 2) / n)  # independent chains: Var(s_i) = 1 - m_i^2
    assert np.all(np.abs(s.mean(axis=0) - exact) < 4.5 * standard_error + 1e-3)
    assert set(np.unique(s)) == {-1.0, 1.0}


def random_tree(seed, n):
    rng = np.random.default_rng(seed)
    J = np.zeros((n, n))
    for i in range(1, n):  # each node hangs from a random earlier one
        j = int(rng.integers(0, i))
        J[i, j] = J[j, i] = rng.normal(0, 1.0)
    return IsingModel(on_device(J), on_device(rng.normal(0, 1.0, n)))


@pytest.mark.parametrize("make", [
    lambda: IsingModel.grid(1, 10, 0.9, 0.2),                     # a chain
    lambda: IsingModel(on_device(np.diag([1.3, -0.7, 2.0, 0.4], 1) + np.diag([1.3, -0.7, 2.0, 0.4], -1)),
                       on_device([0.5, -1.0, 0.0, 0.3, 0.2])),    # a chain with mixed couplings
    lambda: random_tree(0, 9), lambda: random_tree(1, 12)])
def test_loopy_bp_is_exact_on_trees(make):
    model = make()
    result = model.loopy_bp(max_iter=100, tol=1e-13)
    assert result.converged
    np.testing.assert_allclose(to_host(result.magnetisation), to_host(model.exact_magnetisation()), atol=1e-10)
    assert result.log_partition == pytest.approx(model.log_partition(), abs=1e-10)


def test_loopy_bp_on_a_loopy_grid_is_close_but_not_exact():
    model = IsingModel.grid(3, 3, 0.3, 0.1)
    result = model.loopy_bp()
    exact = to_host(model.exact_magnetisation())
    assert np.abs(to_host(result.magnetisation) - exact).max() < 0.1
    assert result.log_partition != pytest.approx(model.log_partition(), abs=1e-6)
    with pytest.warns(ConvergenceWarning, match="loopy_bp did not converge in max_iter=2"):
        model.loopy_bp(max_iter=2)


def test_state_dict_round_trip(tmp_path):
    model = random_grid(3, 2, 3)
    loaded = IsingModel(np.zeros((1, 1)), np.zeros(1)).load_state_dict(
        minigen.load(minigen.save(model.state_dict(), tmp_path / "ising.npz")),
        device=backend.default_device())
    np.testing.assert_array_equal(to_host(loaded.J), to_host(model.J))
    s = model.sample(10, random_state=0)
    np.testing.assert_array_equal(to_host(loaded.score_samples(s)), to_host(model.score_samples(s)))
    np.testing.assert_array_equal(to_host(loaded.sample(10, random_state=0)), to_host(s))
    np.testing.assert_array_equal(to_host(loaded.gibbs_sample(4, 3, random_state=1)),
                                  to_host(model.gibbs_sample(4, 3, random_state=1)))


@pytest.mark.parametrize("make, error, match", [
    (lambda: IsingModel(np.array([[0, 1.0], [0.5, 0]]), np.zeros(2)), ValueError, "J must be symmetric"),
    (lambda: IsingModel(np.eye(2), np.zeros(2)), ValueError, "J must have a zero diagonal"),
    (lambda: IsingModel(np.zeros((2, 3)), np.zeros(2)), ValueError, r"J must be a square \(n, n\) matrix"),
    (lambda: IsingModel(np.zeros((2, 2)), np.zeros(3)), ValueError, r"h must have shape \(2,\)"),
    (lambda: IsingModel(np.zeros((2, 2)), np.array([0.0, np.nan])), ValueError, "finite"),
    (lambda: IsingModel.grid(3, 7, 0.1).log_partition(), ValueError,
     r"log_partition\(\) enumerates 2\^n states and allows n <= 20 spins, this model has 21"),
    (lambda: IsingModel.grid(3, 7, 0.1).sample(2), ValueError, "allows n <= 20 spins"),
    (lambda: IsingModel.grid(0, 3, 0.1), ValueError, "height must be >= 1"),
    (lambda: IsingModel.grid(2, 2, 0.1, field=np.zeros(3)), ValueError, r"field must be a number or have shape \(2, 2\)"),
    (lambda: IsingModel.grid(2, 2, 0.1).energy(np.array([1.0, 0.0, 1.0, 1.0])), ValueError, "spins -1 or \\+1"),
    (lambda: IsingModel.grid(2, 2, 0.1).energy(np.ones(3)), ValueError, r"s must have shape \(n_spins,\)"),
    (lambda: IsingModel.grid(2, 2, 0.1).mean_field(damping=1.0), ValueError, r"damping must be in \[0, 1\)"),
    (lambda: IsingModel.grid(2, 2, 0.1).mean_field(init=np.full(4, 2.0)), ValueError, "init must have shape"),
    (lambda: IsingModel.grid(2, 2, 0.1).mean_field(max_iter=0), ValueError, "max_iter must be >= 1"),
    (lambda: IsingModel.grid(2, 2, 0.1).loopy_bp(tol=-1.0), ValueError, "tol must be >= 0"),
    (lambda: IsingModel.grid(2, 2, 0.1).gibbs_sample(2, n_sweeps=0), ValueError, "n_sweeps must be >= 1"),
])
def test_bad_input_is_rejected_with_a_clear_message(make, error, match):
    with pytest.raises(error, match=match):
        make()
