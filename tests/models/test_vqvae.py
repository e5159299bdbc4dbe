"""VQVAE: latent grid, the loss and its parts, whole-model gradients, training, two-stage generation."""
import numpy as np
import pytest

import minigen
import minigen.functional as F
from devices import on_device, to_host
from minigen.data import load_digits
from minigen.models import VQVAE, PixelCNN
from minigen.optim import Adam


def tiny(seed=0, **kwargs):
    minigen.manual_seed(seed)
    kwargs = {"hidden_channels": 4, "num_embeddings": 5, "embedding_dim": 3, "n_downsample": 1,
              "n_residual": 1, **kwargs}
    return VQVAE(**kwargs).double()


def images(shape, seed=0):
    return np.random.default_rng(seed).random(shape)


@pytest.mark.parametrize("size, n_downsample, grid", [(28, 2, 7), (8, 1, 4), (8, 2, 2)])
def test_codes_are_the_nearest_codebook_vectors_and_decode_through_them(size, n_downsample, grid):
    """encode = brute-force argmin_j |z_e - e_j| at every grid position (with a spread-out codebook
    so several codes are in use); decode_codes = sigmoid(decoder(e_k)) with e_k gathered by hand."""
    model = tiny(n_downsample=n_downsample)
    x = images((3, 1, size, size))
    z_e = model.encoder(minigen.tensor(x)).numpy()  # (N, D, h, w)
    codebook = model.quantizer.codebook.data  # K = 5 encoder outputs: each is some vector's nearest
    flat = z_e.transpose(0, 2, 3, 1).reshape(-1, z_e.shape[1])
    codebook[...] = on_device(flat[np.random.default_rng(1).choice(len(flat), 5, replace=False)])
    codes = model.encode(x)
    assert codes.shape == (3, grid, grid) and codes.dtype.kind == "i"
    assert model.latent_shape((size, size)) == (grid, grid)
    e = to_host(codebook)
    distances = ((z_e[:, None] - e[None, :, :, None, None]) ** 2).sum(axis=2)  # (N, K, h, w)
    np.testing.assert_array_equal(codes.numpy(), distances.argmin(axis=1))
    assert len(np.unique(codes.numpy())) > 1
    e_k = minigen.tensor(np.moveaxis(e[codes.numpy()], -1, 1))  # (N, D, h, w), by hand
    expected = 1 / (1 + np.exp(-model.decoder(e_k).numpy()))
    np.testing.assert_allclose(model.decode_codes(codes).numpy(), expected, rtol=1e-10)
    np.testing.assert_array_equal(model.reconstruct(x).numpy(), model.decode_codes(codes).numpy())
    assert model.decode_codes(codes.numpy().tolist()).shape == (3, 1, size, size)  # lists work


def test_loss_parts_match_their_definitions():
    model = tiny(beta=0.4)
    x = images((3, 1, 8, 8))
    out = model.loss(x)
    codes = model.encode(x)
    z_e = model.encoder(minigen.tensor(x)).numpy()
    e_k = model.quantizer.lookup(codes).numpy()
    logits = model.decoder(model.quantizer.lookup(codes)).numpy()
    bce = np.maximum(logits, 0) - logits * x + np.log1p(np.exp(-np.abs(logits)))
    assert out.reconstruction.item() == pytest.approx(bce.sum() / 3, rel=1e-10)
    assert out.codebook.item() == pytest.approx(((z_e - e_k) ** 2).sum() / 3, rel=1e-10)
    assert out.commitment.item() == pytest.approx(0.4 * ((z_e - e_k) ** 2).sum() / 3, rel=1e-10)
    assert out.total.item() == pytest.approx(out.reconstruction.item() + out.codebook.item()
                                             + out.commitment.item())
    probabilities = model.decode_codes(codes).numpy()
    np.testing.assert_allclose(probabilities, 1 / (1 + np.exp(-logits)))


def test_whole_model_gradcheck_with_fixed_codes():
    """With the codes fixed, the model's gradient is the exact gradient of the surrogate in which
    every stop-gradient is a constant taken at the current point: z_q = z_e + (e_k - z_e)_0,
    codebook loss |z_e,0 - e_k|^2, commitment beta |z_e - e_k,0|^2. We gradcheck that surrogate
    (directional, float64) and check that the model's backward gives the same gradient."""
    model = tiny(beta=0.3)
    x = minigen.tensor(images((2, 1, 4, 4)))
    codes = model.encode(x).numpy()
    codes[0, 0, 0] = (codes[0, 0, 0] + 2) % 5  # any fixed assignment will do
    with minigen.no_grad():
        z_e0 = model.encoder(x).data.copy()
        e_k0 = model.quantizer.lookup(codes).data.copy()
    params = list(model.parameters())

    def surrogate(*params):
        z_e = model.encoder(x)
        e_k = model.quantizer.lookup(codes)
        recon = F.binary_cross_entropy_with_logits(model.decoder(z_e + (e_k0 - z_e0)), x,
                                                   reduction="sum") / 2
        return recon + ((z_e0 - e_k) ** 2).sum() / 2 + 0.3 * ((z_e - e_k0) ** 2).sum() / 2

    assert minigen.gradcheck(surrogate, params, n_directions=4)
    model.zero_grad()
    surrogate().backward()
    expected = [p.grad.copy() for p in params]
    model.zero_grad()
    model.loss(x, codes=codes).total.backward()
    for (name, p), g in zip(model.named_parameters(), expected):
        np.testing.assert_allclose(to_host(p.grad), to_host(g), rtol=1e-10, atol=1e-12, err_msg=name)
    assert np.abs(model.quantizer.codebook.grad).sum() > 0


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("ema", [False, True])
def test_training_makes_the_codes_informative_and_uses_many(ema, seed):
    """60 steps on 256 digits, for several seeds: the reconstruction beats the best decoder that
    ignores its codes (the per-pixel mean image, whose BCE is ~26 nats against ~17.5 reached), and
    over the last epoch the codes' perplexity exceeds K / 4 (no codebook collapse)."""
    x = load_digits()[0][:256]
    mean = x.astype(np.float64).mean(axis=0).clip(1e-6, 1 - 1e-6)
    code_free = -(x * np.log(mean) + (1 - x) * np.log(1 - mean)).sum() / len(x)
    minigen.manual_seed(seed)
    model = VQVAE(hidden_channels=16, num_embeddings=16, embedding_dim=4, n_downsample=1,
                  n_residual=1, ema=ema)
    opt = Adam(model.parameters(), lr=1e-2)
    for epoch in range(15):
        model.quantizer.reset_usage()
        for b in range(0, 256, 64):
            opt.zero_grad()
            model.loss(x[b:b + 64]).total.backward()
            opt.step()
        perplexity = model.quantizer.perplexity()
        model.quantizer.restart_dead_codes(model.encoder(minigen.tensor(x[:64])), generator=epoch)
    with minigen.no_grad():
        reconstruction = model.loss(x).reconstruction.item()
    assert reconstruction < code_free - 3, (reconstruction, code_free)
    assert perplexity > 16 / 4


