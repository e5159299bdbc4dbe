"""VQVAE2: two code grids (nearest codes at both levels), the loss and its parts, the
straight-through identity at both levels, whole-model gradients with the codes fixed, EMA
codebooks, the bottom prior's conditioning map, two-stage sampling, training, bad input."""
import numpy as np
import pytest

import minigen
import minigen.functional as F
from minigen import backend
from devices import on_device, to_host
from minigen.data import load_digits
from minigen.models import VQVAE2, PixelCNN
from minigen.optim import Adam
from minigen.random import get_generator


def tiny(seed=0, **kwargs):
    minigen.manual_seed(seed)
    kwargs = {"hidden_channels": 8, "num_embeddings": 5, "embedding_dim": 3, "n_downsample": 1,
              "n_residual": 1, **kwargs}
    return VQVAE2(**kwargs).double()


def images(shape, seed=0):
    return np.random.default_rng(seed).random(shape)


def spread_codebooks(model, x):
    """Both codebooks set to encoder outputs of x, so that several codes are in use."""
    rng = np.random.default_rng(1)

    def pick(z, quantizer):  # K of the vectors of z (N, D, h, w) become the codebook
        flat = z.numpy().transpose(0, 2, 3, 1).reshape(-1, z.shape[1])
        e = quantizer.codebook if quantizer.ema else quantizer.codebook.data
        e[...] = on_device(flat[rng.choice(len(flat), len(e), replace=len(flat) < len(e))])

    with minigen.no_grad():
        h_b, z_e_top = model.encode_top(minigen.tensor(x))
        pick(z_e_top, model.quantizer_top)
        pick(model.encode_bottom(h_b, model.quantizer_top.lookup(model.encode(x)[0])),
             model.quantizer_bottom)


def nearest(z, codebook):
    """Brute-force argmin_j |z - e_j|^2 over the channel axis of z (N, D, h, w)."""
    return ((z[:, None] - codebook[None, :, :, None, None]) ** 2).sum(axis=2).argmin(axis=1)


@pytest.mark.parametrize("size, n_downsample, top_grid, bottom_grid",
                         [(8, 1, 2, 4), (28, 2, 4, 7), (8, 2, 1, 2)])
def test_code_grids_are_the_nearest_codes_at_both_levels(size, n_downsample, top_grid, bottom_grid):
    model = tiny(n_downsample=n_downsample)
    x = images((3, 1, size, size))
    spread_codebooks(model, x)
    top, bottom = model.encode(x)
    assert top.shape == (3, top_grid, top_grid) and bottom.shape == (3, bottom_grid, bottom_grid)
    assert model.latent_shapes((size, size)) == ((top_grid,) * 2, (bottom_grid,) * 2)
    for codes in (top.numpy(), bottom.numpy()):
        assert codes.dtype.kind == "i" and codes.min() >= 0 and codes.max() < 5
    # top: nearest to E_t(E_b(x)); bottom: nearest to the bottom encoder given the chosen top codes
    h_b, z_e_top = model.encode_top(minigen.tensor(x))
    e_top, e_bottom = to_host(model.quantizer_top.codebook), to_host(model.quantizer_bottom.codebook)
    np.testing.assert_array_equal(top.numpy(), nearest(z_e_top.numpy(), e_top))
    z_q_top = minigen.tensor(np.moveaxis(e_top[top.numpy()], -1, 1))
    z_e_bottom = model.encode_bottom(h_b, z_q_top).numpy()
    np.testing.assert_array_equal(bottom.numpy(), nearest(z_e_bottom, e_bottom))
    assert len(np.unique(bottom.numpy())) > 1
    assert model.reconstruct(x).shape == (3, 1, size, size)


