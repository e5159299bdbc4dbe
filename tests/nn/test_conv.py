"""conv2d / conv_transpose2d and their layers: loop references, gradients, the adjoint identity, errors."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minigen
import minigen.functional as F
import minigen.nn as nn
from devices import on_device, to_host


def reference_conv2d(x, w, b, stride, padding, dilation):
    """y[n, o, a, b] = sum_{c, i, j} x_pad[n, c, a*s + i*d, b*s + j*d] w[o, c, i, j] + b[o], by loops."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    n_, c_, h, w_ = x.shape
    o_, _, kh, kw = w.shape
    x_pad = np.zeros((n_, c_, h + 2 * ph, w_ + 2 * pw))
    x_pad[:, :, ph:ph + h, pw:pw + w_] = x
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w_ + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((n_, o_, oh, ow))
    for n in range(n_):
        for o in range(o_):
            for a in range(oh):
                for bb in range(ow):
                    total = 0.0 if b is None else b[o]
                    for c in range(c_):
                        for i in range(kh):
                            for j in range(kw):
                                total += x_pad[n, c, a * sh + i * dh, bb * sw + j * dw] * w[o, c, i, j]
                    y[n, o, a, bb] = total
    return y


def reference_conv_transpose2d(x, w, b, stride, padding, output_padding, dilation):
    """Each input pixel scatters x[n, c, a, b] * w[c, o, i, j] to (a*s - p + i*d, b*s - p + j*d)."""
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = stride, padding, output_padding, dilation
    n_, c_, h, w_ = x.shape
    _, o_, kh, kw = w.shape
    out_h = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    out_w = (w_ - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    y = np.zeros((n_, o_, out_h, out_w)) + (0 if b is None else b[None, :, None, None])
    for n in range(n_):
        for c in range(c_):
            for a in range(h):
                for bb in range(w_):
                    for o in range(o_):
                        for i in range(kh):
                            for j in range(kw):
                                r, q = a * sh - ph + i * dh, bb * sw - pw + j * dw
                                if 0 <= r < out_h and 0 <= q < out_w:
                                    y[n, o, r, q] += x[n, c, a, bb] * w[c, o, i, j]
    return y


@st.composite
def conv_cases(draw, max_size=6):
    """Small shapes with any stride/padding/dilation such that the kernel fits the padded input."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    size = tuple(draw(st.integers(max(1, d * (k - 1) + 1 - 2 * p), max(1, d * (k - 1) + 1 - 2 * p) + max_size))
                 for k, p, d in zip(kernel, padding, dilation))
    n, c, o = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2 ** 16))
    return dict(n=n, c=c, o=o, size=size, kernel=kernel, stride=stride, padding=padding,
                dilation=dilation, rng=np.random.default_rng(seed))


def conv_output_size(case):
    return tuple((n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, p, d in
                 zip(case["size"], case["kernel"], case["stride"], case["padding"], case["dilation"]))


def t64(a, grad=False):
    return minigen.tensor(a, dtype="float64", requires_grad=grad)


@settings(max_examples=12)
@given(conv_cases())
def test_conv2d_matches_loop_reference(case):
    rng = case["rng"]
    x = rng.standard_normal((case["n"], case["c"]) + case["size"])
    w = rng.standard_normal((case["o"], case["c"]) + case["kernel"])
    b = rng.standard_normal(case["o"])
    y = F.conv2d(t64(x), t64(w), t64(b), case["stride"], case["padding"], case["dilation"])
    expected = reference_conv2d(x, w, b, case["stride"], case["padding"], case["dilation"])
    assert y.shape == expected.shape == (case["n"], case["o"]) + conv_output_size(case)
    np.testing.assert_allclose(y.numpy(), expected, atol=1e-12)


@settings(max_examples=12)
@given(conv_cases(), st.data())
def test_conv_transpose2d_matches_loop_reference(case, data):
    rng = case["rng"]
    output_padding = tuple(data.draw(st.integers(0, max(s, d) - 1))
                           for s, d in zip(case["stride"], case["dilation"]))
    x = rng.standard_normal((case["n"], case["c"]) + case["size"])
    w = rng.standard_normal((case["c"], case["o"]) + case["kernel"])
    b = rng.standard_normal(case["o"])
    args = (case["stride"], case["padding"], output_padding, case["dilation"])
    out_size = [(n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n, s, p, op, d, k in
                zip(case["size"], *args, case["kernel"])]
    if min(out_size) < 1:
        with pytest.raises(ValueError, match="not positive"):
            F.conv_transpose2d(t64(x), t64(w), t64(b), *args)
        return
    expected = reference_conv_transpose2d(x, w, b, *args)
    y = F.conv_transpose2d(t64(x), t64(w), t64(b), *args)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.numpy(), expected, atol=1e-12)


@settings(max_examples=15)
@given(conv_cases())
def test_conv2d_gradcheck(case):
    rng = case["rng"]
    x = t64(rng.standard_normal((case["n"], case["c"]) + case["size"]), True)
    w = t64(rng.standard_normal((case["o"], case["c"]) + case["kernel"]), True)
    b = t64(rng.standard_normal(case["o"]), True)
    assert minigen.gradcheck(
        lambda x, w, b: F.conv2d(x, w, b, case["stride"], case["padding"], case["dilation"]), [x, w, b])


@settings(max_examples=15)
@given(conv_cases())
def test_conv_transpose2d_gradcheck(case):
    rng = case["rng"]
    x = t64(rng.standard_normal((case["n"], case["c"]) + conv_output_size(case)), True)
    w = t64(rng.standard_normal((case["c"], case["o"]) + case["kernel"]), True)
    b = t64(rng.standard_normal(case["o"]), True)
    fn = lambda x, w, b: F.conv_transpose2d(x, w, b, case["stride"], case["padding"], 0,  # noqa: E731
                                            case["dilation"])
    assert minigen.gradcheck(fn, [x, w, b])


def test_conv_gradcheck_directional_on_a_larger_input():
    rng = np.random.default_rng(1)
    x = t64(rng.standard_normal((3, 5, 11, 9)), True)
    w = t64(rng.standard_normal((6, 5, 3, 3)), True)
    b = t64(rng.standard_normal(6), True)
    assert minigen.gradcheck(lambda x, w, b: F.conv2d(x, w, b, 2, 1, 1), [x, w, b])
    y = t64(rng.standard_normal((3, 6, 6, 5)), True)
    assert minigen.gradcheck(lambda y, w, b: F.conv_transpose2d(y, w, b[:5], 2, 1, 0),
                             [y, w, b])


@settings(max_examples=25)
@given(conv_cases(max_size=8))
def test_conv_transpose2d_is_the_adjoint_of_conv2d(case):
    """<conv2d(x, W), y> == <x, conv_transpose2d(y, W)> for any x, y, W (same W for both)."""
    rng = case["rng"]
    x = rng.standard_normal((case["n"], case["c"]) + case["size"])
    w = rng.standard_normal((case["o"], case["c"]) + case["kernel"])
    out = conv_output_size(case)
    y = rng.standard_normal((case["n"], case["o"]) + out)
    # output_padding recovers the input size that stride's floor division dropped
    output_padding = tuple(n + 2 * p - d * (k - 1) - 1 - (m - 1) * s for n, m, k, s, p, d in
                           zip(case["size"], out, case["kernel"], case["stride"], case["padding"],
                               case["dilation"]))
    conv = F.conv2d(t64(x), t64(w), None, case["stride"], case["padding"], case["dilation"]).numpy()
    adjoint = F.conv_transpose2d(t64(y), t64(w), None, case["stride"], case["padding"],
                                 output_padding, case["dilation"]).numpy()
    assert adjoint.shape == x.shape
    assert abs(np.vdot(conv, y) - np.vdot(x, adjoint)) <= 1e-10 * max(1.0, abs(np.vdot(conv, y)))


def test_zero_upstream_gradient_and_float32_dtype_kept():
    rng = np.random.default_rng(2)
    x = minigen.tensor(rng.standard_normal((2, 3, 5, 5)), dtype="float32", requires_grad=True)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    y = conv(x)
    assert y.dtype == np.float32 and y.shape == (2, 4, 5, 5)
    y.backward(np.zeros(y.shape, dtype=np.float32))
    assert not x.grad.any() and not conv.weight.grad.any() and not conv.bias.grad.any()
    assert x.grad.dtype == conv.weight.grad.dtype == np.float32


def test_first_layer_input_without_grad_gets_none():
    x = minigen.tensor(np.ones((1, 2, 4, 4)))
    conv = nn.Conv2d(2, 3, 3)
    conv(x).sum().backward()
    assert x.grad is None and conv.weight.grad.shape == (3, 2, 3, 3)


def test_layer_parameters_shapes_and_default_init_bounds():
    minigen.manual_seed(0)
    conv = nn.Conv2d(8, 16, (3, 5), stride=2, padding=1)
    assert conv.weight.shape == (16, 8, 3, 5) and conv.bias.shape == (16,)
    bound = 1 / math.sqrt(8 * 3 * 5)
    for p in (conv.weight, conv.bias):
        assert np.abs(p.numpy()).max() <= bound and np.abs(p.numpy()).max() > 0.8 * bound
    deconv = nn.ConvTranspose2d(8, 16, 4, stride=2, bias=False)
    assert deconv.weight.shape == (8, 16, 4, 4) and deconv.bias is None
    # PyTorch's fan_in for the transposed layout: weight.shape[1] * kh * kw
    assert np.abs(deconv.weight.numpy()).max() <= 1 / math.sqrt(16 * 16)
    assert [name for name, _ in conv.named_parameters()] == ["weight", "bias"]


def test_conv_transpose2d_output_size_formula():
    x = minigen.zeros(1, 4, 7, 5)
    layer = nn.ConvTranspose2d(4, 2, (4, 3), stride=(2, 3), padding=(1, 0), output_padding=(1, 2))
    # H_out = (H - 1) s - 2p + d (k - 1) + output_padding + 1
    assert layer(x).shape == (1, 2, 6 * 2 - 2 + 3 + 1 + 1, 4 * 3 + 2 + 2 + 1)


def test_against_torch_if_installed():
    torch = pytest.importorskip("torch", reason="torch is not installed; it is only an optional cross-check")
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((2, 3, 9, 8)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    ours = F.conv2d(t64(x), t64(w), t64(b), (2, 1), (1, 2), (1, 2)).numpy()
    theirs = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), (2, 1), (1, 2), (1, 2))
    np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-10)
    wt = rng.standard_normal((3, 4, 4, 3))
    ours = F.conv_transpose2d(t64(x), t64(wt), t64(b), 2, 1, 1).numpy()
    theirs = torch.nn.functional.conv_transpose2d(torch.tensor(x), torch.tensor(wt), torch.tensor(b), 2, 1, 1)
    np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-10)


# ----------------------------------------------------------------------------- bad input

def test_wrong_channel_count_names_both_values():
    conv = nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match=r"expected 3 input channels, got 5"):
        conv(minigen.zeros(1, 5, 8, 8))
    with pytest.raises(ValueError, match=r"expects 3 input channels, got an input with 5"):
        F.conv2d(minigen.zeros(1, 5, 8, 8), conv.weight)
    with pytest.raises(ValueError, match=r"expects 4 input channels, got an input with 3"):
        F.conv_transpose2d(minigen.zeros(1, 3, 8, 8), minigen.zeros(4, 2, 3, 3))


def test_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match=r"kernel of size 5x5 .* larger than the padded input 4x4"):
        F.conv2d(minigen.zeros(1, 1, 2, 2), minigen.zeros(1, 1, 5, 5), padding=1)
    with pytest.raises(ValueError, match=r"kernel of size 5x3 .*larger than the padded input 4x6"):
        F.conv2d(minigen.zeros(1, 1, 4, 6), minigen.zeros(1, 1, 3, 2), dilation=2)


def test_non_4d_input():
    with pytest.raises(ValueError, match=r"4-D input \(N, C, H, W\), got shape \(3, 8, 8\)"):
        nn.Conv2d(3, 4, 3)(minigen.zeros(3, 8, 8))
    with pytest.raises(ValueError, match=r"4-D input .*got shape \(8, 8\)"):
        F.conv_transpose2d(minigen.zeros(8, 8), minigen.zeros(1, 1, 3, 3))


def test_bad_settings():
    x, w = minigen.zeros(1, 1, 5, 5), minigen.zeros(1, 1, 3, 3)
    with pytest.raises(ValueError, match=r"stride .*\(0, 0\)"):
        F.conv2d(x, w, stride=0)
    with pytest.raises(ValueError, match=r"padding must be >= 0, got \(-1, -1\)"):
        F.conv2d(x, w, padding=-1)
    with pytest.raises(TypeError, match=r"stride must be an int or a pair of ints, got 1.5"):
        F.conv2d(x, w, stride=1.5)
    with pytest.raises(ValueError, match=r"bias must have shape \(1,\).*got \(2,\)"):
        F.conv2d(x, w, minigen.zeros(2))
    with pytest.raises(ValueError, match=r"output_padding .* got output_padding \(2, 2\), stride \(2, 2\)"):
        F.conv_transpose2d(x, w, stride=2, output_padding=2)


def test_second_backward_with_retain_graph_rebuilds_the_freed_columns():
    rng = np.random.default_rng(4)
    x = t64(rng.standard_normal((2, 3, 6, 6)), True)
    w = t64(rng.standard_normal((4, 3, 3, 3)), True)
    y = F.conv2d(x, w, padding=1)
    g = rng.standard_normal(y.shape)
    y.backward(on_device(g), retain_graph=True)
    first_w, first_x = to_host(w.grad.copy()), to_host(x.grad.copy())  # to_host may alias on the CPU
    y.backward(on_device(g))
    np.testing.assert_allclose(to_host(w.grad), 2 * first_w, rtol=1e-12)
    np.testing.assert_allclose(to_host(x.grad), 2 * first_x, rtol=1e-12)


# ----------------------------------------------------------------------------- one code path

STRICT_CASES = {  # every Function behind the layers of this issue, on small float64 inputs
    "conv2d": (lambda x, w, b: F.conv2d(x, w, b, 2, 1, 1), [(2, 3, 6, 5), (4, 3, 3, 3), (4,)]),
    "conv_transpose2d": (lambda x, w, b: F.conv_transpose2d(x, w, b, 2, 1, 1), [(2, 4, 3, 3), (4, 3, 3, 3), (3,)]),
    "max_pool2d": (lambda x: F.max_pool2d(x, 3, 2, 1), [(2, 3, 6, 5)]),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 3, 2, 1), [(2, 3, 6, 5)]),
    "upsample_nearest": (lambda x: F.upsample_nearest(x, 2), [(2, 3, 3, 2)]),
    "layer_norm": (lambda x, w, b: F.layer_norm(x, 5, w, b), [(2, 3, 5), (5,), (5,)]),
    "batch_norm": (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [(4, 3, 2), (3,), (3,)]),
    "embedding": (lambda w: F.embedding(w.data[:3, :2].astype("int64") % 3, w), [(3, 4)]),
    "dropout": (lambda x: F.dropout(x, 0.5, generator=minigen.backend.get_array_module(x).random.default_rng(0)),
                [(3, 4)]),
    "lstm_recurrence": (F.lstm_recurrence, [(3, 2, 8), (8, 2), (2, 2), (2, 2)]),
}


@pytest.mark.parametrize("name", list(STRICT_CASES))
def test_ops_run_on_the_strict_cupy_stand_in(name):
    """No op reaches for NumPy behind the backend's back (tests/strict_xp.py): outputs and
    gradients stay StrictArrays and equal the NumPy run."""
    from strict_xp import StrictArray, to_plain, to_strict
    fn, shapes = STRICT_CASES[name]
    arrays = [np.abs(np.random.default_rng(5).standard_normal(s)) + 0.5 for s in shapes]
    results = []
    for wrap in (to_strict, lambda a: a):
        minigen.manual_seed(0)
        tensors = [minigen.Tensor(wrap(a.copy()), requires_grad=True) for a in arrays]
        out = fn(*tensors)
        out.backward(wrap(np.random.default_rng(6).standard_normal(out.shape)))
        results.append([out.data] + [t.grad for t in tensors])
    for strict, plain in zip(*results):
        assert isinstance(strict, StrictArray)
        np.testing.assert_allclose(to_plain(strict), plain, rtol=1e-12)


def test_results_do_not_depend_on_the_column_chunk_size(monkeypatch):
    """The temporary columns are made a few samples at a time; one sample per chunk gives the same."""
    import minigen.ops.conv as conv_ops
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((5, 3, 7, 6)), rng.standard_normal((3, 4, 3, 2))
    g = rng.standard_normal((5, 4, 14, 11))

    def run():
        xt, wt, bt = t64(x, True), t64(w, True), t64(rng.standard_normal(4) * 0, True)
        y = F.conv_transpose2d(xt, wt, bt, 2, 1, 1)
        y.backward(on_device(g))
        return y.numpy(), to_host(xt.grad), to_host(wt.grad)
    whole = run()
    monkeypatch.setattr(conv_ops, "CHUNK_BYTES", 1)
    for a, b in zip(whole, run()):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert minigen.gradcheck(lambda x, w: F.conv_transpose2d(x, w, None, 2, 1, 1), [t64(x, True), t64(w, True)])
    assert minigen.gradcheck(lambda x, w: F.conv2d(x, w, None, 2, 1), [t64(x, True), t64(w.swapaxes(0, 1), True)])
