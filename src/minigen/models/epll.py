"""Image denoising with a Gaussian-mixture patch prior: EPLL (Zoran & Weiss, ICCV 2011; deck 001).

Noisy image y = x + sigma eps. The expected patch log-likelihood of x under a patch prior p (a
fitted ``GaussianMixture`` over p x p patches) is EPLL(x) = sum_i log p(P_i x), P_i extracting
the i-th of all overlapping patches. EPLL restoration minimises

    f(x) = lambda/2 ||x - y||^2 - sum_i log p(P_i x),     lambda = p^2 / sigma^2   (the paper's choice:
                                                           each pixel lies in p^2 patches)

Two solvers:
- "gradient" (deck 001): gradient descent on f, the gradient by minigen's autograd through
  ``epll_objective``; step 1/L with L = lambda + max_count max_k lambda_max(Sigma_k^-1), an upper bound
  on f's curvature (the Hessian of -log of a Gaussian mixture is at most sum_k r_k Sigma_k^-1,
  and a pixel lies in at most p^2 patches: max_count of them), so every step lowers f.
- "hqs" (Zoran & Weiss 2011, half-quadratic splitting): auxiliary patches z_i and the penalty
  beta/2 ||P_i x - z_i||^2, alternating for increasing beta (default beta = [1, 4, 8, 16, 32] /
  sigma^2, the paper's schedule):
    z step  per patch v = P_i x, the most likely component under the beta-noisy prior,
            k = argmax_k log pi_k + log N(v | mu_k, Sigma_k + I / beta),
            then its Wiener estimate z = mu_k + Sigma_k (Sigma_k + I / beta)^-1 (v - mu_k)
    x step  x = (lambda y + beta sum_i P_i^T z_i) / (lambda + beta sum_i P_i^T P_i)   (pixelwise)
  The paper keeps only the best component in the z step (an approximate MAP); HQS does not
  guarantee that f decreases at every step, but it is much faster than gradient descent.

With one component and one patch covering the image, f is quadratic and its minimiser is the
Wiener filter x* = mu + Sigma (Sigma + I / lambda)^-1 (y - mu) (tests/models/test_epll.py).
Images are (H, W) or (N, H, W) arrays, NumPy or CuPy; the result has the shape of ``noisy``
and is not clipped.
"""
import math

import numpy

from .. import functional as F
from ..backend import get_array_module
from ..tensor_factory import tensor
from ..validation import check_array, check_float, check_int, check_is_fitted, check_option
from .gmm import GaussianMixture, gaussian_log_prob, precision_cholesky

SOLVERS = ("hqs", "gradient")


def extract_patches(images, p):
    """(N * h * w, p * p) all overlapping p x p patches P_i x of (N, H, W) images, h = H - p + 1,
    in the order (image, row, column); patch entries row-major."""
    xp = get_array_module(images)
    n, H, W = images.shape
    h, w = H - p + 1, W - p + 1
    patches = xp.empty((n, h, w, p, p), dtype=images.dtype)
    for a in range(p):  # one strided copy per offset in the patch
        for b in range(p):
            patches[:, :, :, a, b] = images[:, a:a + h, b:b + w]
    return patches.reshape(-1, p * p)


def sum_patches(patches, shape, p):
    """sum_i P_i^T z_i, the adjoint of ``extract_patches``: every patch added back at its place."""
    xp = get_array_module(patches)
    n, H, W = shape
    h, w = H - p + 1, W - p + 1
    patches = patches.reshape(n, h, w, p, p)
    images = xp.zeros(shape, dtype=patches.dtype)
    for a in range(p):
        for b in range(p):
            images[:, a:a + h, b:b + w] += patches[:, :, :, a, b]
    return images


def _full_covariances(prior):
    """(K, D, D) covariance matrices of a fitted GaussianMixture, whatever its covariance_type."""
    xp = get_array_module(prior.means_)
    K, D = prior.means_.shape
    cov, kind = prior.covariances_, prior.covariance_type
    if kind == "full":
        return cov
    if kind == "tied":
        return xp.broadcast_to(cov, (K, D, D)).copy()
    eye = xp.eye(D, dtype=cov.dtype)
    return (cov[:, :, None] * eye) if kind == "diag" else cov[:, None, None] * eye


def _check_inputs(noisy, prior, noise_std, name="noisy"):
    """(images as (N, H, W), the original shape, patch size p, sigma) after checking the prior
    and the images."""
    if not isinstance(prior, GaussianMixture):
        raise TypeError(f"prior must be a fitted minigen.models.GaussianMixture over flattened "
                        f"p x p patches, got {type(prior).__name__}")
    check_is_fitted(prior, "means_")
    sigma = check_float(noise_std, "noise_std", minimum=0, strict=True)
    D = prior.n_features_in_
    p = math.isqrt(D)
    if p * p != D:
        raise ValueError(f"prior must model square p x p patches, but it has {D} features")
    try:
        ndim = numpy.ndim(noisy)  # an array's own ndim; a nested list's depth
    except ValueError:
        raise ValueError(f"{name} must be an (H, W) image or (N, H, W) images; got a ragged nested "
                         f"list whose rows have different lengths") from None
    if ndim not in (2, 3):
        raise ValueError(f"{name} must be an (H, W) image or (N, H, W) images, got {ndim} dimensions")
    images = check_array(noisy, name, ndim=ndim, like=prior.means_).astype(prior.means_.dtype)
    shape = images.shape
    images = images[None] if ndim == 2 else images
    if images.shape[1] < p or images.shape[2] < p:
        raise ValueError(f"{name} images of size {images.shape[1:]} are smaller than the prior's "
                         f"{p} x {p} patches")
    return images, shape, p, sigma


