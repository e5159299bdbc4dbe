"""Variational autoencoders: an MLP ``VAE`` and a convolutional ``ConvVAE`` on one shared base.

Model (Kingma & Welling 2014, "Auto-Encoding Variational Bayes", Sec. 3 and Appendix C)::

    p(z) = N(0, I),    p_theta(x | z) = prod_d Bernoulli(x_d; sigmoid(f_theta(z)_d))     (likelihood="bernoulli")
                                      = prod_d N(x_d; f_theta(z)_d, exp(logvar_x_d))      (likelihood="gaussian")
    q_phi(z | x) = N(mu_phi(x), diag exp(logvar_phi(x)))

Objective: the evidence lower bound (their eq. 10), per example, summed over pixels d and latents j::

    ELBO(x) = E_q[log p(x | z)] - KL(q(z | x) || p(z))  <=  log p(x)
    KL      = 1/2 sum_j (exp(logvar_j) + mu_j^2 - 1 - logvar_j)              (their Appendix B)
    z       = mu + exp(0.5 logvar) * eps,   eps ~ N(0, I)                   (reparameterisation, Sec. 2.4)

``loss`` is the batch mean of -(E_q[log p(x|z)] - beta KL), one sample of z per example;
beta != 1 is the beta-VAE (Higgins et al. 2017). With ``n_classes`` the encoder and decoder also
receive one_hot(y): the conditional VAE q(z | x, y), p(x | z, y) (Sohn et al. 2015).

Importance weighting (Burda, Grosse & Salakhutdinov 2016, eq. 8 and Theorem 1)::

    log w_i = log p(x | z_i) + log p(z) - log q(z_i | x),   z_i ~ q(z | x),  i = 1..k
    L_k(x)  = E[log (1/k) sum_i w_i] = E[logsumexp_i(log w_i) - log k]
    ELBO = L_1 <= L_k <= L_{k+1} <= log p(x),   L_k -> log p(x) as k -> infinity

``log_likelihood`` estimates log p(x) by L_k with k in the thousands, in chunks of samples whose
log-sum-exps are merged (logaddexp), so memory does not grow with k. ``iwae_loss`` trains on -L_k.

Gaussian likelihood: the decoder gives the mean; the variance is a learned per-pixel
log-variance ``x_logvar`` (one value per pixel, shared by all z), kept above log(MIN_X_VAR) by a
softplus so that pixels that never change (the digits' blank border) cannot send it to -inf and
the likelihood to +inf. Every place samples with scale exp(0.5 * logvar), the same variance the
log-densities and the KL use.
"""
import math
from collections import namedtuple

import numpy

from .. import backend, nn
from .. import functional as F
from ..autograd import Tensor, no_grad
from ..distributions import Bernoulli, Normal, kl_divergence
from ..random import get_generator
from ..validation import check_float, check_int, check_option

__all__ = ["VAEBase", "VAE", "ConvVAE", "ELBO"]

ELBO = namedtuple("ELBO", ["elbo", "reconstruction", "kl"])
ELBO.__doc__ = "Per-example ELBO = reconstruction - kl: E_q[log p(x|z)] (one sample) and KL(q(z|x) || p(z))."


