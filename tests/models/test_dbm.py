"""DBM: conditionals by enumeration of the energy, mean field's fixed point and bound against the
exact log p(v), exact log Z by both enumerations, AIS against it, learning raises the exact
likelihood, the estimator contract, bad input."""
import math
import os
import tempfile

import numpy as np
import pytest

import minigen
from devices import to_host
from minigen import backend
from minigen.models import DBM
from minigen.models.dbm import _all_states, learning_rates
from minigen.numerics import logsumexp

XP = backend.array_module_for(backend.default_device())


def random_dbm(sizes=(4, 3, 2), scale=1.0, seed=0):
    """A DBM with random parameters (no training), float64 on the device under test."""
    rng = np.random.default_rng(seed)
    D, H1, H2 = sizes
    model = DBM(sizes, dtype="float64")
    model.weights_ = [XP.asarray(scale * rng.standard_normal(s)) for s in ((D, H1), (H1, H2))]
    model.biases_ = [XP.asarray(0.5 * rng.standard_normal(n)) for n in sizes]
    model.n_features_in_ = D
    model.data_mean_ = XP.asarray(rng.uniform(0.2, 0.8, D))
    return model


def joint_table(model):
    """-E over every (v, h1, h2) state: (2^D, 2^H1, 2^H2), and the state lists."""
    D, H1, H2 = model.layer_sizes
    v, h1, h2 = (to_host(_all_states(n, XP, np.float64)) for n in (D, H1, H2))
    V, A, B = np.meshgrid(np.arange(len(v)), np.arange(len(h1)), np.arange(len(h2)), indexing="ij")
    neg_energy = -to_host(model.energy(XP.asarray(v[V.ravel()]), XP.asarray(h1[A.ravel()]),
                                       XP.asarray(h2[B.ravel()])))
    return neg_energy.reshape(len(v), len(h1), len(h2)), v, h1, h2


def test_conditionals_agree_with_the_energy():
    model = random_dbm()
    table, v, h1, h2 = joint_table(model)
    p = np.exp(table - table.max())
    # p(h1_j = 1 | v, h2): over the h1 axis of the table
    got = to_host(model.prob_h1_given_v_h2(XP.asarray(v[2:3]), XP.asarray(h2[1:2])))[0]
    cond = p[2, :, 1] / p[2, :, 1].sum()
    np.testing.assert_allclose(got, cond @ h1, rtol=1e-10)
    # p(v | h1) and p(h2 | h1): h2 and v are independent given h1
    p_v_h1 = p.sum(axis=2)[:, 1] / p.sum(axis=2)[:, 1].sum()
    np.testing.assert_allclose(to_host(model.prob_v_given_h1(XP.asarray(h1[1:2])))[0], p_v_h1 @ v, rtol=1e-10)
    p_h2_h1 = p.sum(axis=0)[1] / p.sum(axis=0)[1].sum()
    np.testing.assert_allclose(to_host(model.prob_h2_given_h1(XP.asarray(h1[1:2])))[0], p_h2_h1 @ h2,
                               rtol=1e-10)


@pytest.mark.parametrize("sizes", [(4, 3, 2), (2, 5, 1)])  # enumerates h1, then (v, h2)
def test_exact_log_partition_by_either_enumeration(sizes):
    model = random_dbm(sizes)
    table = joint_table(model)[0]
    assert model.log_partition() == pytest.approx(float(logsumexp(table)), rel=1e-12)


def test_mean_field_fixed_point_and_bound_below_the_exact_log_likelihood():
    model = random_dbm((5, 3, 3), scale=1.5, seed=1)
    table, v, _, _ = joint_table(model)
    log_pv = logsumexp(table.reshape(len(v), -1), axis=1) - logsumexp(table)
    mu1, mu2 = (to_host(m) for m in model.mean_field(XP.asarray(v), n_iter=300))
    (W1, W2), (b, c1, c2) = ([to_host(a) for a in model.weights_], [to_host(a) for a in model.biases_])
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    np.testing.assert_allclose(mu1, sig(c1 + v @ W1 + mu2 @ W2.T), atol=1e-10)
    np.testing.assert_allclose(mu2, sig(c2 + mu1 @ W2), atol=1e-10)
    bound = to_host(model.score_samples(XP.asarray(v), n_iter=300))
    assert np.all(bound <= log_pv + 1e-10)
    assert np.all(log_pv - bound < 1.0)  # a bound, not a vacuous one


def test_ais_is_close_to_the_exact_log_partition_and_improves_with_temperatures():
    model = random_dbm((6, 4, 3), scale=1.0, seed=2)
    exact = model.log_partition()
    errors = {n: abs(model.log_partition_ais(n_temperatures=n, n_runs=200, random_state=3) - exact)
              for n in (10, 2000)}
    assert errors[2000] < 0.2
    assert errors[2000] < errors[10]
    assert model.log_partition_ais_ == pytest.approx(exact, abs=0.2)


