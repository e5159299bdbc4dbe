"""The fast convolution path (minigen.ops.conv: chunked wide-row columns, polyphase strides, the
adjoint by output phases) against the plain im2col reference: values and gradients, gradcheck,
chunking, the 1x1 no-copy case, the phase decomposition's tap count, and bad input."""
import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

import minigen
from devices import on_device, to_host
from minigen.backend import get_array_module
from minigen.gradcheck import gradcheck
from minigen.ops import conv as conv_ops


@st.composite
def windows(draw):
    """Kernel, stride, padding, dilation per axis (1x1 and stride 2 / dilation 2 included), an
    input size that the (dilated) kernel fits after padding (odd sizes too), batch 1 to 3."""
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    size = tuple(draw(st.integers(max(1, d * (k - 1) + 1 - 2 * p), max(1, d * (k - 1) + 1 - 2 * p) + 6))
                 for k, p, d in zip(kernel, padding, dilation))
    return dict(n=draw(st.integers(1, 3)), c=draw(st.integers(1, 3)), o=draw(st.integers(1, 3)),
                size=size, kernel=kernel, stride=stride, padding=padding, dilation=dilation,
                seed=draw(st.integers(0, 2 ** 16)))


def case(n, c, o, size, kernel, stride=(1, 1), padding=(0, 0), dilation=(1, 1), seed=0):
    return dict(n=n, c=c, o=o, size=size, kernel=kernel, stride=stride, padding=padding,
                dilation=dilation, seed=seed)


POINTWISE = case(2, 3, 2, (5, 3), (1, 1))
STRIDED = case(1, 2, 3, (7, 6), (3, 3), (2, 2), (1, 1))
DILATED = case(2, 2, 2, (9, 7), (3, 2), (1, 2), (2, 0), (2, 2))
UNPADDED_ODD = case(1, 3, 2, (5, 7), (4, 3), (1, 1), (0, 0))
STRIDE_ABOVE_KERNEL = case(2, 2, 2, (8, 9), (1, 2), (3, 2), (0, 1))


def values_and_grads(fn, arrays, upstream_seed=1):
    """fn(*tensors) and the gradients of <fn(...), upstream> for every input, on the host."""
    tensors = [minigen.tensor(on_device(a), dtype="float64", requires_grad=True) for a in arrays]
    y = fn(*tensors)
    upstream = np.random.default_rng(upstream_seed).standard_normal(y.shape)
    y.backward(minigen.tensor(on_device(upstream)))
    return [to_host(y)] + [to_host(t.grad) for t in tensors]


def assert_same(got, want):
    for name, a, b in zip(("y", "dx", "dW", "db"), got, want):
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=name)


def conv2d_arrays(cs):
    rng = np.random.default_rng(cs["seed"])
    return [rng.standard_normal((cs["n"], cs["c"]) + cs["size"]),
            rng.standard_normal((cs["o"], cs["c"]) + cs["kernel"]), rng.standard_normal(cs["o"])]


def conv_transpose2d_arrays(cs):
    """Input (n, c, size), weight (c, o, kernel): conv_transpose2d maps c channels to o."""
    rng = np.random.default_rng(cs["seed"])
    return [rng.standard_normal((cs["n"], cs["c"]) + cs["size"]),
            rng.standard_normal((cs["c"], cs["o"]) + cs["kernel"]), rng.standard_normal(cs["o"])]


def conv_output_size(cs):
    return [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, p, d in
            zip(cs["size"], cs["kernel"], cs["stride"], cs["padding"], cs["dilation"])]