def test_decoding_and_levels_match_a_hand_computation():
    """decode_codes = sigmoid(Dec([e_b, up(e_t)])), up repeating each top vector over a 2x2 block
    and cropping; a level left out enters as zeros."""
    model = tiny(n_downsample=2)
    rng = np.random.default_rng(0)
    top, bottom = rng.integers(0, 5, (2, 4, 4)), rng.integers(0, 5, (2, 7, 7))
    e_top, e_bottom = to_host(model.quantizer_top.codebook), to_host(model.quantizer_bottom.codebook)
    z_top = np.moveaxis(e_top[top], -1, 1)
    up = z_top.repeat(2, axis=2).repeat(2, axis=3)[:, :, :7, :7]
    assert (up[:, :, 5, 6] == z_top[:, :, 2, 3]).all()
    z_bottom = np.moveaxis(e_bottom[bottom], -1, 1)
    for levels, (zb, zt) in {("top", "bottom"): (z_bottom, up), ("top",): (0 * z_bottom, up),
                             ("bottom",): (z_bottom, 0 * up)}.items():
        logits = model.decoder(minigen.tensor(np.concatenate([zb, zt], axis=1))).numpy()
        np.testing.assert_allclose(model.decode_codes(top, bottom, levels=levels).numpy(),
                                   1 / (1 + np.exp(-logits)), rtol=1e-10, err_msg=str(levels))
    np.testing.assert_allclose(to_host(model.top_condition(top, (7, 7))), up, rtol=0)


def test_loss_parts_match_their_definitions():
    model = tiny(beta=0.4)
    x = images((3, 1, 8, 8))
    spread_codebooks(model, x)
    out = model.loss(x)
    top, bottom = model.encode(x)
    h_b, z_e_top = model.encode_top(minigen.tensor(x))
    e_t = model.quantizer_top.lookup(top)
    z_e_bottom = model.encode_bottom(h_b, e_t)
    e_b = model.quantizer_bottom.lookup(bottom)
    sq_top = ((z_e_top.numpy() - e_t.numpy()) ** 2).sum() / 3
    sq_bottom = ((z_e_bottom.numpy() - e_b.numpy()) ** 2).sum() / 3
    logits = model.decode_latents(e_t, e_b).numpy()
    bce = (np.maximum(logits, 0) - logits * x + np.log1p(np.exp(-np.abs(logits)))).sum() / 3
    assert out.reconstruction.item() == pytest.approx(bce, rel=1e-10)
    assert out.top_codebook.item() == pytest.approx(sq_top, rel=1e-10)
    assert out.top_commitment.item() == pytest.approx(0.4 * sq_top, rel=1e-10)
    assert out.bottom_codebook.item() == pytest.approx(sq_bottom, rel=1e-10)
    assert out.bottom_commitment.item() == pytest.approx(0.4 * sq_bottom, rel=1e-10)
    assert out.total.item() == pytest.approx(sum(part.item() for part in out[1:]))


def test_straight_through_identity_at_both_levels():
    """The gradient that reaches z_e^l through the quantiser equals the gradient of the same loss
    with respect to z_q^l itself (a leaf holding e_k): dL/dz_e^l = dL/dz_q^l, for l = top, bottom."""
    model = tiny()
    x = images((2, 1, 8, 8))
    spread_codebooks(model, x)
    xt = minigen.tensor(x)
    top, bottom = (c.numpy() for c in model.encode(x))
    with minigen.no_grad():
        h_b, z_e_top = model.encode_top(xt)
        e_t = model.quantizer_top.lookup(top)
        z_e_bottom = model.encode_bottom(h_b, e_t)
        e_b = model.quantizer_bottom.lookup(bottom)

    def loss_from_top(z_q_top):  # everything downstream of z_q^t, the bottom codes held fixed
        z_q_bottom = model.quantizer_bottom(model.encode_bottom(h_b, z_q_top), bottom).z_q
        return F.binary_cross_entropy_with_logits(model.decode_latents(z_q_top, z_q_bottom), xt,
                                                  reduction="sum")

    def loss_from_bottom(z_q_bottom):
        return F.binary_cross_entropy_with_logits(model.decode_latents(e_t, z_q_bottom), xt,
                                                  reduction="sum")

    for quantizer, z_e, e_k, codes, loss in ((model.quantizer_top, z_e_top, e_t, top, loss_from_top),
                                             (model.quantizer_bottom, z_e_bottom, e_b, bottom,
                                              loss_from_bottom)):
        through = minigen.tensor(z_e.data, requires_grad=True)
        z_q = quantizer(through, codes).z_q
        np.testing.assert_allclose(z_q.numpy(), e_k.numpy(), atol=1e-12)  # the value is e_k
        loss(z_q).backward()
        direct = minigen.tensor(e_k.data, requires_grad=True)
        loss(direct).backward()
        np.testing.assert_allclose(to_host(through.grad), to_host(direct.grad), rtol=1e-10, atol=1e-12)
        assert np.abs(to_host(direct.grad)).sum() > 0


