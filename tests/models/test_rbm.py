"""RBM: energies, conditionals and log Z against brute-force enumeration; AIS against exact log Z;
CD-1 against the exact log-likelihood gradient; training monitors; input checks."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from devices import on_device, to_host
from minigen import backend
from minigen.models import RBM
from minigen.random import get_generator


def states(n):
    """All 2^n binary vectors as rows of a float64 array."""
    return np.array(list(itertools.product([0.0, 1.0], repeat=n))).reshape(2 ** n, n)


def logsumexp(a, axis=None):
    m = np.max(a, axis=axis, keepdims=True)
    return np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(a - m), axis=axis))


def with_parameters(W, b, c, random_state=0, **settings):
    """An RBM holding the given W (D, H), b (D,), c (H,), as if fitted (data mean 1/2)."""
    rbm = RBM(W.shape[1], random_state=random_state, dtype="float64", **settings)
    rbm.components_ = on_device(np.ascontiguousarray(np.asarray(W, dtype=np.float64).T))
    rbm.intercept_visible_ = on_device(np.asarray(b, dtype=np.float64))
    rbm.intercept_hidden_ = on_device(np.asarray(c, dtype=np.float64))
    rbm.n_features_in_ = W.shape[0]
    rbm.data_mean_ = on_device(np.full(W.shape[0], 0.5))
    rbm.log_partition_ais_ = None
    return rbm


def params(rbm):
    """(W (D, H), b, c) on the host."""
    return to_host(rbm.components_).T, to_host(rbm.intercept_visible_), to_host(rbm.intercept_hidden_)


def brute_energy(rbm, v, h):
    """E[n, m] = E(v_n, h_m) = -b.v - c.h - v.W.h straight from the definition (on the host)."""
    W, b, c = params(rbm)
    return -(v @ b)[:, None] - (h @ c)[None, :] - np.einsum("ni,ij,mj->nm", v, W, h)


def exact_log_p(rbm):
    """log p(v) for every v in states(D), by summing exp(-E) over all (v, h)."""
    V, Hs = states(rbm.n_features_in_), states(rbm.n_hidden)
    log_pv = logsumexp(-brute_energy(rbm, V, Hs), axis=1)
    return V, log_pv - logsumexp(log_pv)


def random_rbm(D, H, seed, scale=1.0):
    rng = np.random.default_rng(seed)
    return with_parameters(scale * rng.standard_normal((D, H)), scale * rng.standard_normal(D),
                           scale * rng.standard_normal(H), random_state=seed)


@st.composite
def small_rbms(draw, max_units=5):
    D = draw(st.integers(1, max_units))
    H = draw(st.integers(1, max_units))
    floats = st.floats(-2, 2, allow_nan=False)
    return with_parameters(draw(arrays(np.float64, (D, H), elements=floats)),
                           draw(arrays(np.float64, D, elements=floats)),
                           draw(arrays(np.float64, H, elements=floats)))


# ---- energies, conditionals, log Z ----------------------------------------------------------------

@given(small_rbms())
def test_energy_and_free_energy_match_definitions(rbm):
    V, Hs = states(rbm.n_features_in_), states(rbm.n_hidden)
    E = brute_energy(rbm, V, Hs)
    pairs = np.array(list(itertools.product(range(len(V)), range(len(Hs)))))
    np.testing.assert_allclose(to_host(rbm.energy(V[pairs[:, 0]], Hs[pairs[:, 1]])), E.ravel(), atol=1e-12)
    # F(v) = -log sum_h exp(-E(v, h))
    np.testing.assert_allclose(to_host(rbm.free_energy(V)), -logsumexp(-E, axis=1), rtol=1e-10, atol=1e-10)


@given(small_rbms(max_units=6))
def test_log_partition_matches_enumeration_over_v_and_h(rbm):
    E = brute_energy(rbm, states(rbm.n_features_in_), states(rbm.n_hidden))
    assert rbm.log_partition() == pytest.approx(logsumexp(-E), rel=1e-10, abs=1e-10)


def test_log_partition_in_several_batches_matches_free_energies():
    rbm = random_rbm(16, 100, seed=2, scale=0.1)  # 2^16 visible states, more than one batch
    V = states(16)
    assert rbm.log_partition() == pytest.approx(logsumexp(-to_host(rbm.free_energy(V))), rel=1e-12)


@given(small_rbms())
def test_conditionals_agree_with_energy(rbm):
    V, Hs = states(rbm.n_features_in_), states(rbm.n_hidden)
    p_joint = np.exp(-brute_energy(rbm, V, Hs))  # unnormalised p(v, h)
    p_h_given_v = p_joint / p_joint.sum(axis=1, keepdims=True)
    p_v_given_h = p_joint / p_joint.sum(axis=0, keepdims=True)
    np.testing.assert_allclose(to_host(rbm.prob_h_given_v(V)), p_h_given_v @ Hs, atol=1e-10)    # p(h_j=1|v)
    np.testing.assert_allclose(to_host(rbm.prob_v_given_h(Hs)), p_v_given_h.T @ V, atol=1e-10)  # p(v_i=1|h)
    W, _, c = params(rbm)
    np.testing.assert_allclose(to_host(rbm.prob_h_given_v(V)), 1 / (1 + np.exp(-(c + V @ W))), atol=1e-12)


def test_sigmoid_is_stable_for_large_inputs():
    rbm = with_parameters(np.array([[800.0, -800.0], [0.0, 0.0]]), np.zeros(2), np.zeros(2))
    with np.errstate(all="raise"):
        np.testing.assert_array_equal(to_host(rbm.prob_h_given_v(np.array([[1.0, 0.0]]))), [[1.0, 0.0]])


@settings(max_examples=5)
@given(small_rbms(), st.integers(1, 4), st.integers(0, 2 ** 16))
def test_samplers_are_binary_with_the_right_means(rbm, k, seed):
    rng = get_generator(seed, backend.get_array_module(rbm.components_))  # a generator of the model's device
    v = (rng.random((4000, rbm.n_features_in_)) < 0.5).astype(float)
    h = rbm.sample_h_given_v(v, random_state=rng)  # the same generator, so no reuse of v's draws
    v_k = rbm.gibbs(v, k=k, random_state=rng)
    for x in (h, v_k, rbm.sample_v_given_h(h, random_state=rng)):
        assert set(np.unique(to_host(x)).tolist()) <= {0.0, 1.0}
    assert v_k.shape == v.shape
    # E[h | v] = p(h | v): the sample mean is within 5 standard errors (each at most 0.5 / sqrt(n))
    error = to_host(h.mean(0) - rbm.prob_h_given_v(v).mean(0))
    assert np.abs(error).max() < 5 * 0.5 / np.sqrt(len(v))


def test_sample_matches_exact_distribution():
    rbm = random_rbm(3, 3, seed=1)
    V, log_p = exact_log_p(rbm)
    x = to_host(rbm.sample(20000, n_gibbs=30, random_state=0))
    codes = x @ (2 ** np.arange(2, -1, -1))  # row index of each sample in states(3)
    freq = np.bincount(codes.astype(int), minlength=len(V)) / len(x)
    assert 0.5 * np.abs(freq - np.exp(log_p)).sum() < 0.02  # total variation


# ---- likelihood, pseudo-likelihood, AIS -------------------------------------------------------------

@given(small_rbms(), st.integers(0, 2 ** 16))
def test_score_samples_and_pseudo_likelihood_match_enumeration(rbm, seed):
    V, log_p = exact_log_p(rbm)
    rows = np.random.default_rng(seed).integers(0, len(V), size=7)
    np.testing.assert_allclose(to_host(rbm.score_samples(V[rows])), log_p[rows], atol=1e-9)
    assert rbm.score(V[rows]) == pytest.approx(log_p[rows].mean(), abs=1e-9)
    # sum_i log p(v_i | v_-i), each conditional from p(v) and p(v with bit i flipped)
    pll = 0
    D = rbm.n_features_in_
    for i in range(D):
        flipped = V[rows].copy()
        flipped[:, i] = 1 - flipped[:, i]
        log_p_flip = log_p[(flipped @ 2 ** np.arange(D - 1, -1, -1)).astype(int)]
        pll = pll + log_p[rows] - np.logaddexp(log_p[rows], log_p_flip)
    np.testing.assert_allclose(to_host(rbm.pseudo_log_likelihood(V[rows], exact=True)), pll, atol=1e-9)
    # the one-random-unit estimate is unbiased: its mean over 3000 copies of each row is within
    # 5 standard errors (each term is D log p(v_i | v_-i), so its spread is at most D |min pll|)
    est = to_host(rbm.pseudo_log_likelihood(np.tile(V[rows], (3000, 1)), random_state=seed + 1))
    per_row = est.reshape(3000, len(rows)).mean(axis=0)
    spread = est.reshape(3000, len(rows)).std(axis=0) / np.sqrt(3000)
    assert np.all(np.abs(per_row - pll) <= 5 * spread + 1e-9)


def test_ais_is_close_to_exact_log_partition_and_improves_with_temperatures():
    rbm = random_rbm(15, 20, seed=0, scale=0.8)
    log_z = rbm.log_partition()  # enumerates the 2^15 visible states
    errors = {n: [rbm.log_partition_ais(n_betas=n, n_runs=100, random_state=s) - log_z for s in range(4)]
              for n in (10, 100, 2000)}
    mean_abs = {n: np.mean(np.abs(e)) for n, e in errors.items()}
    assert mean_abs[10] > mean_abs[100] > mean_abs[2000]
    assert np.max(np.abs(errors[2000])) < 0.1
    est, (low, high) = rbm.log_partition_ais(n_betas=2000, n_runs=100, random_state=7, return_bounds=True)
    assert low < est < high and low - 0.05 < log_z < high + 0.05


def test_ais_base_rate_from_data():
    rbm = random_rbm(12, 10, seed=3, scale=0.8)
    X = (np.random.default_rng(0).random((50, 12)) < 0.2).astype(float)
    est = rbm.log_partition_ais(n_betas=1000, n_runs=50, X=X, random_state=0)
    assert abs(est - rbm.log_partition()) < 0.1
    rbm.components_[:] = 0  # with W = 0 the base-rate chain is exact for b_A = b: every weight is Z / Z_A
    rbm.intercept_visible_ = on_device(np.log(X.mean(0)) - np.log1p(-X.mean(0)))
    assert rbm.log_partition_ais(n_betas=3, n_runs=5, X=X, random_state=0) == pytest.approx(rbm.log_partition())


# ---- CD-k gradient and training -----------------------------------------------------------------

def test_score_samples_uses_the_stored_ais_estimate_when_log_z_cannot_be_enumerated():
    rbm = random_rbm(22, 21, seed=4, scale=0.05)
    X = (np.random.default_rng(0).random((5, 22)) < 0.5).astype(float)
    with pytest.raises(ValueError, match="call log_partition_ais"):
        rbm.score_samples(X)
    log_z = rbm.log_partition_ais(n_betas=200, n_runs=20, random_state=0)
    assert rbm.log_partition_ais_ == log_z
    np.testing.assert_allclose(to_host(rbm.score_samples(X)), -to_host(rbm.free_energy(X)) - log_z)


def exact_gradients(rbm, X):
    """dL/d(W, b, c) of the mean log-likelihood, the model expectation by enumeration."""
    V, log_p = exact_log_p(rbm)
    p = np.exp(log_p)
    ph_data, ph_model = to_host(rbm.prob_h_given_v(X)), to_host(rbm.prob_h_given_v(V))
    return (X.T @ ph_data / len(X) - (V * p[:, None]).T @ ph_model,
            X.mean(0) - p @ V, ph_data.mean(0) - p @ ph_model)


def exact_cd1_expectation(rbm, X):
    """E[CD-1 gradient] with v1 ~ sum_h0 p(h0|v0) p(v1|h0) enumerated exactly."""
    V, Hs = states(rbm.n_features_in_), states(rbm.n_hidden)

    def bernoulli_prob(p, x):  # P(x | p) for every row of p and every state x: (n, 2^m)
        return np.prod(np.where(x[None] == 1, p[:, None], 1 - p[:, None]), axis=2)

    ph0, ph1 = to_host(rbm.prob_h_given_v(X)), to_host(rbm.prob_h_given_v(V))
    q_v1 = bernoulli_prob(ph0, Hs) @ bernoulli_prob(to_host(rbm.prob_v_given_h(Hs)), V)
    w = q_v1.mean(0)  # probability of each v1, averaged over the data rows
    return (X.T @ ph0 / len(X) - (V * w[:, None]).T @ ph1, X.mean(0) - w @ V, ph0.mean(0) - w @ ph1)


@settings(max_examples=8)
@given(st.integers(1, 4), st.integers(1, 3), st.integers(0, 2 ** 16))
def test_cd1_gradient_expectation(D, H, seed):
    rbm = random_rbm(D, H, seed, scale=0.3)
    X = (np.random.default_rng(seed).random((5, D)) < 0.5).astype(float)
    n_rep = 4000
    cd = map(to_host, rbm.cd_gradient(np.tile(X, (n_rep, 1)), random_state=seed + 1)[:3])
    for est, cd1, ml in zip(cd, exact_cd1_expectation(rbm, X), exact_gradients(rbm, X)):
        # the implementation's estimate is within 6 standard errors of the exact CD-1 expectation ...
        assert np.abs(est - cd1).max() < 6 * 1.0 / np.sqrt(n_rep * len(X))
        # ... which has the sign of the exact log-likelihood gradient where that is clearly non-zero
        clear = np.abs(ml) > 0.05
        np.testing.assert_array_equal(np.sign(est[clear]), np.sign(ml[clear]))


@settings(max_examples=10)
@given(st.integers(1, 5), st.integers(1, 4), st.integers(1, 6), st.integers(1, 6), st.integers(1, 2),
       st.booleans(), st.sampled_from([0.0, 0.5]), st.sampled_from([0.0, 0.01]), st.integers(0, 2 ** 16))
def test_fast_cd_update_equals_the_plain_reference(D, H, n, m, k, persistent, momentum, weight_decay,
                                                   seed):
    """fit's _cd_update (one fused statistics GEMM, work arrays) gives the parameters, velocities
    (with momentum) and chain of cd_update_reference (cd_gradient, then the momentum update), with
    the same draws;
    two steps in a row, so the velocities carry over; PCD with a chain of m rows beside n."""
    rng = np.random.default_rng(seed)
    X = on_device((rng.random((n + 3, D)) < 0.5).astype(float))
    chain = on_device((rng.random((m, D)) < 0.5).astype(float)) if persistent else None
    fast, plain = (random_rbm(D, H, seed, scale=0.5) for _ in range(2))
    for rbm in (fast, plain):
        rbm.k, rbm.momentum = k, momentum
    xp = backend.get_array_module(X)
    work = fast._cd_work(max(n, m), xp, fast.components_.dtype)
    velocities = {r: [xp.zeros_like(p) for p in (r.components_, r.intercept_visible_, r.intercept_hidden_)]
                  for r in (fast, plain)}
    rng_fast, rng_plain = get_generator(seed + 1, xp), get_generator(seed + 1, xp)
    chain_fast = chain_plain = chain
    for batch in (xp.arange(n), xp.arange(3, n + 3)[::-1]):
        chain_fast = fast._cd_update(X, batch, rng_fast, chain_fast, work, 0.1, weight_decay,
                                     velocities[fast])
        chain_plain = plain.cd_update_reference(X[batch], 0.1, velocities[plain], rng_plain,
                                                chain_plain, weight_decay)
        chain_fast, chain_plain = (c if persistent else None for c in (chain_fast, chain_plain))
    kept = (lambda r: params(r) + tuple(velocities[r])) if momentum else params  # u unused at 0
    for a, b in zip(kept(fast), kept(plain)):
        np.testing.assert_allclose(to_host(a), to_host(b), rtol=1e-12, atol=1e-14)
    if persistent:
        np.testing.assert_array_equal(to_host(chain_fast), to_host(chain_plain))
    assert rng_fast.random() == rng_plain.random()  # the same number of draws


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("persistent", [False, True])
def test_training_increases_exact_log_likelihood_and_pseudo_likelihood(persistent, seed):
    X = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [0, 0, 0, 1, 1], [0, 0, 1, 1, 1]], float)
    X = np.tile(X, (25, 1))
    # (PCD with a large step, e.g. learning_rate 0.1 and momentum 0.5 here, can outrun its chains
    # and lose likelihood: Tieleman 2008 uses small, decaying steps)
    rbm = RBM(3, persistent=persistent, learning_rate=0.1, max_iter=50, batch_size=10,
              random_state=seed, dtype="float64")
    assert rbm.fit(X) is rbm and rbm.n_iter_ == 50 and rbm.converged_
    # before training W ~ N(0, 0.01^2), b = c = 0: p(v) is uniform to within 1e-3 nats
    uniform = -5 * np.log(2)
    assert rbm.score(X) > uniform + 1.0
    untrained = with_parameters(np.zeros((5, 3)), np.zeros(5), np.zeros(3))
    pll_before, pll_after = (float(r.pseudo_log_likelihood(X, exact=True).mean()) for r in (untrained, rbm))
    assert pll_before == pytest.approx(uniform) and pll_after > pll_before + 1.0
    history = rbm.history_
    assert len(history["reconstruction_error"]) == len(history["pseudo_log_likelihood"]) == 50
    assert np.mean(history["reconstruction_error"][-5:]) < np.mean(history["reconstruction_error"][:5])


def test_fit_is_reproducible_and_keeps_dtype():
    X = (np.random.default_rng(0).random((60, 6)) < 0.4).astype(np.float32)
    settings = dict(max_iter=2, batch_size=16, weight_decay=1e-3, k=2, random_state=5)
    a, b = RBM(4, **settings).fit(X), RBM(4, **settings).fit(X)
    np.testing.assert_array_equal(to_host(a.components_), to_host(b.components_))
    assert a.components_.dtype == a.intercept_visible_.dtype == np.float32
    assert a.free_energy(X).dtype == np.float32
    assert a.sample(3, n_gibbs=2).shape == (3, 6)
    p = to_host(a.sample(3, n_gibbs=2, return_probabilities=True))
    assert np.all((p > 0) & (p < 1))


def test_weight_decay_shrinks_weights():
    X = (np.random.default_rng(0).random((100, 8)) < 0.5).astype(float)
    kw = dict(max_iter=5, batch_size=10, learning_rate=0.1, random_state=0)
    plain = RBM(4, **kw).fit(X)
    decayed = RBM(4, weight_decay=0.5, **kw).fit(X)
    assert np.linalg.norm(to_host(decayed.components_)) < np.linalg.norm(to_host(plain.components_))


# ---- bad input (one row per case) ---------------------------------------------------------------

def fitted_rbm():
    return random_rbm(3, 2, seed=0, scale=0.5)


NAN = np.array([[0.0, np.nan, 1.0]])
BAD_INPUT = [
    (lambda: RBM(2).fit(NAN), ValueError, "must hold only finite values, but it contains 1 NaN"),
    (lambda: fitted_rbm().free_energy(np.array([[0.0, np.inf, 1.0]])), ValueError, "1 infinite"),
    (lambda: fitted_rbm().prob_h_given_v(NAN), ValueError, "v must hold only finite values"),
    (lambda: fitted_rbm().score_samples(NAN), ValueError, "X must hold only finite values"),
    (lambda: fitted_rbm().free_energy(np.zeros(3)), ValueError, r"v must be a 2-D array.*shape \(3,\)"),
    (lambda: fitted_rbm().energy(np.zeros((1, 3)), np.zeros((1, 3))), ValueError,
     r"h must have shape \(n_samples, 2\)"),
    (lambda: fitted_rbm().energy(np.zeros((2, 3)), np.zeros((1, 2))), ValueError, "same number of rows"),
    (lambda: fitted_rbm().score_samples(np.zeros((4, 5))), ValueError,
     r"X must have shape \(n_samples, 3\), got shape \(4, 5\)"),
    (lambda: RBM(2).fit([["a", "b", "c"]]), TypeError, "X must hold real numbers"),
    (lambda: fitted_rbm().free_energy([[0.0, 0.3, 1.0]]), ValueError,
     r"must be binary \(values in \{0, 1\}\), got e.g. 0.3"),
    (lambda: fitted_rbm().pseudo_log_likelihood([[0.0, 0.3, 1.0]]), ValueError, "must be binary"),
    (lambda: fitted_rbm().score_samples([[0.0, 0.3, 1.0]]), ValueError, "must be binary"),
    (lambda: RBM(2).fit(np.array([[0.0, -1.0, 1.0]])), ValueError,
     r"X must have values in \[0, 1\], got values in \[-1.0, 1.0\]"),
    (lambda: RBM(0).fit(np.zeros((4, 3))), ValueError, "n_hidden must be >= 1, got 0"),
    (lambda: RBM(2, k=0).fit(np.zeros((4, 3))), ValueError, "k must be >= 1, got 0"),
    (lambda: RBM(2, learning_rate=float("nan")).fit(np.zeros((4, 3))), ValueError,
     "learning_rate must be finite, got nan"),
    (lambda: RBM(2, momentum=1.0).fit(np.zeros((4, 3))), ValueError, r"momentum must be in \[0, 1\)"),
    (lambda: RBM(2, max_iter=0).fit(np.zeros((4, 3))), ValueError, "max_iter must be >= 1, got 0"),
    (lambda: RBM(2, dtype="int8").fit(np.zeros((4, 3))), ValueError, "dtype must be float32 or float64"),
    (lambda: fitted_rbm().log_partition_ais(n_betas=1), ValueError, "n_betas must be >= 2"),
    (lambda: fitted_rbm().sample(0), ValueError, "n_samples must be >= 1, got 0"),
    (lambda: fitted_rbm().sample(2, n_gibbs=0), ValueError, "n_gibbs must be >= 1, got 0"),
    (lambda: RBM(2).free_energy(np.zeros((1, 3))), ValueError, "not fitted"),
    (lambda: random_rbm(21, 30, seed=0, scale=0.01).log_partition(), ValueError,
     r"2\^21 states.*log_partition_ais"),
]


@pytest.mark.parametrize("call, error, pattern", BAD_INPUT)
def test_bad_input_is_rejected_with_a_clear_message(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_probabilities_are_allowed_for_training():
    X = np.tile(np.array([[0.0, 0.3, 1.0]]), (10, 1))
    assert RBM(2, max_iter=1, random_state=0).fit(X).n_features_in_ == 3


# ---- one code path ---------------------------------------------------------------------------------

@pytest.mark.cpu_only  # runs on the strict stand-in; a cuda run is the real check
def test_every_method_stays_in_the_array_module_of_the_parameters():
    """With the data in the strict CuPy stand-in, any np.* call on data raises TypeError."""
    from strict_xp import StrictArray, strict_module, to_plain, to_strict

    X = (np.random.default_rng(1).random((30, 5)) < 0.5).astype(float)
    for persistent in (False, True):
        rbm = RBM(4, max_iter=2, batch_size=8, persistent=persistent, momentum=0.5,
                  weight_decay=1e-3, random_state=strict_module.random.default_rng(0),
                  dtype="float64").fit(to_strict(X))
    assert isinstance(rbm.components_, StrictArray) and isinstance(rbm.data_mean_, StrictArray)
    ref = with_parameters(*(to_plain(p) for p in (rbm.components_.T, rbm.intercept_visible_,
                                                  rbm.intercept_hidden_)))
    h = rbm.sample_h_given_v(X)  # plain NumPy input is converted
    assert isinstance(h, StrictArray) and isinstance(rbm.gibbs(X, k=2), StrictArray)
    np.testing.assert_allclose(to_plain(rbm.free_energy(X)), ref.free_energy(X))
    np.testing.assert_allclose(to_plain(rbm.energy(X, to_plain(h))), ref.energy(X, to_plain(h)))
    np.testing.assert_allclose(to_plain(rbm.prob_v_given_h(h)), ref.prob_v_given_h(to_plain(h)))
    assert rbm.log_partition() == pytest.approx(ref.log_partition())
    np.testing.assert_allclose(to_plain(rbm.score_samples(X)), ref.score_samples(X))
    np.testing.assert_allclose(to_plain(rbm.pseudo_log_likelihood(X, exact=True)),
                               ref.pseudo_log_likelihood(X, exact=True))
    rbm.pseudo_log_likelihood(X)
    rbm.reconstruction_error(X)
    rbm.cd_gradient(X)
    rbm.log_partition_ais(n_betas=5, n_runs=4, X=X, return_bounds=True)
    assert isinstance(rbm.sample(3, n_gibbs=2), StrictArray)
