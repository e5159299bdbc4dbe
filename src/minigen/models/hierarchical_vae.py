"""VAEs with a hierarchy of stochastic layers: the IWAE paper's two-layer model and the Ladder VAE.

Lectures: deck 001 (hierarchical VAEs: a stack of latent layers, each conditioned on the one
above), deck 000 (VQ-VAE-2 and hierarchical latents). Papers: Burda, Grosse & Salakhutdinov 2016
("Importance Weighted Autoencoders", Sec. 5 and App. A: the 784-200-200-100-100-50 architecture),
Sonderby et al. 2016 ("Ladder Variational Autoencoders", eqs. 17-21).

Generative model, L stochastic layers z_1 (nearest the data) ... z_L (the top)::

    p(z_L) = N(0, I)
    p(z_l | z_{l+1}) = N(mu_l(z_{l+1}), diag sigma_l^2(z_{l+1}))        l = L-1, ..., 1
    p(x | z_1) = prod_d Bernoulli(x_d; sigmoid(f(z_1)_d))

Inference, ``inference=``:

    "bottom_up"  (IWAE)   q(z_1 | x) q(z_2 | z_1) ... q(z_L | z_{L-1}), each an MLP to a diagonal
                          Gaussian, sampled from the bottom up
    "ladder"     (LVAE)   a deterministic bottom-up pass d_1 = g_1(x), d_l = g_l(d_{l-1}) gives
                          Gaussians N(mu^_l, s^_l) (eq. 17); sampling from the top down,
                          q(z_L | x) = N(mu^_L, s^_L) (s^ = softplus(.), as in the paper) and for l < L the bottom-up Gaussian is merged
                          with the generative prior N(mu_l(z_{l+1}), sigma_l^2(z_{l+1})) by precision
                          weighting (eqs. 18-19):
                              sigma_q^2 = 1 / (1 / s^_l + 1 / sigma_l^2)
                              mu_q = (mu^_l / s^_l + mu_l / sigma_l^2) * sigma_q^2
                          the normalised product of the two Gaussian densities.

Bounds, with the importance weights w = p(x, z_1..L) / q(z_1..L | x) of k joint draws::

    ELBO(x) = E_q[log w],     L_k(x) = E[log 1/k sum_i w_i] <= log p(x),   L_k rises with k.

Every log-density term is Monte Carlo (one joint draw per sample), as in the IWAE paper. Variances
are exp(logvar) kept above MIN_VAR by a softplus floor. ``forward(x)`` returns the training loss,
the batch mean of -ELBO (``loss``).
"""
import math

from .. import backend
from .. import functional as F
from .. import nn
from ..autograd import Tensor, no_grad
from ..distributions import Bernoulli
from ..random import get_generator
from ..validation import check_int, check_option

__all__ = ["HierarchicalVAE", "precision_weighted_merge"]

_LOG_2PI = math.log(2 * math.pi)


def precision_weighted_merge(mu_a, var_a, mu_b, var_b):
    """The normalised product N(mu_a, var_a) N(mu_b, var_b) = N(mu, var) (Ladder VAE eqs. 18-19):
    precisions add, var = 1 / (1/var_a + 1/var_b), and mu = var * (mu_a / var_a + mu_b / var_b)."""
    precision_a, precision_b = 1 / var_a, 1 / var_b
    var = 1 / (precision_a + precision_b)
    return var * (mu_a * precision_a + mu_b * precision_b), var


def _gaussian_log_density(z, mu, logvar):
    """log N(z; mu, exp(logvar)) summed over the last axis."""
    u = z - mu
    return -0.5 * F.sum(u * u * F.exp(-logvar) + logvar + _LOG_2PI, axis=-1)


class _GaussianLayer(nn.Module):
    """An MLP from ``n_in`` through ``hidden`` to the mean and log-variance of a d-dim Gaussian."""

    MIN_VAR = 1e-4

    def __init__(self, n_in, hidden, d):
        super().__init__()
        self.d = d
        self.net = nn.MLP([n_in, *hidden, 2 * d], activation="tanh")

    def forward(self, h):
        out = self.net(h)
        floor = math.log(self.MIN_VAR)
        return out[..., :self.d], floor + F.softplus(out[..., self.d:] - floor)


def _per_layer(hidden_dims, n_layers):
    """hidden_dims as one tuple of widths per stochastic layer."""
    hidden_dims = tuple(hidden_dims)
    if all(isinstance(h, int) for h in hidden_dims):
        hidden_dims = (hidden_dims,) * n_layers
    if len(hidden_dims) != n_layers:
        raise ValueError(f"hidden_dims needs one tuple of widths per stochastic layer ({n_layers}), "
                         f"or one tuple for all, got {hidden_dims}")
    return tuple(tuple(check_int(w, "each hidden width", minimum=1) for w in h) for h in hidden_dims)


