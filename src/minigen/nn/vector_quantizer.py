"""Vector quantisation with a learnt codebook: the bottleneck of the VQ-VAE.

Lecture deck 001 ("Vector quantization: predict a real-valued vector, then snap it to a nearest
neighbour from a codebook"; "Learning the VQ-VAE"). Paper: van den Oord, Vinyals & Kavukcuoglu
(2017), "Neural Discrete Representation Learning"; the slide's loss is the paper's Eq. 3.
Codebook e_1..e_K in R^D. Each encoder output vector z_e (one per latent position) is replaced by
its nearest codebook vector (Eq. 1-2):

    k = argmin_j |z_e - e_j|^2,      |z_e - e_j|^2 = |z_e|^2 - 2 z_e.e_j + |e_j|^2   (one matmul)
    z_q = e_k

The argmin has no gradient; the straight-through estimator copies the gradient arriving at
z_q to z_e:  z_q = z_e + sg[e_k - z_e]  (value e_k, Jacobian dz_q/dz_e = I). Losses (Eq. 3):

    codebook loss    |sg[z_e] - e_k|^2        moves e_k towards the encoder outputs
    commitment loss  beta |z_e - sg[e_k]|^2   keeps z_e close to its code

each summed over the latent positions and dimensions of one example and averaged over the batch.

With ``ema=True`` the codebook is no parameter: it follows exponential moving averages of
the assigned encoder outputs (Appendix A.1, Eq. 6-8), with decay gamma,

    N_i <- gamma N_i + (1 - gamma) n_i                 n_i = number of z_e assigned to code i
    m_i <- gamma m_i + (1 - gamma) sum_{j: k_j = i} z_e,j
    e_i <- m_i / N~_i,   N~_i = (N_i + eps) / (sum_l N_l + K eps) * sum_l N_l

where N~ is N with Laplace smoothing (as in DeepMind's Sonnet), so that an unused code never
divides by zero. N starts at 1 and m at the initial codebook, so that e = m / N from the start.

Monitors: ``usage`` counts how often each code was chosen since ``reset_usage()`` (in training
mode); ``perplexity()`` = exp(entropy of those frequencies) is K when all codes are used
equally and 1 at codebook collapse. Measure it over an epoch: a batch sees too few latents.
Dead codes (never chosen) can be restarted at encoder outputs with ``restart_dead_codes``.
"""
from typing import NamedTuple

import numpy as np

from .. import functional as F
from ..autograd import Tensor
from ..backend import array_module_for, default_device, get_array_module
from ..random import get_generator
from . import init
from .module import Module, Parameter

__all__ = ["VectorQuantizer", "Quantized"]


class Quantized(NamedTuple):
    """What ``VectorQuantizer`` returns: straight-through z_q, integer codes and the two losses."""
    z_q: Tensor
    codes: Tensor
    codebook_loss: Tensor
    commitment_loss: Tensor


