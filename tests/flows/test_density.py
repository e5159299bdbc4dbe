"""Flow densities are densities: a 2-D flow integrates to one, Affine(2, 1) is exactly N(1, 4),
and a 1-D flow's samples follow its own CDF (Kolmogorov-Smirnov)."""
import math

import numpy as np
import pytest
from scipy import stats

import minigen
from devices import on_device, to_host
from minigen import flows


def randomise(module, seed, scale):
    rng = np.random.default_rng(seed)
    for p in module.parameters():
        p.data += on_device(scale * rng.standard_normal(p.shape))
    return module


def grid_integral(flow, half_width=10.0, n=401):
    axis = np.linspace(-half_width, half_width, n)
    xx, yy = np.meshgrid(axis, axis, indexing="ij")
    points = np.stack([xx.ravel(), yy.ravel()], axis=1)
    with minigen.no_grad():
        density = np.exp(to_host(flow.log_prob(on_device(points)))).reshape(n, n)
    return np.trapezoid(np.trapezoid(density, axis, axis=1), axis)


@pytest.mark.parametrize("seed", [1, 3])  # random flows whose mass lies inside [-10, 10]^2
def test_a_2d_flow_density_integrates_to_one(seed):
    minigen.manual_seed(seed)
    cb = flows.checkerboard_mask
    transform = flows.Sequential(flows.AffineCoupling(cb(2, 0), (16,)), flows.MAF(2, (16,)),
                                 flows.AffineCoupling(cb(2, 1), (16,)), flows.Invertible1x1Conv(2, lu=True),
                                 flows.Affine(2))
    flow = flows.Flow(randomise(transform.double(), seed, 0.3))
    outside = (np.abs(to_host(flow.sample(20000, generator=np.random.default_rng(0)))) > 10).any(axis=1).mean()
    assert outside < 1e-3  # so the box holds all but a negligible part of the mass
    assert abs(grid_integral(flow) - 1) < 1e-3
    # the check has power: a flow whose log-determinant is dropped does not integrate to one
    wrong = flows.Flow(randomise(flows.Sequential(flows.Affine(2)).double(), seed, 0.4))
    wrong.transform[0].inverse = lambda x: ((x - wrong.transform[0].shift) * (-wrong.transform[0].log_scale).exp(),
                                            minigen.tensor(on_device(np.zeros(x.shape[0]))))
    assert abs(grid_integral(wrong) - 1) > 1e-2


def test_affine_scale_2_shift_1_is_normal_1_4():
    """The deck's y = 2x + 1: with x ~ N(0, 1), y ~ N(1, 4)."""
    affine = flows.Affine(1).double()
    affine.log_scale.data[...] = math.log(2.0)
    affine.shift.data[...] = 1.0
    flow = flows.Flow(affine)
    y = np.linspace(-8, 10, 37)[:, None]
    np.testing.assert_allclose(to_host(flow.log_prob(on_device(y))), stats.norm(1, 2).logpdf(y[:, 0]),
                               rtol=1e-12, atol=1e-12)
    samples, log_q = flow.sample_with_log_prob(5, generator=np.random.default_rng(0))
    np.testing.assert_allclose(to_host(log_q), stats.norm(1, 2).logpdf(to_host(samples)[:, 0]), rtol=1e-12)


def test_samples_of_a_1d_flow_follow_its_own_cdf():
    """x = T(z) with T increasing, so P(X <= x) = Phi(T^-1(x)): a KS test of 4000 samples."""
    minigen.manual_seed(0)
    t = flows.Sequential(flows.Affine(1), flows.Logit(0.1), flows.Affine(1)).double()
    for p, value in zip(t.parameters(), [0.7, 0.5, 0.3, -1.0]):  # log_scale, shift of each Affine
        p.data[...] = value
    flow = flows.Flow(t)
    x = to_host(flow.sample(4000, generator=np.random.default_rng(1)))[:, 0]

    def cdf(values):
        with minigen.no_grad():
            z, _ = t.inverse(minigen.tensor(on_device(values[:, None])))
        return stats.norm.cdf(to_host(z)[:, 0])
    assert stats.kstest(x, cdf).pvalue > 0.01
    assert stats.kstest(x, stats.norm(x.mean(), x.std()).cdf).pvalue < 0.01  # it is not Gaussian


def test_sample_shapes_and_generator_reproducibility():
    flow = flows.Flow(flows.MAF(3, (8,)))
    a = to_host(flow.sample(5, generator=np.random.default_rng(3)))
    b = to_host(flow.sample(5, generator=np.random.default_rng(3)))
    assert a.shape == (5, 3) and np.array_equal(a, b)
    x, log_q = flow.sample_with_log_prob(5, generator=np.random.default_rng(3))
    np.testing.assert_allclose(to_host(x), a, rtol=1e-6)
    np.testing.assert_allclose(to_host(log_q), to_host(flow.log_prob(x.detach())), rtol=1e-4, atol=1e-4)
