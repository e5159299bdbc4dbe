"""Distributions: log_prob and entropy against scipy.stats, closed-form KL against Monte Carlo,
gradients (rsample with the noise held fixed), stability at extreme logits, sampling, bad input."""
import numpy as np
import pytest
import scipy.stats as stats
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import arrays

import minigen
from devices import to_host
from minigen import backend
from minigen.distributions import Bernoulli, Categorical, Normal, kl_divergence

XP = backend.array_module_for(backend.default_device())


def T(a, requires_grad=False):
    """A float64 tensor on the device under test."""
    return minigen.Tensor(XP.asarray(np.asarray(a, dtype=np.float64)), requires_grad=requires_grad)


shapes = st.tuples(st.integers(1, 3), st.integers(1, 4))
finite = st.floats(-2, 2, allow_nan=False)
positive = st.floats(0.1, 3, allow_nan=False)
unit = st.floats(0.02, 0.98, allow_nan=False)


@st.composite
def normal_params(draw):
    shape = draw(shapes)
    return (draw(arrays(np.float64, shape, elements=finite)),
            draw(arrays(np.float64, shape, elements=positive)),
            draw(arrays(np.float64, shape, elements=finite)))


# ---- log_prob and entropy against scipy.stats -------------------------------------------------------

@given(normal_params())
def test_normal_log_prob_and_entropy_match_scipy(params):
    loc, scale, x = params
    d = Normal(T(loc), T(scale))
    np.testing.assert_allclose(to_host(d.log_prob(T(x))), stats.norm.logpdf(x, loc, scale), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_host(d.entropy()), stats.norm.entropy(loc, scale), rtol=1e-12)
    by_logvar = Normal(T(loc), logvar=T(2 * np.log(scale)))
    np.testing.assert_allclose(to_host(by_logvar.log_prob(T(x))), to_host(d.log_prob(T(x))), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_host(by_logvar.scale), scale, rtol=1e-12)


@given(arrays(np.float64, st.integers(1, 6), elements=unit), st.data())
def test_bernoulli_log_prob_and_entropy_match_scipy(p, data):
    x = data.draw(arrays(np.float64, p.shape, elements=st.sampled_from([0.0, 1.0])))
    for d in (Bernoulli(probs=T(p)), Bernoulli(logits=T(np.log(p) - np.log1p(-p)))):
        np.testing.assert_allclose(to_host(d.log_prob(T(x))), stats.bernoulli.logpmf(x, p), rtol=1e-10)
        np.testing.assert_allclose(to_host(d.entropy()), stats.bernoulli.entropy(p), rtol=1e-10)
        np.testing.assert_allclose(to_host(d.mean), p, rtol=1e-10)


@given(arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(2, 5)), elements=positive), st.data())
def test_categorical_log_prob_and_entropy_match_scipy(w, data):
    p = w / w.sum(-1, keepdims=True)
    k = np.array([data.draw(st.integers(0, p.shape[1] - 1)) for _ in range(p.shape[0])])
    expected = [stats.multinomial(1, row).logpmf(np.eye(p.shape[1])[j]) for row, j in zip(p, k)]
    for d in (Categorical(probs=T(w)), Categorical(logits=T(np.log(w) + 3.0))):  # unnormalised both
        np.testing.assert_allclose(to_host(d.log_prob(XP.asarray(k))), expected, rtol=1e-10)
        np.testing.assert_allclose(to_host(d.entropy()), stats.entropy(p, axis=-1), rtol=1e-10)
        np.testing.assert_allclose(to_host(d.mean), p, rtol=1e-10)


def test_log_prob_broadcasts_sample_axes():
    d = Normal(T(np.zeros(3)), T(np.ones(3)))
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(to_host(d.log_prob(T(x))), stats.norm.logpdf(x), rtol=1e-12)
    b = Bernoulli(logits=T(np.zeros(3)))
    assert b.log_prob(T(np.ones((4, 2, 3)))).shape == (4, 2, 3)


# ---- KL divergence: closed form against Monte Carlo --------------------------------------------------

