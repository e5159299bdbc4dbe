"""Denoising diffusion probabilistic models (Ho, Jain & Abbeel 2020, "Denoising Diffusion
Probabilistic Models"; lecture deck 000, "from VAEs to diffusion models").

Forward (diffusion) process, a fixed Markov chain that adds Gaussian noise (their Eq. 2, 4)::

    q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I),      t = 1..T
    q(x_t | x_0)     = N(sqrt(abar_t) x_0, (1 - abar_t) I),   alpha_t = 1 - beta_t,  abar_t = prod_{s<=t} alpha_s

Its posterior given x_0 is Gaussian too (Eq. 6, 7)::

    q(x_{t-1} | x_t, x_0) = N(mu~_t, beta~_t I)
    mu~_t   = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x_0 + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t
    beta~_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t                       (abar_0 = 1)

Reverse (generative) process, with the noise-prediction parameterisation (Eq. 1, 11)::

    p(x_T) = N(0, I),   p(x_{t-1} | x_t) = N(mu_theta(x_t, t), sigma_t^2 I),   sigma_t^2 = beta_t
    mu_theta(x_t, t) = (x_t - beta_t / sqrt(1 - abar_t) eps_theta(x_t, t)) / sqrt(alpha_t)

The variational bound on -log p(x_0) (Eq. 5), in nats per example::

    L = L_T + sum_{t=2..T} L_{t-1} + L_0
    L_T     = KL(q(x_T | x_0) || p(x_T))                         (no parameters: ~0 for a good schedule)
    L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)),     x_t ~ q(x_t | x_0)
    L_0     = -log p(x_0 | x_1),                                 x_1 ~ q(x_1 | x_0)

with the discretised Gaussian decoder of Eq. 13: data are 8-bit images scaled to [-1, 1]
(x = -1 + 2 i / 255), and p(x_0 | x_1) is the mass that N(mu_theta(x_1, 1), sigma_1^2) puts on
each pixel's bin [x - 1/255, x + 1/255], the end bins reaching out to -inf and +inf, so the
256 masses sum to one and L is a code length for the discrete image. ``nll_bound`` estimates L
with one draw of x_t per t (as Ho et al. evaluate it); ``bits_per_dim`` divides by D log 2.

Training minimises the simplified objective (Eq. 14), t ~ Uniform{1..T}, eps ~ N(0, I)::

    L_simple = E || eps - eps_theta(sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t) ||^2

and sampling is Algorithm 2: x_T ~ N(0, I); x_{t-1} = mu_theta(x_t, t) + sigma_t z, z ~ N(0, I)
(z = 0 at t = 1). By default mu_theta is computed, as in Ho et al.'s code, from the predicted
x_0 = (x_t - sqrt(1 - abar_t) eps_theta) / sqrt(abar_t) clipped to [-1, 1] and put into the
posterior mean mu~_t (equal to Eq. 11 without the clip; see ``p_mean_variance``).

Conventions, where the paper leaves a choice: timesteps in code are 0-based, ``t = 0..T-1``
standing for the paper's t = 1..T (as in Ho et al.'s code); L_simple averages over pixels as
well as examples (their code's ``mean_flat``); sigma_t^2 = beta_t, the paper's first choice.
Schedules: "linear" is the paper's beta_1 = 1e-4 ... beta_T = 0.02 for T = 1000, both ends
scaled by 1000 / T for other T so that the chain still ends near N(0, I) (Nichol & Dhariwal
2021's code does the same; clipped at 0.999, which only bites for T < 50); "cosine" is Nichol & Dhariwal (2021), Eq. 17, with s = 0.008 and
beta_t clipped at 0.999. Where minigen follows the paper instead of the slide: the slide only
names diffusion models; everything here is the paper's.
"""
import math

import numpy

from .. import backend, nn
from .. import functional as F
from ..autograd import Tensor, no_grad
from ..distributions import Normal, kl_divergence
from ..random import get_generator
from ..validation import check_int, check_option

