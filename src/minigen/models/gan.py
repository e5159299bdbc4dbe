"""Generative adversarial networks (Goodfellow et al. 2014, "Generative Adversarial Nets";
lecture deck 000: "sampling is typically easy ... so optimize a minimax loss instead").

A generator G maps noise z ~ p(z) = N(0, I) to samples x = G(z); a discriminator D(x) in (0, 1)
estimates the probability that x came from the data. They play the two-player game (Eq. 1)::

    min_G max_D V(D, G) = E_{x ~ p_data}[log D(x)] + E_{z ~ p(z)}[log(1 - D(G(z)))]

For a fixed G the best discriminator is (Proposition 1)::

    D*(x) = p_data(x) / (p_data(x) + p_g(x))

and at D* the game's value is C(G) = -log 4 + 2 JSD(p_data || p_g) (Theorem 1), minimised, at
-log 4, exactly when p_g = p_data.

Here D returns a *logit* l(x) with D(x) = sigmoid(l(x)); then -log D = softplus(-l) and
-log(1 - D) = softplus(l), finite for any logit. Per minibatch (means over examples)::

    discriminator_loss = E_x[softplus(-l(x))] + E_z[softplus(l(G(z)))]          = -V(D, G)
    generator_loss     = E_z[softplus(-l(G(z)))]     non-saturating: -log D(G(z)) (Sec. 3)
                       = -E_z[softplus(l(G(z)))]     minimax (saturating): log(1 - D(G(z)))

The non-saturating loss has the same fixed point but strong gradients early on, when D rejects
G's samples confidently; it is the paper's recommendation and the default. ``train_step`` is
Algorithm 1 with k = 1 discriminator step per generator step (the paper's experiments).

Names: the constructor takes ``generator`` and ``discriminator`` (the networks) as the issue
and the paper name them; they are stored as ``self.G`` and ``self.D``, because ``generator``
is, everywhere else in minigen, the keyword of the random-number Generator (``sample(n,
generator=None)``). Where minigen follows the paper instead of the slide: the slide only names
the minimax game; the losses and Algorithm 1 are the paper's.
"""
import numpy

from .. import backend, nn
from .. import functional as F
from ..autograd import Tensor, no_grad
from ..random import get_generator
from ..validation import check_int

__all__ = ["GAN"]


class GAN(nn.Module):
    """A generator network ``generator(z) -> x`` for z (N, latent_dim) and a discriminator
    network ``discriminator(x) -> logits`` (N,) or (N, 1), trained by the minimax game.

    ``forward(z)`` returns the generator's samples G(z).
    """

    def __init__(self, generator, discriminator, latent_dim):
        super().__init__()
        for name, net in (("generator", generator), ("discriminator", discriminator)):
            if not isinstance(net, nn.Module):
                raise TypeError(f"GAN: {name} must be a minigen.nn.Module (the {name} network), "
                                f"got {type(net).__name__}")
        self.G, self.D = generator, discriminator
        self.latent_dim = check_int(latent_dim, "latent_dim", minimum=1)

    def forward(self, z):
        return self.G(self._check_z(z))

    # ------------------------------------------------------------------ helpers
    def _param(self):
        """A parameter, for the model's device and dtype (D's if G has none)."""
        first = next(self.G.parameters(), None)
        return next(self.D.parameters()) if first is None else first

    def _check_z(self, z):
        if not isinstance(z, Tensor):
            z = Tensor(backend.to_device(z if hasattr(z, "shape") else numpy.asarray(z),
                                         self._param().device))
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"GAN: expected noise z of shape (N, {self.latent_dim}), got shape {z.shape}")
        dtype = self._param().dtype
        return z if z.dtype == dtype else z.to(dtype=dtype)

    def _check_x(self, x):
        if not isinstance(x, Tensor):
            x = Tensor(backend.to_device(x if hasattr(x, "shape") else numpy.asarray(x),
                                         self._param().device))
        if x.dtype.kind not in "biuf":
            raise TypeError(f"GAN: x_real must hold real numbers, got dtype {x.dtype}")
        if not bool(backend.get_array_module(x.data).isfinite(x.data).all()):
            raise ValueError("GAN: x_real contains NaN or inf")
        dtype = self._param().dtype
        return x if x.dtype == dtype else x.to(dtype=dtype)

    def logits(self, x):
        """The discriminator's logits l(x), shape (N,): D(x) = sigmoid(l(x))."""
        out = self.D(x)
        if out.ndim == 2 and out.shape[1] == 1:
            out = out.reshape(out.shape[0])
        if out.shape != (x.shape[0],):
            raise ValueError(f"GAN: the discriminator must return one logit per example, shape "
                             f"({x.shape[0]},) or ({x.shape[0]}, 1), got {out.shape}")
        return out

    def noise(self, n, generator=None):
        """z ~ N(0, I), (n, latent_dim), drawn from ``generator`` (a random Generator or seed)."""
        n = check_int(n, "n", minimum=1)
        p = self._param()
        rng = get_generator(generator, backend.get_array_module(p.data))
        z = rng.standard_normal((n, self.latent_dim)).astype(p.dtype)
        return Tensor(backend.to_device(z, p.device))  # a host Generator may serve a GPU model

    # ------------------------------------------------------------------ the game
    def value(self, x_real, z):
        """V(D, G) (Eq. 1) estimated on the minibatch: mean log D(x) + mean log(1 - D(G(z)))."""
        return -self.discriminator_loss(x_real, z, detach_generator=False)

    def discriminator_loss(self, x_real, z, detach_generator=True):
        """-V(D, G) on the minibatch: mean softplus(-l(x_real)) + mean softplus(l(G(z))).

        G(z) is detached by default (the discriminator's step does not move G).
        """
        x_real = self._check_x(x_real)
        x_fake = self.G(self._check_z(z))
        if detach_generator:
            x_fake = x_fake.detach()
        return F.softplus(-self.logits(x_real)).mean() + F.softplus(self.logits(x_fake)).mean()

    def generator_loss(self, z, non_saturating=True):
        """The generator's loss on the minibatch: mean -log D(G(z)) (non-saturating, default)
        or mean log(1 - D(G(z))) (the minimax game's own)."""
        logits = self.logits(self.G(self._check_z(z)))
        return F.softplus(-logits).mean() if non_saturating else -F.softplus(logits).mean()

    def train_step(self, x_real, d_optimizer, g_optimizer=None, generator=None, non_saturating=True):
        """One round of Algorithm 1 (k = 1): a discriminator step on ``x_real`` and fresh noise,
        then (unless ``g_optimizer`` is None: G frozen) a generator step on fresh noise.

        The optimizers hold D's and G's parameters respectively. Returns (d_loss, g_loss) as
        floats (g_loss None when G is frozen).
        """
        x_real = self._check_x(x_real)
        n = x_real.shape[0]
        d_optimizer.zero_grad()
        d_loss = self.discriminator_loss(x_real, self.noise(n, generator))
        d_loss.backward()
        d_optimizer.step()
        if g_optimizer is None:
            return d_loss.item(), None
        g_optimizer.zero_grad()
        g_loss = self.generator_loss(self.noise(n, generator), non_saturating)
        g_loss.backward()  # also reaches D's gradients; D's next step zeroes them first
        g_optimizer.step()
        return d_loss.item(), g_loss.item()

    def sample(self, n, generator=None):
        """n samples G(z), z ~ N(0, I) drawn from ``generator``; no graph is recorded."""
        with no_grad():
            return self.G(self.noise(n, generator))
