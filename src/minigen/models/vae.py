"""Variational autoencoders: an MLP ``VAE`` and a convolutional ``ConvVAE`` on one shared base.

Lectures: deck 000 (the VAE through the lens of variational inference), deck 001 (ELBO,
reparameterisation, beta, conditional and convolutional VAEs), deck 002, deck 004 (the VAE as
nonlinear factor analysis; the estimators A and B of the ELBO). Paper: Kingma & Welling 2014,
"Auto-Encoding Variational Bayes". Names follow Kingma & Welling: encoder q_phi(z | x), decoder
p_theta(x | z) (deck 000 swaps them: q_theta and p_phi).

Model (Kingma & Welling, Sec. 3 and Appendix C)::

    p(z) = N(0, I)
    p_theta(x | z) = prod_d Bernoulli(x_d; sigmoid(f_theta(z)_d))            likelihood="bernoulli"
                   = prod_d N(x_d; f_theta(z)_d, sigma_d^2)                  likelihood="gaussian"
    q_phi(z | x)   = N(mu_phi(x), diag exp(logvar_phi(x)))

The Gaussian decoder's variance, ``decoder_variance``:

    "fixed"      sigma_d^2 = fixed_variance (deck 001's N(x^, I)): with variance 1,
                 -log p(x | z) = 1/2 ||x - x^||^2 + D/2 log 2 pi, half the squared error plus a constant
    "per_pixel"  sigma_d^2 = exp(x_logvar_d): one learned value per pixel, shared by every z (default)
    "from_z"     sigma_d^2 = exp(g_theta(z)_d): the decoder outputs a log-variance beside the mean
                 (decks 000 and 004; Kingma & Welling, Appendix C.2)

Learned log-variances are kept above log(MIN_X_VAR) by a softplus, so pixels that never change
(the digits' blank border) cannot send the variance to 0 and the likelihood to +inf.

Objective: the evidence lower bound per example, summed over pixels d and latents j::

    ELBO(x) = E_q[log p(x | z)] - KL(q(z | x) || p(z)) = log p(x) - KL(q(z | x) || p(z | x))
    KL(q || p(z)) = 1/2 sum_j (exp(logvar_j) + mu_j^2 - 1 - logvar_j)                  (their App. B)
    z = mu + exp(0.5 logvar) * eps,   eps ~ N(0, I)                   (reparameterisation, Sec. 2.4)

The code computes that KL with the general Normal-Normal KL, ``minigen.distributions.kl_divergence``:
KL(N(m_1, s_1^2) || N(m_2, s_2^2)) = log(s_2 / s_1) + (s_1^2 + (m_1 - m_2)^2) / (2 s_2^2) - 1/2,
which is the line above for m_2 = 0, s_2 = 1 (s_1^2 = exp(logvar)). From L draws z_1..z_L, two estimators (Kingma & Welling eq. 6 and 7; deck 004's A
and B), chosen by ``elbo(..., estimator=)``::

    "monte_carlo"  (A)  1/L sum_l [log p(x, z_l) - log q(z_l | x)]
    "analytic_kl"  (B)  1/L sum_l log p(x | z_l) - KL(q(z | x) || p(z))                (default)

Both are unbiased. Deck 004 calls B the lower-variance one; that is not always so: when q is the
exact posterior, log p(x, z) - log q(z | x) = log p(x) for every z, and A has zero variance
(on the trained digits VAE of examples/vae.py, A's variance is also the lower, by about 3x).

Training, ``loss``: the batch mean of ``kl_weight * KL - E_q[log p(x | z)]``, kl_weight = beta by
default (beta != 1: the beta-VAE, Higgins et al. 2017). Against posterior collapse (the KL term
pushes q(z | x) onto the prior and the decoder learns to ignore z):

    KL warm-up (Bowman et al. 2016; Sonderby et al. 2016): kl_weight grows linearly from 0 to
        beta, ``kl_warmup(step, n_warmup, beta)``;
    free bits (Kingma et al. 2016, "Improved variational inference with inverse autoregressive
        flow", Appendix C.8): the KL term becomes sum_j max(lambda, E_batch[KL_j]), so no latent
        is pushed below lambda nats;
    active units (Burda et al. 2016, Sec. 5.2): unit u is active if Cov_x(E_q(u|x)[u]) > 0.01,
        ``active_units(x)``.

With ``n_classes`` the encoder and decoder also receive one_hot(y): the conditional VAE
q(z | x, y), p(x | z, y) (Sohn et al. 2015).

Importance weighting (Burda, Grosse & Salakhutdinov 2016, eq. 8 and Theorem 1)::

    log w_i = log p(x | z_i) + log p(z_i) - log r(z_i),   z_i ~ r,   i = 1..k
    L_k(x)  = logsumexp_i(log w_i) - log k,     E[L_k] <= E[L_{k+1}] <= log p(x),  -> log p(x)

with the proposal r = q(z | x) (``proposal="posterior"``; k = 1 gives the ELBO), or r = p(z)
(``proposal="prior"``, deck 002's naive estimator: w_i = p(x | z_i), consistent too, but most
prior draws explain x badly, so its variance is far larger). ``log_likelihood`` computes L_k for
k in the thousands in passes whose log-sum-exps are merged, so memory does not grow with k.
``iwae_loss`` trains on -L_k.

Amortisation gap (Cremer, Li & Duvenaud 2018): ``refine_posterior`` optimises each example's
(mu, logvar) starting from the encoder's; the ELBO rises towards the best Gaussian's, and what
remains below log p(x) is the approximation gap.

``_sample_posterior(mu, logvar, eps, flow_input) -> (z, log q(z | x))`` is the one place that
draws from q and evaluates its density. With ``posterior_flow`` (MLP ``VAE`` only; deck 003's
"richer posteriors"), q is the Gaussian q_0 pushed through K invertible maps whose parameters the
encoder computes beside (mu, logvar)::

    z_0 = mu + sigma * eps,   z_K = f_K o ... o f_1(z_0),   log q_K(z_K | x) = log q_0(z_0 | x) - sum_k log|det df_k/dz|

    "planar"  K planar maps with per-example (u, w, b) (Rezende & Mohamed 2015, Eq. 15; the encoder
              emits K (2 L + 1) numbers more), ``minigen.flows.AmortizedPlanar``
    "iaf"     K inverse autoregressive steps driven by a context h of IAF_CONTEXT_DIM numbers from
              the encoder (Kingma et al. 2016, Sec. 4), ``minigen.flows.IAFPosterior``

The KL of q_K has no closed form, so such a model always estimates it from the draws (estimator A)
and has no free bits; ``encode``, ``active_units`` and ``refine_posterior`` speak of the base q_0.
"""
import math
from collections import namedtuple

