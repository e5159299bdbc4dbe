"""``GroupNorm`` (Wu & He 2018), with PyTorch's name, arguments and parameters."""
from .. import functional as F
from . import init
from ..validation import check_positive_int
from .module import Module, empty_parameter

__all__ = ["GroupNorm"]


class GroupNorm(Module):
    """Standardise each sample over groups of ``num_channels // num_groups`` channels (and all
    positions), then weight[c] * x_hat + bias[c] per channel (ones and zeros at init).

    See ``minigen.ops.group_norm`` for the equations. Input (N, C, ...) with C = num_channels.
    """

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None, dtype=None):
        super().__init__()
        check_positive_int("GroupNorm", "num_groups", num_groups)
        check_positive_int("GroupNorm", "num_channels", num_channels)
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by "
                             f"num_groups ({num_groups})")
        self.num_groups, self.num_channels, self.eps = num_groups, num_channels, eps
        self.weight = self.bias = None
        if affine:
            self.weight = init.ones_(empty_parameter((num_channels,), device, dtype))
            self.bias = init.zeros_(empty_parameter((num_channels,), device, dtype))

    def forward(self, x):
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm: expected an input (N, {self.num_channels}, ...), got "
                             f"shape {tuple(x.shape)}")
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