class HierarchicalVAE(nn.Module):
    """A VAE with ``len(latent_dims)`` stochastic layers (z_1 of size latent_dims[0] nearest x).

    ``hidden_dims``: the widths of the deterministic layers between x and z_1, z_1 and z_2, ...:
    one tuple per stochastic layer, or one tuple used for all. The IWAE paper's two-layer MNIST
    model is ``HierarchicalVAE(784, ((200, 200), (100, 100)), latent_dims=(100, 50))`` (tanh
    hidden units, as there). Inputs x (N, input_dim) or (N, *shape) with values in [0, 1].
    """

    def __init__(self, input_dim, hidden_dims=((200, 200), (100, 100)), latent_dims=(100, 50),
                 likelihood="bernoulli", inference="bottom_up"):
        super().__init__()
        shape = (input_dim,) if isinstance(input_dim, int) else tuple(input_dim)
        self.event_shape = tuple(check_int(s, "input_dim", minimum=1) for s in shape)
        self.latent_dims = tuple(check_int(d, "each of latent_dims", minimum=1) for d in latent_dims)
        if len(self.latent_dims) < 2:
            raise ValueError(f"latent_dims needs at least two stochastic layers, got {latent_dims}; "
                             f"use minigen.models.VAE for one")
        self.likelihood = check_option(likelihood, "likelihood", ("bernoulli",))
        self.inference = check_option(inference, "inference", ("bottom_up", "ladder"))
        hidden = _per_layer(hidden_dims, len(self.latent_dims))
        D = math.prod(self.event_shape)
        below = (D,) + self.latent_dims[:-1]  # what each stochastic layer is computed from
        # generative: p(z_l | z_{l+1}) for l < L, and p(x | z_1)
        self.priors = nn.ModuleList([_GaussianLayer(self.latent_dims[l + 1], hidden[l + 1][::-1],
                                                    self.latent_dims[l])
                                     for l in range(len(self.latent_dims) - 1)])
        self.decoder = nn.MLP([self.latent_dims[0], *hidden[0][::-1], D], activation="tanh")
        if self.inference == "bottom_up":  # q(z_l | z_{l-1}), z_0 = x
            self.posteriors = nn.ModuleList([_GaussianLayer(below[l], hidden[l], self.latent_dims[l])
                                             for l in range(len(self.latent_dims))])
        else:  # the deterministic ladder d_l and its Gaussian heads
            widths = [D] + [h[-1] for h in hidden]
            self.ladder = nn.ModuleList([nn.Sequential(nn.MLP([widths[l], *hidden[l]], activation="tanh"),
                                                       nn.Tanh())
                                         for l in range(len(self.latent_dims))])
            self.heads = nn.ModuleList([nn.Linear(widths[l + 1], 2 * self.latent_dims[l])
                                        for l in range(len(self.latent_dims))])

    # ------------------------------------------------------------------ checks
    def _xp(self):
        return backend.array_module_for(self.device)

    def _tensor(self, value, name):
        if isinstance(value, str) or value is None:
            raise TypeError(f"HierarchicalVAE: {name} must be an array or tensor, got {type(value).__name__}")
        t = value if isinstance(value, Tensor) else Tensor(self._xp().asarray(value))
        if t.dtype.kind not in "biuf":
            raise TypeError(f"HierarchicalVAE: {name} must hold real numbers, got dtype {t.dtype}")
        t = t.to(device=self.device, dtype=self.dtype)
        if not bool(self._xp().isfinite(t.data).all()):
            raise ValueError(f"HierarchicalVAE: {name} must hold only finite values")
        return t

    def _check_x(self, x):
        x = self._tensor(x, "x")
        D = math.prod(self.event_shape)
        if x.ndim < 2 or x.shape[0] == 0 or math.prod(x.shape[1:]) != D:
            raise ValueError(f"HierarchicalVAE: expected x of shape (N, {D}) or (N, *{self.event_shape}) "
                             f"with N >= 1, got {x.shape}")
        Bernoulli.check_support(x)
        return F.reshape(x, (x.shape[0], D))

    def _noise(self, k, n, eps, generator):
        """One standard-normal array (k, n, d_l) per stochastic layer: ``eps`` checked, or drawn."""
        shapes = [(k, n, d) for d in self.latent_dims]
        if eps is None:
            rng = get_generator(generator, self._xp())
            return [Tensor(rng.standard_normal(s).astype(self.dtype)) for s in shapes]
        if len(eps) != len(shapes):
            raise ValueError(f"eps must hold one array per stochastic layer ({len(shapes)}), got {len(eps)}")
        eps = [self._tensor(e, f"eps[{l}]") for l, e in enumerate(eps)]
        for l, (e, s) in enumerate(zip(eps, shapes)):
            if e.shape != s:
                raise ValueError(f"eps[{l}] must have shape {s}, got {e.shape}")
        return eps

    # ------------------------------------------------------------------ the bounds
    def _log_weights(self, x, eps):
        """log w = log p(x, z) - log q(z | x) for each joint draw: (k, N)."""
        k = eps[0].shape[0]
        L = len(self.latent_dims)
        xk = F.broadcast_to(x, (k,) + x.shape)
        zs, log_q = [None] * L, 0
        if self.inference == "bottom_up":
            h = xk
            for l in range(L):
                mu, logvar = self.posteriors[l](h)
                zs[l] = mu + F.exp(0.5 * logvar) * eps[l]
                log_q = log_q + _gaussian_log_density(zs[l], mu, logvar)
                h = zs[l]
        else:
            d, heads = x, []
            for l in range(L):
                d = self.ladder[l](d)
                out = self.heads[l](d)
                heads.append((out[:, :self.latent_dims[l]], out[:, self.latent_dims[l]:]))
            for l in reversed(range(L)):
                mu_hat, logvar_hat = heads[l]
                var_hat = _GaussianLayer.MIN_VAR + F.softplus(logvar_hat)  # s^_l, eq. 17
                if l == L - 1:
                    mu, var = F.broadcast_to(mu_hat, (k,) + mu_hat.shape), F.broadcast_to(var_hat, (k,) + var_hat.shape)
                else:
                    mu_p, logvar_p = self.priors[l](zs[l + 1])
                    mu, var = precision_weighted_merge(mu_hat, var_hat, mu_p, F.exp(logvar_p))
                zs[l] = mu + F.sqrt(var) * eps[l]
                log_q = log_q + _gaussian_log_density(zs[l], mu, F.log(var))
        log_p = -0.5 * F.sum(zs[-1] * zs[-1] + _LOG_2PI, axis=-1)  # log p(z_L), p(z_L) = N(0, I)
        for l in range(L - 1):
            mu_p, logvar_p = self.priors[l](zs[l + 1])
            log_p = log_p + _gaussian_log_density(zs[l], mu_p, logvar_p)
        logits = self.decoder(zs[0])
        log_px = -F.sum(F.binary_cross_entropy_with_logits(logits, xk, reduction="none"), axis=-1)
        return log_px + log_p - log_q

    def log_weights(self, x, k, eps=None, generator=None):
        """log w_i = log p(x, z_i) - log q(z_i | x) for k joint draws z_i per example: (k, N)."""
        x = self._check_x(x)
        k = check_int(k, "k", minimum=1)
        return self._log_weights(x, self._noise(k, x.shape[0], eps, generator))

    def elbo(self, x, n_samples=1, eps=None, generator=None):
        """The ELBO per example (N,), averaged over ``n_samples`` joint draws."""
        x = self._check_x(x)
        n_samples = check_int(n_samples, "n_samples", minimum=1)
        return F.mean(self._log_weights(x, self._noise(n_samples, x.shape[0], eps, generator)), axis=0)

    def iwae_bound(self, x, k, eps=None, generator=None):
        """L_k per example (N,): log (1/k) sum_i w_i over k joint draws."""
        x = self._check_x(x)
        k = check_int(k, "k", minimum=1)
        log_w = self._log_weights(x, self._noise(k, x.shape[0], eps, generator))
        return F.logsumexp(log_w, axis=0) - math.log(k)

    def loss(self, x, eps=None, generator=None):
        """Batch mean of -ELBO (one joint draw per example)."""
        return -F.mean(self.elbo(x, 1, eps, generator))

    def iwae_loss(self, x, k, eps=None, generator=None):
        """Batch mean of -L_k: the IWAE objective."""
        return -F.mean(self.iwae_bound(x, k, eps, generator))

    def forward(self, x):
        return self.loss(x)

    def log_likelihood(self, x, n_samples=1000, batch_size=500, generator=None):
        """Estimate of log p(x) per example (N,): L_k with k = ``n_samples``, in chunks of
        ``batch_size`` draws (the chunks' log-mean-exps are combined exactly), without a graph."""
        x = self._check_x(x)
        n_samples = check_int(n_samples, "n_samples", minimum=1)
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        rng = get_generator(generator, self._xp())
        chunks = []
        with no_grad():
            for start in range(0, n_samples, batch_size):
                k = min(batch_size, n_samples - start)
                chunks.append(self._log_weights(x, self._noise(k, x.shape[0], None, rng)))
            log_w = F.concatenate(chunks, axis=0)
            return F.logsumexp(log_w, axis=0) - math.log(n_samples)

    def sample(self, n, generator=None, mean=True):
        """``n`` images (n, *event_shape): ancestral sampling z_L, ..., z_1, then the mean of p(x | z_1)
        (or a Bernoulli draw, mean=False)."""
        n = check_int(n, "n", minimum=1)
        rng = get_generator(generator, self._xp())
        with no_grad():
            z = Tensor(rng.standard_normal((n, self.latent_dims[-1])).astype(self.dtype))
            for l in reversed(range(len(self.latent_dims) - 1)):
                mu, logvar = self.priors[l](z)
                z = mu + F.exp(0.5 * logvar) * Tensor(rng.standard_normal(mu.shape).astype(self.dtype))
            probs = F.sigmoid(self.decoder(z))
            x = probs if mean else Tensor((rng.random(probs.shape) < probs.data).astype(self.dtype))
            return F.reshape(x, (n,) + self.event_shape)
