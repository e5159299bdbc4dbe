"""Two unbiased estimators of a VAE's ELBO gradient, to measure which has the lower variance.

ELBO(phi, theta) = E_{q_phi(z|x)}[log p_theta(x | z)] - KL(q_phi(z|x) || p(z)) (KL in closed form).
For the decoder theta both give grad_theta log p(x | z) at the sampled z. For the encoder phi:

    reparameterisation (pathwise; Kingma & Welling 2014, Sec. 2.4):
        z = mu_phi + sigma_phi * eps,  g = grad_phi [log p(x | z(phi, eps))] - grad_phi KL
    score function (REINFORCE; Williams 1992; Paisley et al. 2012), z ~ q with no path to phi:
        g = (log p(x | z) - b) grad_phi log q_phi(z | x) - grad_phi KL

E[grad_phi log q] = 0, so any baseline b that does not depend on z keeps the score-function
estimate unbiased (it only moves its variance). Each estimator is written as a *surrogate*
scalar whose gradient is the estimate (its value is not the ELBO for the score function):

    score surrogate = log p(x | sg[z]) + sg[log p(x | z) - b] log q_phi(sg[z] | x) - KL

``gradient_samples`` draws many single-sample estimates (with shared noise eps, so the two
estimators can be compared draw by draw) and returns them as rows of an array.
"""
from .. import backend
from .. import functional as F
from ..autograd import Tensor
from ..distributions import Normal, kl_divergence
from ..random import get_generator
from ..validation import check_int, check_option

__all__ = ["reparameterised_surrogate", "score_function_surrogate", "gradient_samples"]

ESTIMATORS = ("reparameterised", "score_function")


def reparameterised_surrogate(model, x, y=None, eps=None, generator=None):
    """Batch-mean ELBO with z = mu + sigma * eps: its gradient is the pathwise estimate."""
    return F.mean(model.elbo(x, y, eps=eps, generator=generator).elbo)


def score_function_surrogate(model, x, y=None, eps=None, generator=None, baseline=0.0):
    """A scalar whose gradient is the score-function (REINFORCE) estimate of grad mean ELBO.

    ``eps`` (N, latent_dim) fixes the draw z = mu + sigma * eps (else drawn from ``generator``);
    ``baseline``: b, a number or one value per example (N,), subtracted from log p(x | z).
    """
    mu, logvar = model.encode(x, y)
    q = Normal(mu, logvar=logvar)
    z = q.rsample(eps=eps, generator=generator).detach()  # z ~ q, no path back to phi
    log_px = model.log_px(x, z, y)                        # (N,), gradient to theta only
    log_qz = F.sum(q.log_prob(z), axis=-1)                # (N,), gradient to phi
    kl = F.sum(kl_divergence(q, model.prior()), axis=-1)
    learning_signal = Tensor(log_px.data - _as_array(baseline, log_px.data))
    return F.mean(log_px + learning_signal * log_qz - kl)


def _as_array(b, like):
    xp = backend.get_array_module(like)
    b = b.data if isinstance(b, Tensor) else b
    return xp.asarray(b, dtype=like.dtype)


def gradient_samples(model, x, estimator, n_samples, parameters=None, y=None, generator=None,
                     baseline=0.0):
    """``n_samples`` independent one-sample estimates of grad mean ELBO, as rows (n_samples, P).

    ``parameters``: the tensors to differentiate (default: all the model's), flattened and
    concatenated in order. Draw i uses noise eps_i from ``generator``; the same seed gives the
    same eps_i to both estimators, so their draws are paired.
    """
    check_option(estimator, "estimator", ESTIMATORS)
    n_samples = check_int(n_samples, "n_samples", minimum=1)
    parameters = list(model.parameters()) if parameters is None else list(parameters)
    xp = backend.get_array_module(parameters[0].data)
    rng = get_generator(generator, xp)
    n = len(x)
    rows = []
    for _ in range(n_samples):
        eps = rng.standard_normal((n, model.latent_dim)).astype(parameters[0].dtype)
        for p in parameters:
            p.grad = None
        if estimator == "reparameterised":
            surrogate = reparameterised_surrogate(model, x, y, eps=eps)
        else:
            surrogate = score_function_surrogate(model, x, y, eps=eps, baseline=baseline)
        surrogate.backward()
        rows.append(xp.concatenate([(xp.zeros(p.shape, p.dtype) if p.grad is None else p.grad).ravel()
                                    for p in parameters]))
    for p in parameters:
        p.grad = None
    return xp.stack(rows)
