"""DBN: greedy training feeds each RBM the layer below, the up pass, the generative
distribution of sample() against exact enumeration, input checks."""
import itertools

import numpy as np
import pytest

from devices import on_device, to_host
from minigen.models import DBN, RBM


def states(n):
    return np.array(list(itertools.product([0.0, 1.0], repeat=n))).reshape(2 ** n, n)


def bernoulli_prob(p, x):
    """P(x | p) for every row of p and every row of x: (len(p), len(x))."""
    return np.prod(np.where(x[None] == 1, p[:, None], 1 - p[:, None]), axis=2)


def randomise(dbn, seed, scale=1.5):
    rng = np.random.default_rng(seed)
    for rbm in dbn.rbms:
        rbm.W = on_device(scale * rng.standard_normal(rbm.W.shape))
        rbm.b = on_device(scale * rng.standard_normal(rbm.b.shape))
        rbm.c = on_device(scale * rng.standard_normal(rbm.c.shape))
    return dbn


@pytest.mark.parametrize("layer_sizes", [[3, 2, 2], [3, 2, 3, 2]])
def test_sample_follows_the_generative_model(layer_sizes):
    dbn = randomise(DBN(layer_sizes, random_state=0, dtype="float64"), seed=1)
    top = dbn.rbms[-1]
    H = states(top.n_visible)
    log_p = -to_host(top.free_energy(H))
    p = np.exp(log_p - log_p.max())
    p /= p.sum()  # p(h^{L-1}), the top RBM's marginal
    for rbm in reversed(dbn.rbms[:-1]):  # p(h^{l-1}) = sum_{h^l} p(h^l) p(h^{l-1} | h^l)
        H_below = states(rbm.n_visible)
        p = p @ bernoulli_prob(to_host(rbm.prob_v_given_h(H)), H_below)
        H = H_below
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
    dbn = DBN([8, 6, 4], random_state=0, dtype="float64")
    assert dbn.fit(X, epochs=5, batch_size=20, learning_rate=0.1, propagate=propagate) is dbn
    h1, data_mean = to_host(dbn.rbms[0].prob_h_given_v(X)), to_host(dbn.rbms[1].data_mean_)
    if propagate == "probabilities":
        np.testing.assert_allclose(data_mean, h1.mean(0), atol=1e-12)
    else:  # a binary sample of h1: the mean is a multiple of 1/n near q's mean
        counts = data_mean * len(X)
        assert np.allclose(counts, np.round(counts))
        assert np.abs(data_mean - h1.mean(0)).max() < 5 * 0.5 / np.sqrt(len(X))
    for rbm in dbn.rbms:
        assert len(rbm.history_["reconstruction_error"]) == 5
    assert dbn.rbms[0].history_["reconstruction_error"][-1] < dbn.rbms[0].history_["reconstruction_error"][0]


def test_transform_is_the_up_pass_and_shapes():
    X = structured_data(20)
    dbn = randomise(DBN([8, 5, 3, 2], random_state=0), seed=0, scale=0.5)
    h = X
    for rbm in dbn.rbms:
        h = 1 / (1 + np.exp(-(to_host(rbm.c) + h @ to_host(rbm.W))))
    np.testing.assert_allclose(to_host(dbn.transform(X)), h, rtol=1e-5)
    p = to_host(dbn.sample(4, n_gibbs=3, return_probabilities=True))
    assert p.shape == (4, 8) and np.all((p > 0) & (p < 1))


def test_single_layer_dbn_samples_like_its_rbm():
    dbn = DBN([4, 3], random_state=3)
    rbm = RBM(4, 3, random_state=3)
    np.testing.assert_array_equal(to_host(dbn.rbms[0].W), to_host(rbm.W))
    assert dbn.sample(5, n_gibbs=2).shape == (5, 4)


def test_bad_input_is_rejected():
    for sizes in ([5], [5, 0], [5, 2.5], 7):
        with pytest.raises(ValueError, match="layer_sizes must be a list of at least two positive integers"):
            DBN(sizes)
    dbn = DBN([4, 3, 2], random_state=0)
    with pytest.raises(ValueError, match="propagate must be one of"):
        dbn.fit(np.zeros((5, 4)), propagate="mean")
    with pytest.raises(ValueError, match=r"X must have shape \(n_samples, 4\)"):
        dbn.fit(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="v must hold only finite values"):
        dbn.transform(np.full((2, 4), np.nan))


@pytest.mark.cpu_only  # swaps NumPy parameters for the strict stand-in; a cuda run is the real check
def test_dbn_stays_in_the_array_module_of_the_parameters():
    from strict_xp import StrictArray, strict_module, to_strict

    dbn = DBN([6, 4, 3], random_state=0, dtype="float64")
    dbn._rng = strict_module.random.default_rng(0)
    for rbm in dbn.rbms:
        rbm.W, rbm.b, rbm.c = (to_strict(p) for p in (rbm.W, rbm.b, rbm.c))
        rbm._rng = dbn._rng
    X = (np.random.default_rng(1).random((20, 6)) < 0.5).astype(float)
    for propagate in ("probabilities", "samples"):
        dbn.fit(X, epochs=1, batch_size=5, propagate=propagate)
    assert isinstance(dbn.transform(X), StrictArray)
    assert isinstance(dbn.sample(4, n_gibbs=2), StrictArray)
