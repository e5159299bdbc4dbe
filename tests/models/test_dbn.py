"""DBN: greedy training feeds each RBM the layer below, the up pass, the generative
distribution of sample() against exact enumeration, input checks."""
import itertools

import numpy as np
import pytest

from devices import on_device, to_host
from minigen.models import DBN, RBM
from test_rbm import with_parameters


def states(n):
    return np.array(list(itertools.product([0.0, 1.0], repeat=n))).reshape(2 ** n, n)


def bernoulli_prob(p, x):
    """P(x | p) for every row of p and every row of x: (len(p), len(x))."""
    return np.prod(np.where(x[None] == 1, p[:, None], 1 - p[:, None]), axis=2)


def random_dbn(layer_sizes, seed, scale=1.5):
    """A DBN over [D, H_1, ..., H_L] with N(0, scale^2) parameters, as if fitted."""
    rng = np.random.default_rng(seed)
    dbn = DBN(tuple(layer_sizes[1:]), random_state=seed, dtype="float64")
    dbn.rbms_ = [with_parameters(scale * rng.standard_normal((n_in, n_out)),
                                 scale * rng.standard_normal(n_in), scale * rng.standard_normal(n_out))
                 for n_in, n_out in zip(layer_sizes[:-1], layer_sizes[1:])]
    dbn.n_features_in_ = layer_sizes[0]
    return dbn


def log_prior_of_layer_one(dbn):
    """(H_1 states, log p(h^1)) under the generative model above h^1, by enumeration."""
    top = dbn.rbms_[-1]
    H = states(top.n_features_in_)
    log_p = -to_host(top.free_energy(H))
    p = np.exp(log_p - log_p.max())
    p /= p.sum()  # p(h^{L-1}), the top RBM's marginal
    for rbm in reversed(dbn.rbms_[1:-1]):  # p(h^{l-1}) = sum_{h^l} p(h^l) p(h^{l-1} | h^l)
        H_below = states(rbm.n_features_in_)
        p = p @ bernoulli_prob(to_host(rbm.prob_v_given_h(H)), H_below)
        H = H_below
    return H, np.log(p)


@pytest.mark.parametrize("layer_sizes", [[3, 2, 2], [3, 2, 3, 2]])
def test_sample_follows_the_generative_model(layer_sizes):
    dbn = random_dbn(layer_sizes, seed=1)
    H, log_p1 = log_prior_of_layer_one(dbn)
    p = np.exp(log_p1) @ bernoulli_prob(to_host(dbn.rbms_[0].prob_v_given_h(H)), states(layer_sizes[0]))
    x = to_host(dbn.sample(20000, n_gibbs=30, random_state=0))
    assert set(np.unique(x)) <= {0.0, 1.0}
    codes = (x @ 2 ** np.arange(x.shape[1] - 1, -1, -1)).astype(int)
    freq = np.bincount(codes, minlength=len(p)) / len(x)
    assert 0.5 * np.abs(freq - p).sum() < 0.02  # total variation


def structured_data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    prototypes = np.array([[1, 1, 1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1, 1, 0], [1, 0, 1, 0, 1, 0, 1, 0]], float)
    X = prototypes[rng.integers(0, 3, n)]
    return np.abs(X - (rng.random(X.shape) < 0.05))  # 5% of the bits flipped


@pytest.mark.parametrize("propagate", ["probabilities", "samples"])
def test_greedy_training_feeds_each_rbm_the_layer_below(propagate):
    X = structured_data()
    dbn = DBN((6, 4), max_iter=5, batch_size=20, learning_rate=0.1, propagate=propagate,
              random_state=0, dtype="float64")
    assert dbn.fit(X) is dbn and dbn.n_features_in_ == 8
    h1, data_mean = to_host(dbn.rbms_[0].prob_h_given_v(X)), to_host(dbn.rbms_[1].data_mean_)
    if propagate == "probabilities":
        np.testing.assert_allclose(data_mean, h1.mean(0), atol=1e-12)
    else:  # a binary sample of h1: the mean is a multiple of 1/n near q's mean
        counts = data_mean * len(X)
        assert np.allclose(counts, np.round(counts))
        assert np.abs(data_mean - h1.mean(0)).max() < 5 * 0.5 / np.sqrt(len(X))
    for rbm in dbn.rbms_:
        assert len(rbm.history_["reconstruction_error"]) == 5
    assert dbn.rbms_[0].history_["reconstruction_error"][-1] < dbn.rbms_[0].history_["reconstruction_error"][0]