import numpy

from .. import backend, nn
from .. import functional as F
from ..autograd import Tensor, no_grad
from ..distributions import Bernoulli, Normal, kl_divergence
from ..flows import AmortizedPlanar, IAFPosterior
from ..numerics import one_hot
from ..optim import Adam
from ..random import get_generator
from ..validation import check_float, check_int, check_option

__all__ = ["VAEBase", "VAE", "ConvVAE", "ELBO", "kl_warmup"]

ELBO = namedtuple("ELBO", ["elbo", "reconstruction", "kl"])
ELBO.__doc__ = ("Per-example (N,) ELBO = reconstruction - kl: the estimate of E_q[log p(x|z)] and "
                "of KL(q(z|x) || p(z)) (analytic, or Monte Carlo with estimator='monte_carlo').")

LIKELIHOODS = ("bernoulli", "gaussian")
DECODER_VARIANCES = ("fixed", "per_pixel", "from_z")
ESTIMATORS = ("analytic_kl", "monte_carlo")
POSTERIOR_FLOWS = ("planar", "iaf")
PROPOSALS = ("posterior", "prior")
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def kl_warmup(step, n_warmup, beta=1.0):
    """KL weight of a linear warm-up: beta * min(1, step / n_warmup); beta from the start if n_warmup = 0.

    ``step``: updates (or epochs) done so far; pass the result as ``loss(x, kl_weight=...)``.
    """
    step = check_float(step, "step", minimum=0.0)
    n_warmup = check_float(n_warmup, "n_warmup", minimum=0.0)
    beta = check_float(beta, "beta", minimum=0.0)
    return beta if n_warmup == 0 else beta * min(1.0, step / n_warmup)


def _asarray(value, name):
    try:
        return numpy.asarray(value)
    except ValueError as e:  # a ragged nested list
        raise ValueError(f"{name} must be a rectangular array of numbers, got a ragged nested "
                         f"list ({e})") from None


