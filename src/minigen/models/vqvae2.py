"""VQ-VAE-2: two levels of discrete codes, a coarse top grid and a finer bottom grid, and
two-stage generation with PixelCNN priors (the bottom one conditioned on the top codes).

Lecture deck 000 (VQ-VAE-2 "extended the original idea by learning two levels (bottom and top) and
a strong prior over the latent space") and deck 001 (VQ-VAE + autoregressive model). Paper: Razavi,
van den Oord & Vinyals (2019), "Generating Diverse High-Fidelity Images with VQ-VAE-2", Sec. 3,
Fig. 2, Algorithms 1-2. Where minigen departs from the paper (beyond its size): the decoder is the
Bernoulli decoder of ``VQVAE`` (see its docstring on what its reconstruction term measures), the
top grid is ceil(h / 2) of the bottom grid's h (so that 7x7 bottom codes get 4x4 top codes), and
the top codes reach the bottom quantiser and the decoder by nearest-neighbour upsampling.

Encoding (Algorithm 1), with E_b, E_t, D_t convolutional networks and Q_t, Q_b nearest-code
quantisers (``minigen.nn.VectorQuantizer``, Eq. 1-2 of the VQ-VAE paper):

    h_b   = E_b(x)                         (N, F, h, w),  h = H / 2^n_downsample
    z_e^t = E_t(h_b)                       (N, D, h', w'), h' = ceil(h / 2)   (stride-2 3x3)
    z_q^t = Q_t(z_e^t)                     top codes k^t (N, h', w')
    z_e^b = 1x1(ReLU([h_b, up(D_t(z_q^t))]))          the bottom encoder sees the top's decoding
    z_q^b = Q_b(z_e^b)                     bottom codes k^b (N, h, w)
    logits = Dec([z_q^b, up(z_q^t)])       (N, C, H, W)

up(.) repeats every top position over a 2x2 block and crops to the bottom grid. The top codes
carry the global layout; the bottom codes, computed knowing the top, add the detail the top lacks.

Loss per image: the reconstruction term plus both quantisers' codebook and commitment terms,

    L = BCE(x, sigmoid(logits)) + sum_{l in t, b} |sg[z_e^l] - e_{k^l}|^2 + beta |z_e^l - sg[e_{k^l}]|^2,

averaged over the batch; straight-through gradients at both levels (dL/dz_e^l := dL/dz_q^l). With
``ema=True`` both codebooks follow moving averages instead of the codebook terms (as in ``VQVAE``).

Generation (Algorithm 2, ``sample``): k^t ~ p_top, a PixelCNN over the top grid; k^b ~ p(k^b | k^t),
a PixelCNN with spatial conditioning (``cond_channels = embedding_dim``) on the embedded, upsampled
top codes ``top_condition(k^t)``; then decode. Train the two priors on ``encode(x)`` of the
training images (``examples/vqvae2.py``).

``forward`` is not defined (it raises NotImplementedError): call ``loss``, ``encode``,
``decode_codes``, ``reconstruct`` or ``sample``.
"""
import math
from typing import NamedTuple

from .. import backend
from .. import functional as F
from ..autograd import Tensor, no_grad
from ..nn import Conv2d, ConvTranspose2d, Module, ReLU, Sequential, VectorQuantizer
from ..random import get_generator
from ..validation import check_int, numeric_array
from .vqvae import ResidualStack, checked_unit_images, code_grid_shape

__all__ = ["VQVAE2", "VQVAE2Loss"]


class VQVAE2Loss(NamedTuple):
    """``VQVAE2.loss``: the total and its parts, each a mean over the batch."""
    total: Tensor
    reconstruction: Tensor
    top_codebook: Tensor
    top_commitment: Tensor
    bottom_codebook: Tensor
    bottom_commitment: Tensor


def upsample_to(z, shape):
    """Each position of ``z`` (N, D, h', w') repeated over a 2x2 block, cropped to ``shape`` (h, w)."""
    return F.upsample_nearest(z, 2)[:, :, :shape[0], :shape[1]]