def epll_objective(x, noisy, prior, noise_std):
    """f(x) = lambda/2 ||x - y||^2 - sum_i log p(P_i x) (module docstring), lambda = p^2 / sigma^2,
    summed over the images; a scalar minigen Tensor, differentiable in ``x``.

    ``x``: a Tensor (or array) shaped like ``noisy``, (H, W) or (N, H, W). The patches are a
    convolution with the p^2 one-hot p x p kernels, the mixture density goes through the
    precision Cholesky factors: log N(v | mu, Sigma) = -D/2 log 2pi + log|P| - ||P^T (v - mu)||^2 / 2.
    """
    y, shape, p, sigma = _check_inputs(noisy, prior, noise_std)
    if not getattr(x, "_is_minigen_tensor", False):
        x = tensor(check_array(x, "x", ndim=len(shape), like=prior.means_).astype(y.dtype))
    if tuple(x.shape) != shape:
        raise ValueError(f"x must have the shape of noisy {shape}, got {tuple(x.shape)}")
    return _objective(x, y, p * p / sigma ** 2, _prior_terms(prior))


def _prior_terms(prior):
    """What the objective needs from the prior, computed once: the means mu_k, the precision
    Cholesky factors P_k and log pi_k + log|P_k| - D/2 log 2pi, as constant tensors."""
    xp = get_array_module(prior.means_)
    P = precision_cholesky(_full_covariances(prior))
    log_det = xp.sum(xp.log(xp.diagonal(P, axis1=-2, axis2=-1)), axis=-1)
    D = prior.n_features_in_
    constant = xp.log(prior.weights_) + log_det - 0.5 * D * math.log(2 * math.pi)
    return tensor(prior.means_), tensor(P), tensor(constant[:, None])


def _objective(x, y, lam, terms):
    """epll_objective for a checked Tensor x and images y (N, H, W)."""
    means, P, constant = terms
    xp = get_array_module(y)
    (n, H, W), D = y.shape, P.shape[-1]
    p = math.isqrt(D)
    images = x.reshape(n, 1, H, W)
    kernels = tensor(xp.eye(D, dtype=y.dtype).reshape(D, 1, p, p))
    patches = F.conv2d(images, kernels).permute(0, 2, 3, 1).reshape(1, -1, D)   # rows P_i x
    y_white = (patches - means.reshape(-1, 1, D)) @ P                           # (K, M, D)
    log_joint = constant - 0.5 * (y_white * y_white).sum(axis=-1)                # (K, M)
    residual = images.reshape(n, H, W) - tensor(y)
    return 0.5 * lam * (residual * residual).sum() - F.logsumexp(log_joint, axis=0).sum()


def epll_denoise(noisy, prior, noise_std, patch_size=8, solver="hqs", betas=(1, 4, 8, 16, 32),
                 n_iter=300):
    """Restore ``noisy`` ((H, W) or (N, H, W)) under the patch prior ``prior`` (a fitted
    GaussianMixture over flattened ``patch_size`` x ``patch_size`` patches) and Gaussian noise of
    standard deviation ``noise_std``, by minimising ``epll_objective``.

    ``solver="hqs"``: half-quadratic splitting with beta = ``betas`` / noise_std^2, one z step and
    one x step per beta. ``solver="gradient"``: ``n_iter`` steps of gradient descent with step
    1 / L (module docstring). Returns an array of ``noisy``'s shape on the prior's device.
    """
    check_option(solver, "solver", SOLVERS)
    y, shape, p, sigma = _check_inputs(noisy, prior, noise_std)
    if check_int(patch_size, "patch_size", minimum=1) != p:
        raise ValueError(f"patch_size={patch_size} but the prior models {p} x {p} patches "
                         f"({prior.n_features_in_} features)")
    xp = get_array_module(y)
    lam = p * p / sigma ** 2
    covariances = _full_covariances(prior)
    if solver == "gradient":
        n_iter = check_int(n_iter, "n_iter", minimum=1)
        max_precision = float(1 / xp.linalg.eigvalsh(covariances).min())
        max_count = float(sum_patches(xp.ones_like(extract_patches(y, p)), y.shape, p).max())
        step = 1 / (lam + max_count * max_precision)
        terms = _prior_terms(prior)
        x = y
        for _ in range(n_iter):
            x_t = tensor(x, requires_grad=True)
            _objective(x_t, y, lam, terms).backward()
            x = x - step * x_t.grad
    else:
        betas = [check_float(b, "betas", minimum=0, strict=True) for b in betas]
        if not betas:
            raise ValueError("betas must hold at least one value")
        counts = sum_patches(xp.ones_like(extract_patches(y, p)), y.shape, p)  # sum_i P_i^T P_i
        eye = xp.eye(p * p, dtype=y.dtype)
        log_weights = xp.log(prior.weights_)
        x = y
        for beta in (b / sigma ** 2 for b in betas):
            noisy_cov = covariances + eye / beta
            v = extract_patches(x, p)
            log_post = gaussian_log_prob(v, prior.means_, precision_cholesky(noisy_cov)) + log_weights
            k_best = xp.argmax(log_post, axis=1)
            wiener = xp.linalg.solve(noisy_cov, covariances)  # (Sigma + I/beta)^-1 Sigma = A_k^T
            z = xp.empty_like(v)
            for k in range(len(log_weights)):
                idx = xp.nonzero(k_best == k)[0]
                z[idx] = prior.means_[k] + (v[idx] - prior.means_[k]) @ wiener[k]
            x = (lam * y + beta * sum_patches(z, y.shape, p)) / (lam + beta * counts)
    return x.reshape(shape)
