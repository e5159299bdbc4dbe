"""PixelRNN (Row LSTM and Diagonal BiLSTM): causality by perturbation, no blind spot of the
Diagonal BiLSTM, exact normalisation, sampling distribution, gradients, the skew and the fused
recurrence against direct references, bad input."""
import importlib.util
import itertools
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats

import minigen
import minigen.functional as F
from devices import on_device, to_host
from minigen.models import PixelRNN
from minigen.models.pixelrnn import lstm_over_steps, skew, unskew

VARIANTS = ["row", "diagonal"]


def make(variant, seed=0, scale=None, **kwargs):
    """A tiny float64 PixelRNN; ``scale`` multiplies every weight (randomises class tables) so the
    conditionals are far from uniform."""
    minigen.manual_seed(seed)
    kwargs = {"hidden_channels": 3, "n_layers": 2, "kernel_size": 3, **kwargs}
    model = PixelRNN(variant=variant, **kwargs).double()
    if scale is not None:
        rng = np.random.default_rng(seed)
        for name, p in model.named_parameters():
            if "class" in name:
                p.data[...] = on_device(rng.standard_normal(p.shape))
            else:
                p.data *= scale
    return model


def all_images(C, H, W, V):
    """Every image of the given shape, (V^(CHW), C, H, W)."""
    return np.array(list(itertools.product(range(V), repeat=C * H * W))).reshape(-1, C, H, W)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("C, V, shape", [(1, 2, (4, 4)), (3, 2, (3, 3))])
def test_causal_by_perturbation(variant, C, V, shape):
    """For every (pixel, channel) i in generation order: redrawing every value at or after i
    leaves the logits at i unchanged (all perturbations of all i in one forward pass)."""
    model = make(variant, in_channels=C, n_values=V, hidden_channels=3)
    H, W = shape
    rng = np.random.default_rng(1)
    x = rng.integers(0, V, (1, C, H, W))
    order = (np.arange(H * W).reshape(1, H, W) * C + np.arange(C)[:, None, None])  # (C, H, W)
    positions = list(itertools.product(range(C), range(H), range(W)))
    copies = 4
    batch = np.repeat(x, len(positions) * copies, axis=0)
    for k, (ch, r, c) in enumerate(positions):
        later = order >= order[ch, r, c]
        for j in range(copies):
            new = rng.integers(0, V, (C, H, W))
            batch[k * copies + j][later] = new[later]
    base = model(x).numpy()
    logits = model(batch).numpy()
    changed = 0
    for k, (ch, r, c) in enumerate(positions):
        for j in range(copies):
            np.testing.assert_allclose(logits[k * copies + j, :, ch, r, c], base[0, :, ch, r, c],
                                       rtol=0, atol=1e-12,
                                       err_msg=f"channel {ch} of pixel ({r},{c}) sees the future")
        changed += not np.allclose(logits[k * copies:(k + 1) * copies], base)
    assert changed > len(positions) // 2  # perturbations do change later logits: the test has power


def dependence(model, x, r, c):
    """|d logits at pixel (r, c) / d one-hot input|, summed over values and batch: (H, W)."""
    h = minigen.tensor(model.one_hot(model.check_x(x)).data, requires_grad=True)
    logits = model.network(h)
    g = np.zeros(logits.shape)
    g[:, :, 0, r, c] = np.random.default_rng(0).standard_normal(g[:, :, 0, r, c].shape)
    logits.backward(on_device(g))
    N, _, H, W = x.shape
    return np.abs(to_host(h.grad)).reshape(N, model.n_values, H, W).sum(axis=(0, 1))


@pytest.mark.parametrize("kernel_size, n_layers", [(3, 1), (3, 2), (5, 1)])
def test_diagonal_bilstm_sees_every_earlier_pixel_but_the_previous_rows_end(kernel_size, n_layers):
    """Dependence of the logits of every pixel (r, c) of a 5 x 6 image under the Diagonal BiLSTM.

    The last pixel sees every earlier pixel (no blind spot). So does every pixel, with one
    exception derived from causality: pixel (r-1, W-1) enters the features only at positions after
    it, and of those only (r, 0..c) come before (r, c); there only the k x k mask-A layer reaches
    up into row r-1, as far as column c + k//2. So (r, c) misses (r-1, W-1) when c + k//2 < W-1.
    """
    H, W = 5, 6
    x = np.random.default_rng(2).integers(0, 2, (2, 1, H, W))
    model = make("diagonal", kernel_size=kernel_size, n_layers=n_layers)
    order = np.arange(H * W).reshape(H, W)
    for r, c in itertools.product(range(H), range(W)):
        dep = dependence(model, x, r, c)
        expected = order < order[r, c]
        if r > 0 and c + kernel_size // 2 < W - 1:
            expected[r - 1, W - 1] = False
        np.testing.assert_array_equal(dep > 1e-12, expected, err_msg=f"pixel ({r},{c})")