def assert_kl_matches_monte_carlo(p, q, n=200_000, seed=0):
    """mean over x ~ p of log p(x) - log q(x), within 5 standard errors of the closed form."""
    x = p.sample((n,), generator=seed)
    terms = to_host(p.log_prob(x) - q.log_prob(x))
    estimate, se = terms.mean(0), terms.std(0) / np.sqrt(n)
    exact = to_host(kl_divergence(p, q))
    assert np.all(np.abs(estimate - exact) <= 5 * se + 1e-9), (estimate, exact, se)
    assert np.all(exact >= -1e-12)


@given(normal_params(), st.data())
def test_kl_normal_normal_matches_monte_carlo(params, data):
    loc, scale, _ = params
    loc_q = data.draw(arrays(np.float64, loc.shape, elements=finite))
    scale_q = data.draw(arrays(np.float64, loc.shape, elements=positive))
    p, q = Normal(T(loc), T(scale)), Normal(T(loc_q), logvar=T(2 * np.log(scale_q)))
    assert_kl_matches_monte_carlo(p, q, n=20_000)
    np.testing.assert_allclose(to_host(kl_divergence(p, p)), 0, atol=1e-12)


def test_kl_bernoulli_and_categorical_match_monte_carlo():
    rng = np.random.default_rng(1)
    p = Bernoulli(logits=T(rng.normal(0, 2, 5)))
    q = Bernoulli(probs=T(rng.uniform(0.05, 0.95, 5)))
    assert_kl_matches_monte_carlo(p, q)
    p = Categorical(logits=T(rng.normal(0, 1, (3, 4))))
    q = Categorical(probs=T(rng.uniform(0.1, 1, (3, 4))))
    assert_kl_matches_monte_carlo(p, q)


def test_vae_kl_against_standard_normal_is_the_textbook_formula():
    mu, logvar = np.array([0.3, -1.0, 2.0]), np.array([0.5, -2.0, 0.0])
    kl = kl_divergence(Normal(T(mu), logvar=T(logvar)), Normal(T(np.zeros(3)), T(np.ones(3))))
    np.testing.assert_allclose(to_host(kl), 0.5 * (np.exp(logvar) + mu ** 2 - 1 - logvar), rtol=1e-12)


def test_kl_of_unsupported_pair_raises():
    with pytest.raises(NotImplementedError, match="Normal/Normal"):
        kl_divergence(Normal(T([0.0]), T([1.0])), Bernoulli(probs=T([0.5])))


# ---- gradients ------------------------------------------------------------------------------------

@given(normal_params())
def test_rsample_gradients_pass_gradcheck_with_noise_fixed(params):
    loc, scale, eps = params
    eps = T(np.stack([eps, -eps]))  # two samples per parameter
    minigen.gradcheck(lambda m, s: Normal(m, s).rsample(eps=eps), [T(loc, True), T(scale, True)])
    minigen.gradcheck(lambda m, lv: Normal(m, logvar=lv).rsample(eps=eps),
                      [T(loc, True), T(np.log(scale), True)])
    z = Normal(T(loc), T(scale)).rsample(eps=eps)
    np.testing.assert_allclose(to_host(z), loc + scale * to_host(eps), rtol=1e-12)


@given(normal_params())
def test_log_prob_entropy_kl_gradients(params):
    loc, scale, x = params
    minigen.gradcheck(lambda m, s, v: Normal(m, s).log_prob(v), [T(loc, True), T(scale, True), T(x, True)])
    minigen.gradcheck(lambda m, lv: kl_divergence(Normal(m, logvar=lv), Normal(T(x), T(scale))),
                      [T(loc, True), T(np.log(scale), True)])
    minigen.gradcheck(lambda l: Bernoulli(logits=l).entropy(), [T(loc, True)])
    minigen.gradcheck(lambda l, k: kl_divergence(Bernoulli(logits=l), Bernoulli(logits=k)),
                      [T(loc, True), T(x, True)])
    minigen.gradcheck(lambda l: Categorical(logits=l).log_prob(XP.zeros(loc.shape[0], dtype=np.int64)),
                      [T(loc, True)])
    minigen.gradcheck(lambda l, k: kl_divergence(Categorical(logits=l), Categorical(logits=k)),
                      [T(loc, True), T(x, True)])


