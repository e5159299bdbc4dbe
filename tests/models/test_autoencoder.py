"""Autoencoder: gradients, the linear autoencoder spans the principal subspace (PPCA's closed
form), denoising corrupts only the encoder's input, bad input."""
import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings, strategies as st

import minigen
from devices import to_host
from minigen import backend
from minigen.models import Autoencoder, PPCA

XP = backend.array_module_for(backend.default_device())


def _model(**kw):
    minigen.manual_seed(0)
    return Autoencoder(**{"input_dim": 5, "hidden_dims": (4,), "latent_dim": 2, **kw}).double()


@pytest.mark.parametrize("kw", [dict(loss="mse"), dict(loss="bce"), dict(loss="mse", noise_std=0.3),
                                dict(loss="bce", hidden_dims=())])
@settings(max_examples=3)
@given(seed=st.integers(0, 1000))
def test_loss_gradients(kw, seed):
    model = _model(**kw)
    x = XP.asarray(np.random.default_rng(seed).random((3, 5)))
    # an int generator seeds a fresh generator per call: the same corruption every evaluation
    assert minigen.gradcheck(lambda *ps: model.loss(x, generator=seed), list(model.parameters()))


def test_linear_autoencoder_spans_the_principal_subspace():
    """Baldi & Hornik 1989: at the minimum of the squared error the decoder's columns span the
    top-L principal subspace, the same subspace as PPCA's maximum-likelihood W."""
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((200, 3)) * [3.0, 2.0, 1.5]) @ rng.standard_normal((3, 6))
    X += 0.3 * rng.standard_normal((200, 6)) + 2.0
    model = _model(input_dim=6, hidden_dims=(), latent_dim=2)
    optimizer = minigen.optim.Adam(model.parameters(), lr=0.05)
    x = XP.asarray(X)
    for _ in range(1200):
        optimizer.zero_grad()
        model.loss(x).backward()
        optimizer.step()
    W_decoder = to_host(model.decoder[0].weight.data)                    # (6, 2)
    W_ppca = to_host(PPCA(2, method="closed_form").fit(X).components_).T  # (6, 2)
    angles = np.degrees(scipy.linalg.subspace_angles(W_decoder, W_ppca))
    assert angles.max() < 0.5, angles
    # and not any 2-D subspace: a random one is tens of degrees away
    assert np.degrees(scipy.linalg.subspace_angles(rng.standard_normal((6, 2)), W_ppca)).max() > 5


def test_denoising_corrupts_the_input_only_while_training():
    model = _model(noise_std=0.5)
    x = XP.asarray(np.random.default_rng(1).random((4, 5)))
    noisy = [float(model.loss(x, generator=s).item()) for s in (1, 2)]
    assert noisy[0] != noisy[1]  # a different corruption, a different loss
    model.eval()
    clean = [float(model.loss(x).item()) for _ in range(2)]
    assert clean[0] == clean[1]
    recon = to_host(model.reconstruct(x).data)
    assert float(((recon - to_host(x)) ** 2).sum(axis=1).mean()) == pytest.approx(clean[0], rel=1e-12)


def test_shapes_follow_the_example_shape():
    model = Autoencoder((1, 4, 4), hidden_dims=(8,), latent_dim=3, loss="bce")
    x = XP.asarray(np.random.default_rng(0).random((5, 1, 4, 4)).astype(np.float32))
    assert model.encode(x).shape == (5, 3)
    recon = model(x)
    assert recon.shape == (5, 1, 4, 4)
    assert 0 <= float(recon.data.min()) and float(recon.data.max()) <= 1


BAD = [
    ("latent_dim float", lambda: Autoencoder(4, latent_dim=2.5), TypeError, "latent_dim"),
    ("latent_dim 0", lambda: Autoencoder(4, latent_dim=0), ValueError, "latent_dim"),
    ("loss name", lambda: Autoencoder(4, loss="l1"), ValueError, "loss"),
    ("noise negative", lambda: Autoencoder(4, noise_std=-1.0), ValueError, "noise_std"),
    ("x wrong width", lambda: Autoencoder(4).loss(np.zeros((2, 3))), ValueError, "shape"),
    ("x empty", lambda: Autoencoder(4).loss(np.zeros((0, 4))), ValueError, "N >= 1"),
    ("x NaN", lambda: Autoencoder(4).encode(np.full((2, 4), np.nan)), ValueError, "finite"),
    ("x string", lambda: Autoencoder(4).encode("abc"), TypeError, "array"),
    ("bce outside [0, 1]", lambda: Autoencoder(4, loss="bce").loss(np.full((2, 4), 2.0)), ValueError, "\\[0, 1\\]"),
    ("z wrong width", lambda: Autoencoder(4, latent_dim=2).decode(np.zeros((2, 3))), ValueError, "z must"),
]


@pytest.mark.parametrize("make, error, message", [r[1:] for r in BAD], ids=[r[0] for r in BAD])
def test_bad_input(make, error, message):
    with pytest.raises(error, match=message):
        make()