def test_row_lstm_has_a_blind_spot():
    """The Row LSTM's field grows one column per row up: from (H-1, 0), (0, W-1) is unseen."""
    H, W = 5, 6
    x = np.random.default_rng(2).integers(0, 2, (2, 1, H, W))
    dep = dependence(make("row", n_layers=1), x, H - 1, 0)
    assert dep[0, W - 1] == 0 and dep[H - 2, 0] > 0


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("H, W, classes", [(2, 2, None), (3, 3, None), (2, 2, 2)])
def test_log_prob_sums_to_one_over_all_binary_images(variant, H, W, classes):
    model = make(variant, scale=2.0, n_classes=classes)
    images = all_images(1, H, W, 2)
    for y in ([None] if classes is None else range(classes)):
        p = np.exp(model.log_prob(images, y=y).numpy())
        assert p.sum() == pytest.approx(1.0, abs=1e-10)
        assert p.max() > 1.2 / len(images)  # not trivially uniform
    if classes is not None:  # the label changes the distribution
        assert not np.allclose(model.log_prob(images, y=0).numpy(), model.log_prob(images, y=1).numpy())


def test_log_prob_sums_to_one_with_rgb_channel_masks():
    model = make("diagonal", scale=2.0, in_channels=2, n_values=2, hidden_channels=2)
    p = np.exp(model.log_prob(all_images(2, 2, 2, 2)).numpy())
    assert p.sum() == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("variant", VARIANTS)
def test_samples_follow_the_model_distribution(variant):
    model = make(variant, scale=2.5)
    images = all_images(1, 2, 2, 2)
    p = np.exp(model.log_prob(images).numpy())
    n = 3000
    s = model.sample(n, (2, 2), generator=1).numpy().reshape(n, 4)
    counts = np.bincount(s @ (2 ** np.arange(3, -1, -1)), minlength=16)
    assert stats.chisquare(counts, p * n).pvalue > 1e-3
    assert stats.chisquare(counts, np.full(16, n / 16)).pvalue < 1e-6  # the test has power


@pytest.mark.parametrize("variant", VARIANTS)
def test_sampling_is_reproducible_and_the_row_crop_changes_nothing(variant):
    """The sampler runs the network on rows 0..r only (the recurrences run top-down, so rows below
    are never read): the same seed gives the same images as rerunning it on the whole image."""
    model = make(variant, scale=2.0)
    a, b = (model.sample(4, (3, 4), generator=7).numpy() for _ in range(2))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, model.sample(4, (3, 4), generator=7, window=False).numpy())
    assert not (a == a[:1]).all()  # the draws differ between images


@settings(max_examples=4, deadline=None)
@given(variant=st.sampled_from(VARIANTS), H=st.integers(1, 3), W=st.integers(1, 3),
       seed=st.integers(0, 100))
def test_gradcheck_loss(variant, H, W, seed):
    model = make(variant, seed=seed, scale=1.5, n_values=3, hidden_channels=2, n_classes=2)
    x = np.random.default_rng(seed).integers(0, 3, (2, 1, H, W))
    params = list(model.parameters())
    assert minigen.gradcheck(lambda *ps: model.loss(x, y=[0, 1]), params)


def test_loss_and_bits_per_dim_agree_with_log_prob():
    model = make("diagonal", scale=2.0)
    x = np.random.default_rng(3).integers(0, 2, (4, 1, 3, 4))
    log_p = model.log_prob(x).numpy()
    assert float(model.loss(x).numpy()) == pytest.approx(-log_p.mean())
    np.testing.assert_allclose(model.bits_per_dim(x).numpy(), -log_p / (12 * np.log(2)))
    assert not model.bits_per_dim(x).requires_grad