class VectorQuantizer(Module):
    """Nearest-neighbour quantiser with ``num_embeddings`` (K) codes of size ``embedding_dim`` (D).

    ``forward(z_e)`` takes encoder outputs of shape (N, D, *spatial) (channels first, as a conv
    gives them) and returns ``Quantized(z_q, codes, codebook_loss, commitment_loss)`` with z_q of
    the same shape and codes of shape (N, *spatial). ``beta`` weighs the commitment loss;
    ``ema=True`` updates the codebook by moving averages with ``decay`` (then codebook_loss is 0).
    The codebook starts uniform in [-1/K, 1/K]; ``device``, ``dtype`` and ``generator`` as in
    ``Linear`` (default: $MINIGEN_DEVICE or 'cpu', float32, minigen's global generator).
    """

    def __init__(self, num_embeddings, embedding_dim, beta=0.25, ema=False, decay=0.99, eps=1e-5,
                 device=None, dtype=None, generator=None):
        super().__init__()
        for name, value in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0, got {beta!r}")
        if not 0 <= decay < 1:
            raise ValueError(f"decay must lie in [0, 1), got {decay!r}")
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        self.beta, self.ema, self.decay, self.eps = float(beta), bool(ema), float(decay), float(eps)
        K, D = self.num_embeddings, self.embedding_dim
        xp = array_module_for(default_device() if device is None else device)
        dtype = "float32" if dtype is None else dtype
        e = xp.empty((K, D), dtype=dtype)
        init.uniform_(e, -1 / K, 1 / K, generator=generator)
        if self.ema:
            self.register_buffer("codebook", e)
            self.register_buffer("ema_count", xp.ones(K, dtype=dtype))   # N
            self.register_buffer("ema_sum", e.copy())                     # m
        else:
            self.codebook = Parameter(e)
        self.register_buffer("usage", xp.zeros(K, dtype=np.int64))

    # -- the codebook as an array / as a tensor
    def _e(self):
        return self.codebook if self.ema else self.codebook.data

    def _e_tensor(self):
        return Tensor(self.codebook) if self.ema else self.codebook

    # -- assignment
    def _flatten(self, z_e):
        """Array (N, D, *spatial) -> (N * prod(spatial), D), latent positions in row-major order."""
        return z_e.transpose((0,) + tuple(range(2, z_e.ndim)) + (1,)).reshape(-1, z_e.shape[1])

    def _check_z(self, z_e):
        if not isinstance(z_e, Tensor):
            if not hasattr(z_e, "dtype"):
                raise TypeError(f"z_e must be a Tensor or an array, got {type(z_e).__name__}")
            z_e = Tensor(z_e)
        if z_e.dtype.kind != "f":
            raise TypeError(f"z_e must hold floats, got dtype {z_e.dtype}")
        if z_e.ndim < 2 or z_e.shape[1] != self.embedding_dim:
            raise ValueError(f"z_e must have shape (N, {self.embedding_dim}, *spatial) with the "
                             f"embedding dimension on axis 1, got shape {z_e.shape}")
        if not bool(get_array_module(z_e.data).isfinite(z_e.data).all()):
            raise ValueError("z_e must hold finite values (the nearest code of NaN is meaningless), "
                             "got NaN or infinite entries")
        return z_e

    def distances(self, z):
        """Squared distances (M, K) from rows of ``z`` (M, D) to every code: |z|^2 - 2 z.e + |e|^2."""
        e = self._e()
        return (z * z).sum(axis=1, keepdims=True) - 2 * (z @ e.T) + (e * e).sum(axis=1)

    def nearest(self, z_e):
        """The code index of every latent vector of ``z_e`` (N, D, *spatial): shape (N, *spatial)."""
        z_e = self._check_z(z_e)
        flat = self._flatten(z_e.data)
        return self.distances(flat).argmin(axis=1).reshape((z_e.shape[0],) + z_e.shape[2:])

    # -- forward
    def forward(self, z_e, codes=None):
        """Quantise ``z_e``; ``codes`` (optional, shape (N, *spatial)) overrides the argmin.

        Passing the codes in holds the (non-differentiable) assignment fixed, e.g. for gradcheck.
        """
        z_e = self._check_z(z_e)
        xp = get_array_module(z_e.data)
        N = z_e.shape[0]
        codes = self.nearest(z_e) if codes is None else \
            self.check_codes(codes, (N,) + z_e.shape[2:])
        if self.training:
            self.usage += xp.bincount(codes.reshape(-1), minlength=self.num_embeddings)
        e_k = self.lookup(codes)  # (N, D, *spatial), from the codebook before any EMA step
        if self.ema:
            if self.training:
                self._ema_update(self._flatten(z_e.data), codes.reshape(-1))
            codebook_loss = Tensor(xp.zeros((), dtype=z_e.dtype))
        else:
            codebook_loss = ((z_e.detach() - e_k) ** 2).sum() / N
        commitment_loss = self.beta * ((z_e - e_k.detach()) ** 2).sum() / N
        z_q = z_e + (e_k - z_e).detach()  # straight-through: value e_k, gradient to z_e
        return Quantized(z_q, Tensor(codes), codebook_loss, commitment_loss)

    def _ema_update(self, z, codes):
        """One step of Eq. 6-8 (Laplace-smoothed counts) from flat z (M, D) and codes (M,)."""
        xp = get_array_module(z)
        K, gamma = self.num_embeddings, self.decay
        onehot = (codes[:, None] == xp.arange(K)).astype(z.dtype)      # (M, K)
        n = onehot.sum(axis=0)                                          # n_i
        self.ema_count[...] = gamma * self.ema_count + (1 - gamma) * n
        self.ema_sum[...] = gamma * self.ema_sum + (1 - gamma) * (onehot.T @ z)
        total = self.ema_count.sum()
        smoothed = (self.ema_count + self.eps) / (total + K * self.eps) * total
        self.codebook[...] = self.ema_sum / smoothed[:, None]

    # -- codes -> vectors
    def check_codes(self, codes, shape=None):
        """``codes`` as an integer array in [0, K), of shape ``shape`` if given."""
        codes = codes.data if isinstance(codes, Tensor) else codes
        xp = get_array_module(codes, self._e())
        codes = xp.asarray(codes)
        if codes.dtype.kind not in "iu":
            if codes.dtype.kind != "f" or not bool((codes == xp.round(codes)).all()):
                raise TypeError(f"codes must be integer indices, got dtype {codes.dtype}")
            codes = codes.astype(np.int64)
        if shape is not None and tuple(codes.shape) != tuple(shape):
            raise ValueError(f"codes must have shape {tuple(shape)}, got {tuple(codes.shape)}")
        if codes.size and (int(codes.min()) < 0 or int(codes.max()) >= self.num_embeddings):
            raise ValueError(f"codes must lie in [0, {self.num_embeddings}) (the codebook has "
                             f"{self.num_embeddings} entries), got values in "
                             f"[{int(codes.min())}, {int(codes.max())}]")
        return codes.astype(np.int64, copy=False)

    def lookup(self, codes):
        """The codebook vectors of integer ``codes`` (N, *spatial), as a tensor (N, D, *spatial)."""
        codes = self.check_codes(codes)
        if codes.ndim < 1:
            raise ValueError("codes must have shape (N, *spatial), got a scalar")
        e_k = F.embedding(codes, self._e_tensor())  # (N, *spatial, D)
        return e_k.permute(0, codes.ndim, *range(1, codes.ndim))

    # -- monitors and dead codes
    def reset_usage(self):
        """Start a new counting window (e.g. an epoch) for ``usage`` and ``perplexity``."""
        self.usage[...] = 0

    def perplexity(self):
        """exp(-sum_i p_i log p_i) of the code frequencies p counted since ``reset_usage``."""
        total = int(self.usage.sum())
        if total == 0:
            raise ValueError("no code assignments were counted since reset_usage(); run the "
                             "quantiser in training mode first")
        xp = get_array_module(self.usage)
        p = self.usage[self.usage > 0] / total
        return float(xp.exp(-(p * xp.log(p)).sum()))

    def restart_dead_codes(self, z_e, min_count=1, generator=None):
        """Move every code used fewer than ``min_count`` times since ``reset_usage`` to a random
        encoder output drawn from ``z_e`` (N, D, *spatial); returns how many were restarted."""
        z = self._flatten(self._check_z(z_e).data)
        xp = get_array_module(z)
        dead = xp.nonzero(self.usage < min_count)[0]
        n_dead = int(dead.size)
        if n_dead == 0:
            return 0
        rng = get_generator(generator, np)
        rows = rng.choice(z.shape[0], size=n_dead, replace=n_dead > z.shape[0])
        new_e = z[xp.asarray(rows)].astype(self._e().dtype)
        self._e()[dead] = new_e
        if self.ema:
            self.ema_count[dead] = 1
            self.ema_sum[dead] = new_e
        return n_dead