def test_whole_model_gradcheck_with_fixed_codes():
    """With the codes fixed, the model's gradient is the exact gradient of the surrogate in which
    every stop-gradient is a constant taken at the current point (at both levels):
    z_q^l = z_e^l + (e_k^l - z_e^l)_0, codebook |z_e,0^l - e_k^l|^2, commitment beta |z_e^l - e_k,0^l|^2.
    The surrogate is gradchecked (directional, float64) and the model's backward must equal it."""
    model = tiny(beta=0.3)
    x = minigen.tensor(images((2, 1, 8, 8)))
    top, bottom = (c.numpy() for c in model.encode(x))
    top[0, 0, 0] = (top[0, 0, 0] + 2) % 5  # any fixed assignment will do
    bottom[1, 2, 1] = (bottom[1, 2, 1] + 3) % 5
    with minigen.no_grad():
        h_b, z_e_top = model.encode_top(x)
        e_t0 = model.quantizer_top.lookup(top).data.copy()
        z_e_t0 = z_e_top.data.copy()
        z_e_b0 = model.encode_bottom(h_b, model.quantizer_top.lookup(top)).data.copy()
        e_b0 = model.quantizer_bottom.lookup(bottom).data.copy()
    params = list(model.parameters())

    def surrogate(*params):
        h_b, z_e_top = model.encode_top(x)
        z_q_top = z_e_top + (e_t0 - z_e_t0)
        z_e_bottom = model.encode_bottom(h_b, z_q_top)
        z_q_bottom = z_e_bottom + (e_b0 - z_e_b0)
        e_t, e_b = model.quantizer_top.lookup(top), model.quantizer_bottom.lookup(bottom)
        recon = F.binary_cross_entropy_with_logits(model.decode_latents(z_q_top, z_q_bottom), x,
                                                   reduction="sum") / 2
        codebook = (((z_e_t0 - e_t) ** 2).sum() + ((z_e_b0 - e_b) ** 2).sum()) / 2
        commitment = 0.3 * (((z_e_top - e_t0) ** 2).sum() + ((z_e_bottom - e_b0) ** 2).sum()) / 2
        return recon + codebook + commitment

    assert minigen.gradcheck(surrogate, params, n_directions=3)
    model.zero_grad()
    surrogate().backward()
    expected = [p.grad.copy() for p in params]
    model.zero_grad()
    model.loss(x, codes=(top, bottom)).total.backward()
    for (name, p), g in zip(model.named_parameters(), expected):
        np.testing.assert_allclose(to_host(p.grad), to_host(g), rtol=1e-10, atol=1e-12, err_msg=name)
    assert np.abs(to_host(model.quantizer_top.codebook.grad)).sum() > 0
    assert np.abs(to_host(model.quantizer_bottom.codebook.grad)).sum() > 0


def test_ema_codebooks_move_at_both_levels_without_codebook_terms():
    model = tiny(ema=True, decay=0.5)
    x = images((4, 1, 8, 8))
    before = [to_host(q.codebook).copy() for q in (model.quantizer_top, model.quantizer_bottom)]
    out = model.loss(x)
    assert out.top_codebook.item() == 0 and out.bottom_codebook.item() == 0
    for q, old in zip((model.quantizer_top, model.quantizer_bottom), before):
        assert not np.allclose(to_host(q.codebook), old)
        assert all("codebook" not in name for name, _ in model.named_parameters())
    model.eval()
    frozen = to_host(model.quantizer_top.codebook).copy()
    model.loss(x)
    np.testing.assert_array_equal(to_host(model.quantizer_top.codebook), frozen)