def test_skew_and_unskew():
    x = minigen.tensor(np.arange(2 * 3 * 4, dtype=float).reshape(1, 2, 3, 4))
    s = skew(x).numpy()
    assert s.shape == (1, 2, 3, 6)
    for r in range(3):  # row r shifted right by r, zeros elsewhere
        np.testing.assert_array_equal(s[0, :, r, r:r + 4], x.numpy()[0, :, r])
        assert np.delete(s[0, :, r], np.arange(r, r + 4), axis=1).sum() == 0
    np.testing.assert_array_equal(unskew(skew(x), 4).numpy(), x.numpy())


def test_fused_recurrence_matches_a_step_by_step_convolution():
    """lstm_over_steps (one banded matrix, fused op) equals the LSTM step written with conv2d on
    the previous row: gates = xw_t + K^ss * h_{t-1} (a 1 x 3 convolution), Eq. 3."""
    rng = np.random.default_rng(4)
    N, h, L, T = 2, 3, 5, 4
    xw = rng.standard_normal((N, h, 4, L, T))
    kernel = rng.standard_normal((4 * h, h, 3))
    out = lstm_over_steps(minigen.tensor(xw), minigen.tensor(kernel), h, (-1, 0, 1)).numpy()
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    state, cell = np.zeros((N, h, 1, L)), np.zeros((N, h, L))
    for t in range(T):
        ss = F.conv2d(minigen.tensor(state), minigen.tensor(kernel[:, :, None, :]), None, 1,
                      (0, 1)).numpy()[:, :, 0]  # (N, 4h, L), gate-major
        z = xw[:, :, :, :, t].transpose(0, 2, 1, 3).reshape(N, 4 * h, L) + ss
        i, f, g, o = sig(z[:, :h]), sig(z[:, h:2 * h]), np.tanh(z[:, 2 * h:3 * h]), sig(z[:, 3 * h:])
        cell = f * cell + i * g
        state = (o * np.tanh(cell))[:, :, None]
        np.testing.assert_allclose(out[..., t], state[:, :, 0], atol=1e-12)


GOOD = np.zeros((2, 1, 3, 3), dtype=int)
BAD_INPUT = [  # (name, call(variant), exception, message pattern)
    ("value 2 for binary", lambda v: make(v).log_prob(GOOD + 2), ValueError, r"\[0, 2\)"),
    ("negative value", lambda v: make(v).log_prob(GOOD - 1), ValueError, r"\[0, 2\)"),
    ("fractional value", lambda v: make(v).loss(GOOD + 0.5), ValueError, "whole numbers"),
    ("NaN pixel", lambda v: make(v).log_prob(np.full((1, 1, 2, 2), np.nan)), ValueError, "finite"),
    ("3-D x", lambda v: make(v).log_prob(np.zeros((2, 3, 3), dtype=int)), ValueError,
     r"\(N, 1, H, W\)"),
    ("wrong channels", lambda v: make(v).log_prob(np.zeros((2, 2, 3, 3), dtype=int)), ValueError,
     r"\(N, 1, H, W\)"),
    ("0x0 image", lambda v: make(v).log_prob(np.zeros((2, 1, 0, 0), dtype=int)), ValueError,
     r"H, W >= 1"),
    ("x is None", lambda v: make(v).log_prob(None), TypeError, "numeric array"),
    ("y for an unconditional model", lambda v: make(v).log_prob(GOOD, y=[0, 1]), ValueError,
     "unconditional"),
    ("labels missing", lambda v: make(v, n_classes=3).log_prob(GOOD), ValueError, "labels"),
    ("label out of range", lambda v: make(v, n_classes=3).log_prob(GOOD, y=[0, 3]), ValueError,
     r"\[0, 3\)"),
    ("sample shape not a tuple", lambda v: make(v).sample(1, 5), TypeError, "shape must be"),
    ("zero-size sample shape", lambda v: make(v).sample(1, (0, 2)), ValueError, "positive"),
    ("n = 0 samples", lambda v: make(v).sample(0, (2, 2)), ValueError, "n must be >= 1"),
    ("zero temperature", lambda v: make(v).sample(1, (2, 2), temperature=0), ValueError,
     "temperature"),
    ("bad variant", lambda v: PixelRNN(variant="column"), ValueError,
     r"variant must be one of 'row', 'diagonal', got 'column'"),
    ("hidden_channels not a multiple", lambda v: PixelRNN(in_channels=3, hidden_channels=8,
                                                          variant=v), ValueError, "hidden_channels"),
    ("hidden_channels 0", lambda v: PixelRNN(hidden_channels=0, variant=v), ValueError,
     "hidden_channels"),
    ("n_layers 0", lambda v: PixelRNN(n_layers=0, variant=v), ValueError, "n_layers"),
    ("n_values 1", lambda v: PixelRNN(n_values=1, variant=v), ValueError, "n_values"),
    ("kernel_size even", lambda v: PixelRNN(kernel_size=4, variant=v), ValueError,
     "kernel_size must be odd"),
    ("row_kernel_size even", lambda v: PixelRNN(row_kernel_size=2, variant=v), ValueError,
     "row_kernel_size must be odd"),
    ("n_classes 0", lambda v: PixelRNN(n_classes=0, variant=v), ValueError, "n_classes"),
]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("call, error, match", [row[1:] for row in BAD_INPUT],
                         ids=[row[0] for row in BAD_INPUT])
