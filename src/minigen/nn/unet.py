"""``UNet``: the U-Net of Ronneberger, Fischer & Brox (2015), optionally conditioned on a
diffusion timestep as the DDPM denoiser (Ho, Jain & Abbeel 2020). Lecture deck 000, "U-Net".

Contracting path (deck 000; the paper's Fig. 1): ``depth`` times, a block of two 3x3
convolutions, each followed by a ReLU, then 2x2 max-pooling with stride 2; the channels double
at every level (base_channels, 2 base_channels, ..., 2^depth base_channels at the bottom block).
Expanding path: ``depth`` times, a 2x2 up-convolution (transposed convolution, stride 2) that
halves the channels, concatenation with the contracting path's features of that level (the skip
connection), and a block of two 3x3 convolutions with ReLUs. A final 1x1 convolution maps to
``out_channels`` per pixel.

Where minigen departs from the 2015 paper: its convolutions are unpadded, so the output is
smaller than the input and the skip features are cropped; here every 3x3 convolution has
padding 1, so **the output has the input's spatial size** (H, W). For sizes not divisible by
2^depth, pooling rounds down and the up-convolution's output is zero-padded at its bottom/right
to the skip's size. Inputs need H, W >= 2^depth.

With ``time_embedding_dim`` (the DDPM denoiser, Ho et al. 2020, Appendix B): t is embedded by
the sinusoidal code (``SinusoidalTimestepEmbedding``) followed by Linear-SiLU-Linear, and in
every block a linear projection of SiLU(embedding) is added to each channel after the first
convolution. As in their network, those blocks use GroupNorm (Wu & He 2018) after each
convolution and SiLU ("swish") instead of ReLU. Without it, the blocks are exactly the
lecture's conv-ReLU-conv-ReLU.
"""
import math

import numpy

from .. import backend
from .. import functional as F
from ..autograd import Tensor
from ..validation import check_int
from .container import ModuleList, Sequential
from .conv import Conv2d, ConvTranspose2d, check_channels
from .group_norm import GroupNorm
from .linear import Linear
from .silu import SiLU
from .timestep_embedding import SinusoidalTimestepEmbedding
from .module import Module

__all__ = ["UNet"]


class UNetBlock(Module):
    """Two 3x3 convolutions (padding 1), each followed by ReLU; with a timestep embedding:
    conv-GroupNorm-SiLU, + Linear(SiLU(temb)) per channel, conv-GroupNorm-SiLU."""

    def __init__(self, in_channels, out_channels, time_embedding_dim=None):
        super().__init__()
        self.conv1 = Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv2 = Conv2d(out_channels, out_channels, 3, padding=1)
        self.conditioned = time_embedding_dim is not None
        if self.conditioned:
            groups = math.gcd(out_channels, 8)
            self.norm1, self.norm2 = GroupNorm(groups, out_channels), GroupNorm(groups, out_channels)
            self.time_proj = Linear(time_embedding_dim, out_channels)

    def forward(self, x, temb=None):
        if not self.conditioned:
            return F.relu(self.conv2(F.relu(self.conv1(x))))
        h = F.silu(self.norm1(self.conv1(x)))
        h = h + self.time_proj(F.silu(temb)).reshape(temb.shape[0], -1, 1, 1)
        return F.silu(self.norm2(self.conv2(h)))


class UNet(Module):
    """U-Net for per-pixel prediction: ``forward(x, t=None)`` returns (N, out_channels, H, W)
    for x (N, in_channels, H, W): the output has the input's size (padded convolutions).

    ``depth`` is the number of 2x2 poolings (the paper's network has 4); ``t`` (N,) (integer
    steps, or one step for the whole batch) is required with ``time_embedding_dim`` and refused
    without it. See the module docstring for the structure.
    """

    def __init__(self, in_channels, out_channels, base_channels=32, depth=2, time_embedding_dim=None):
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", minimum=1)
        self.out_channels = check_int(out_channels, "out_channels", minimum=1)
        self.base_channels = check_int(base_channels, "base_channels", minimum=1)
        self.depth = check_int(depth, "depth", minimum=0)
        self.time_embedding_dim = time_embedding_dim
        temb_dim = None
        if time_embedding_dim is not None:
            temb_dim = check_int(time_embedding_dim, "time_embedding_dim", minimum=2)
            if temb_dim % 2:
                raise ValueError(f"UNet: time_embedding_dim must be even, got {temb_dim}")
            self.time_mlp = Sequential(SinusoidalTimestepEmbedding(temb_dim), Linear(temb_dim, temb_dim),
                                       SiLU(), Linear(temb_dim, temb_dim))
        channels = [base_channels * 2 ** level for level in range(depth + 1)]
        self.down = ModuleList([UNetBlock(c_in, c_out, temb_dim)
                                for c_in, c_out in zip([in_channels] + channels[:-1], channels)])
        self.up = ModuleList([ConvTranspose2d(channels[level + 1], channels[level], 2, stride=2)
                              for level in reversed(range(depth))])
        self.up_blocks = ModuleList([UNetBlock(2 * channels[level], channels[level], temb_dim)
                                     for level in reversed(range(depth))])
        self.head = Conv2d(channels[0], out_channels, 1)

    def _time_embedding(self, t, n):
        if self.time_embedding_dim is None:
            if t is not None:
                raise ValueError("UNet: this U-Net was built without time_embedding_dim, so it "
                                 "takes no timesteps t; build it with time_embedding_dim=... ")
            return None
        if t is None:
            raise ValueError(f"UNet: this U-Net is conditioned on the timestep "
                             f"(time_embedding_dim={self.time_embedding_dim}): pass t")
        if not isinstance(t, Tensor):
            t = Tensor(backend.to_device(t if hasattr(t, "shape") else numpy.asarray(t), self.device))
        if t.ndim == 0:
            t = Tensor(t.data.reshape(1).repeat(n))
        if t.shape != (n,):
            raise ValueError(f"UNet: expected one timestep per image, t of shape ({n},), got {t.shape}")
        dtype = self.head.weight.dtype
        return self.time_mlp(t if t.dtype == dtype else t.to(dtype=dtype))

    def forward(self, x, t=None):
        check_channels("UNet", x, self.in_channels)
        smallest = 2 ** self.depth
        if min(x.shape[2:]) < smallest:
            raise ValueError(f"UNet: with depth={self.depth} the input must be at least "
                             f"{smallest}x{smallest}, got {x.shape[2]}x{x.shape[3]}")
        temb = self._time_embedding(t, x.shape[0])
        skips, h = [], x
        for level, block in enumerate(self.down):
            if level:
                h = F.max_pool2d(h, 2)
            h = block(h, temb)
            skips.append(h)
        skips.pop()  # the bottom block's output goes up, not across
        for up, block in zip(self.up, self.up_blocks):
            skip = skips.pop()
            h = up(h)
            short_h, short_w = skip.shape[2] - h.shape[2], skip.shape[3] - h.shape[3]
            if short_h or short_w:  # odd sizes: pooling rounded down
                h = F.pad(h, ((0, 0), (0, 0), (0, short_h), (0, short_w)))
            h = block(F.concatenate([skip, h], axis=1), temb)
        return self.head(h)