class VAEBase(nn.Module):
    """The ELBO / IWAE machinery shared by ``VAE`` and ``ConvVAE``.

    A subclass builds its networks and implements two methods on validated tensors:
    ``_encoder(x, c) -> (N, 2 * latent_dim)`` (mu and logvar side by side) and
    ``_decoder(z, c) -> (N, *event_shape)`` likelihood parameters, where ``c`` is the
    one-hot label (N, n_classes) or None.
    """

    MIN_X_VAR = 1e-3

    def __init__(self, event_shape, latent_dim, likelihood="bernoulli", beta=1.0, n_classes=None):
        super().__init__()
        self.event_shape = tuple(event_shape)
        self.latent_dim = check_int(latent_dim, "latent_dim", minimum=1)
        self.likelihood = check_option(likelihood, "likelihood", ("bernoulli", "gaussian"))
        self.beta = check_float(beta, "beta", minimum=0.0)
        self.n_classes = None if n_classes is None else check_int(n_classes, "n_classes", minimum=1)
        if likelihood == "gaussian":
            xp = backend.array_module_for(backend.default_device())
            self.x_logvar = nn.Parameter(xp.zeros(self.event_shape, dtype="float32"))

    def _encoder(self, x, c):
        raise NotImplementedError

    def _decoder(self, z, c):
        raise NotImplementedError

    @property
    def _dtype(self):
        return next(self.parameters()).dtype

    def _xp(self):
        return backend.get_array_module(next(self.parameters()).data)

    def extra_repr(self):
        return (f"event_shape={self.event_shape}, latent_dim={self.latent_dim}, "
                f"likelihood={self.likelihood!r}, beta={self.beta}, n_classes={self.n_classes}")

    # ------------------------------------------------------------------ input checks
    def _check_x(self, x):
        """``x`` as a tensor (N, *event_shape) of the model's dtype on its device."""
        if not isinstance(x, Tensor):
            x = Tensor(x if hasattr(x, "shape") else numpy.asarray(x))
        if x.device != self.device:
            x = x.to(device=self.device)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{type(self).__name__}: x must hold numbers, got dtype {x.dtype}")
        size = math.prod(self.event_shape)
        if x.ndim < 2 or math.prod(x.shape[1:]) != size:
            raise ValueError(
                f"{type(self).__name__}: expected x of shape (N, {', '.join(map(str, self.event_shape))})"
                f"{f' or (N, {size})' if len(self.event_shape) > 1 else ''}, got shape {x.shape}")
        if x.dtype != self._dtype:
            x = x.to(dtype=self._dtype)
        if x.shape[1:] != self.event_shape:
            x = F.reshape(x, (x.shape[0],) + self.event_shape)
        if self.likelihood == "bernoulli":
            Bernoulli.check_support(x)
        elif not bool(self._xp().isfinite(x.data).all()):
            raise ValueError(f"{type(self).__name__}: x contains NaN or inf")
        return x

    def _one_hot(self, y, n):
        """One-hot labels (n, n_classes), or None for an unconditional model."""
        if self.n_classes is None:
            if y is not None:
                raise ValueError(f"{type(self).__name__} was built without n_classes, so it takes no "
                                 f"labels y; build it with n_classes=... for a conditional VAE")
            return None
        if y is None:
            raise ValueError(f"this {type(self).__name__} is class-conditional (n_classes="
                             f"{self.n_classes}): pass the labels y")
        y = backend.to_numpy(y.data if isinstance(y, Tensor) else y)
        y = numpy.full(n, y) if numpy.ndim(y) == 0 else numpy.asarray(y)
        if y.dtype.kind not in "iu":
            raise TypeError(f"labels y must be integers in [0, {self.n_classes}), got dtype {y.dtype}")
        if y.shape != (n,):
            raise ValueError(f"expected {n} labels y (one per example), got shape {y.shape}")
        if n and (y.min() < 0 or y.max() >= self.n_classes):
            raise ValueError(f"labels y must lie in [0, {self.n_classes}) (n_classes={self.n_classes}), "
                             f"got values in [{y.min()}, {y.max()}]")
        xp = self._xp()
        return Tensor(xp.asarray(numpy.eye(self.n_classes, dtype=self._dtype)[y]))

    def _inputs(self, x, y):
        x = self._check_x(x)
        return x, self._one_hot(y, x.shape[0])

    def _check_z(self, z):
        if not isinstance(z, Tensor):
            z = Tensor(backend.to_device(z, self.device))
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"expected z of shape (N, {self.latent_dim}), got shape {z.shape}")
        return z.to(dtype=self._dtype)

    # ------------------------------------------------------------------ the model's pieces
    def encode(self, x, y=None):
        """The posterior's parameters (mu, logvar), each (N, latent_dim)."""
        return self._encode(*self._inputs(x, y))

    def _encode(self, x, c):
        h = self._encoder(x, c)
        return h[:, :self.latent_dim], h[:, self.latent_dim:]

    def decode(self, z, y=None):
        """Likelihood parameters (N, *event_shape): Bernoulli logits, or the Gaussian mean."""
        z = self._check_z(z)
        return self._decoder(z, self._one_hot(y, z.shape[0]))

    def _x_logvar(self):
        floor = math.log(self.MIN_X_VAR)
        return floor + F.softplus(self.x_logvar - floor)  # smooth max(x_logvar, floor)

    def _likelihood(self, params):
        if self.likelihood == "bernoulli":
            return Bernoulli(logits=params)
        return Normal(params, logvar=self._x_logvar())

    def prior(self):
        """p(z) = N(0, I) over the latent_dim axis."""
        xp = self._xp()
        return Normal(Tensor(xp.zeros(self.latent_dim, dtype=self._dtype)),
                      Tensor(xp.ones(self.latent_dim, dtype=self._dtype)))

    def posterior(self, x, y=None):
        """q(z | x) = N(mu, diag exp(logvar)), a ``Normal`` with batch shape (N, latent_dim)."""
        return self._posterior(*self._inputs(x, y))

    def _posterior(self, x, c):
        mu, logvar = self._encode(x, c)
        return Normal(mu, logvar=logvar)

    def log_px(self, x, z, y=None):
        """log p(x | z) summed over pixels; z is (N, latent_dim) or (k, N, latent_dim) -> (N,) or (k, N)."""
        x, c = self._inputs(x, y)
        return self._log_px(x, z, c)

    def _log_px(self, x, z, c):
        lead = z.shape[:-1]                      # (N,) or (k, N)
        z = F.reshape(z, (-1, self.latent_dim))  # decode all k * N codes in one pass
        if c is not None and len(lead) == 2:
            c = Tensor(self._xp().tile(c.data, (lead[0], 1)))  # row i * N + n gets label n
        params = F.reshape(self._decoder(z, c), lead + self.event_shape)
        log_p = self._likelihood(params).log_prob(x)
        return F.sum(log_p, axis=tuple(range(len(lead), log_p.ndim)))

    def _kl(self, q):
        return F.sum(kl_divergence(q, self.prior()), axis=-1)

    # ------------------------------------------------------------------ objectives
    def elbo(self, x, y=None, eps=None, generator=None):
        """Per-example ``ELBO(elbo, reconstruction, kl)``, each (N,); one z per example.

        ``eps`` (N, latent_dim): the reparameterisation noise, to hold it fixed (gradient checks).
        """
        x, c = self._inputs(x, y)
        q = self._posterior(x, c)
        z = q.rsample(eps=eps, generator=generator)
        reconstruction = self._log_px(x, z, c)
        kl = self._kl(q)
        return ELBO(reconstruction - kl, reconstruction, kl)

    def loss(self, x, y=None, eps=None, generator=None):
        """Batch mean of -(reconstruction - beta * kl): the (beta-)negative ELBO, summed over pixels."""
        _, reconstruction, kl = self.elbo(x, y, eps, generator)
        return F.mean(self.beta * kl - reconstruction)

    def forward(self, x, y=None):
        """``model(x)`` is the training loss."""
        return self.loss(x, y)

    def _log_weights(self, x, c, k, eps=None, generator=None):
        q = self._posterior(x, c)
        z = q.rsample((k,), eps=eps, generator=generator)  # (k, N, latent_dim)
        log_pz = F.sum(self.prior().log_prob(z), axis=-1)
        log_qz = F.sum(q.log_prob(z), axis=-1)
        return self._log_px(x, z, c) + log_pz - log_qz

    def log_weights(self, x, k, y=None, eps=None, generator=None):
        """log w_i = log p(x, z_i) - log q(z_i | x) for z_1..z_k ~ q: a (k, N) tensor.

        ``eps`` (k, N, latent_dim) holds the noise fixed.
        """
        x, c = self._inputs(x, y)
        k = check_int(k, "k", minimum=1)
        return self._log_weights(x, c, k, eps, generator)

    def iwae_bound(self, x, k, y=None, eps=None, generator=None):
        """L_k(x) = logsumexp_i(log w_i) - log k per example (N,); differentiable."""
        log_w = self.log_weights(x, k, y, eps, generator)
        return F.logsumexp(log_w, axis=0) - math.log(log_w.shape[0])

    def iwae_loss(self, x, k, y=None, eps=None, generator=None):
        """Batch mean of -L_k(x), the IWAE training objective (k = 1: -ELBO with a sampled KL)."""
        return -F.mean(self.iwae_bound(x, k, y, eps, generator))

    def log_likelihood(self, x, n_samples=1000, y=None, batch_size=4096, generator=None):
        """Importance-weighted estimate of log p(x) (N,), in nats: L_k with k = ``n_samples``.

        Works in passes of at most ``batch_size`` decoded (sample, example) pairs; each pass's
        log-sum-exp is merged into a running one, so any k fits in memory. No gradient.
        """
        n_samples = check_int(n_samples, "n_samples", minimum=1)
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        xp = self._xp()
        generator = get_generator(generator, xp)  # one stream for all passes
        with no_grad():
            x, c = self._inputs(x, y)
            n = x.shape[0]
            rows = max(1, batch_size // n_samples)  # examples per pass
            out = []
            for start in range(0, n, rows):
                xb = x[start:start + rows]
                cb = None if c is None else c[start:start + rows]
                chunk = max(1, batch_size // xb.shape[0])  # samples per pass
                log_sum = xp.full(xb.shape[0], -xp.inf, dtype=self._dtype)
                for done in range(0, n_samples, chunk):
                    log_w = self._log_weights(xb, cb, min(chunk, n_samples - done), generator=generator)
                    log_sum = xp.logaddexp(log_sum, F.logsumexp(log_w, axis=0).data)
                out.append(log_sum - math.log(n_samples))
            return Tensor(xp.concatenate(out))

    # ------------------------------------------------------------------ generation
    def sample(self, n, y=None, generator=None, mean=True):
        """``n`` new images (n, *event_shape): the mean of p(x | z) for z ~ p(z) (or a draw, mean=False).

        ``y``: one label for all, or n labels (class-conditional models only).
        """
        n = check_int(n, "n", minimum=1)
        generator = get_generator(generator, self._xp())  # one stream for z and the pixels
        z = self.prior().sample((n,), generator=generator)
        return self.generate(z, y, mean, generator)

    def generate(self, z, y=None, mean=True, generator=None):
        """Images (N, *event_shape) decoded from latent codes z (N, latent_dim): the mean of p(x | z),
        or a draw from it (mean=False)."""
        with no_grad():
            z = self._check_z(z)
            return self._output(self._decoder(z, self._one_hot(y, z.shape[0])), mean, generator)

    def _output(self, params, mean=True, generator=None):
        p_x = self._likelihood(params)
        return p_x.mean if mean else p_x.sample(generator=generator)

    def reconstruct(self, x, y=None):
        """The mean of p(x | z = mu(x)), shaped like ``x`` (deterministic)."""
        shape = getattr(x, "shape", None)
        with no_grad():
            x, c = self._inputs(x, y)
            shape = x.shape if shape is None else shape
            mu, _ = self._encode(x, c)
            return F.reshape(self._output(self._decoder(mu, c)), shape)

    def interpolate(self, x_a, x_b, steps=8, y=None):
        """Decoded means along z_t = (1 - t) mu(x_a) + t mu(x_b), t in [0, 1]: (N, steps, *event_shape).

        A class-conditional model encodes both ends and decodes the path under the same labels y.
        """
        steps = check_int(steps, "steps", minimum=2)
        with no_grad():
            x_a, c = self._inputs(x_a, y)
            x_b, _ = self._inputs(x_b, y)
            if x_a.shape != x_b.shape:
                raise ValueError(f"interpolate: x_a and x_b must have the same shape, got {x_a.shape} and {x_b.shape}")
            mu_a, mu_b = self._encode(x_a, c)[0].data, self._encode(x_b, c)[0].data
            xp = self._xp()
            t = xp.linspace(0, 1, steps, dtype=self._dtype)[None, :, None]
            z = ((1 - t) * mu_a[:, None] + t * mu_b[:, None]).reshape(-1, self.latent_dim)
            if c is not None:
                c = Tensor(xp.repeat(c.data, steps, axis=0))  # row n * steps + s gets label n
            out = self._output(self._decoder(Tensor(z), c))
            return F.reshape(out, (x_a.shape[0], steps) + self.event_shape)


def _check_dims(values, name):
    values = (values,) if isinstance(values, int) else tuple(values)
    return tuple(check_int(v, f"each of {name}", minimum=1) for v in values)


class VAE(VAEBase):
    """MLP VAE: encoder D(+C) -> hidden_dims -> 2 * latent_dim, decoder latent_dim(+C) -> reversed(hidden_dims) -> D.

    ``input_dim``: an int D, or the shape of one example, e.g. (1, 28, 28); inputs of shape
    (N, *shape) or (N, D) are both accepted. ReLU between layers.
    """

    def __init__(self, input_dim, hidden_dims=(400,), latent_dim=20, likelihood="bernoulli",
                 beta=1.0, n_classes=None):
        event_shape = _check_dims(input_dim, "input_dim")
        super().__init__(event_shape, latent_dim, likelihood, beta, n_classes)
        hidden_dims = () if hidden_dims is None else _check_dims(hidden_dims, "hidden_dims")
        c = self.n_classes or 0
        self.encoder = _mlp([math.prod(event_shape) + c, *hidden_dims, 2 * self.latent_dim])
        self.decoder = _mlp([self.latent_dim + c, *reversed(hidden_dims), math.prod(event_shape)])

    def _encoder(self, x, c):
        h = F.flatten(x)
        return self.encoder(h if c is None else F.concatenate([h, c], axis=1))

    def _decoder(self, z, c):
        out = self.decoder(z if c is None else F.concatenate([z, c], axis=1))
        return F.reshape(out, (z.shape[0],) + self.event_shape)


def _mlp(sizes):
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])  # no activation after the last layer