def test_training_raises_the_exact_log_likelihood():
    rng = np.random.default_rng(4)
    prototypes = np.array([[1, 1, 1, 0, 0, 0, 1, 0], [0, 0, 0, 1, 1, 1, 0, 1]], dtype=float)
    X = prototypes[rng.integers(0, 2, 300)]
    X = np.abs(X - (rng.random(X.shape) < 0.05))  # 5% of the bits flipped
    gains = []
    for seed in (0, 1, 2):
        before = DBM((8, 4, 2), max_iter=1, learning_rate=1e-9, pretrain=False, random_state=seed).fit(X)
        after = DBM((8, 4, 2), max_iter=30, learning_rate=0.05, batch_size=20, n_chains=50,
                    pretrain_epochs=10, random_state=seed).fit(X)
        exact = []
        for model in (before, after):
            table, v, _, _ = joint_table(model)
            log_pv = logsumexp(table.reshape(len(v), -1), axis=1) - logsumexp(table)
            index = (X @ (2 ** np.arange(8)[::-1])).astype(int)   # the row of each x in v
            exact.append(float(log_pv[index].mean()))
        gains.append(exact[1] - exact[0])
    assert min(gains) > 1.0, gains


def test_linear_schedule_falls_from_the_learning_rate_towards_zero():
    """alpha_t = lr (1 - t / T): starts at lr, falls by lr / T per update, never reaches 0 (the
    last step is lr / T); 'constant' keeps lr. Sums: lr (T + 1) / 2 against lr T."""
    for T in (1, 2, 7, 600):
        linear, constant = learning_rates(0.3, T, "linear"), learning_rates(0.3, T, "constant")
        assert len(linear) == len(constant) == T
        np.testing.assert_allclose(linear, 0.3 - 0.3 * np.arange(T) / T, rtol=1e-12)
        assert linear[-1] == pytest.approx(0.3 / T) and min(linear) > 0
        assert sum(linear) == pytest.approx(0.3 * (T + 1) / 2) and constant == [0.3] * T


def test_fit_follows_its_schedule():
    """One update (one epoch of one batch) is taken at the full rate under either schedule, so
    both fits agree exactly; over several updates the linear schedule takes smaller steps, and
    the parameters move less from the same pretrained start."""
    X = (np.random.default_rng(6).random((20, 6)) < 0.4).astype(float)
    fit = lambda schedule, epochs: DBM((6, 4, 3), max_iter=epochs, batch_size=20, n_chains=10,  # noqa: E731
                                       pretrain_epochs=2, learning_rate=0.1, random_state=0,
                                       learning_rate_schedule=schedule).fit(X)
    start = DBM((6, 4, 3), max_iter=1, batch_size=20, n_chains=10, pretrain_epochs=2,
                learning_rate=1e-300, random_state=0).fit(X)  # the pretrained weights alone
    one = [fit(schedule, 1) for schedule in ("linear", "constant")]
    for a, b in zip(one[0].weights_ + one[0].biases_, one[1].weights_ + one[1].biases_):
        np.testing.assert_array_equal(to_host(a), to_host(b))
    moved = {}
    for schedule in ("linear", "constant"):
        model = fit(schedule, 20)
        moved[schedule] = sum(float(np.abs(to_host(w) - to_host(w0)).sum())
                              for w, w0 in zip(model.weights_, start.weights_))
    assert 0 < moved["linear"] < moved["constant"], moved


def test_estimator_contract_and_state_dict_round_trip():
    X = (np.random.default_rng(5).random((60, 6)) < 0.4).astype(float)
    model = DBM((6, 4, 3), max_iter=2, batch_size=20, n_chains=10, pretrain_epochs=2, n_gibbs=20,
                random_state=0).fit(X)
    assert model.score_samples(X).shape == (60,)
    assert model.score(X) == pytest.approx(float(to_host(model.score_samples(X)).mean()))
    assert model.sample(7).shape == (7, 6)
    assert eval("minigen.models." + repr(model)).get_params() == model.get_params()
    path = os.path.join(tempfile.mkdtemp(), "dbm.npz")
    minigen.save(model.state_dict(), path)
    loaded = DBM().load_state_dict(minigen.load(path))
    np.testing.assert_array_equal(to_host(loaded.score_samples(X)), to_host(model.score_samples(X)))
    np.testing.assert_array_equal(to_host(loaded.sample(5, random_state=1)), to_host(model.sample(5, random_state=1)))


BAD = [
    ("one hidden layer", lambda: DBM((4, 3)).fit(np.zeros((5, 4))), ValueError, "layer_sizes"),
    ("width mismatch", lambda: DBM((4, 3, 2)).fit(np.zeros((5, 3))), ValueError, "4 columns"),
    ("outside [0, 1]", lambda: DBM((4, 3, 2)).fit(np.full((5, 4), 2.0)), ValueError, "\\[0, 1\\]"),
    ("ragged", lambda: DBM((2, 3, 2)).fit([[0, 1], [1]]), ValueError, "ragged"),
    ("not fitted", lambda: DBM((4, 3, 2)).sample(2), ValueError, "not fitted"),
    ("too big for exact log Z", lambda: random_dbm((30, 25, 2)).log_partition(), ValueError, "log_partition_ais"),
    ("score without log Z", lambda: random_dbm((30, 25, 2)).score_samples(np.zeros((2, 30))), ValueError,
     "log_partition_ais"),
    ("max_iter 0", lambda: DBM((4, 3, 2), max_iter=0).fit(np.zeros((5, 4))), ValueError, "max_iter"),
    ("unknown schedule", lambda: DBM((4, 3, 2), learning_rate_schedule="cosine").fit(np.zeros((5, 4))),
     ValueError, "learning_rate_schedule.*linear.*constant"),
    ("n_temperatures 1", lambda: random_dbm().log_partition_ais(n_temperatures=1), ValueError, "n_temperatures"),
]


@pytest.mark.parametrize("make, error, message", [r[1:] for r in BAD], ids=[r[0] for r in BAD])
def test_bad_input(make, error, message):
    with pytest.raises(error, match=message):
        make()
