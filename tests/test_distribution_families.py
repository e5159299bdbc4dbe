"""Laplace, Logistic, StudentT and PixelCNN++'s DiscretizedLogisticMixture against scipy and
numerical integration; Laplace KL in closed form; gradients; sampling; argument validation."""
import math

import numpy as np
import pytest
import scipy.integrate as integrate
import scipy.stats as stats
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

import minigen
import minigen.functional as F
from devices import to_host
from minigen import backend
from minigen.distributions import (Bernoulli, Categorical, DiscretizedLogisticMixture, Distribution,
                                   Laplace, Logistic, Normal, StudentT, kl_divergence)

XP = backend.array_module_for(backend.default_device())


def T(a, requires_grad=False):
    return minigen.Tensor(XP.asarray(np.asarray(a, dtype=np.float64)), requires_grad=requires_grad)


shapes = st.tuples(st.integers(1, 3), st.integers(1, 4))
finite = st.floats(-2, 2, allow_nan=False)
positive = st.floats(0.2, 3, allow_nan=False)


@st.composite
def loc_scale_x(draw):
    shape = draw(shapes)
    return tuple(draw(arrays(np.float64, shape, elements=e)) for e in (finite, positive, finite))


SCIPY = {Laplace: stats.laplace, Logistic: stats.logistic}


# ---- densities, moments and entropy against scipy ------------------------------------------