def test_transform_is_the_up_pass_and_shapes():
    X = structured_data(20)
    dbn = random_dbn([8, 5, 3, 2], seed=0, scale=0.5)
    h = X
    for rbm in dbn.rbms_:
        h = 1 / (1 + np.exp(-(to_host(rbm.intercept_hidden_) + h @ to_host(rbm.components_).T)))
    np.testing.assert_allclose(to_host(dbn.transform(X)), h, rtol=1e-5)
    p = to_host(dbn.sample(4, n_gibbs=3, return_probabilities=True))
    assert p.shape == (4, 8) and np.all((p > 0) & (p < 1))


def test_single_layer_dbn_is_its_rbm():
    X = structured_data(50)
    dbn = DBN((3,), max_iter=2, random_state=3, dtype="float64").fit(X)
    rbm = RBM(3, max_iter=2, random_state=3, dtype="float64").fit(X)
    np.testing.assert_array_equal(to_host(dbn.rbms_[0].components_), to_host(rbm.components_))
    np.testing.assert_allclose(to_host(dbn.score_samples(X)), to_host(rbm.score_samples(X)))
    assert dbn.sample(5, n_gibbs=2).shape == (5, 8)


@pytest.mark.parametrize("layer_sizes", [[3, 3, 2], [3, 2, 3, 2]])
def test_score_samples_estimates_the_variational_bound_below_log_p(layer_sizes):
    dbn = random_dbn(layer_sizes, seed=2, scale=1.0)
    V = states(3)
    # exact log p(v) and the exact one-layer bound sum_h1 q(h1|v) [log p(h1) + log p(v|h1) - log q(h1|v)]
    H1, log_p1 = log_prior_of_layer_one(dbn)
    rbm = dbn.rbms_[0]
    log_p_v_given_h = np.log(bernoulli_prob(to_host(rbm.prob_v_given_h(H1)), V))   # (2^H1, 2^D)
    log_q = np.log(bernoulli_prob(to_host(rbm.prob_h_given_v(V)), H1))             # (2^D, 2^H1)
    exact = np.log(np.exp(log_p1) @ np.exp(log_p_v_given_h))
    bound_one_layer = np.sum(np.exp(log_q) * (log_p1[None] + log_p_v_given_h.T - log_q), axis=1)
    assert np.all(bound_one_layer <= exact + 1e-12)
    n = 4000
    estimate = to_host(dbn.score_samples(V, n_samples=n, random_state=0))
    if len(layer_sizes) == 3:  # p(h^1) is the top RBM's marginal: the estimate is of this bound
        # a mean of n terms, each within a few nats: 5 standard errors
        terms = log_p1[None] + log_p_v_given_h.T - log_q
        sd = np.sqrt(np.sum(np.exp(log_q) * (terms - bound_one_layer[:, None]) ** 2, axis=1))
        assert np.all(np.abs(estimate - bound_one_layer) <= 5 * sd / np.sqrt(n) + 1e-9)
    # a lower bound on log p(v) (up to the Monte Carlo error)
    assert np.all(estimate <= exact + 0.05)


def test_bad_input_is_rejected():
    for sizes in ([], [5, 0], [2.5], 7, "3"):
        with pytest.raises(ValueError, match="hidden_layer_sizes must be a non-empty list or tuple of positive integers"):
            DBN(sizes).fit(np.zeros((5, 4)))
    with pytest.raises(ValueError, match="propagate must be one of"):
        DBN((3, 2), propagate="mean").fit(np.zeros((5, 4)))
    dbn = DBN((3, 2), max_iter=1, random_state=0).fit(np.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"v must have shape \(n_samples, 4\)"):
        dbn.transform(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="v must hold only finite values"):
        dbn.transform(np.full((2, 4), np.nan))
    with pytest.raises(ValueError, match="not fitted"):
        DBN((3,)).sample(2)


@pytest.mark.cpu_only  # runs on the strict stand-in; a cuda run is the real check
def test_dbn_stays_in_the_array_module_of_the_data():
    from strict_xp import StrictArray, strict_module, to_strict

    X = (np.random.default_rng(1).random((20, 6)) < 0.5).astype(float)
    for propagate in ("probabilities", "samples"):
        dbn = DBN((4, 3), max_iter=1, batch_size=5, propagate=propagate, dtype="float64",
                  random_state=strict_module.random.default_rng(0)).fit(to_strict(X))
    assert isinstance(dbn.transform(X), StrictArray)
    assert isinstance(dbn.sample(4, n_gibbs=2), StrictArray)
    assert isinstance(dbn.score_samples(X, n_samples=2), StrictArray)