def test_two_stage_generation_decodes_the_prior_samples():
    model = tiny(num_embeddings=6)
    x = images((16, 1, 8, 8))
    codes = model.encode(x).numpy()[:, None]
    minigen.manual_seed(1)
    prior = PixelCNN(n_values=6, hidden_channels=8, n_layers=2, kernel_size=3).double()
    assert prior.log_prob(codes).shape == (16,)
    out = model.sample(3, prior, (4, 4), generator=0)
    k = prior.sample(3, (4, 4), generator=0).numpy()[:, 0]  # the same draws from the same seed
    np.testing.assert_array_equal(out.numpy(), model.decode_codes(k).numpy())
    assert not np.array_equal(out.numpy(), model.sample(3, prior, (4, 4), generator=1).numpy())
    with pytest.raises(ValueError, match="n_values"):
        model.sample(3, PixelCNN(n_values=5), (4, 4))


def test_forward_is_not_defined():
    with pytest.raises(NotImplementedError):
        tiny()(images((1, 1, 8, 8)))


BAD_INPUT = [  # (name, call(model), exception, message pattern); tiny() has K = 5, 8x8 -> 4x4
    ("size not a multiple of 2", lambda m: m.loss(images((2, 1, 7, 8))), ValueError, "multiples of 2"),
    ("intensity above 1", lambda m: m.loss(images((2, 1, 8, 8)) * 2), ValueError, r"\[0, 1\]"),
    ("NaN intensity", lambda m: m.loss(np.full((1, 1, 8, 8), np.nan)), ValueError, "1 NaN|64 NaN"),
    ("infinite intensity", lambda m: m.encode(np.full((1, 1, 8, 8), np.inf)), ValueError,
     "infinite"),
    ("3-D x", lambda m: m.encode(images((2, 8, 8))), ValueError, r"\(N, 1, H, W\)"),
    ("empty batch", lambda m: m.loss(np.zeros((0, 1, 8, 8))), ValueError, r"N, H, W >= 1"),
    ("x is None", lambda m: m.loss(None), TypeError, "x must be a numeric array.*NoneType"),
    ("x is a string", lambda m: m.loss("abc"), TypeError, "x must be a numeric array.*str"),
    ("ragged list", lambda m: m.loss([[[[0.5] * 8] * 8], [[[0.5] * 8] * 7]]), ValueError, "ragged"),
    ("code too large", lambda m: m.decode_codes(np.full((1, 4, 4), 5)), ValueError, r"\[0, 5\)"),
    ("negative code", lambda m: m.decode_codes(np.full((1, 4, 4), -1)), ValueError, r"\[0, 5\)"),
    ("fractional code", lambda m: m.decode_codes(np.full((1, 4, 4), 0.5)), TypeError, "integer"),
    ("2-D code grid", lambda m: m.decode_codes(np.zeros((4, 4), dtype=int)), ValueError, r"\(N, h, w\)"),
    ("codes None", lambda m: m.decode_codes(None), TypeError, "codes must be a numeric array"),
    ("fixed codes of the wrong grid", lambda m: m.loss(images((2, 1, 8, 8)),
                                                       codes=np.zeros((2, 2, 2), dtype=int)),
     ValueError, r"shape \(2, 4, 4\)"),
    ("embedding_dim 0", lambda m: VQVAE(embedding_dim=0), ValueError, "embedding_dim must be >= 1"),
    ("num_embeddings 0", lambda m: VQVAE(num_embeddings=0), ValueError, "num_embeddings must be >= 1"),
    ("hidden_channels 0", lambda m: VQVAE(hidden_channels=0), ValueError, "hidden_channels"),
    ("n_downsample 0", lambda m: VQVAE(n_downsample=0), ValueError, "n_downsample"),
    ("negative beta", lambda m: VQVAE(beta=-1.0), ValueError, "beta"),
]


@pytest.mark.parametrize("call, error, match", [row[1:] for row in BAD_INPUT],
                         ids=[row[0] for row in BAD_INPUT])
def test_bad_input_is_rejected(call, error, match):
    with pytest.raises(error, match=match):
        call(tiny())


def test_lists_are_accepted_like_arrays():
    model = tiny()
    x = images((2, 1, 8, 8))
    assert model.loss(x.tolist()).total.item() == pytest.approx(model.loss(x).total.item())
