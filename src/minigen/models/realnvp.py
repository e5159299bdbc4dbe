"""RealNVP: density estimation with real-valued non-volume-preserving transforms (Dinh,
Sohl-Dickstein & Bengio 2017); deck 003, normalizing flows.

Density direction (image x in [0, 1]^(C x S x S) to a code z of the same shape), their Sec. 3-4::

    y = logit(alpha + (1 - 2 alpha) x)                                     (Sec. 4.1)
    per scale: 3 affine couplings with checkerboard masks (alternating), squeeze (C, S, S) ->
               (4C, S/2, S/2), 3 couplings with channel masks (alternating), then factor out
               half of the channels: they are final codes; the other half goes to the next scale
    last scale: 4 checkerboard couplings                                    (Sec. 3.6, Fig. 4)

    log p(x) = sum over all codes of log N(z; 0, 1) + sum of every layer's log |det|  (Eq. 3)

The factored-out codes are put back where they came from (concatenated on the channels and
un-squeezed), so the whole model is one bijection x <-> z of one shape, with a standard
Normal base: ``RealNVP`` is a ``minigen.flows.Flow``, sampled by drawing z and running it
forwards. ``forward(x)`` returns ``log_prob(x)``.

Couplings: z = b x + (1 - b)(x exp(s) + t), s = scale * tanh(.) (``AffineCoupling``), each
with a 3x3-conv ResNet of ``n_blocks`` blocks and ``hidden_channels`` features. Where minigen
departs from the paper: no batch normalisation and no weight normalisation (the bounded scale
and zero-initialised last layers keep training stable on small images), ReLU ResNets of the
stated size instead of the paper's 8 blocks of 64 features.
"""
from ..flows import AffineCoupling, Flow, Logit, Sequential, Squeeze, Transform, channel_mask
from ..flows import checkerboard_mask
from .. import functional as F
from ..validation import check_int

__all__ = ["RealNVP"]


def _couplings(masks, hidden_channels, n_blocks):
    """Couplings listed in the density order (data side first), as a noise-to-data Sequential."""
    layers = [AffineCoupling(m, hidden_channels=hidden_channels, n_blocks=n_blocks) for m in masks]
    return Sequential(*reversed(layers))


class MultiScale(Transform):
    """One scale of RealNVP and, recursively, the ones below it: a bijection on (C, S, S)."""

    def __init__(self, channels, size, n_scales, hidden_channels, n_blocks):
        super().__init__()
        self.event_shape = (channels, size, size)
        board = [checkerboard_mask((channels, size, size), k % 2) for k in range(4)]
        if n_scales == 1:
            self.inner = None
            self.board = _couplings(board, hidden_channels, n_blocks)
            return
        self.board = _couplings(board[:3], hidden_channels, n_blocks)
        self.squeeze = Squeeze()
        self.channel = _couplings([channel_mask(4 * channels, k % 2) for k in range(3)],
                                  hidden_channels, n_blocks)
        self.inner = MultiScale(2 * channels, size // 2, n_scales - 1, hidden_channels, n_blocks)

    def inverse(self, x):
        h, log_det = self.board.inverse(x)
        if self.inner is None:
            return h, log_det
        h, _ = self.squeeze.inverse(h)
        h, ld = self.channel.inverse(h)
        kept, rest = F.split(h, 2, axis=1)           # factor out half of the channels
        rest, ld_inner = self.inner.inverse(rest)
        z, _ = self.squeeze(F.concatenate([kept, rest], axis=1))
        return z, log_det + ld + ld_inner

    def forward(self, z):
        if self.inner is None:
            return self.board(z)
        h, _ = self.squeeze.inverse(z)
        kept, rest = F.split(h, 2, axis=1)
        rest, ld_inner = self.inner(rest)
        h, ld = self.channel(F.concatenate([kept, rest], axis=1))
        h, _ = self.squeeze(h)
        x, log_det = self.board(h)
        return x, log_det + ld + ld_inner


class RealNVP(Flow):
    """RealNVP for images (N, in_channels, image_size, image_size) in [0, 1] (module docstring).

    ``image_size`` must be divisible by 2 ** (n_scales - 1) and leave at least 2 x 2 pixels
    for the last scale. ``loss(x)``: mean -log p(x) of dequantised data; ``bits_per_dim(x)``:
    of 8-bit data, dequantised inside, the logit's Jacobian counted.
    """

    def __init__(self, in_channels, image_size, n_scales=2, n_blocks=1, hidden_channels=32,
                 logit_alpha=0.05):
        in_channels = check_int(in_channels, "in_channels", minimum=1)
        image_size = check_int(image_size, "image_size", minimum=2)
        n_scales = check_int(n_scales, "n_scales", minimum=1)
        n_blocks = check_int(n_blocks, "n_blocks", minimum=0)
        hidden_channels = check_int(hidden_channels, "hidden_channels", minimum=1)
        last = image_size // 2 ** (n_scales - 1)
        if image_size % 2 ** (n_scales - 1) or last < 2:
            raise ValueError(f"RealNVP: image_size ({image_size}) must be divisible by 2 ** (n_scales - 1)"
                             f" = {2 ** (n_scales - 1)} with at least 2 pixels left per side for the "
                             f"last scale; use fewer scales")
        scales = MultiScale(in_channels, image_size, n_scales, hidden_channels, n_blocks)
        super().__init__(Sequential(scales, Logit(logit_alpha)))
        self.in_channels, self.image_size, self.n_scales = in_channels, image_size, n_scales
        self.n_blocks, self.hidden_channels, self.logit_alpha = n_blocks, hidden_channels, logit_alpha
