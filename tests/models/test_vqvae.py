"""VQVAE: latent grid, the loss and its parts, whole-model gradients, training, two-stage generation."""
import numpy as np
import pytest

import minigen
import minigen.functional as F
from devices import to_host
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
def test_code_grid_shape(size, n_downsample, grid):
    model = tiny(n_downsample=n_downsample)
    x = images((3, 1, size, size))
    codes = model.encode(x)
    assert codes.shape == (3, grid, grid) and codes.dtype.kind == "i"
    assert model.latent_shape((size, size)) == (grid, grid)
    assert model.decode_codes(codes).shape == (3, 1, size, size)
    np.testing.assert_array_equal(model.reconstruct(x).numpy(), model.decode_codes(codes).numpy())


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


@pytest.mark.parametrize("ema", [False, True])
def test_training_on_digits_lowers_the_loss_and_uses_many_codes(ema):
    x = load_digits()[0][:256]
    minigen.manual_seed(0)
    model = VQVAE(hidden_channels=16, num_embeddings=16, embedding_dim=4, n_downsample=1,
                  n_residual=1, ema=ema)
    opt = Adam(model.parameters(), lr=3e-3)
    first = model.loss(x).reconstruction.item()
    for epoch in range(5):
        model.quantizer.reset_usage()
        for b in range(0, 256, 64):
            opt.zero_grad()
            model.loss(x[b:b + 64]).total.backward()
            opt.step()
        model.quantizer.restart_dead_codes(model.encoder(minigen.tensor(x[:64])), random_state=epoch)
    assert model.loss(x).reconstruction.item() < 0.8 * first
    assert model.quantizer.perplexity() > 4


def test_two_stage_generation():
    model = tiny(num_embeddings=6)
    x = images((16, 1, 8, 8))
    codes = model.encode(x).numpy()[:, None]
    minigen.manual_seed(1)
    prior = PixelCNN(n_values=6, hidden_channels=8, n_layers=2, kernel_size=3).double()
    assert prior.log_prob(codes).shape == (16,)
    out = model.generate(prior, 3, (4, 4), random_state=0)
    assert out.shape == (3, 1, 8, 8) and (out.numpy() >= 0).all() and (out.numpy() <= 1).all()
    with pytest.raises(ValueError, match="n_values"):
        model.generate(PixelCNN(n_values=5), 3, (4, 4))


def test_bad_input_is_rejected():
    model = tiny()
    with pytest.raises(ValueError, match="multiples of 2"):
        model.loss(images((2, 1, 7, 8)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.loss(images((2, 1, 8, 8)) * 2)
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        model.encode(images((2, 8, 8)))
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        model.decode_codes(np.full((1, 4, 4), 5))
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        model.decode_codes(np.full((1, 4, 4), -1))
    with pytest.raises(TypeError, match="integer"):
        model.decode_codes(np.full((1, 4, 4), 0.5))
    with pytest.raises(ValueError, match=r"\(N, h, w\)"):
        model.decode_codes(np.zeros((4, 4), dtype=int))
    with pytest.raises(ValueError, match=r"shape \(2, 4, 4\)"):
        model.loss(images((2, 1, 8, 8)), codes=np.zeros((2, 2, 2), dtype=int))
