"""minigen.nn.init: the documented scales, in place, reproducible from a generator."""
import math

import numpy as np
import pytest

import minigen
from devices import to_host
from minigen import nn
from minigen.nn import init


def param(*shape, dtype="float32"):
    return nn.Parameter(np.zeros(shape, dtype=dtype))


def test_calculate_gain_table():
    assert init.calculate_gain("linear") == 1 and init.calculate_gain("sigmoid") == 1
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01 ** 2)))
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == pytest.approx(math.sqrt(1 / 3))
    with pytest.raises(ValueError, match="softsign"):
        init.calculate_gain("softsign")


def test_fills_in_place_and_constants():
    p = param(3, 4)
    before = p.data
    assert init.ones_(p) is p and p.data is before and np.all(to_host(before) == 1)
    init.zeros_(p)
    assert np.all(p.numpy() == 0)
    init.constant_(p, 2.5)
    assert np.all(p.numpy() == 2.5)
    raw = np.zeros(5)
    init.uniform_(raw, 1, 2, generator=0)
    assert np.all((raw >= 1) & (raw < 2))
    with pytest.raises(TypeError, match="floating"):
        init.normal_(np.zeros(3, dtype=np.int64))


@pytest.mark.parametrize("fn, kwargs, std", [
    (init.uniform_, dict(a=-3.0, b=1.0), 4 / math.sqrt(12)),
    (init.normal_, dict(mean=0.0, std=0.7), 0.7),
    (init.xavier_uniform_, dict(gain=2.0), 2 * math.sqrt(2 / (200 + 100))),
    (init.xavier_normal_, dict(), math.sqrt(2 / (200 + 100))),
    (init.kaiming_uniform_, dict(nonlinearity="relu"), math.sqrt(2) / math.sqrt(200)),
    (init.kaiming_normal_, dict(mode="fan_out", nonlinearity="relu"), math.sqrt(2) / math.sqrt(100)),
    (init.kaiming_uniform_, dict(a=math.sqrt(5)), 1 / math.sqrt(3 * 200)),
])
def test_standard_deviations_match_the_formulas(fn, kwargs, std):
    p = param(100, 200)  # fan_in 200, fan_out 100; 20,000 draws: std within ~1.5 %
    fn(p, generator=0, **kwargs)
    assert p.numpy().std() == pytest.approx(std, rel=0.03)


def test_uniform_bounds_are_respected():
    p = param(50, 40)
    init.xavier_uniform_(p, generator=1)
    bound = math.sqrt(6 / 90)
    assert bound >= np.abs(p.numpy()).max() > 0.95 * bound
    init.kaiming_uniform_(p, a=math.sqrt(5), generator=1)
    assert np.abs(p.numpy()).max() <= 1 / math.sqrt(40)


def test_conv_weights_count_the_receptive_field():
    p = param(16, 8, 3, 3)  # fan_in = 8*9 = 72, fan_out = 16*9 = 144
    init.kaiming_normal_(p, nonlinearity="linear", generator=2)
    assert p.numpy().std() == pytest.approx(1 / math.sqrt(72), rel=0.05)
    init.kaiming_normal_(p, mode="fan_out", nonlinearity="linear", generator=2)
    assert p.numpy().std() == pytest.approx(1 / math.sqrt(144), rel=0.05)


def test_generator_reproducibility_and_dtype_independence():
    a, b, c = param(5, 6), param(5, 6), param(5, 6, dtype="float64")
    for p in (a, b, c):
        init.xavier_normal_(p, generator=42)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(a.numpy(), c.numpy().astype(np.float32))
    assert c.dtype == np.float64
    minigen.manual_seed(3)
    init.normal_(a)
    minigen.manual_seed(3)
    init.normal_(b)
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_fan_needs_two_dimensions_and_valid_mode():
    with pytest.raises(ValueError, match="2 dimensions"):
        init.xavier_uniform_(param(5))
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_uniform_(param(3, 3), mode="fan_avg")


@pytest.mark.cpu_only  # swaps NumPy arrays for the strict stand-in; a cuda run is the real check
def test_init_uses_only_the_array_module():
    """On strict arrays (a CuPy stand-in that refuses NumPy calls) init works in place."""
    from strict_xp import StrictArray, to_plain, to_strict

    for fn in (init.uniform_, init.normal_, init.xavier_uniform_, init.kaiming_normal_):
        plain, strict = param(4, 3, dtype="float64"), nn.Parameter(to_strict(np.zeros((4, 3))))
        before = strict.data
        fn(plain, generator=7)
        fn(strict, generator=7)
        assert strict.data is before and isinstance(strict.data, StrictArray)
        np.testing.assert_array_equal(to_plain(strict.data), plain.numpy())
