"""Bad input to the flows: a clear error naming the argument, what was expected and what was given."""
import numpy as np
import pytest

import minigen
from devices import on_device
from minigen import flows


def x(*shape):
    return minigen.tensor(on_device(np.full(shape, 0.5)))


CASES = [
    ("Logit alpha", lambda: flows.Logit(0.5), ValueError, r"alpha must be in \[0, 0.5\)"),
    ("Affine shape", lambda: flows.Affine(0), ValueError, "shape"),
    ("Planar dim", lambda: flows.Planar(2.5), TypeError, "dim"),
    ("Planar inverse", lambda: flows.Planar(2).inverse(x(1, 2)), NotImplementedError, "no closed-form inverse"),
    ("Radial inverse", lambda: flows.Radial(2).inverse(x(1, 2)), NotImplementedError, "no closed-form inverse"),
    ("log_prob of a planar flow", lambda: flows.Flow(flows.Planar(2)).log_prob(x(1, 2)), NotImplementedError,
     "sample_with_log_prob"),
    ("checkerboard parity", lambda: flows.checkerboard_mask((4, 4), 2), ValueError, "parity"),
    ("channel_mask channels", lambda: flows.channel_mask(1), ValueError, "channels"),
    ("coupling mask all ones", lambda: flows.AffineCoupling(np.ones(4)), ValueError, "both 0s and 1s"),
    ("coupling mask not 0/1", lambda: flows.AdditiveCoupling(np.array([0, 0.5])), ValueError, "0/1"),
    ("coupling mask 2-D", lambda: flows.AffineCoupling(np.eye(2)), ValueError, r"shape \(D,\)"),
    ("coupling input shape", lambda: flows.AffineCoupling(flows.checkerboard_mask(4))(x(2, 3)), ValueError,
     r"does not match the mask of shape \(4,\)"),
    ("ActNorm input", lambda: flows.ActNorm(3).inverse(x(2, 4)), ValueError, r"expected input \(N, 3\)"),
    ("1x1 conv channels", lambda: flows.Invertible1x1Conv(3)(x(2, 4, 2, 2)), ValueError, r"\(N, 3, H, W\)"),
    ("Squeeze odd size", lambda: flows.Squeeze().inverse(x(1, 1, 3, 4)), ValueError, "even"),
    ("Squeeze channels", lambda: flows.Squeeze()(x(1, 3, 2, 2)), ValueError, "divisible by 4"),
    ("MADE input", lambda: flows.MADE(3)(x(2, 4)), ValueError, r"expected input \(N, 3\)"),
    ("MADE missing context", lambda: flows.MADE(3, context_dim=2)(x(2, 3)), ValueError, "context_dim=2"),
    ("MADE unexpected context", lambda: flows.MADE(3)(x(2, 3), x(2, 2)), ValueError, "context_dim=None"),
    ("Sequential of non-transforms", lambda: flows.Sequential(minigen.nn.Linear(2, 2)), TypeError, "Transform"),
    ("Flow of a non-transform", lambda: flows.Flow(minigen.nn.Linear(2, 2)), TypeError, "Transform"),
    ("Flow without a shape", lambda: flows.Flow(flows.Squeeze()), ValueError, "event_shape"),
    ("Flow sample n", lambda: flows.Flow(flows.Affine(2)).sample(0), ValueError, "n must be >= 1"),
    ("AmortizedPlanar params", lambda: flows.AmortizedPlanar(2, 3)(x(4, 2), x(4, 5)), ValueError,
     r"params of shape \(4, 15\)"),
    ("dequantize range", lambda: flows.dequantize(np.array([256])), ValueError, r"levels in \[0, 255\]"),
]


@pytest.mark.parametrize("name, call, error, match", CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_a_clear_error(name, call, error, match):
    with pytest.raises(error, match=match):
        call()