def test_two_stage_sampling_decodes_the_priors_draws():
    """sample = decode(k^t, k^b) with k^t from the top prior and k^b from the bottom prior given
    top_condition(k^t), both drawn from the one generator."""
    model = tiny()
    minigen.manual_seed(2)
    top_prior = PixelCNN(n_values=5, hidden_channels=4, n_layers=2, kernel_size=3).double()
    bottom_prior = PixelCNN(n_values=5, hidden_channels=4, n_layers=2, kernel_size=3,
                            cond_channels=3, cond_layers=1).double()
    out = model.sample(4, top_prior, bottom_prior, (8, 8), generator=7)
    rng = get_generator(7, backend.get_array_module(next(model.parameters()).data))  # as sample does
    top = top_prior.sample(4, (2, 2), generator=rng).numpy()[:, 0]
    bottom = bottom_prior.sample(4, (4, 4), cond=model.top_condition(top, (4, 4)),
                                 generator=rng).numpy()[:, 0]
    np.testing.assert_array_equal(out.numpy(), model.decode_codes(top, bottom).numpy())
    with pytest.raises(ValueError, match="bottom_prior.*cond_channels = 3"):
        model.sample(1, top_prior, top_prior, (8, 8))
    with pytest.raises(ValueError, match="top_prior.*n_values = num_embeddings = 5"):
        model.sample(1, PixelCNN(n_values=4), bottom_prior, (8, 8))


@pytest.mark.parametrize("seed", [0, 1])
def test_training_makes_both_levels_informative(seed):
    """60 steps on 256 digits (EMA codebooks), restarting dead codes after each epoch as
    examples/vqvae2.py does: the reconstruction beats the best code-free decoder (the per-pixel
    mean image: ~26.2 nats, against ~18-21 reached) by 3 nats, and both codebooks are in use
    (perplexity > 2 of K = 8 over the last epoch; 4.4-7.7 reached over seeds 0-7, on NumPy and
    on fake CuPy's random stream). Without the restarts the top codebook ended at perplexity
    1.0-2.0 for six of those eight seeds on NumPy."""
    x = load_digits()[0][:256]
    mean = x.astype(np.float64).mean(axis=0).clip(1e-6, 1 - 1e-6)
    code_free = -(x * np.log(mean) + (1 - x) * np.log(1 - mean)).sum() / len(x)
    minigen.manual_seed(seed)
    model = VQVAE2(hidden_channels=16, num_embeddings=8, embedding_dim=4, n_downsample=1, ema=True)
    opt = Adam(model.parameters(), lr=1e-2)
    for epoch in range(15):
        for q in (model.quantizer_top, model.quantizer_bottom):
            q.reset_usage()
        for b in range(0, 256, 64):
            opt.zero_grad()
            model.loss(x[b:b + 64]).total.backward()
            opt.step()
        perplexities = [q.perplexity() for q in (model.quantizer_top, model.quantizer_bottom)]
        if epoch < 14:
            model.restart_dead_codes(x, generator=epoch)
    with minigen.no_grad():
        reconstruction = model.loss(x).reconstruction.item()
    assert reconstruction < code_free - 3, (reconstruction, code_free)
    assert min(perplexities) > 2, perplexities


def test_restart_dead_codes_restarts_both_levels_at_their_encoder_outputs():
    """Codes never chosen are moved to encoder outputs of the given images, top and bottom, and
    counted; codes in use stay; nothing dead, nothing moves."""
    model = tiny()
    x = load_digits()[0][:16]
    model.loss(x)  # training mode: counts usage
    quantizers = (model.quantizer_top, model.quantizer_bottom)
    used = [to_host(q.usage) > 0 for q in quantizers]
    assert all((~u).any() for u in used)  # the fresh model leaves codes unused at both levels
    before = [to_host(q.codebook).copy() for q in quantizers]
    n_top, n_bottom = model.restart_dead_codes(x, generator=0)
    assert (n_top, n_bottom) == tuple(int((~u).sum()) for u in used)
    with minigen.no_grad():
        h_b, z_e_top = model.encode_top(minigen.tensor(x))
        top_outputs = to_host(z_e_top.data).transpose(0, 2, 3, 1).reshape(-1, model.embedding_dim)
        z_q_top = model.quantizer_top.lookup(model.quantizer_top.nearest(z_e_top))
        bottom_outputs = to_host(model.encode_bottom(h_b, z_q_top).data)
    bottom_outputs = bottom_outputs.transpose(0, 2, 3, 1).reshape(-1, model.embedding_dim)
    for q, u, old, outputs in zip(quantizers, used, before, (top_outputs, bottom_outputs)):
        after = to_host(q.codebook)
        np.testing.assert_array_equal(after[u], old[u])
        for row in after[~u]:
            assert np.isclose(outputs, row, rtol=0, atol=1e-6).all(axis=1).any()
    for q in quantizers:
        q.usage[...] = 1
    assert model.restart_dead_codes(x, generator=0) == (0, 0)


