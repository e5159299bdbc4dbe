"""VQ-VAE: an autoencoder with a discrete latent grid, and two-stage generation with a PixelCNN prior.

Lecture decks 000 and 001 (VQ-VAE: "predict a real-valued vector, then snap it to a nearest
neighbour from a codebook"; the loss with stop-gradients). Paper: van den Oord, Vinyals &
Kavukcuoglu (2017), "Neural Discrete Representation Learning". Where minigen follows the paper
instead of the slide: the slide's loss is written for a generic decoder; here the reconstruction
term is the Bernoulli cross-entropy below, and ``ema=True`` replaces the codebook term by the
paper's moving averages (Appendix A.1).

    z_e = encoder(x)                  (N, D, h, w): a grid of D-dim vectors, h = H / 2^n_downsample
    k   = argmin_j |z_e - e_j|^2      (N, h, w): one code per latent position (Eq. 1)
    z_q = e_k                         (Eq. 2); straight-through gradient dL/dz_e := dL/dz_q (Sec. 3.2)
    mu  = sigmoid(decoder(z_q))       per pixel, in (0, 1)

Loss per image (Eq. 3; codebook and commitment terms in ``minigen.nn.VectorQuantizer``):

    L = BCE(x, mu) + |sg[z_e] - e_k|^2 + beta |z_e - sg[e_k]|^2,
    BCE(x, mu) = -sum_pixels [x log mu + (1 - x) log(1 - mu)],

averaged over the batch. For binary pixels BCE(x, mu) is -log p(x | z_q) under independent
Bernoullis. For grey levels x in (0, 1) it is only the cross-entropy between Bernoulli(x) and
Bernoulli(mu), not a normalised likelihood: as a density on [0, 1]^HW, exp(-BCE) integrates to less
than one (the continuous Bernoulli's missing normaliser, Loaiza-Ganem & Cunningham 2019), and its
minimum over mu, the entropy of Bernoulli(x), is above zero. So the reconstruction term of grey-level
images is a distortion in nats, not a code length or -log p(x | z). With a uniform prior over codes
the KL term of the ELBO is the constant h w log K, so it is left out of training, as in the paper.

Encoder (Sec. 4.1): ``n_downsample`` 4x4 stride-2 convolutions (ReLU), a 3x3 convolution, residual
blocks x + 1x1(ReLU(3x3(ReLU(x)))), ReLU and a 1x1 convolution to D channels. The decoder mirrors it
with 4x4 stride-2 transposed convolutions back to C channels of Bernoulli logits.

Two-stage generation (Sec. 4.2): train the VQ-VAE, fit an autoregressive prior p(k) - a PixelCNN with
n_values = K on the code grids ``encode(x)`` of the training set - then sample k ~ p(k) and decode
(``sample``).

``forward`` is not defined (it raises NotImplementedError): a VQ-VAE has no single output; call
``loss``, ``encode``, ``decode_codes``, ``reconstruct`` or ``sample``.
"""
from typing import NamedTuple

from .. import backend
from .. import functional as F
from ..autograd import Tensor, no_grad
from ..nn import Conv2d, ConvTranspose2d, Module, ReLU, Sequential, VectorQuantizer
from ..validation import check_int, numeric_array

__all__ = ["VQVAE", "VQVAELoss"]


class VQVAELoss(NamedTuple):
    """``VQVAE.loss``: the total and its three parts, each a mean over the batch (nats / squared units)."""
    total: Tensor
    reconstruction: Tensor
    codebook: Tensor
    commitment: Tensor