def test_bernoulli_is_stable_at_extreme_logits():
    logits = T([1000.0, -1000.0, 1000.0, -1000.0], requires_grad=True)
    x = T([1.0, 1.0, 0.0, 0.0])
    log_p = Bernoulli(logits=logits).log_prob(x)
    np.testing.assert_array_equal(to_host(log_p), [0.0, -1000.0, -1000.0, 0.0])
    log_p.sum().backward()
    np.testing.assert_array_equal(to_host(logits.grad), [0.0, 1.0, -1.0, 0.0])  # d/dl = x - sigmoid(l)
    # KL(p=1 || q=e^-1000) = -log q = 1000
    kl = kl_divergence(Bernoulli(logits=logits), Bernoulli(logits=T([-1000.0, 1000.0, 0.0, 0.0])))
    np.testing.assert_allclose(to_host(kl), [1000.0, 1000.0, np.log(2), np.log(2)], rtol=1e-12)
    assert np.all(np.isfinite(to_host(Bernoulli(logits=logits).entropy())))
    assert np.all(np.isfinite(to_host(Bernoulli(probs=T([0.0, 1.0])).log_prob(T([0.0, 1.0])))))


# ---- sampling ---------------------------------------------------------------------------------------

def test_samples_have_the_right_moments_and_no_gradient():
    n = 100_000
    loc, scale = T([0.5, -2.0], True), T([1.0, 0.1], True)
    z = Normal(loc, scale).sample((n,), generator=0)
    assert z.shape == (n, 2) and not z.requires_grad
    np.testing.assert_allclose(to_host(z).mean(0), [0.5, -2.0], atol=5 * 1.0 / np.sqrt(n))
    np.testing.assert_allclose(to_host(z).std(0), [1.0, 0.1], rtol=0.02)
    assert Normal(loc, scale).rsample((3,), generator=0).requires_grad

    p = np.array([0.1, 0.5, 0.9])
    b = to_host(Bernoulli(probs=T(p)).sample((n,), generator=1))
    assert set(np.unique(b)) <= {0.0, 1.0}
    np.testing.assert_allclose(b.mean(0), p, atol=5 * 0.5 / np.sqrt(n))

    w = np.array([0.2, 0.0, 0.3, 0.5])
    c = to_host(Categorical(probs=T(w)).sample((n,), generator=2))
    assert c.dtype == np.int64 and c.shape == (n,)
    np.testing.assert_allclose(np.bincount(c, minlength=4) / n, w, atol=5 * 0.5 / np.sqrt(n))


def test_sampling_is_reproducible_with_a_seed():
    d = Normal(T(np.zeros(4)), T(np.ones(4)))
    np.testing.assert_array_equal(to_host(d.sample((2,), generator=7)), to_host(d.sample((2,), generator=7)))
    minigen.manual_seed(3)
    a = to_host(d.rsample())
    minigen.manual_seed(3)
    np.testing.assert_array_equal(a, to_host(d.rsample()))


# ---- bad input ----------------------------------------------------------------------------------------

def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="exactly one of scale= and logvar="):
        Normal(T([0.0]))
    with pytest.raises(ValueError, match="scale must be positive"):
        Normal(T([0.0]), T([-1.0]))
    with pytest.raises(ValueError, match="exactly one of probs= and logits="):
        Bernoulli(probs=T([0.5]), logits=T([0.0]))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        Bernoulli(probs=T([1.5]))
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\].*255"):
        Bernoulli(logits=T([0.0])).log_prob(T([255.0]))
    with pytest.raises(ValueError, match="NaN"):
        Bernoulli(logits=T([0.0])).log_prob(T([np.nan]))
    with pytest.raises(ValueError, match=r"values must lie in \[0, 3\)"):
        Categorical(logits=T([0.0, 0.0, 0.0])).log_prob(XP.asarray([3]))
    with pytest.raises(TypeError, match="integer class indices"):
        Categorical(logits=T([0.0, 0.0])).log_prob(T([1.0]))
    with pytest.raises(ValueError, match="batch shape"):
        Normal(T(np.zeros(3)), T(np.ones(3))).rsample(eps=T(np.zeros(2)))
    with pytest.raises(NotImplementedError, match="score-function"):
        Bernoulli(logits=T([0.0])).rsample()