__all__ = ["DDPM", "make_beta_schedule", "discretized_gaussian_log_likelihood"]

BIN_HALF_WIDTH = 1.0 / 255  # 256 levels on [-1, 1]: bins of width 2/255


def make_beta_schedule(name, timesteps):
    """The noise variances beta_1..beta_T (float64, host) of the "linear" or "cosine" schedule."""
    check_option(name, "beta_schedule", ("linear", "cosine"))
    T = check_int(timesteps, "timesteps", minimum=1)
    if name == "linear":
        scale = 1000.0 / T
        return numpy.minimum(numpy.linspace(scale * 1e-4, scale * 0.02, T), 0.999)
    s = 0.008
    f = numpy.cos((numpy.arange(T + 1) / T + s) / (1 + s) * math.pi / 2) ** 2
    abar = f / f[0]
    return numpy.minimum(1 - abar[1:] / abar[:-1], 0.999)


def _log_normal_mass(lower, upper, special):
    """log(Phi(upper) - Phi(lower)) for lower < upper, accurate in both tails.

    In the upper tail the mirrored form Phi(-lower) - Phi(-upper) is used; the difference is
    Phi(hi) (1 - exp(log Phi(lo) - log Phi(hi))), and log(-expm1(.)) keeps tiny bins exact.
    """
    xp = backend.get_array_module(lower)
    flip = (lower + upper) > 0
    lo, hi = xp.where(flip, -upper, lower), xp.where(flip, -lower, upper)
    log_hi = special.log_ndtr(hi)
    with numpy.errstate(divide="ignore"):  # lo == hi gives log 0 = -inf, as it should
        return log_hi + xp.log(-xp.expm1(special.log_ndtr(lo) - log_hi))


def discretized_gaussian_log_likelihood(x, mean, scale):
    """log p(x) elementwise under the discretised Gaussian decoder of Ho et al. (2020), Eq. 13.

    ``x`` in [-1, 1] (8-bit data: x = -1 + 2 i / 255), ``mean`` and ``scale`` (> 0) broadcasting
    against it; raw arrays. The mass of N(mean, scale^2) on [x - 1/255, x + 1/255], with the
    lowest bin starting at -inf (x = -1) and the highest ending at +inf (x = 1).
    """
    xp = backend.get_array_module(x)
    lower = xp.where(x <= -1 + 1e-6, -xp.inf, (x - BIN_HALF_WIDTH - mean) / scale)
    upper = xp.where(x >= 1 - 1e-6, xp.inf, (x + BIN_HALF_WIDTH - mean) / scale)
    return _log_normal_mass(lower, upper, backend.special(xp))


