"""The deterministic autoencoder, and its denoising variant: the starting point of decks 001, 002, 004.

Lectures: deck 001 ("autoencoders": an encoder f, a code z = f(x) smaller than x, a decoder g,
trained to make g(f(x)) close to x), deck 002 (autoencoders before VAEs), deck 004 (the linear
autoencoder and PCA). Denoising: Vincent et al. 2008, "Extracting and composing robust features
with denoising autoencoders".

Model::

    z = f_phi(x)                      encoder, an MLP D -> hidden_dims -> L
    x^ = g_theta(z)                   decoder, an MLP L -> reversed(hidden_dims) -> D
    loss(x) = 1/N sum_n l(x_n, g(f(x~_n)))

with the per-example reconstruction loss l summed over the D inputs:

    loss="mse"   l = ||x - x^||^2                                   (x^ = g(z), any real x)
    loss="bce"   l = -sum_d [x_d log x^_d + (1 - x_d) log(1 - x^_d)],  x^ = sigmoid(g(z)), x in [0, 1]

and x~ = x + noise_std * eps, eps ~ N(0, I), while training when ``noise_std > 0`` (the denoising
autoencoder: reconstruct the clean x from a corrupted copy); x~ = x otherwise and in eval mode.

Why it is not a generative model (``examples/autoencoder.py``): nothing shapes the set of codes,
so a random z (from N(0, I), say) is usually not near any code of the data and g(z) is not a
digit. The VAE adds the prior p(z) and the KL term that pull the codes onto it.

With ``hidden_dims=()`` and ``loss="mse"`` the autoencoder is linear, x^ = W_d (W_e x + b_e) + b_d;
at its minimum the columns of W_d span the top-L principal subspace of the data (Baldi & Hornik
1989): the lectures' "autoencoder as (nonlinear) PCA", checked by a test against PPCA's closed form.

``forward(x)`` returns the reconstruction x^ (probabilities for loss="bce").
"""
import math

from .. import functional as F
from .. import nn
from ..autograd import Tensor
from ..backend import get_array_module
from ..random import get_generator
from ..validation import check_float, check_int, check_option

__all__ = ["Autoencoder"]


def _dims(values, name):
    values = (values,) if isinstance(values, int) else tuple(values)
    return tuple(check_int(v, f"each of {name}", minimum=1) for v in values)


class Autoencoder(nn.Module):
    """Deterministic autoencoder D -> hidden_dims -> latent_dim -> reversed(hidden_dims) -> D.

    ``input_dim``: an int D or the shape of one example, e.g. (1, 8, 8); inputs (N, *shape) or
    (N, D). ReLU between hidden layers; ``hidden_dims=()`` makes it linear.
    """

    def __init__(self, input_dim, hidden_dims=(128,), latent_dim=2, loss="mse", noise_std=0.0):
        super().__init__()
        self.event_shape = _dims(input_dim, "input_dim")
        self.hidden_dims = () if hidden_dims is None else _dims(hidden_dims, "hidden_dims")
        self.latent_dim = check_int(latent_dim, "latent_dim", minimum=1)
        self.loss_type = check_option(loss, "loss", ("mse", "bce"))
        self.noise_std = check_float(noise_std, "noise_std", minimum=0.0)
        D = math.prod(self.event_shape)
        self.encoder = nn.MLP([D, *self.hidden_dims, self.latent_dim])
        self.decoder = nn.MLP([self.latent_dim, *reversed(self.hidden_dims), D])

    # ------------------------------------------------------------------ checks

    def _as_tensor(self, value, name, trailing):
        if isinstance(value, Tensor):
            t = value
        else:
            if isinstance(value, str) or value is None:
                raise TypeError(f"{name} must be an array or tensor, got {type(value).__name__}")
            xp = get_array_module(self.encoder[0].weight.data)
            t = Tensor(xp.asarray(value, dtype=self.encoder[0].weight.dtype))
        if t.dtype.kind != "f":
            t = Tensor(t.data.astype(self.encoder[0].weight.dtype))
        if t.ndim < 2 or t.shape[0] == 0 or tuple(t.shape[1:]) not in trailing:
            expected = " or ".join(f"(N, {', '.join(map(str, s))})" for s in trailing)
            raise ValueError(f"{name} must have shape {expected} with N >= 1, got {tuple(t.shape)}")
        xp = get_array_module(t.data)
        if not bool(xp.isfinite(t.data).all()):
            raise ValueError(f"{name} must hold only finite values")
        return t

    def _check_x(self, x):
        D = math.prod(self.event_shape)
        x = self._as_tensor(x, "x", {self.event_shape, (D,)})
        if self.loss_type == "bce":
            xp = get_array_module(x.data)
            if not bool(xp.all((x.data >= 0) & (x.data <= 1))):
                raise ValueError('x must lie in [0, 1] for loss="bce"; scale it or use loss="mse"')
        return x

    # ------------------------------------------------------------------ the model

    def encode(self, x):
        """The code z = f(x), shape (N, latent_dim)."""
        x = self._check_x(x)
        return self.encoder(F.reshape(x, (x.shape[0], -1)))

    def _decode_logits(self, z):
        return self.decoder(z)

    def decode(self, z):
        """x^ = g(z) with the shape of one example (sigmoid(g(z)) for loss="bce")."""
        z = self._as_tensor(z, "z", {(self.latent_dim,)})
        out = self._decode_logits(z)
        out = F.sigmoid(out) if self.loss_type == "bce" else out
        return F.reshape(out, (z.shape[0],) + self.event_shape)

    def reconstruct(self, x):
        """g(f(x)) (no corruption), with the shape of one example."""
        return self.decode(self.encode(x))

    def forward(self, x):
        return self.reconstruct(x)

    def loss(self, x, generator=None):
        """Mean over the batch of the per-example reconstruction loss (summed over inputs); while
        training with ``noise_std > 0`` the encoder sees x + noise_std * eps (denoising)."""
        x = self._check_x(x)
        flat = F.reshape(x, (x.shape[0], -1))
        noisy = flat
        if self.training and self.noise_std > 0:
            xp = get_array_module(flat.data)
            eps = get_generator(generator, xp).standard_normal(flat.shape).astype(flat.dtype)
            noisy = flat + Tensor(self.noise_std * eps)
        out = self._decode_logits(self.encoder(noisy))
        if self.loss_type == "bce":
            per_input = F.binary_cross_entropy_with_logits(out, flat, reduction="none")
        else:
            residual = flat - out
            per_input = residual * residual
        return F.mean(F.sum(per_input, axis=1))