BAD_INPUT = [  # (name, call(model), exception, message pattern); tiny(): K = 5, 8x8 -> 2x2 and 4x4
    ("top code too large", lambda m: m.decode_codes(np.full((1, 2, 2), 5), np.zeros((1, 4, 4), int)),
     ValueError, r"top: .*\[0, 5\)"),
    ("negative bottom code", lambda m: m.decode_codes(np.zeros((1, 2, 2), int), np.full((1, 4, 4), -1)),
     ValueError, r"bottom: .*\[0, 5\)"),
    ("fractional code", lambda m: m.decode_codes(np.full((1, 2, 2), 0.5), np.zeros((1, 4, 4), int)),
     TypeError, "top: .*integer"),
    ("grids that do not match", lambda m: m.decode_codes(np.zeros((1, 3, 3), int), np.zeros((1, 4, 4), int)),
     ValueError, r"top codes must have shape \(1, 2, 2\)"),
    ("batch sizes that differ", lambda m: m.decode_codes(np.zeros((2, 2, 2), int), np.zeros((1, 4, 4), int)),
     ValueError, r"top codes must have shape \(1, 2, 2\)"),
    ("2-D code grid", lambda m: m.decode_codes(np.zeros((2, 2), int), np.zeros((1, 4, 4), int)),
     ValueError, r"top must be a grid of shape \(N, h, w\)"),
    ("codes None", lambda m: m.decode_codes(None, np.zeros((1, 4, 4), int)), TypeError,
     "top must be a numeric array"),
    ("unknown level", lambda m: m.decode_codes(np.zeros((1, 2, 2), int), np.zeros((1, 4, 4), int),
                                               levels=("middle",)), ValueError, "levels"),
    ("no level", lambda m: m.reconstruct(images((1, 1, 8, 8)), levels=()), ValueError, "levels"),
    ("fixed codes not a pair", lambda m: m.loss(images((1, 1, 8, 8)), codes=np.zeros((1, 4, 4), int)),
     TypeError, r"pair \(top, bottom\)"),
    ("fixed codes of the wrong grid", lambda m: m.loss(images((1, 1, 8, 8)),
                                                       codes=(np.zeros((1, 2, 2), int), np.zeros((1, 2, 2), int))),
     ValueError, r"bottom: .*shape \(1, 4, 4\)"),
    ("top condition of the wrong grid", lambda m: m.top_condition(np.zeros((1, 2, 2), int), (6, 6)),
     ValueError, "do not match a bottom grid"),
    ("size not a multiple of 2", lambda m: m.loss(images((1, 1, 7, 8))), ValueError, "multiples of 2"),
    ("intensity above 1", lambda m: m.loss(images((1, 1, 8, 8)) + 1), ValueError, r"\[0, 1\]"),
    ("NaN intensity", lambda m: m.encode(np.full((1, 1, 8, 8), np.nan)), ValueError, "64 NaN"),
    ("x is a string", lambda m: m.loss("abc"), TypeError, "x must be a numeric array"),
    ("x is None", lambda m: m.encode(None), TypeError, "x must be a numeric array"),
    ("embedding_dim 0", lambda m: VQVAE2(embedding_dim=0), ValueError, "embedding_dim must be >= 1"),
    ("num_embeddings 0", lambda m: VQVAE2(num_embeddings=0), ValueError, "num_embeddings must be >= 1"),
    ("n_downsample 0", lambda m: VQVAE2(n_downsample=0), ValueError, "n_downsample must be >= 1"),
]


@pytest.mark.parametrize("call, error, match", [row[1:] for row in BAD_INPUT],
                         ids=[row[0] for row in BAD_INPUT])
def test_bad_input_is_rejected(call, error, match):
    with pytest.raises(error, match=match):
        call(tiny())
