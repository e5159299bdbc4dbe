"""Every transform: inverse undoes forward and the log-determinants cancel (float64, 1e-10),
log_abs_det equals log |det J| of a central-difference Jacobian, and gradcheck of the density
with respect to every parameter (and the input)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigen
from devices import to_host
from flow_helpers import CASES, INVERTIBLE, inputs, jacobian_log_det, make
from minigen import flows

seeds = st.integers(0, 2 ** 16)
scales = st.floats(0.1, 1.0)


@pytest.mark.parametrize("name", INVERTIBLE)
@settings(max_examples=5)
@given(seed=seeds, scale=scales, x_scale=st.floats(0.1, 3.0))
def test_inverse_undoes_forward_and_log_dets_cancel(name, seed, scale, x_scale):
    t, shape = make(name, seed, scale)
    z = inputs(shape, seed, n=3, scale=x_scale)
    x, log_det = t(z)
    z_back, log_det_inv = t.inverse(x)
    assert x.shape[0] == 3 and log_det.shape == (3,) and log_det_inv.shape == (3,)
    z, z_back, log_det, log_det_inv = map(to_host, (z, z_back, log_det, log_det_inv))
    np.testing.assert_allclose(z_back, z, rtol=1e-10, atol=1e-10 * np.abs(z).max())
    np.testing.assert_allclose(log_det + log_det_inv, 0, atol=1e-10 * (1 + np.abs(log_det).max()))


@pytest.mark.parametrize("name", list(CASES))
@settings(max_examples=3)
@given(seed=seeds, scale=scales)
def test_log_abs_det_matches_the_jacobian(name, seed, scale):
    t, shape = make(name, seed, scale)
    z = inputs(shape, seed)
    with minigen.no_grad():
        _, log_det = t(z)
    np.testing.assert_allclose(to_host(log_det), jacobian_log_det(t, z), rtol=1e-6, atol=1e-6)
    if CASES[name][2]:  # the density direction too, at the image of z
        x = t(z)[0].detach()
        if name == "Logit":
            x = inputs(shape, seed).sigmoid().detach()
        with minigen.no_grad():
            _, log_det_inv = t.inverse(x)
        np.testing.assert_allclose(to_host(log_det_inv), jacobian_log_det(t.inverse, x), rtol=1e-6, atol=1e-6)


def test_jacobian_check_can_fail():
    """A wrong log-determinant (the affine coupling's sign flipped) is caught."""
    t, shape = make("AffineCoupling-0", 0, 0.5)
    z = inputs(shape, 0)
    with minigen.no_grad():
        _, log_det = t(z)
    assert not np.allclose(-to_host(log_det), jacobian_log_det(t, z), atol=1e-3)


@pytest.mark.parametrize("name", list(CASES))
@settings(max_examples=2)
@given(seed=seeds, scale=st.floats(0.1, 0.5))
def test_gradcheck_log_prob(name, seed, scale):
    """d log p / d(every parameter, the input) by central differences. Transforms without an
    inverse: the log-density of a sample x = T(z) at fixed z, log p_Z(z) - log |det dT/dz|."""
    t, shape = make(name, seed, scale)
    flow = flows.Flow(t, event_shape=shape)
    params = list(t.parameters())
    if CASES[name][2]:
        x = flow.sample(2, generator=np.random.default_rng(seed)).double().detach().requires_grad_()
        if name == "Logit":
            x = inputs(shape, seed).sigmoid().detach().requires_grad_()
        assert minigen.gradcheck(lambda *_: flow.log_prob(x), [x] + params)
    else:
        z = inputs(shape, seed).requires_grad_()

        def density_of_sample(*_):
            x, log_det = t(z)
            return x, flow.base_log_prob(z) - log_det
        assert minigen.gradcheck(density_of_sample, [z] + params)