class VAEBase(nn.Module):
    """The ELBO / IWAE machinery shared by ``VAE`` and ``ConvVAE``.

    A subclass builds its networks and implements two hooks on checked tensors:
    ``_encoder(x, c) -> (mu, logvar, flow_input)``, each (N, latent_dim) and the flow's inputs
    (N, n_flow_inputs) or None, and ``_decoder(z, c)`` ->
    (N, ...) holding ``n_decoder_outputs * prod(event_shape)`` numbers per code (the mean or the
    logits; with decoder_variance="from_z" the log-variance after them), where ``c`` is the
    one-hot label (N, n_classes) or None. Public methods check their arguments once; the
    private ones work on checked tensors.
    """

    MIN_X_VAR = 1e-3
    IAF_CONTEXT_DIM, IAF_HIDDEN_DIMS = 16, (32, 32)

    def __init__(self, event_shape, latent_dim, likelihood="bernoulli", beta=1.0, n_classes=None,
                 decoder_variance=None, fixed_variance=None, posterior_flow=None, flow_length=4):
        super().__init__()
        self.event_shape = tuple(event_shape)
        self.latent_dim = check_int(latent_dim, "latent_dim", minimum=1)
        self.likelihood = check_option(likelihood, "likelihood", LIKELIHOODS)
        self.beta = check_float(beta, "beta", minimum=0.0)
        self.n_classes = None if n_classes is None else check_int(n_classes, "n_classes", minimum=1)
        if likelihood == "bernoulli" and decoder_variance is not None:
            raise ValueError(f"decoder_variance={decoder_variance!r} needs likelihood='gaussian' "
                             f"(a Bernoulli has no variance parameter)")
        if likelihood == "gaussian":
            decoder_variance = "per_pixel" if decoder_variance is None else decoder_variance
            check_option(decoder_variance, "decoder_variance", DECODER_VARIANCES)
        self.decoder_variance = decoder_variance
        if fixed_variance is not None and decoder_variance != "fixed":
            raise ValueError(f"fixed_variance={fixed_variance!r} needs decoder_variance='fixed', "
                             f"got decoder_variance={decoder_variance!r}")
        if decoder_variance == "fixed":
            fixed_variance = 1.0 if fixed_variance is None else fixed_variance
            fixed_variance = check_float(fixed_variance, "fixed_variance", minimum=0.0, strict=True)
        self.fixed_variance = fixed_variance
        self.n_decoder_outputs = 2 if decoder_variance == "from_z" else 1
        if decoder_variance == "per_pixel":
            xp = backend.array_module_for(backend.default_device())
            self.x_logvar = nn.Parameter(xp.zeros(self.event_shape, dtype="float32"))
        self.posterior_flow = None if posterior_flow is None else \
            check_option(posterior_flow, "posterior_flow", POSTERIOR_FLOWS)
        self.flow_length = check_int(flow_length, "flow_length", minimum=1)
        self.n_flow_inputs = 0  # what the encoder emits beside (mu, logvar) for the flow
        if self.posterior_flow == "planar":
            self.flow = AmortizedPlanar(self.latent_dim, self.flow_length)
            self.n_flow_inputs = self.flow.n_params
        elif self.posterior_flow == "iaf":
            self.flow = IAFPosterior(self.latent_dim, self.IAF_CONTEXT_DIM, self.flow_length,
                                     self.IAF_HIDDEN_DIMS)
            self.n_flow_inputs = self.IAF_CONTEXT_DIM

    def _encoder(self, x, c):
        raise NotImplementedError

    def _decoder(self, z, c):
        raise NotImplementedError

    def _xp(self):
        return backend.array_module_for(self.device)

    # ------------------------------------------------------------------ input checks
    def _tensor(self, value, name):
        """``value`` as a tensor of the model's dtype on its device, holding only finite numbers."""
        array = value if hasattr(value, "dtype") else _asarray(value, name)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"{type(self).__name__}: {name} must hold real numbers, got dtype {array.dtype}")
        value = (value if isinstance(value, Tensor) else Tensor(array)).to(device=self.device, dtype=self.dtype)
        xp = self._xp()
        if not bool(xp.isfinite(value.data).all()):
            n_nan, n_inf = int(xp.isnan(value.data).sum()), int(xp.isinf(value.data).sum())
            raise ValueError(f"{type(self).__name__}: {name} must be finite, but it holds {n_nan} NaN "
                             f"and {n_inf} infinite entries (of {value.size})")
        return value

    def _check_x(self, x):
        """``x`` as a tensor (N, *event_shape), N >= 1, of the model's dtype on its device."""
        x = self._tensor(x, "x")
        size = math.prod(self.event_shape)
        if x.ndim < 2 or math.prod(x.shape[1:]) != size:
            raise ValueError(
                f"{type(self).__name__}: expected x of shape (N, {', '.join(map(str, self.event_shape))})"
                f"{f' or (N, {size})' if len(self.event_shape) > 1 else ''}, got shape {x.shape}")
        if x.shape[0] == 0:
            raise ValueError(f"{type(self).__name__}: x is an empty batch (shape {x.shape}); "
                             f"pass at least one example")
        if x.shape[1:] != self.event_shape:
            x = F.reshape(x, (x.shape[0],) + self.event_shape)
        if self.likelihood == "bernoulli":
            Bernoulli.check_support(x)
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
        y = y.data if isinstance(y, Tensor) else y
        y = backend.to_numpy(y if hasattr(y, "dtype") else _asarray(y, "y"))
        y = numpy.full(n, y) if numpy.ndim(y) == 0 else y
        if y.dtype.kind not in "iu":
            raise TypeError(f"labels y must be integers in [0, {self.n_classes}), got dtype {y.dtype}")
        if y.shape != (n,):
            raise ValueError(f"expected {n} labels y (one per example), got shape {y.shape}")
        if y.min() < 0 or y.max() >= self.n_classes:
            raise ValueError(f"labels y must lie in [0, {self.n_classes}) (n_classes={self.n_classes}), "
                             f"got values in [{y.min()}, {y.max()}]")
        return Tensor(one_hot(self._xp().asarray(y), self.n_classes, dtype=self.dtype))

    def _inputs(self, x, y):
        x = self._check_x(x)
        return x, self._one_hot(y, x.shape[0])

    def _check_z(self, z, name="z"):
        z = self._tensor(z, name)
        if z.ndim != 2 or z.shape[1] != self.latent_dim or z.shape[0] == 0:
            raise ValueError(f"expected {name} of shape (N, {self.latent_dim}) with N >= 1, got shape {z.shape}")
        return z

    def _noise(self, n_samples, n, eps, generator):
        """eps ~ N(0, I) of shape (n_samples, n, latent_dim): ``eps`` checked, or drawn from ``generator``.

        With n_samples = 1, ``eps`` may also be given as (n, latent_dim).
        """
        shape = (n_samples, n, self.latent_dim)
        if eps is None:
            draw = get_generator(generator, self._xp()).standard_normal(shape)  # a NumPy generator draws on the host
            return Tensor(backend.to_device(draw.astype(self.dtype, copy=False), self.device))
        eps = self._tensor(eps, "eps")
        if n_samples == 1 and eps.shape == shape[1:]:
            eps = F.reshape(eps, shape)
        if eps.shape != shape:
            single = f" or {shape[1:]}" if n_samples == 1 else ""
            raise ValueError(f"eps must have shape (n_samples, N, latent_dim) = {shape}{single}, "
                             f"got {eps.shape}")
        return eps

    # ------------------------------------------------------------------ the model's pieces
    def prior(self):
        """p(z) = N(0, I) over the latent_dim axis."""
        xp = self._xp()
        return Normal(Tensor(xp.zeros(self.latent_dim, dtype=self.dtype)),
                      Tensor(xp.ones(self.latent_dim, dtype=self.dtype)), validate_args=False)

    def _log_prior(self, z):
        return F.sum(self.prior().log_prob(z), axis=-1)

    def encode(self, x, y=None):
        """The parameters of q(z | x) (of q_0 with a posterior flow): (mu, logvar), each (N, latent_dim)."""
        return self._encoder(*self._inputs(x, y))[:2]

    def _sample_posterior(self, mu, logvar, eps, flow_input=None):
        """z = mu + exp(0.5 logvar) * eps and log q(z | x) summed over the latents; with a
        posterior flow, z_K = f(z_0) and log q_K = log q_0 - log|det df/dz_0| (module docstring).

        ``eps`` (..., N, latent_dim) gives z of that shape and log q of shape (..., N). Since
        (z - mu) / sigma = eps, log q_0 = sum_j [-eps_j^2 / 2 - logvar_j / 2 - log(2 pi) / 2].
        """
        z = mu + F.exp(0.5 * logvar) * eps
        log_q = F.sum(-0.5 * eps * eps - 0.5 * logvar - _HALF_LOG_2PI, axis=-1)
        if flow_input is None:
            return z, log_q
        lead = z.shape[:-1]  # every draw of an example goes through that example's maps
        flow_input = F.broadcast_to(flow_input, lead + flow_input.shape[-1:])
        z_k, log_det = self.flow(F.reshape(z, (-1, self.latent_dim)),
                                 F.reshape(flow_input, (-1, flow_input.shape[-1])))
        return F.reshape(z_k, z.shape), log_q - F.reshape(log_det, lead)

    def _kl_per_latent(self, mu, logvar):
        """KL(q(z_j | x) || N(0, 1)) for each example and latent: (N, latent_dim)."""
        return kl_divergence(Normal(mu, logvar=logvar, validate_args=False), self.prior())

    def _x_logvar(self, logvar):
        floor = math.log(self.MIN_X_VAR)
        return floor + F.softplus(logvar - floor)  # a smooth max(logvar, floor)

    def _p_x(self, z, c):
        """p(x | z) for codes z (..., latent_dim): a distribution with batch shape (..., *event_shape)."""
        lead = z.shape[:-1]                      # (N,) or (k, N)
        z = F.reshape(z, (-1, self.latent_dim))  # decode all k * N codes in one pass
        if c is not None and len(lead) == 2:
            c = Tensor(self._xp().tile(c.data, (lead[0], 1)))  # row i * N + n gets label n
        decoded, shape = self._decoder(z, c), lead + self.event_shape
        if self.n_decoder_outputs == 2:  # "from_z": the mean, then the log-variance
            decoded = F.reshape(decoded, (-1, 2) + self.event_shape)
            location, logvar = F.reshape(decoded[:, 0], shape), F.reshape(decoded[:, 1], shape)
        else:
            location = F.reshape(decoded, shape)
        if self.likelihood == "bernoulli":
            return Bernoulli(logits=location, validate_args=False)
        if self.decoder_variance == "fixed":
            return Normal(location, math.sqrt(self.fixed_variance), validate_args=False)
        if self.decoder_variance == "per_pixel":
            logvar = self.x_logvar
        return Normal(location, logvar=self._x_logvar(logvar), validate_args=False)

    def decode(self, z, y=None):
        """p(x | z) for codes z (N, latent_dim): a ``Bernoulli`` (``.logits``) or ``Normal``
        (``.loc``, ``.variance``) with batch shape (N, *event_shape)."""
        z = self._check_z(z)
        return self._p_x(z, self._one_hot(y, z.shape[0]))

    def _log_px(self, x, z, c):
        log_p = self._p_x(z, c).log_prob(x)
        return F.sum(log_p, axis=tuple(range(z.ndim - 1, log_p.ndim)))

    def log_px(self, x, z, y=None):
        """log p(x | z) summed over pixels; z (N, latent_dim) or (k, N, latent_dim) -> (N,) or (k, N)."""
        x, c = self._inputs(x, y)
        z = self._tensor(z, "z")
        if z.ndim not in (2, 3) or z.shape[-2:] != (x.shape[0], self.latent_dim):
            raise ValueError(f"expected z of shape (N, {self.latent_dim}) or (k, N, {self.latent_dim}) "
                             f"with N = {x.shape[0]}, got shape {z.shape}")
        return self._log_px(x, z, c)

    # ------------------------------------------------------------------ objectives
    def _elbo(self, x, c, mu, logvar, n_samples, estimator, eps, generator, flow_input=None):
        """Per-example (reconstruction, kl) estimates, each (N,), from n_samples draws of z."""
        eps = self._noise(n_samples, x.shape[0], eps, generator)
        z, log_q = self._sample_posterior(mu, logvar, eps, flow_input)  # (S, N, L), (S, N)
        reconstruction = F.mean(self._log_px(x, z, c), axis=0)
        if estimator == "analytic_kl" and flow_input is None:  # q_K's KL has no closed form
            kl = F.sum(self._kl_per_latent(mu, logvar), axis=-1)
        else:
            kl = F.mean(log_q - self._log_prior(z), axis=0)
        return reconstruction, kl

    def _estimator_args(self, n_samples, estimator):
        return check_int(n_samples, "n_samples", minimum=1), check_option(estimator, "estimator", ESTIMATORS)

    def elbo(self, x, y=None, *, n_samples=1, estimator="analytic_kl", posterior=None, eps=None,
             generator=None):
        """Per-example ``ELBO(elbo, reconstruction, kl)``, each (N,), averaged over n_samples draws of z.

        ``estimator``: "analytic_kl" (B: closed-form KL) or "monte_carlo" (A: the KL estimated from
        the same draws; always, with a posterior flow); see the module docstring. ``posterior``:
        (mu, logvar) to use instead of the encoder's (e.g. from ``refine_posterior``; a posterior
        flow keeps the encoder's maps). ``eps`` (n_samples, N, latent_dim), or
        (N, latent_dim) for one sample: the reparameterisation noise, to hold it fixed.
        """
        n_samples, estimator = self._estimator_args(n_samples, estimator)
        x, c = self._inputs(x, y)
        mu, logvar, flow_input = self._encoder(x, c)
        if posterior is not None:
            mu, logvar = (self._check_z(p, name) for p, name in zip(posterior, ("posterior mu", "posterior logvar")))
            if mu.shape[0] != x.shape[0] or logvar.shape[0] != x.shape[0]:
                raise ValueError(f"posterior (mu, logvar) must have {x.shape[0]} rows (one per example), "
                                 f"got shapes {mu.shape} and {logvar.shape}")
        reconstruction, kl = self._elbo(x, c, mu, logvar, n_samples, estimator, eps, generator, flow_input)
        return ELBO(reconstruction - kl, reconstruction, kl)

    def loss(self, x, y=None, *, kl_weight=None, free_bits=0.0, n_samples=1, estimator="analytic_kl",
             eps=None, generator=None):
        """The scalar to minimise: batch mean of kl_weight * KL - reconstruction (the negative beta-ELBO).

        ``kl_weight``: the KL's weight, default ``beta`` (a warm-up passes ``kl_warmup(step, n, beta)``).
        ``free_bits`` lambda > 0: the KL term is sum_j max(lambda, mean over the batch of KL_j)
        (analytic KL only); the loss is then no longer the negative ELBO.
        """
        kl_weight = self.beta if kl_weight is None else check_float(kl_weight, "kl_weight", minimum=0.0)
        free_bits = check_float(free_bits, "free_bits", minimum=0.0)
        n_samples, estimator = self._estimator_args(n_samples, estimator)
        if free_bits and (estimator != "analytic_kl" or self.posterior_flow is not None):
            raise ValueError("free_bits needs the closed-form KL of each latent, so "
                             f"estimator='analytic_kl' and no posterior flow; got estimator="
                             f"{estimator!r}, posterior_flow={self.posterior_flow!r}")
        x, c = self._inputs(x, y)
        mu, logvar, flow_input = self._encoder(x, c)
        reconstruction, kl = self._elbo(x, c, mu, logvar, n_samples, estimator, eps, generator, flow_input)
        if free_bits:
            kl_per_latent = F.mean(self._kl_per_latent(mu, logvar), axis=0)  # E_batch[KL_j]
            kl_term = F.sum(free_bits + F.relu(kl_per_latent - free_bits))   # sum_j max(lambda, .)
        else:
            kl_term = F.mean(kl)
        return kl_weight * kl_term - F.mean(reconstruction)

    def forward(self, x, y=None):
        """``model(x)`` is ``loss(x, y)``: the batch-mean negative beta-ELBO, a scalar."""
        return self.loss(x, y)

    def _log_weights(self, x, c, eps, proposal="posterior"):
        """log w = log p(x | z) + log p(z) - log r(z) for z from the proposal r and noise eps (k, N, L)."""
        if proposal == "posterior":
            mu, logvar, flow_input = self._encoder(x, c)
            z, log_r = self._sample_posterior(mu, logvar, eps, flow_input)
        else:
            z, log_r = eps, self._log_prior(eps)
        return self._log_px(x, z, c) + self._log_prior(z) - log_r

    def log_weights(self, x, k, y=None, *, proposal="posterior", eps=None, generator=None):
        """log w_i = log p(x, z_i) - log r(z_i) for z_1..z_k from the proposal r: a (k, N) tensor.

        ``proposal``: "posterior" (r = q(z | x)) or "prior" (r = p(z)). ``eps`` (k, N,
        latent_dim) holds the noise fixed.
        """
        k = check_int(k, "k", minimum=1)
        check_option(proposal, "proposal", PROPOSALS)
        x, c = self._inputs(x, y)
        return self._log_weights(x, c, self._noise(k, x.shape[0], eps, generator), proposal)

    def iwae_bound(self, x, k, y=None, *, eps=None, generator=None):
        """L_k(x) = logsumexp_i(log w_i) - log k per example (N,); differentiable."""
        log_w = self.log_weights(x, k, y, eps=eps, generator=generator)
        return F.logsumexp(log_w, axis=0) - math.log(log_w.shape[0])

    def iwae_loss(self, x, k, y=None, *, eps=None, generator=None):
        """Batch mean of -L_k(x), the IWAE training objective (k = 1: -ELBO with a sampled KL)."""
        return -F.mean(self.iwae_bound(x, k, y, eps=eps, generator=generator))

    def log_likelihood(self, x, n_samples=1000, y=None, *, proposal="posterior", batch_size=4096,
                       generator=None):
        """Importance-sampled estimate of log p(x) (N,), in nats: L_k with k = ``n_samples``.

        ``proposal``: "posterior" (IWAE, the default) or "prior" (the naive estimator). Works in
        passes of at most ``batch_size`` decoded (sample, example) pairs; each pass's log-sum-exp
        is merged into a running one, so any k fits in memory. No gradient.
        """
        n_samples = check_int(n_samples, "n_samples", minimum=1)
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        check_option(proposal, "proposal", PROPOSALS)
        xp = self._xp()
        generator = get_generator(generator, xp)  # one stream for all passes
        with no_grad():
            x, c = self._inputs(x, y)
            rows = max(1, batch_size // n_samples)  # examples per pass
            out = []
            for start in range(0, x.shape[0], rows):
                xb = x[start:start + rows]
                cb = None if c is None else c[start:start + rows]
                chunk = max(1, batch_size // xb.shape[0])  # samples per pass
                log_sum = xp.full(xb.shape[0], -xp.inf, dtype=self.dtype)
                for done in range(0, n_samples, chunk):
                    eps = self._noise(min(chunk, n_samples - done), xb.shape[0], None, generator)
                    log_w = self._log_weights(xb, cb, eps, proposal)
                    log_sum = xp.logaddexp(log_sum, F.logsumexp(log_w, axis=0).data)
                out.append(log_sum - math.log(n_samples))
            return Tensor(xp.concatenate(out))

    # ------------------------------------------------------------------ inference diagnostics
    def refine_posterior(self, x, n_steps=100, lr=0.05, y=None, *, n_samples=8, generator=None):
        """Per-example posterior parameters (mu, logvar), each (N, latent_dim), optimised from the encoder's.

        ``n_steps`` Adam steps (learning rate ``lr``) on the sum over examples of the ELBO
        (estimator B, ``n_samples`` draws of z per step) with respect to mu and logvar only; the
        model's weights are neither changed nor given gradients. Evaluate with
        ``elbo(x, posterior=(mu, logvar))``: its rise over the encoder's ELBO is the amortisation
        gap (Cremer, Li & Duvenaud 2018), up to the noise of the stochastic steps.
        """
        n_steps = check_int(n_steps, "n_steps", minimum=1)
        lr = check_float(lr, "lr", minimum=0.0, strict=True)
        n_samples = check_int(n_samples, "n_samples", minimum=1)
        generator = get_generator(generator, self._xp())
        x, c = self._inputs(x, y)
        with no_grad():
            mu, logvar, flow_input = self._encoder(x, c)
        mu, logvar = Tensor(mu.data.copy(), requires_grad=True), Tensor(logvar.data.copy(), requires_grad=True)
        optimizer = Adam([mu, logvar], lr=lr)
        weights = [p for p in self.parameters() if p.requires_grad]
        try:
            for p in weights:
                p.requires_grad_(False)  # frozen: the backward walk stops at mu and logvar
            for _ in range(n_steps):
                optimizer.zero_grad()
                reconstruction, kl = self._elbo(x, c, mu, logvar, n_samples, "analytic_kl", None,
                                                generator, flow_input)
                F.sum(kl - reconstruction).backward()
                optimizer.step()
        finally:
            for p in weights:
                p.requires_grad_(True)
        return mu.detach(), logvar.detach()

    def active_units(self, x, y=None, threshold=0.01):
        """The number of active latent units (Burda et al. 2016, Sec. 5.2): those u whose posterior
        mean moves with the data, Var_x(E_q(z|x)[z_u]) > ``threshold``. A collapsed posterior
        (q(z | x) = p(z) for every x) has none."""
        threshold = check_float(threshold, "threshold", minimum=0.0)
        with no_grad():
            x, c = self._inputs(x, y)
            if x.shape[0] < 2:
                raise ValueError(f"active_units needs at least 2 examples to measure a variance, got {x.shape[0]}")
            mu = self._encoder(x, c)[0]
            return int((mu.data.var(axis=0) > threshold).sum())

    # ------------------------------------------------------------------ generation
    def sample(self, n, y=None, generator=None, mean=True):
        """``n`` new images (n, *event_shape): the mean of p(x | z) for z ~ p(z) (or a draw, mean=False).

        ``y``: one label for all, or n labels (class-conditional models only).
        """
        n = check_int(n, "n", minimum=1)
        generator = get_generator(generator, self._xp())  # one stream for z and the pixels
        z = self._noise(1, n, None, generator)[0]  # z ~ p(z) = N(0, I)
        return self.generate(z, y, mean, generator)

    def generate(self, z, y=None, mean=True, generator=None):
        """Images (N, *event_shape) decoded from latent codes z (N, latent_dim): the mean of p(x | z),
        or a draw from it (mean=False)."""
        with no_grad():
            p_x = self.decode(z, y)
            return p_x.mean if mean else p_x.sample(generator=generator)

    def reconstruct(self, x, y=None):
        """The mean of p(x | z = mu(x)), shaped like ``x`` (deterministic)."""
        with no_grad():
            checked, c = self._inputs(x, y)
            mu = self._encoder(checked, c)[0]
            return F.reshape(self._p_x(mu, c).mean, tuple(getattr(x, "shape", checked.shape)))

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
            mu_a, mu_b = self._encoder(x_a, c)[0].data, self._encoder(x_b, c)[0].data  # q_0's means
            xp = self._xp()
            t = xp.linspace(0, 1, steps, dtype=self.dtype)[None, :, None]
            z = ((1 - t) * mu_a[:, None] + t * mu_b[:, None]).reshape(-1, self.latent_dim)
            if c is not None:
                c = Tensor(xp.repeat(c.data, steps, axis=0))  # row n * steps + s gets label n
            return F.reshape(self._p_x(Tensor(z), c).mean, (x_a.shape[0], steps) + self.event_shape)


def _check_dims(values, name):
    values = (values,) if isinstance(values, int) else tuple(values)
    return tuple(check_int(v, f"each of {name}", minimum=1) for v in values)


def _split(h, latent_dim):
    """(mu, logvar, flow_input or None) from the encoder's output rows [mu, logvar, flow inputs]."""
    L = latent_dim
    return h[:, :L], h[:, L:2 * L], (h[:, 2 * L:] if h.shape[1] > 2 * L else None)


class VAE(VAEBase):
    """MLP VAE: encoder D(+C) -> hidden_dims -> 2 * latent_dim, decoder latent_dim(+C) -> reversed(hidden_dims) -> D
    (2 * D with decoder_variance="from_z": the mean, then the log-variance); with
    ``posterior_flow`` ("planar" or "iaf") and ``flow_length`` K, q(z | x) is a flow (module docstring).

    ``input_dim``: an int D, or the shape of one example, e.g. (1, 28, 28); inputs of shape
    (N, *shape) or (N, D) are both accepted. ReLU between layers; ``hidden_dims=()`` makes the
    encoder and decoder linear (the linear-Gaussian case is factor analysis, deck 004).
    ``model(x)`` returns the training loss (the batch-mean negative beta-ELBO).
    """

    def __init__(self, input_dim, hidden_dims=(400,), latent_dim=20, likelihood="bernoulli",
                 beta=1.0, n_classes=None, decoder_variance=None, fixed_variance=None,
                 posterior_flow=None, flow_length=4):
        event_shape = _check_dims(input_dim, "input_dim")
        super().__init__(event_shape, latent_dim, likelihood, beta, n_classes, decoder_variance,
                         fixed_variance, posterior_flow, flow_length)
        hidden_dims = () if hidden_dims is None else _check_dims(hidden_dims, "hidden_dims")
        c = self.n_classes or 0
        D = math.prod(event_shape)
        self.encoder = nn.MLP([D + c, *hidden_dims, 2 * self.latent_dim + self.n_flow_inputs])
        self.decoder = nn.MLP([self.latent_dim + c, *reversed(hidden_dims), self.n_decoder_outputs * D])

    def _encoder(self, x, c):
        h = F.reshape(x, (x.shape[0], -1))
        return _split(self.encoder(h if c is None else F.concatenate([h, c], axis=1)), self.latent_dim)

    def _decoder(self, z, c):
        return self.decoder(z if c is None else F.concatenate([z, c], axis=1))


class ConvVAE(VAEBase):
    """Convolutional VAE for (C, S, S) images.

    Encoder: [Conv2d(4x4, stride 2, padding 1) + ReLU] per entry of ``hidden_channels`` (each
    halves the side), giving features (hidden_channels[-1], s, s), s = S / 2 ** len(hidden_channels).
    Decoder: the mirror image, ConvTranspose2d(4x4, stride 2, padding 1) layers that double the
    side back (the last one gives 2C channels with decoder_variance="from_z": mean, then
    log-variance). Between them, the latent:

    - flat (``latent_dim``, default 20): flatten, (+ one-hot y), Linear -> 2 * latent_dim; back
      through Linear -> ReLU -> reshape;
    - a spatial grid (``latent_shape=(C_z, s, s)``, deck 001's "N x N latents"): a 1x1 Conv2d
      maps the features (+ one-hot y as constant channels) to mu and logvar grids (C_z, s, s),
      and a 1x1 Conv2d + ReLU maps z back, so each z[:, :, i, j] describes its own patch of the
      image. Codes are handled flattened, (N, C_z * s * s) in C order.

    ``image_size`` must be divisible by 2 ** len(hidden_channels). ``model(x)`` returns the
    training loss (the batch-mean negative beta-ELBO).
    """

    def __init__(self, in_channels, image_size, latent_dim=None, hidden_channels=(32, 64),
                 likelihood="bernoulli", beta=1.0, n_classes=None, decoder_variance=None,
                 fixed_variance=None, latent_shape=None):
        in_channels = check_int(in_channels, "in_channels", minimum=1)
        image_size = check_int(image_size, "image_size", minimum=1)
        hidden_channels = _check_dims(hidden_channels, "hidden_channels")
        if not hidden_channels or image_size % 2 ** len(hidden_channels):
            raise ValueError(f"ConvVAE: image_size ({image_size}) must be divisible by 2 ** "
                             f"len(hidden_channels) = {2 ** len(hidden_channels)} (each layer halves it), "
                             f"and hidden_channels must not be empty")
        side = image_size // 2 ** len(hidden_channels)
        if latent_shape is not None:
            latent_shape = _check_dims(latent_shape, "latent_shape")
            if len(latent_shape) != 3 or latent_shape[1:] != (side, side):
                raise ValueError(f"latent_shape must be (C_z, {side}, {side}): the encoder's feature map "
                                 f"is {side}x{side} (image_size / 2 ** len(hidden_channels)), got {latent_shape}")
            if latent_dim is not None and latent_dim != math.prod(latent_shape):
                raise ValueError(f"latent_dim={latent_dim!r} disagrees with latent_shape={latent_shape} "
                                 f"({math.prod(latent_shape)} numbers); give only latent_shape")
            latent_dim = math.prod(latent_shape)
        latent_dim = 20 if latent_dim is None else latent_dim
        super().__init__((in_channels, image_size, image_size), latent_dim, likelihood, beta, n_classes,
                         decoder_variance, fixed_variance)
        self.latent_shape = latent_shape
        self.feature_shape = (hidden_channels[-1], side, side)
        c = self.n_classes or 0
        channels = (in_channels, *hidden_channels)
        down = []
        for n_in, n_out in zip(channels[:-1], channels[1:]):
            down += [nn.Conv2d(n_in, n_out, 4, stride=2, padding=1), nn.ReLU()]
        if latent_shape is None:
            n_features = math.prod(self.feature_shape)
            self.encoder = nn.Sequential(*down, nn.Flatten())
            self.to_latent = nn.Linear(n_features + c, 2 * self.latent_dim)
            self.from_latent = nn.Sequential(nn.Linear(self.latent_dim + c, n_features), nn.ReLU())
        else:
            self.encoder = nn.Sequential(*down)
            self.to_latent = nn.Conv2d(hidden_channels[-1] + c, 2 * latent_shape[0], 1)
            self.from_latent = nn.Sequential(nn.Conv2d(latent_shape[0] + c, hidden_channels[-1], 1), nn.ReLU())
        out_channels = (*channels[:0:-1], self.n_decoder_outputs * in_channels)
        up = []
        for n_in, n_out in zip(out_channels[:-1], out_channels[1:]):
            up += [nn.ConvTranspose2d(n_in, n_out, 4, stride=2, padding=1), nn.ReLU()]
        self.decoder = nn.Sequential(*up[:-1])

    def _with_labels(self, h, c):
        """``h`` with the one-hot labels appended: as features (N, F), or as constant channels (N, C, s, s)."""
        if c is None:
            return h
        if h.ndim == 4:
            c = F.broadcast_to(F.reshape(c, c.shape + (1, 1)), c.shape + h.shape[2:])
        return F.concatenate([h, c], axis=1)

    def _encoder(self, x, c):
        h = self.to_latent(self._with_labels(self.encoder(x), c))
        # a latent grid (N, 2 C_z, s, s) flattens in C order to [mu's C_z channels, logvar's]
        return _split(F.reshape(h, (h.shape[0], -1)), self.latent_dim)

    def _decoder(self, z, c):
        if self.latent_shape is not None:
            z = F.reshape(z, (z.shape[0],) + self.latent_shape)
        h = self.from_latent(self._with_labels(z, c))
        return self.decoder(F.reshape(h, (z.shape[0],) + self.feature_shape))