def transposed_output_size(cs, output_padding):
    return [(n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n, s, p, op, d, k in
            zip(cs["size"], cs["stride"], cs["padding"], output_padding, cs["dilation"], cs["kernel"])]


@settings(max_examples=25)
@given(windows())
@example(POINTWISE)
@example(STRIDED)
@example(DILATED)
@example(UNPADDED_ODD)
@example(STRIDE_ABOVE_KERNEL)
def test_conv2d_fast_equals_reference(cs):
    args = cs["stride"], cs["padding"], cs["dilation"]
    arrays = conv2d_arrays(cs)
    assert_same(values_and_grads(lambda x, w, b: conv_ops.conv2d(x, w, b, *args), arrays),
                values_and_grads(lambda x, w, b: conv_ops.conv2d_reference(x, w, b, *args), arrays))


@settings(max_examples=25)
@given(windows(), st.data())
@example(POINTWISE, None)
@example(STRIDED, None)
@example(DILATED, None)
@example(UNPADDED_ODD, None)
@example(STRIDE_ABOVE_KERNEL, None)
def test_conv_transpose2d_fast_equals_reference(cs, data):
    output_padding = (0, 0) if data is None else tuple(
        data.draw(st.integers(0, max(s, d) - 1)) for s, d in zip(cs["stride"], cs["dilation"]))
    if min(transposed_output_size(cs, output_padding)) < 1:
        return  # an error on both paths (tests/nn/test_conv.py checks its message)
    args = cs["stride"], cs["padding"], output_padding, cs["dilation"]
    arrays = conv_transpose2d_arrays(cs)
    assert_same(values_and_grads(lambda x, w, b: conv_ops.conv_transpose2d(x, w, b, *args), arrays),
                values_and_grads(lambda x, w, b: conv_ops.conv_transpose2d_reference(x, w, b, *args), arrays))


@settings(max_examples=10)
@given(windows())
@example(STRIDED)
@example(DILATED)
def test_gradcheck_fast_conv2d(cs):
    args = cs["stride"], cs["padding"], cs["dilation"]
    assert gradcheck(lambda x, w, b: conv_ops.conv2d(x, w, b, *args), conv2d_arrays(cs))


@settings(max_examples=10)
@given(windows())
@example(STRIDED)
@example(DILATED)
def test_gradcheck_fast_conv_transpose2d(cs):
    output_padding = (cs["stride"][0] - 1, 0)
    if min(transposed_output_size(cs, output_padding)) < 1:
        return
    args = cs["stride"], cs["padding"], output_padding, cs["dilation"]
    assert gradcheck(lambda x, w, b: conv_ops.conv_transpose2d(x, w, b, *args), conv_transpose2d_arrays(cs))


@pytest.mark.parametrize("per_chunk", [1, 2])
def test_chunking_and_reused_work_arrays_do_not_change_results(monkeypatch, per_chunk):
    """5 samples in chunks of 1 or of 2, 2, 1 (the last one on the reused, larger work arrays)
    give what one chunk gives, on both ops and all gradients."""
    conv = case(5, 3, 4, (7, 6), (3, 2), (2, 1), (1, 2), (1, 2), seed=3)
    transpose = case(5, 3, 4, (4, 5), (4, 3), (2, 2), (1, 0), (1, 1), seed=4)
    conv_geom = conv_ops.WindowGeometry("conv2d", (7, 6), (3, 2), (2, 1), (1, 2), (1, 2))
    transpose_geom = conv_ops.transposed_geometry((4, 5), (4, 3), 2, (1, 0), 1, 1)
    runs = [(lambda x, w, b: conv_ops.conv2d(x, w, b, (2, 1), (1, 2), (1, 2)), conv2d_arrays(conv),
             conv_ops.Correlation.of("conv2d", conv_geom).column_bytes(3, 8)),
            (lambda x, w, b: conv_ops.conv_transpose2d(x, w, b, 2, (1, 0), 1),
             conv_transpose2d_arrays(transpose),
             conv_ops.Correlation.of("conv_transpose2d", transpose_geom).column_bytes(4, 8))]
    for fn, arrays, largest in runs:  # largest: conv2d's forward, conv_transpose2d's backward
        want = values_and_grads(fn, arrays)
        monkeypatch.setattr(conv_ops, "CHUNK_BYTES", 1 if per_chunk == 1 else 2 * largest)
        chunks = conv_ops.sample_chunks(5, largest)
        assert [s.stop - s.start for s in chunks] == ([1] * 5 if per_chunk == 1 else [2, 2, 1])
        for a, b in zip(values_and_grads(fn, arrays), want):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        monkeypatch.undo()


@settings(max_examples=10)
@given(windows())
@example(STRIDED)
@example(DILATED)
def test_exact_rows_layout_equals_reference(cs):
    """With WIDE_ROWS off the columns hold only output pixels (no junk entries): same results."""
    args = cs["stride"], cs["padding"], cs["dilation"]
    arrays = conv2d_arrays(cs)
    want = values_and_grads(lambda x, w, b: conv_ops.conv2d_reference(x, w, b, *args), arrays)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv_ops, "WIDE_ROWS", False)
        assert conv_ops.Correlation.of("conv2d", conv_ops.WindowGeometry(
            "conv2d", cs["size"], cs["kernel"], *args)).row == conv_output_size(cs)[1]
        assert_same(values_and_grads(lambda x, w, b: conv_ops.conv2d(x, w, b, *args), arrays), want)


