"""Every op in the table: forward against NumPy/SciPy, gradients against finite differences.

The table (one row per op: name, input strategy, function, reference) is in ``op_table.py``.
"""
import numpy as np
import pytest
from hypothesis import given, settings

import minigen
from devices import on_device, to_host
from op_table import OPS


def as_tuple(out):
    return out if isinstance(out, tuple) else (out,)


def examples(op, at_most=None):
    """The profile's number of examples, capped for costly rows (and by ``at_most``)."""
    n = settings.default.max_examples
    for cap in (op.max_examples, at_most):
        n = n if cap is None else min(n, cap)
    return n


def device_params(params):
    """The case's array settings (indices, masks, conditions) on the device under test."""
    return {k: on_device(v) if isinstance(v, np.ndarray) else v for k, v in params.items()}


def run(op, case, dtype=None):
    """Forward and backward (random upstream gradient) on fresh tensors on the device under
    test; returns outputs, inputs."""
    tensors = [minigen.tensor(a.astype(dtype or a.dtype) if a.dtype.kind == "f" else a,
                              requires_grad=a.dtype.kind == "f") for a in case.arrays]
    outs = as_tuple(op.fn(*tensors, **device_params(case.params)))
    rng = np.random.default_rng(0)
    loss = sum((o * on_device(rng.standard_normal(o.shape))).sum() for o in outs)
    loss.backward()
    return outs, tensors


@pytest.mark.parametrize("op", OPS, ids=str)
def test_forward_matches_reference_and_gradients_match_finite_differences(op):
    @settings(max_examples=examples(op))
    @given(case=op.inputs)
    def check(case):
        params = device_params(case.params)
        outs = as_tuple(op.fn(*[minigen.tensor(a) for a in case.arrays], **params))
        refs = as_tuple(op.ref(*case.arrays, **case.params))
        assert len(outs) == len(refs)
        for out, ref in zip(outs, refs):
            assert out.shape == np.shape(ref) and out.dtype == np.float64
            np.testing.assert_allclose(to_host(out), ref, rtol=1e-10, atol=1e-12)
        minigen.gradcheck(lambda *ts: op.fn(*ts, **params), [a.copy() for a in case.arrays])

    check()


@pytest.mark.parametrize("op", OPS, ids=str)
def test_float32_stays_float32(op):
    """Python scalars and constants inside an op must not promote float32 data to float64."""
    @settings(max_examples=examples(op, at_most=3))
    @given(case=op.inputs)
    def check(case):
        outs, tensors = run(op, case, dtype=np.float32)
        refs = as_tuple(op.ref(*case.arrays, **case.params))
        for out, ref in zip(outs, refs):
            assert out.dtype == np.float32, f"{op.name} returned {out.dtype}"
            np.testing.assert_allclose(to_host(out), ref, rtol=1e-4, atol=1e-5)
        for t in tensors:
            if t.requires_grad:
                assert t.grad.dtype == np.float32 and t.grad.shape == t.shape

    check()