class ResidualStack(Module):
    """``n_blocks`` residual blocks x + 1x1(ReLU(3x3(ReLU(x)))) (bottleneck ``channels // 2``)."""

    def __init__(self, channels, n_blocks):
        super().__init__()
        mid = max(1, channels // 2)
        self.blocks = Sequential(*[Sequential(ReLU(), Conv2d(channels, mid, 3, padding=1), ReLU(),
                                              Conv2d(mid, channels, 1))
                                   for _ in range(n_blocks)])

    def forward(self, x):
        for block in self.blocks:
            x = x + block(x)
        return x


def code_grid_shape(image_shape, n_downsample, model="VQ-VAE"):
    """(H / 2^n, W / 2^n): the code grid after ``n_downsample`` stride-2 convolutions, with a
    clear error when the image size is not a multiple of 2^n. Shared by the VQ-VAE and VQ-VAE-2."""
    H, W = image_shape[-2:]
    f = 2 ** n_downsample
    if H % f or W % f:
        raise ValueError(f"images of size {H}x{W} do not fit this {model}: with n_downsample="
                         f"{n_downsample} height and width must be multiples of {f}")
    return H // f, W // f


def checked_unit_images(x, in_channels, device, dtype):
    """``x`` as a tensor (N, in_channels, H, W) of ``dtype`` on ``device`` holding finite
    intensities in [0, 1] (the Bernoulli decoder's targets); clear errors otherwise. Shared by
    the VQ-VAE and VQ-VAE-2."""
    data = backend.to_device(numeric_array(x, "x"), device)
    if data.ndim != 4 or data.shape[1] != in_channels or min(data.shape) == 0:
        raise ValueError(f"x must have shape (N, {in_channels}, H, W) with N, H, W >= 1, "
                         f"got {tuple(data.shape)}")
    xp = backend.get_array_module(data)
    if not bool(xp.isfinite(data).all()):
        raise ValueError(f"x must hold finite intensities in [0, 1], got {int(xp.isnan(data).sum())} "
                         f"NaN and {int(xp.isinf(data).sum())} infinite entries")
    if not bool(((data >= 0) & (data <= 1)).all()):
        raise ValueError(f"x must hold intensities in [0, 1] (the Bernoulli decoder's targets), "
                         f"got values in [{float(data.min())}, {float(data.max())}]")
    if isinstance(x, Tensor) and data is x.data and data.dtype == dtype:
        return x
    return Tensor(data.astype(dtype, copy=False))


class VQVAE(Module):
    """VQ-VAE for images (N, ``in_channels``, H, W) in [0, 1], H and W divisible by 2^n_downsample.

    ``hidden_channels`` wide convolutions, a codebook of ``num_embeddings`` (K) vectors of size
    ``embedding_dim`` (D), ``beta`` the commitment weight; ``ema``/``decay`` as in VectorQuantizer.
    ``forward`` raises NotImplementedError (see the module docstring).
    """

    def __init__(self, in_channels=1, hidden_channels=64, num_embeddings=64, embedding_dim=16,
                 n_downsample=2, n_residual=2, beta=0.25, ema=False, decay=0.99):
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", minimum=1)
        self.n_downsample = check_int(n_downsample, "n_downsample", minimum=1)
        h = check_int(hidden_channels, "hidden_channels", minimum=1)
        n_residual = check_int(n_residual, "n_residual", minimum=0)
        check_int(num_embeddings, "num_embeddings", minimum=1)
        check_int(embedding_dim, "embedding_dim", minimum=1)
        down = [Conv2d(in_channels if i == 0 else h, h, 4, stride=2, padding=1) for i in range(n_downsample)]
        self.encoder = Sequential(*[m for conv in down for m in (conv, ReLU())],
                                  Conv2d(h, h, 3, padding=1), ResidualStack(h, n_residual), ReLU(),
                                  Conv2d(h, embedding_dim, 1))
        self.quantizer = VectorQuantizer(num_embeddings, embedding_dim, beta=beta, ema=ema, decay=decay)
        up = [ConvTranspose2d(h, in_channels if i == n_downsample - 1 else h, 4, stride=2, padding=1)
              for i in range(n_downsample)]
        self.decoder = Sequential(Conv2d(embedding_dim, h, 3, padding=1), ResidualStack(h, n_residual),
                                  *[m for conv in up for m in (ReLU(), conv)])

    @property
    def num_embeddings(self):
        return self.quantizer.num_embeddings

    def latent_shape(self, image_shape):
        """(h, w) of the code grid for images of spatial size ``image_shape`` = (H, W)."""
        return code_grid_shape(image_shape, self.n_downsample, "VQ-VAE")

    def check_x(self, x):
        """``x`` as a float tensor (N, C, H, W) with values in [0, 1] and a valid size: a Tensor,
        an array or a nested list; None, strings and ragged lists are refused by name."""
        x = checked_unit_images(x, self.in_channels, self.device, next(self.parameters()).dtype)
        self.latent_shape(x.shape)
        return x

    def _check_codes(self, codes, shape=None):
        data = numeric_array(codes, "codes")
        if data.ndim != 3:
            raise ValueError(f"codes must be a grid of shape (N, h, w), got shape {tuple(data.shape)}")
        return self.quantizer.check_codes(data, shape)

    # -- the model
    def loss(self, x, codes=None):
        """``VQVAELoss(total, reconstruction, codebook, commitment)`` for a batch ``x``.

        ``codes`` (N, h, w) holds the code assignment fixed instead of the nearest codes (gradcheck).
        """
        x = self.check_x(x)
        N = x.shape[0]
        if codes is not None:
            codes = self._check_codes(codes, (N,) + self.latent_shape(x.shape))
        z_q, _, codebook_loss, commitment_loss = self.quantizer(self.encoder(x), codes)
        reconstruction = F.binary_cross_entropy_with_logits(self.decoder(z_q), x, reduction="sum") / N
        return VQVAELoss(reconstruction + codebook_loss + commitment_loss, reconstruction,
                         codebook_loss, commitment_loss)

    def encode(self, x):
        """The integer code grid (N, h, w) of images ``x`` (no side effects on the monitors)."""
        with no_grad():
            return Tensor(self.quantizer.nearest(self.encoder(self.check_x(x))))

    def decode_codes(self, codes):
        """Images (N, C, H, W): the decoder's Bernoulli means sigmoid(decoder(e_k)) for ``codes``."""
        codes = self._check_codes(codes)
        with no_grad():
            return F.sigmoid(self.decoder(self.quantizer.lookup(codes)))

    def reconstruct(self, x):
        """decode_codes(encode(x)): the images as the discrete bottleneck lets them through."""
        return self.decode_codes(self.encode(x))

    def sample(self, n, prior, latent_shape, temperature=1.0, generator=None):
        """Two-stage sampling: ``n`` code grids k ~ ``prior`` (a one-channel PixelCNN over K values)
        of ``latent_shape`` (h, w), decoded to Bernoulli means (n, C, H, W). Randomness only from
        ``generator`` (None: minigen's global generator, an int: a new seeded one)."""
        if getattr(prior, "n_values", None) != self.num_embeddings or prior.in_channels != 1:
            raise ValueError(f"the prior must be a one-channel PixelCNN with n_values = "
                             f"num_embeddings = {self.num_embeddings}, got {type(prior).__name__} "
                             f"with n_values={getattr(prior, 'n_values', None)}")
        codes = prior.sample(n, latent_shape, temperature=temperature, generator=generator)
        return self.decode_codes(codes.data[:, 0])