class VQVAE2(Module):
    """Two-level VQ-VAE for images (N, ``in_channels``, H, W) in [0, 1], H and W divisible by
    2^n_downsample: bottom codes on an (H / 2^n_downsample)-sided grid, top codes on a grid half
    as fine (rounded up). For 8x8 digits and n_downsample=1: 4x4 bottom and 2x2 top codes; for
    28x28 and n_downsample=2: 7x7 and 4x4.

    ``hidden_channels`` wide convolutions, ``n_residual`` residual blocks per stack, two codebooks
    of ``num_embeddings`` (K) vectors of size ``embedding_dim`` (D), ``beta`` the commitment weight,
    ``ema``/``decay`` as in ``VectorQuantizer``. ``forward`` raises NotImplementedError.
    """

    def __init__(self, in_channels=1, hidden_channels=64, num_embeddings=64, embedding_dim=16,
                 n_downsample=1, n_residual=1, beta=0.25, ema=False, decay=0.99):
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", minimum=1)
        self.n_downsample = check_int(n_downsample, "n_downsample", minimum=1)
        h = check_int(hidden_channels, "hidden_channels", minimum=1)
        n_residual = check_int(n_residual, "n_residual", minimum=0)
        K = check_int(num_embeddings, "num_embeddings", minimum=1)
        D = check_int(embedding_dim, "embedding_dim", minimum=1)
        C = self.in_channels
        down = [Conv2d(C if i == 0 else h, h, 4, stride=2, padding=1) for i in range(n_downsample)]
        self.encoder_bottom = Sequential(*[m for conv in down for m in (conv, ReLU())],
                                         Conv2d(h, h, 3, padding=1), ResidualStack(h, n_residual))
        self.encoder_top = Sequential(ReLU(), Conv2d(h, h, 3, stride=2, padding=1), ReLU(),
                                      Conv2d(h, h, 3, padding=1), ResidualStack(h, n_residual),
                                      ReLU(), Conv2d(h, D, 1))
        self.quantizer_top = VectorQuantizer(K, D, beta=beta, ema=ema, decay=decay)
        self.decoder_top = Sequential(Conv2d(D, h, 3, padding=1), ResidualStack(h, n_residual), ReLU())
        self.pre_quantizer_bottom = Conv2d(2 * h, D, 1)
        self.quantizer_bottom = VectorQuantizer(K, D, beta=beta, ema=ema, decay=decay)
        up = [ConvTranspose2d(h, C if i == n_downsample - 1 else h, 4, stride=2, padding=1)
              for i in range(n_downsample)]
        self.decoder = Sequential(Conv2d(2 * D, h, 3, padding=1), ResidualStack(h, n_residual),
                                  *[m for conv in up for m in (ReLU(), conv)])

    @property
    def num_embeddings(self):
        return self.quantizer_bottom.num_embeddings

    @property
    def embedding_dim(self):
        return self.quantizer_bottom.embedding_dim

    def latent_shapes(self, image_shape):
        """((h', w'), (h, w)): the top and bottom code grids of images of size ``image_shape``."""
        h, w = code_grid_shape(image_shape, self.n_downsample, "VQ-VAE-2")
        return (math.ceil(h / 2), math.ceil(w / 2)), (h, w)

    # -- checks
    def check_x(self, x):
        """``x`` as a float tensor (N, C, H, W) with finite values in [0, 1] and a valid size."""
        x = checked_unit_images(x, self.in_channels, self.device, next(self.parameters()).dtype)
        self.latent_shapes(x.shape)
        return x

    def check_codes(self, codes, name, shape=None):
        """``codes`` as an int64 grid (N, h, w) in [0, K), of ``shape`` if given."""
        data = numeric_array(codes, name)
        if data.ndim != 3:
            raise ValueError(f"{name} must be a grid of shape (N, h, w), got shape {tuple(data.shape)}")
        try:
            return self.quantizer_bottom.check_codes(data, shape)
        except (TypeError, ValueError) as e:
            raise type(e)(f"{name}: {e}") from None

    def _check_pair(self, top, bottom):
        """Both code grids checked, with matching batch sizes and grids (the top ceil(h / 2))."""
        top, bottom = self.check_codes(top, "top"), self.check_codes(bottom, "bottom")
        N, h, w = bottom.shape
        expected = (N, math.ceil(h / 2), math.ceil(w / 2))
        if tuple(top.shape) != expected:
            raise ValueError(f"top codes must have shape {expected} for bottom codes of shape "
                             f"{tuple(bottom.shape)}, got {tuple(top.shape)}")
        return top, bottom

    # -- the networks, step by step (Algorithm 1)
    def encode_top(self, x):
        """(h_b, z_e^t): the bottom encoder's features and the top encoder's output."""
        h_b = self.encoder_bottom(x)
        return h_b, self.encoder_top(h_b)

    def encode_bottom(self, h_b, z_q_top):
        """z_e^b = 1x1(ReLU([h_b, up(D_t(z_q^t))])): the bottom encoder output, given the top."""
        t = upsample_to(self.decoder_top(z_q_top), h_b.shape[2:])
        return self.pre_quantizer_bottom(F.relu(F.concatenate([h_b, t], axis=1)))

    def decode_latents(self, z_q_top, z_q_bottom):
        """Bernoulli logits (N, C, H, W) = Dec([z_q^b, up(z_q^t)])."""
        return self.decoder(F.concatenate([z_q_bottom, upsample_to(z_q_top, z_q_bottom.shape[2:])],
                                          axis=1))

    # -- the model
    def loss(self, x, codes=None):
        """``VQVAE2Loss`` for a batch ``x``. ``codes`` = (top, bottom) holds the code assignments
        fixed instead of the nearest codes (for gradient checks)."""
        x = self.check_x(x)
        N = x.shape[0]
        top_shape, bottom_shape = self.latent_shapes(x.shape)
        if codes is not None:
            if not isinstance(codes, (tuple, list)) or len(codes) != 2:
                raise TypeError(f"codes must be a pair (top, bottom), got {type(codes).__name__}")
            codes = (self.check_codes(codes[0], "top", (N,) + top_shape),
                     self.check_codes(codes[1], "bottom", (N,) + bottom_shape))
        h_b, z_e_top = self.encode_top(x)
        top = self.quantizer_top(z_e_top, None if codes is None else codes[0])
        bottom = self.quantizer_bottom(self.encode_bottom(h_b, top.z_q),
                                       None if codes is None else codes[1])
        logits = self.decode_latents(top.z_q, bottom.z_q)
        reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / N
        total = (reconstruction + top.codebook_loss + top.commitment_loss
                 + bottom.codebook_loss + bottom.commitment_loss)
        return VQVAE2Loss(total, reconstruction, top.codebook_loss, top.commitment_loss,
                          bottom.codebook_loss, bottom.commitment_loss)

    def encode(self, x):
        """(top codes (N, h', w'), bottom codes (N, h, w)) of images ``x``, integer tensors (no
        side effects on the quantisers' monitors or EMA codebooks)."""
        x = self.check_x(x)
        with no_grad():
            h_b, z_e_top = self.encode_top(x)
            top = self.quantizer_top.nearest(z_e_top)
            z_e_bottom = self.encode_bottom(h_b, self.quantizer_top.lookup(top))
            return Tensor(top), Tensor(self.quantizer_bottom.nearest(z_e_bottom))

    def restart_dead_codes(self, x, min_count=1, generator=None):
        """``VectorQuantizer.restart_dead_codes`` at both levels, on encoder outputs of images x:
        the top codes used fewer than ``min_count`` times since ``reset_usage`` move to top
        encoder outputs, then the bottom ones to bottom encoder outputs given the (restarted) top
        codes. Call it at the end of an epoch; returns (restarted top codes, restarted bottom)."""
        x = self.check_x(x)
        with no_grad():
            h_b, z_e_top = self.encode_top(x)
            n_top = self.quantizer_top.restart_dead_codes(z_e_top, min_count, generator)
            z_q_top = self.quantizer_top.lookup(self.quantizer_top.nearest(z_e_top))
            n_bottom = self.quantizer_bottom.restart_dead_codes(self.encode_bottom(h_b, z_q_top),
                                                                min_count, generator)
        return n_top, n_bottom

    def decode_codes(self, top, bottom, levels=("top", "bottom")):
        """Images (N, C, H, W): the decoder's Bernoulli means for the code grids ``top`` (N, h', w')
        and ``bottom`` (N, h, w). ``levels``: the levels whose codes enter the decoder; a level
        left out has its code vectors replaced by zeros (Razavi et al.'s Fig. 3 shows what each
        level adds this way)."""
        top, bottom = self._check_pair(top, bottom)
        if isinstance(levels, str) or not set(levels) <= {"top", "bottom"} or not levels:
            raise ValueError(f"levels must be a non-empty collection of 'top' and 'bottom', got {levels!r}")
        with no_grad():
            z_top, z_bottom = self.quantizer_top.lookup(top), self.quantizer_bottom.lookup(bottom)
            z_top, z_bottom = (z if level in levels else z * 0
                               for z, level in ((z_top, "top"), (z_bottom, "bottom")))
            return F.sigmoid(self.decode_latents(z_top, z_bottom))

    def reconstruct(self, x, levels=("top", "bottom")):
        """decode_codes(*encode(x), levels): the images as the discrete bottlenecks let them through."""
        return self.decode_codes(*self.encode(x), levels=levels)

    def top_condition(self, top, bottom_shape):
        """The bottom prior's conditioning map (N, D, h, w): the top codes' codebook vectors,
        each repeated over its 2x2 block of the bottom grid ``bottom_shape`` = (h, w)."""
        top = self.check_codes(top, "top")
        h, w = bottom_shape
        if top.shape[1:] != (math.ceil(h / 2), math.ceil(w / 2)):
            raise ValueError(f"top codes of grid {tuple(top.shape[1:])} do not match a bottom grid "
                             f"{tuple(bottom_shape)} (expected {(math.ceil(h / 2), math.ceil(w / 2))})")
        with no_grad():
            return upsample_to(self.quantizer_top.lookup(top), bottom_shape).data

    def sample(self, n, top_prior, bottom_prior, image_shape, temperature=1.0, generator=None):
        """Two-stage generation of ``n`` images of ``image_shape`` (H, W): top codes from
        ``top_prior`` (a PixelCNN over K values), bottom codes from ``bottom_prior`` (a PixelCNN
        over K values with ``cond_channels = embedding_dim``) given ``top_condition``, decoded to
        Bernoulli means (n, C, H, W). Randomness only from ``generator`` (None: minigen's global
        generator; an int seeds one generator used for both stages)."""
        K, D = self.num_embeddings, self.embedding_dim
        for name, prior, cond in (("top_prior", top_prior, None), ("bottom_prior", bottom_prior, D)):
            if getattr(prior, "n_values", None) != K or getattr(prior, "in_channels", None) != 1 \
                    or getattr(prior, "cond_channels", None) != cond:
                raise ValueError(
                    f"{name} must be a one-channel PixelCNN with n_values = num_embeddings = {K} and "
                    f"cond_channels = {cond}, got {type(prior).__name__} with n_values="
                    f"{getattr(prior, 'n_values', None)}, cond_channels={getattr(prior, 'cond_channels', None)}")
        top_shape, bottom_shape = self.latent_shapes(tuple(image_shape))
        rng = get_generator(generator, backend.get_array_module(next(self.parameters()).data))
        top = top_prior.sample(n, top_shape, temperature=temperature, generator=rng).data[:, 0]
        bottom = bottom_prior.sample(n, bottom_shape, cond=self.top_condition(top, bottom_shape),
                                     temperature=temperature, generator=rng).data[:, 0]
        return self.decode_codes(top, bottom)