def test_pointwise_columns_are_the_input_itself():
    """A 1x1, stride-1, unpadded convolution copies nothing: its columns are a view of x."""
    x = on_device(np.random.default_rng(0).standard_normal((3, 4, 5, 6)))
    corr = conv_ops.Correlation.of("conv2d", conv_ops.WindowGeometry("conv2d", (5, 6), 1, 1, 0, 1))
    cols = corr.columns(x)
    assert corr.pointwise and cols.shape == (4, 3, 30)
    assert get_array_module(x).shares_memory(cols, x)
    np.testing.assert_array_equal(to_host(cols), to_host(x).reshape(3, 4, 30).swapaxes(0, 1))
    # a padded or strided 1x1 window is not pointwise
    for stride, padding in ((2, 0), (1, 1)):
        geom = conv_ops.WindowGeometry("conv2d", (5, 6), 1, stride, padding, 1)
        assert not conv_ops.Correlation.of("conv2d", geom).pointwise


@settings(max_examples=25)
@given(windows())
def test_adjoint_phases_use_every_tap_exactly_once(cs):
    """The output phases split the kernel: each tap (i, j) belongs to exactly one phase, so the
    phases together do the adjoint's FLOPs, none twice, none wasted (while every phase has an
    output pixel, i.e. the input is at least a stride long)."""
    geom = conv_ops.WindowGeometry("conv2d", cs["size"], cs["kernel"], cs["stride"], cs["padding"],
                                   cs["dilation"])
    if any(n < s for n, s in zip(cs["size"], cs["stride"])):
        return
    counts = np.zeros(cs["kernel"], dtype=int)
    for rho_h in range(cs["stride"][0]):
        for rho_w in range(cs["stride"][1]):
            phase = conv_ops.Phase(geom, (rho_h, rho_w))
            if phase.correlation is not None:
                counts[phase.taps] += 1
    np.testing.assert_array_equal(counts, 1)


BAD = [  # (x shape, weight shape, bias shape, settings, message)
    ((2, 3, 5, 5), (4, 2, 3, 3), None, {}, "expects 2 input channels"),
    ((2, 3, 5), (4, 3, 3, 3), None, {}, "4-D input"),
    ((2, 3, 5, 5), (4, 3, 3, 3), (3,), {}, "bias must have shape"),
    ((2, 3, 2, 2), (4, 3, 3, 3), None, {}, "larger than the padded input"),
    ((2, 3, 5, 5), (4, 3, 3, 3), None, {"stride": 0}, "must be >= 1"),
    ((2, 3, 5, 5), (4, 3, 3, 3), None, {"padding": -1}, "padding must be >= 0"),
    ((2, 3, 5, 5), (4, 3, 3, 3), None, {"stride": 1.5}, "stride must be an int or a pair"),
]


@pytest.mark.parametrize("x_shape, w_shape, b_shape, kwargs, message", BAD)
@pytest.mark.parametrize("fn", [conv_ops.conv2d, conv_ops.conv2d_reference])
def test_bad_input_is_refused_alike_by_both_paths(fn, x_shape, w_shape, b_shape, kwargs, message):
    bias = None if b_shape is None else minigen.zeros(*b_shape)
    with pytest.raises((ValueError, TypeError), match=message):
        fn(minigen.zeros(*x_shape), minigen.zeros(*w_shape), bias, **kwargs)