def test_bad_input_is_rejected(variant, call, error, match):
    with pytest.raises(error, match=match):
        call(variant)


@pytest.mark.parametrize("variant", VARIANTS)
def test_log_prob_and_gradients_match_an_independent_pytorch_implementation(variant):
    """benchmarks/bench_pixelrnn.py writes the network with a conv1d of the previous row / diagonal
    per step (no banded matrix, no fused op), skew by padding each row, in PyTorch."""
    torch = pytest.importorskip("torch")
    path = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "bench_pixelrnn.py")
    spec = importlib.util.spec_from_file_location("bench_pixelrnn", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    model = make(variant, scale=1.5, n_layers=2, hidden_channels=3)
    x = np.random.default_rng(5).integers(0, 2, (3, 1, 4, 5))
    torch_log_prob, torch_params = bench.torch_pixelrnn(model)
    ours, theirs = model.log_prob(x), torch_log_prob(x)
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-10)
    ours.sum().backward()
    theirs.sum().backward()
    assert isinstance(theirs, torch.Tensor)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(to_host(p.grad), torch_params[name].grad.numpy(), rtol=1e-8,
                                   atol=1e-12, err_msg=name)


@pytest.mark.parametrize("variant", VARIANTS)
def test_save_and_load_model_round_trip(variant, tmp_path):
    model = make(variant, scale=1.5, n_classes=2)
    x = np.random.default_rng(6).integers(0, 2, (3, 1, 3, 3))
    back = minigen.load_model(model.save(tmp_path / "pixelrnn.npz"))
    assert type(back) is PixelRNN and back.variant == variant
    np.testing.assert_array_equal(back.log_prob(x, y=[0, 1, 1]).numpy(),
                                  model.log_prob(x, y=[0, 1, 1]).numpy())
    np.testing.assert_array_equal(back.sample(2, (3, 3), y=1, generator=3).numpy(),
                                  model.sample(2, (3, 3), y=1, generator=3).numpy())


@pytest.mark.parametrize("variant", VARIANTS)
def test_one_code_path_on_the_strict_cupy_stand_in(variant):
    """With parameters, buffers and data as StrictArrays (which refuse NumPy behind the backend's
    back, as CuPy does), log_prob, its gradients and sample stay strict and equal the NumPy run."""
    from strict_xp import StrictArray, to_plain, to_strict
    if minigen.backend.default_device() != "cpu":
        pytest.skip("the strict stand-in replaces NumPy on the CPU; on the GPU CuPy itself is strict")
    model = make(variant, scale=1.5)
    x = np.random.default_rng(0).integers(0, 2, (2, 1, 3, 4))
    reference = to_host(model.log_prob(x).data)
    for p in model.parameters():
        p.data = to_strict(to_host(p.data))
    for module in model.modules():
        for name, buffer in list(module._buffers.items()):
            module._buffers[name] = to_strict(to_host(buffer))
    log_p = model.log_prob(to_strict(x))
    assert isinstance(log_p.data, StrictArray)
    np.testing.assert_allclose(to_plain(log_p.data), reference, rtol=1e-12)
    log_p.sum().backward()
    assert all(isinstance(p.grad, StrictArray) for p in model.parameters())
    assert isinstance(model.sample(2, (2, 3), generator=0).data, StrictArray)
