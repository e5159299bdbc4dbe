"""MarkovChain: the stationary distribution is invariant and is the long-run frequency of samples,
log_prob normalises over all sequences of a length, fit recovers the transitions."""
import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigen
from minigen import backend
from devices import on_device, to_host
from minigen.models import MarkovChain
from minigen.validation import NotFittedError


def random_chain(seed, n_states=None, concentration=1.0):
    rng = np.random.default_rng(seed)
    n_states = n_states or int(rng.integers(1, 6))
    chain = MarkovChain(n_states)
    chain.initial_ = on_device(rng.dirichlet(np.ones(n_states)))
    chain.transition_matrix_ = on_device(rng.dirichlet(np.full(n_states, concentration), size=n_states))
    return chain


@given(seed=st.integers(0, 2 ** 16))
def test_stationary_distribution_is_invariant(seed):
    chain = random_chain(seed)
    pi, P = to_host(chain.stationary_distribution()), to_host(chain.transition_matrix_)
    np.testing.assert_allclose(pi @ P, pi, atol=1e-12)
    assert pi.sum() == pytest.approx(1.0) and np.all(pi >= -1e-12)
    # the same as the left eigenvector of P for eigenvalue 1 (an independent computation)
    values, vectors = np.linalg.eig(P.T)
    v = np.real(vectors[:, np.argmin(np.abs(values - 1))])
    np.testing.assert_allclose(pi, v / v.sum(), atol=1e-10)


def test_long_run_sample_frequencies_match_the_stationary_distribution():
    chain = random_chain(1, n_states=4)
    x = to_host(chain.sample(4000, n_samples=25, random_state=0))
    assert x.shape == (25, 4000) and x.dtype == np.int64
    frequencies = np.bincount(x[:, 100:].ravel(), minlength=4) / x[:, 100:].size
    # 97500 correlated draws; this chain mixes in a few steps, so the error is ~ 1/sqrt(97500 / 10)
    np.testing.assert_allclose(frequencies, to_host(chain.stationary_distribution()), atol=0.015)


def test_first_states_follow_the_initial_distribution():
    chain = random_chain(2, n_states=3)
    x = to_host(chain.sample(1, n_samples=20000, random_state=1))
    np.testing.assert_allclose(np.bincount(x[:, 0], minlength=3) / 20000, to_host(chain.initial_), atol=0.015)


@pytest.mark.parametrize("n_states, length", [(1, 3), (2, 5), (3, 4)])
def test_log_prob_sums_to_one_over_all_sequences_of_a_length(n_states, length):
    chain = random_chain(n_states, n_states=n_states)
    sequences = np.array(list(itertools.product(range(n_states), repeat=length)))
    log_p = to_host(chain.log_prob(on_device(sequences)))
    assert log_p.shape == (n_states ** length,)
    assert np.exp(log_p).sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_array_equal(to_host(chain.score_samples(on_device(sequences))), log_p)


def test_log_prob_of_one_sequence_by_hand_and_ragged_lists():
    chain = random_chain(3, n_states=3)
    pi0, P = to_host(chain.initial_), to_host(chain.transition_matrix_)
    sequences = [on_device([2, 0, 0, 1]), on_device([1])]
    expected = [np.log(pi0[2] * P[2, 0] * P[0, 0] * P[0, 1]), np.log(pi0[1])]
    np.testing.assert_allclose(to_host(chain.log_prob(sequences)), expected, rtol=1e-12)
    assert chain.score(sequences) == pytest.approx(np.mean(expected))


def test_fit_recovers_the_transitions_and_counts_by_hand():
    chain = random_chain(4, n_states=3, concentration=2.0)
    x = chain.sample(3000, n_samples=10, random_state=2)
    fitted = MarkovChain(3).fit(list(x))
    np.testing.assert_allclose(to_host(fitted.transition_matrix_), to_host(chain.transition_matrix_), atol=0.03)
    smoothed = MarkovChain(3, alpha=1.0).fit([on_device([0, 1, 1]), on_device([1, 0])])
    np.testing.assert_allclose(to_host(smoothed.initial_), [2 / 5, 2 / 5, 1 / 5])
    np.testing.assert_allclose(to_host(smoothed.transition_matrix_),
                               [[1 / 4, 2 / 4, 1 / 4], [2 / 5, 2 / 5, 1 / 5], [1 / 3, 1 / 3, 1 / 3]])
    unseen = MarkovChain(3).fit([on_device([0, 1])])  # states 1 and 2 never left: uniform rows
    np.testing.assert_allclose(to_host(unseen.transition_matrix_)[1:], 1 / 3)


def test_state_dict_round_trip(tmp_path):
    chain = MarkovChain(3, alpha=0.5).fit(random_chain(5, n_states=3).sample(50, n_samples=4, random_state=0))
    state = minigen.load(minigen.save(chain.state_dict(), tmp_path / "mc.npz"))
    loaded = MarkovChain(1).load_state_dict(state, device=backend.default_device())
    assert repr(loaded) == repr(chain) == "MarkovChain(n_states=3, alpha=0.5)"
    x = chain.sample(30, n_samples=5, random_state=4)
    np.testing.assert_array_equal(to_host(loaded.score_samples(x)), to_host(chain.score_samples(x)))
    np.testing.assert_array_equal(to_host(loaded.sample(30, 5, random_state=4)), to_host(x))
    np.testing.assert_array_equal(to_host(loaded.stationary_distribution()),
                                  to_host(chain.stationary_distribution()))


@pytest.mark.parametrize("make, error, match", [
    (lambda: MarkovChain(3).fit([np.array([0, 3])]), ValueError, r"sequences\[0\] must hold states in \[0, 3\)"),
    (lambda: MarkovChain(3).fit([np.array([0, 1]), np.array([-1])]), ValueError, r"sequences\[1\] must hold states"),
    (lambda: MarkovChain(3).fit([np.array([0.5, 1.0])]), ValueError, r"sequences\[0\] must hold integer states"),
    (lambda: MarkovChain(3).fit([np.zeros((2, 2), dtype=int)]), ValueError, r"sequences\[0\] must be a non-empty 1-D"),
    (lambda: MarkovChain(3).fit([np.array([], dtype=int)]), ValueError, r"sequences\[0\] must be a non-empty 1-D"),
    (lambda: MarkovChain(3).fit([]), TypeError, "sequences must be a non-empty list"),
    (lambda: MarkovChain(0).fit([np.array([0])]), ValueError, "n_states must be >= 1"),
    (lambda: MarkovChain(2.5).fit([np.array([0])]), TypeError, "n_states must be an integer"),
    (lambda: MarkovChain(2, alpha=-1.0).fit([np.array([0])]), ValueError, "alpha must be >= 0"),
    (lambda: MarkovChain(2).log_prob([np.array([0])]), NotFittedError, "not fitted yet"),
    (lambda: random_chain(0, 2).sample(0), ValueError, "length must be >= 1"),
    (lambda: random_chain(0, 2).sample(3, n_samples=0), ValueError, "n_samples must be >= 1"),
])
def test_bad_input_is_rejected_with_a_clear_message(make, error, match):
    with pytest.raises(error, match=match):
        make()