class DDPM(nn.Module):
    """Denoising diffusion model over images of ``image_shape`` in [-1, 1], with noise predictor
    ``denoiser(x_t, t) -> eps`` (e.g. ``minigen.nn.UNet(..., time_embedding_dim=...)``).

    ``forward(x_t, t)`` returns the denoiser's noise prediction eps_theta(x_t, t). See the module
    docstring for the equations; ``t`` is 0-based (the paper's t = 1..T is 0..T-1 here).
    """

    def __init__(self, denoiser, image_shape, timesteps=1000, beta_schedule="linear"):
        super().__init__()
        if not isinstance(denoiser, nn.Module):
            raise TypeError(f"DDPM: denoiser must be a minigen.nn.Module taking (x_t, t), got "
                            f"{type(denoiser).__name__}")
        shape = (image_shape,) if isinstance(image_shape, int) else tuple(image_shape)
        if not shape or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in shape):
            raise ValueError(f"DDPM: image_shape must be a tuple of positive integers, got {image_shape!r}")
        self.denoiser = denoiser
        self.image_shape = shape
        self.timesteps = check_int(timesteps, "timesteps", minimum=1)
        self.beta_schedule = beta_schedule
        # The schedule is fixed by the settings, so it lives on the host in float64 (not in the
        # state dict); coefficients are gathered per batch on the data's device and dtype.
        self.betas = make_beta_schedule(beta_schedule, timesteps)
        self.alphas = 1 - self.betas
        self.alpha_bar = numpy.cumprod(self.alphas)
        self.alpha_bar_prev = numpy.concatenate([[1.0], self.alpha_bar[:-1]])
        self.posterior_variance = (1 - self.alpha_bar_prev) / (1 - self.alpha_bar) * self.betas

    def forward(self, x_t, t):
        return self.denoiser(x_t, t)

    # ------------------------------------------------------------------ helpers
    @property
    def _dtype(self):
        """The parameters' dtype; float64 for a parameterless (closed-form) denoiser."""
        first = next(self.parameters(), None)
        return numpy.dtype("float64") if first is None else first.dtype

    @property
    def _device(self):
        """The parameters' device; the default device for a parameterless denoiser."""
        first = next(self.parameters(), None)
        return backend.default_device() if first is None else first.device

    def _xp(self):
        return backend.array_module_for(self._device)

    def _check_x(self, x, name="x0"):
        """``x`` as a tensor (N, *image_shape) of the model's dtype on its device."""
        if not isinstance(x, Tensor):
            x = Tensor(x if hasattr(x, "shape") else numpy.asarray(x))
        if x.dtype.kind not in "iuf":
            raise TypeError(f"DDPM: {name} must hold real numbers, got dtype {x.dtype}")
        if x.ndim < 1 or x.shape[1:] != self.image_shape:
            raise ValueError(f"DDPM: expected {name} of shape (N, {', '.join(map(str, self.image_shape))}), "
                             f"got shape {x.shape}")
        if x.device != self._device:
            x = x.to(device=self._device)
        if x.dtype != self._dtype:
            x = x.to(dtype=self._dtype)
        if not bool(self._xp().isfinite(x.data).all()):
            raise ValueError(f"DDPM: {name} contains NaN or inf")
        return x

    def _check_t(self, t, n):
        """Timesteps as a host int64 array (n,) in [0, T): one per example, or one for all."""
        t = numpy.asarray(backend.to_numpy(t.data if isinstance(t, Tensor) else t))
        if t.dtype.kind not in "iu":
            raise TypeError(f"DDPM: t must hold integer timesteps in [0, {self.timesteps}), got dtype {t.dtype}")
        if t.ndim == 0:
            t = numpy.full(n, t)
        if t.shape != (n,):
            raise ValueError(f"DDPM: expected one timestep per example, t of shape ({n},), got {t.shape}")
        if n and (t.min() < 0 or t.max() >= self.timesteps):
            raise ValueError(f"DDPM: timesteps must lie in [0, {self.timesteps}) (0-based: the paper's "
                             f"t = 1..T), got values in [{t.min()}, {t.max()}]")
        return t.astype(numpy.int64)

    def _coef(self, values, t, like):
        """values[t] as an array (N, 1, ..., 1) broadcasting against ``like``'s images."""
        column = values[t].reshape((-1,) + (1,) * len(self.image_shape))
        return backend.to_device(column, backend.device_of(like.data)).astype(like.dtype)

    def _noise(self, like, noise, generator, name="noise"):
        if noise is None:  # a host Generator may serve a GPU model: its draws move over
            draw = get_generator(generator, self._xp()).standard_normal(like.shape).astype(like.dtype)
            return Tensor(backend.to_device(draw, self._device))
        return self._check_x(noise, name)

    # ------------------------------------------------------------------ the processes
    def q_sample(self, x0, t, noise=None, generator=None):
        """x_t ~ q(x_t | x_0) in closed form: sqrt(abar_t) x_0 + sqrt(1 - abar_t) noise (Eq. 4).

        ``noise`` ~ N(0, I) is drawn from ``generator`` unless given. Differentiable in x0.
        """
        x0 = self._check_x(x0)
        t = self._check_t(t, x0.shape[0])
        noise = self._noise(x0, noise, generator)
        return self._coef(numpy.sqrt(self.alpha_bar), t, x0) * x0 \
            + self._coef(numpy.sqrt(1 - self.alpha_bar), t, x0) * noise

    def q_posterior(self, x0, xt, t):
        """(mean, variance) of q(x_{t-1} | x_t, x_0) (Eq. 6, 7), both of x0's shape.

        At t = 0 (the paper's t = 1) the posterior is the point mass at x_0: variance 0.
        """
        x0, xt = self._check_x(x0), self._check_x(xt, "xt")
        t = self._check_t(t, x0.shape[0])
        ab, ab_prev, beta = self.alpha_bar, self.alpha_bar_prev, self.betas
        mean = (self._coef(numpy.sqrt(ab_prev) * beta / (1 - ab), t, x0) * x0
                + self._coef(numpy.sqrt(self.alphas) * (1 - ab_prev) / (1 - ab), t, x0) * xt)
        variance = Tensor(self._xp().broadcast_to(self._coef(self.posterior_variance, t, x0), x0.shape))
        return mean, variance

    def predict_x0(self, xt, t, eps):
        """x_0 recovered from x_t and a noise prediction by inverting Eq. 4 (the paper's Eq. 15)."""
        return (xt - self._coef(numpy.sqrt(1 - self.alpha_bar), t, xt) * eps) \
            * self._coef(1 / numpy.sqrt(self.alpha_bar), t, xt)

    def p_mean_variance(self, xt, t, clip_denoised=True):
        """(mu_theta(x_t, t), sigma_t^2) of the reverse step p(x_{t-1} | x_t).

        mu_theta is the posterior mean mu~_t(x0_hat, x_t) at x0_hat = ``predict_x0``, which is
        Eq. 11 exactly (Ho et al.'s Eq. 10 -> 11). With ``clip_denoised`` x0_hat is first clipped
        to the data's range [-1, 1], as Ho et al.'s code does for sampling and for the bound:
        where abar_t is tiny (the last steps of the cosine schedule, alpha_T = 0.001) Eq. 11
        multiplies the noise prediction's error by 1 / sqrt(alpha_t), and the clip bounds it.
        Any mean gives a valid p and so a valid bound; clip_denoised=False is Eq. 11 as printed.
        """
        xt = self._check_x(xt, "xt")
        t = self._check_t(t, xt.shape[0])
        x0_hat = self.predict_x0(xt, t, self.denoiser(xt, t))
        if clip_denoised:
            x0_hat = F.clip(x0_hat, -1.0, 1.0)
        mean, _ = self.q_posterior(x0_hat, xt, t)
        return mean, Tensor(self._xp().broadcast_to(self._coef(self.betas, t, xt), xt.shape))

    # ------------------------------------------------------------------ training
    def loss(self, x0, t=None, noise=None, generator=None):
        """L_simple (Eq. 14): mean over examples and pixels of (eps - eps_theta(x_t, t))^2.

        ``t`` (uniform on 0..T-1) and ``noise`` (N(0, I)) are drawn from ``generator`` unless
        given; fix both to check gradients.
        """
        x0 = self._check_x(x0)
        n = x0.shape[0]
        if t is None:
            t = get_generator(generator, numpy).integers(0, self.timesteps, n)
        t = self._check_t(t, n)
        noise = self._noise(x0, noise, generator)
        eps = self.denoiser(self.q_sample(x0, t, noise), t)
        return F.mse_loss(eps, noise)

    # ------------------------------------------------------------------ sampling
    def sample(self, n, generator=None, return_trajectory=False, clip_denoised=True):
        """n images by Algorithm 2 (ancestral sampling from x_T ~ N(0, I) down to x_0).

        Returns x_0 (n, *image_shape), or with ``return_trajectory`` also every state as one
        tensor (T + 1, n, *image_shape): x_T, x_{T-1}, ..., x_0. ``clip_denoised``: see
        ``p_mean_variance``.
        """
        n = check_int(n, "n", minimum=1)
        xp = self._xp()
        rng = get_generator(generator, xp)
        dtype = self._dtype
        def normal(shape):  # a host Generator may serve a GPU model: its draws move over
            return backend.to_device(rng.standard_normal(shape).astype(dtype), self._device)

        with no_grad():
            x = Tensor(normal((n,) + self.image_shape))
            states = [x.data] if return_trajectory else None
            for step in reversed(range(self.timesteps)):
                mean, variance = self.p_mean_variance(x, numpy.full(n, step), clip_denoised)
                if step > 0:
                    x = mean + Tensor(xp.sqrt(variance.data) * normal(x.shape))
                else:
                    x = mean
                if return_trajectory:
                    states.append(x.data)
        return (x, Tensor(xp.stack(states))) if return_trajectory else x

    # ------------------------------------------------------------------ the bound
    def nll_bound_terms(self, x0, generator=None, clip_denoised=True):
        """The bound's terms per example, (N, T + 1), in nats: column 0 is L_0 = -log p(x_0 | x_1)
        (the discretised decoder), column t (1 <= t < T) is the KL term at 0-based step t (the
        paper's L_t, drawn with one x_{t+1} ~ q), column T is L_T = KL(q(x_T | x_0) || N(0, I)).
        ``clip_denoised``: see ``p_mean_variance``.
        """
        x0 = self._check_x(x0)
        xp = self._xp()
        if bool((xp.abs(x0.data) > 1).any()):
            raise ValueError("DDPM: x0 must lie in [-1, 1] (8-bit images scaled as -1 + 2 i / 255) "
                             f"for the discretised decoder, got values in [{float(x0.data.min()):.4g}, "
                             f"{float(x0.data.max()):.4g}]")
        n, T = x0.shape[0], self.timesteps
        axes = tuple(range(1, x0.ndim))
        terms = xp.empty((n, T + 1), dtype=x0.dtype)
        rng = get_generator(generator, xp)
        with no_grad():
            for step in range(T):
                t = numpy.full(n, step)
                xt = self.q_sample(x0, t, generator=rng)
                mean, variance = self.p_mean_variance(xt, t, clip_denoised)
                if step == 0:  # L_0, Eq. 13
                    log_p = discretized_gaussian_log_likelihood(x0.data, mean.data, xp.sqrt(variance.data))
                    terms[:, 0] = -log_p.sum(axis=axes)
                else:  # L_t = KL(q(x_t | x_{t+1}, x_0) || p(x_t | x_{t+1})) in the paper's 1-based steps
                    q_mean, q_var = self.q_posterior(x0, xt, t)
                    kl = kl_divergence(Normal(q_mean, F.sqrt(q_var)), Normal(mean, F.sqrt(variance)))
                    terms[:, step] = kl.data.sum(axis=axes)
            ab_T = self._coef(self.alpha_bar, numpy.full(n, T - 1), x0)
            prior_kl = kl_divergence(Normal(Tensor(xp.sqrt(ab_T) * x0.data),
                                            Tensor(xp.broadcast_to(xp.sqrt(1 - ab_T), x0.shape))),
                                     Normal(Tensor(xp.zeros_like(x0.data)), Tensor(xp.ones_like(x0.data))))
            terms[:, T] = prior_kl.data.sum(axis=axes)
        return Tensor(terms)

    def nll_bound(self, x0, generator=None, clip_denoised=True):
        """The variational bound L >= -log p(x_0) (Eq. 5), per example (N,), in nats: an unbiased
        one-sample-per-step estimate, the sum of ``nll_bound_terms``."""
        return Tensor(self.nll_bound_terms(x0, generator, clip_denoised).data.sum(axis=1))

    def bits_per_dim(self, x0, generator=None, clip_denoised=True):
        """``nll_bound`` in bits per pixel value, (N,): L / (D log 2), D = prod(image_shape)."""
        bound = self.nll_bound(x0, generator, clip_denoised).data
        return Tensor(bound / (math.prod(self.image_shape) * math.log(2)))