class ConvVAE(VAEBase):
    """Convolutional VAE for (C, S, S) images.

    Encoder: [Conv2d(4x4, stride 2, padding 1) + ReLU] per entry of ``hidden_channels`` (each
    halves the side), flatten, (+ one-hot y), Linear -> 2 * latent_dim. Decoder: the mirror image,
    Linear -> ReLU -> reshape, then ConvTranspose2d(4x4, stride 2, padding 1) layers that double
    the side back. ``image_size`` must be divisible by 2 ** len(hidden_channels).
    """

    def __init__(self, in_channels, image_size, latent_dim=20, hidden_channels=(32, 64),
                 likelihood="bernoulli", beta=1.0, n_classes=None):
        in_channels = check_int(in_channels, "in_channels", minimum=1)
        image_size = check_int(image_size, "image_size", minimum=1)
        hidden_channels = _check_dims(hidden_channels, "hidden_channels")
        if not hidden_channels or image_size % 2 ** len(hidden_channels):
            raise ValueError(f"ConvVAE: image_size ({image_size}) must be divisible by 2 ** "
                             f"len(hidden_channels) = {2 ** len(hidden_channels)} (each layer halves it), "
                             f"and hidden_channels must not be empty")
        super().__init__((in_channels, image_size, image_size), latent_dim, likelihood, beta, n_classes)
        side = image_size // 2 ** len(hidden_channels)
        self.feature_shape = (hidden_channels[-1], side, side)
        n_features = math.prod(self.feature_shape)
        c = self.n_classes or 0
        channels = (in_channels, *hidden_channels)
        down = []
        for n_in, n_out in zip(channels[:-1], channels[1:]):
            down += [nn.Conv2d(n_in, n_out, 4, stride=2, padding=1), nn.ReLU()]
        self.encoder = nn.Sequential(*down, nn.Flatten())
        self.to_latent = nn.Linear(n_features + c, 2 * self.latent_dim)
        self.from_latent = nn.Sequential(nn.Linear(self.latent_dim + c, n_features), nn.ReLU())
        up = []
        for n_in, n_out in zip(channels[:0:-1], channels[-2::-1]):
            up += [nn.ConvTranspose2d(n_in, n_out, 4, stride=2, padding=1), nn.ReLU()]
        self.decoder = nn.Sequential(*up[:-1])

    def _encoder(self, x, c):
        h = self.encoder(x)
        return self.to_latent(h if c is None else F.concatenate([h, c], axis=1))

    def _decoder(self, z, c):
        h = self.from_latent(z if c is None else F.concatenate([z, c], axis=1))
        return self.decoder(F.reshape(h, (z.shape[0],) + self.feature_shape))