@pytest.mark.parametrize("family", [Laplace, Logistic])
@given(params=loc_scale_x())
def test_location_scale_families_match_scipy(family, params):
    loc, scale, x = params
    d, ref = family(T(loc), T(scale)), SCIPY[family](loc, scale)
    np.testing.assert_allclose(to_host(d.log_prob(T(x)).data), ref.logpdf(x), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(to_host(d.entropy().data), ref.entropy(), rtol=1e-10)
    np.testing.assert_allclose(to_host(d.mean.data), ref.mean(), rtol=1e-12)
    np.testing.assert_allclose(to_host(d.variance.data), ref.var(), rtol=1e-10)
    np.testing.assert_allclose(to_host(d.cdf(T(x)).data), ref.cdf(x), rtol=1e-9, atol=1e-12)


@given(params=loc_scale_x(), df=st.floats(0.5, 30))
def test_student_t_matches_scipy(params, df):
    loc, scale, x = params
    d, ref = StudentT(df, T(loc), T(scale)), stats.t(df, loc, scale)
    np.testing.assert_allclose(to_host(d.log_prob(T(x)).data), ref.logpdf(x), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(to_host(d.entropy().data), ref.entropy(), rtol=1e-9)
    mean = to_host(d.mean.data)
    if df > 1:
        np.testing.assert_allclose(mean, ref.mean(), rtol=1e-12)
    else:  # undefined: NaN as in PyTorch (scipy says inf at df = 1)
        assert np.isnan(mean).all()
    np.testing.assert_allclose(to_host(d.variance.data), ref.var(), rtol=1e-10)  # inf, NaN alike


# ---- sampling -------------------------------------------------------------------------------

@pytest.mark.parametrize("make, ref", [
    (lambda: Laplace(T(0.5), T(1.5)), stats.laplace(0.5, 1.5)),
    (lambda: Logistic(T(-1.0), T(0.7)), stats.logistic(-1.0, 0.7)),
    (lambda: StudentT(3.0, T(0.2), T(2.0)), stats.t(3.0, 0.2, 2.0)),
])
def test_samples_pass_a_kolmogorov_smirnov_test(make, ref):
    draws = to_host(make().sample((20000,), generator=np.random.default_rng(0)
                                  if XP is np else None).data)
    assert stats.kstest(draws, ref.cdf).pvalue > 1e-3


@pytest.mark.parametrize("family", [Laplace, Logistic])
def test_rsample_is_differentiable_with_the_noise_fixed(family):
    eps = np.random.default_rng(1).standard_normal((5, 2, 3))
    fn = lambda loc, scale: F.tanh(family(loc, scale).rsample(eps=eps)).sum(axis=0)  # noqa: E731
    loc, scale = np.random.default_rng(2).standard_normal((2, 3)), np.full((2, 3), 0.8)
    assert minigen.gradcheck(fn, [loc, scale])


@pytest.mark.parametrize("make", [
    lambda l, s: Laplace(l, s), lambda l, s: Logistic(l, s), lambda l, s: StudentT(2.5, l, s)])
@settings(max_examples=8)
@given(params=loc_scale_x())
def test_log_prob_gradients_in_loc_and_scale(make, params):
    loc, scale, x = params
    x = x + 0.37  # keep Laplace away from its kink at x = loc
    assert minigen.gradcheck(lambda l, s: make(l, s).log_prob(T(x)), [loc, scale])


# ---- KL ---------------------------------------------------------------------------------------

@given(st.floats(-2, 2), st.floats(0.3, 3), st.floats(-2, 2), st.floats(0.3, 3))
@settings(max_examples=10)
def test_laplace_kl_matches_numerical_integration(m_p, b_p, m_q, b_q):
    p, q = stats.laplace(m_p, b_p), stats.laplace(m_q, b_q)

    def integrand(x):
        density = p.pdf(x)
        return 0.0 if density == 0 else density * (p.logpdf(x) - q.logpdf(x))

    kinks = sorted({m_p, m_q})
    reach = 80 * b_p  # p's mass beyond is below e^-80
    edges = [m_p - reach] + kinks + [m_p + reach]  # smooth between the two kinks
    expected = sum(integrate.quad(integrand, a, b, epsabs=1e-12, limit=200)[0]
                   for a, b in zip(edges[:-1], edges[1:]))
    got = kl_divergence(Laplace(T(m_p), T(b_p)), Laplace(T(m_q), T(b_q)))
    assert float(got.item()) == pytest.approx(expected, rel=1e-6, abs=1e-8)


def test_laplace_kl_gradient_and_missing_pairs_point_to_monte_carlo():
    fn = lambda a, b: kl_divergence(Laplace(a, b), Laplace(T([0.3, -0.2]), T([1.2, 0.5])))  # noqa: E731
    assert minigen.gradcheck(fn, [np.array([0.9, 0.4]), np.array([0.7, 1.1])])
    with pytest.raises(NotImplementedError, match="Monte Carlo"):
        kl_divergence(Logistic(T(0.0), T(1.0)), Logistic(T(1.0), T(1.0)))


# ---- the discretised logistic mixture ------------------------------------------------------------

@st.composite
def mixture_params(draw):
    k = draw(st.integers(1, 3))
    shape = (draw(st.integers(1, 3)), k)
    return (draw(arrays(np.float64, shape, elements=st.floats(-2, 2))),
            draw(arrays(np.float64, shape, elements=st.floats(-1.2, 1.2))),
            draw(arrays(np.float64, shape, elements=st.floats(-7, 1))))  # scales 1e-3 .. 2.7


def _all_levels(batch):
    return XP.asarray(np.broadcast_to(np.arange(256)[:, None], (256, batch)))


@given(mixture_params())
def test_discretized_logistic_mixture_sums_to_one(params):
    d = DiscretizedLogisticMixture(*(T(p) for p in params))
    probs = np.exp(to_host(d.log_prob(_all_levels(params[0].shape[0])).data))
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, rtol=1e-10)


@settings(max_examples=5)
@given(mixture_params())
def test_discretized_logistic_mixture_matches_integrating_the_density_over_each_bin(params):
    logits, means, log_scales = (p[0] for p in params)
    weights = np.exp(logits - logits.max())
    weights /= weights.sum()
    pdf = lambda x: sum(w * stats.logistic.pdf(x, m, math.exp(s))  # noqa: E731
                        for w, m, s in zip(weights, means, log_scales))
    d = DiscretizedLogisticMixture(*(T(p[:1]) for p in params))
    got = np.exp(to_host(d.log_prob(_all_levels(1)).data))[:, 0]
    for k in (0, 1, 100, 127, 128, 254, 255):  # both edge bins reach to infinity
        x = 2 * k / 255 - 1
        lo = -np.inf if k == 0 else x - 1 / 255
        hi = np.inf if k == 255 else x + 1 / 255
        centres = [m for m in means if lo < m < hi]
        expected = integrate.quad(pdf, lo, hi, points=centres or None, epsabs=1e-13, limit=200)[0] \
            if np.isfinite(lo) and np.isfinite(hi) else integrate.quad(pdf, lo, hi, epsabs=1e-13)[0]
        assert got[k] == pytest.approx(expected, rel=1e-6, abs=1e-11), k


def test_discretized_logistic_mixture_gradients():
    rng = np.random.default_rng(3)
    levels = XP.asarray(np.array([[0, 17, 128, 255], [3, 250, 90, 64]]))
    fn = lambda a, m, s: DiscretizedLogisticMixture(a, m, s).log_prob(levels)  # noqa: E731
    assert minigen.gradcheck(fn, [rng.standard_normal((2, 4, 3)), 0.5 * rng.standard_normal((2, 4, 3)),
                                  rng.uniform(-4, 0, (2, 4, 3))])


def test_discretized_logistic_mixture_samples_match_its_probabilities():
    d = DiscretizedLogisticMixture(T([[0.3, -0.5]]), T([[-0.6, 0.4]]), T([[-2.5, -3.0]]), n_levels=16)
    probs = np.exp(to_host(d.log_prob(XP.asarray(np.arange(16)[:, None])).data))[:, 0]
    draws = to_host(d.sample((40000,), generator=np.random.default_rng(5) if XP is np else None).data)[:, 0]
    counts = np.bincount(draws, minlength=16)
    keep = probs * len(draws) > 5
    observed = np.append(counts[keep], counts[~keep].sum())
    expected = np.append(probs[keep], probs[~keep].sum()) * len(draws)
    assert stats.chisquare(observed[expected > 0], expected[expected > 0]).pvalue > 1e-3


def test_log1mexp_is_accurate_for_tiny_arguments_and_differentiable():
    d = np.array([1e-12, 1e-6, 0.3, 5.0])
    got = to_host(F.log1mexp(T(d)).data)
    expected = [math.log(-math.expm1(-v)) for v in d]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert minigen.gradcheck(F.log1mexp, [np.array([0.01, 0.4, 2.0])])


# ---- validation (PyTorch's validate_args, on by default) ------------------------------------------

BAD = [
    ("Normal loc NaN", lambda: Normal(T(np.nan), T(1.0)), "loc must be finite"),
    ("Normal scale 0", lambda: Normal(T(0.0), T(0.0)), "scale must be positive"),
    ("Normal logvar inf", lambda: Normal(T(0.0), logvar=T(np.inf)), "logvar must be finite"),
    ("Normal log_prob NaN", lambda: Normal(T(0.0), T(1.0)).log_prob(T(np.nan)), "x must not be NaN"),
    ("Categorical NaN logits", lambda: Categorical(logits=T([np.nan, 0.0])).sample(5), "logits must not be NaN"),
    ("Categorical all -inf", lambda: Categorical(logits=T([-np.inf, -np.inf])), "at least one class"),
    ("Categorical +inf", lambda: Categorical(logits=T([np.inf, 0.0])), "below \\+inf"),
    ("Bernoulli NaN logits", lambda: Bernoulli(logits=T([np.nan])), "logits must not be NaN"),
    ("Bernoulli probs 2", lambda: Bernoulli(probs=T([2.0])), "must lie in \\[0, 1\\]"),
    ("Laplace scale 0", lambda: Laplace(T(0.0), T(0.0)), "scale must be positive"),
    ("Logistic loc inf", lambda: Logistic(T(np.inf), T(1.0)), "loc must be finite"),
    ("StudentT df 0", lambda: StudentT(0.0, T(0.0), T(1.0)), "df must be positive"),
    ("StudentT scale NaN", lambda: StudentT(2.0, T(0.0), T(np.nan)), "scale must be positive"),
    ("mixture NaN means", lambda: DiscretizedLogisticMixture(T([0.0]), T([np.nan]), T([0.0])), "means must be finite"),
    ("mixture level 256", lambda: DiscretizedLogisticMixture(T([0.0]), T([0.0]), T([0.0])).log_prob(
        XP.asarray(np.array(256))), "must lie in \\[0, 256\\)"),
    ("mixture float level", lambda: DiscretizedLogisticMixture(T([0.0]), T([0.0]), T([0.0])).log_prob(
        XP.asarray(np.array(0.5))), "integer pixel levels"),
    ("validate_args not bool", lambda: Normal(T(0.0), T(1.0), validate_args="yes"), "validate_args"),
]


@pytest.mark.parametrize("make, message", [row[1:] for row in BAD], ids=[row[0] for row in BAD])
def test_bad_parameters_and_values_raise_clear_errors(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_validation_can_be_switched_off_for_speed():
    lp = Normal(T(np.nan), T(1.0), validate_args=False).log_prob(T(0.0))
    assert np.isnan(float(lp.item()))
    Distribution.set_default_validate_args(False)
    try:
        assert np.isnan(float(Laplace(T(np.nan), T(1.0)).log_prob(T(0.0)).item()))
    finally:
        Distribution.set_default_validate_args(True)
    with pytest.raises(ValueError):
        Laplace(T(np.nan), T(1.0))
