"""``Linear`` (y = x W^T + b, PyTorch's layout and default init), ``Identity`` and ``Flatten``."""
import math

from .. import functional as F
from . import init
from ..validation import check_positive_int
from .module import Module, empty_parameter

__all__ = ["Linear", "Identity", "Flatten"]


class Linear(Module):
    """y = x W^T + b with ``weight`` of shape (out_features, in_features), ``bias`` (out_features,).

    Default init as PyTorch: W, b ~ U(-1/sqrt(in_features), 1/sqrt(in_features))
    (kaiming_uniform_ with a = sqrt(5)). float32 on $MINIGEN_DEVICE (or 'cpu') unless
    ``dtype``/``device`` say otherwise; ``generator`` seeds the init (default: the global one).
    """

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None, generator=None):
        super().__init__()
        check_positive_int("Linear", "in_features", in_features)
        check_positive_int("Linear", "out_features", out_features)
        self.in_features, self.out_features = in_features, out_features
        self.weight = empty_parameter((out_features, in_features), device, dtype)
        self.bias = empty_parameter((out_features,), device, dtype) if bias else None
        self.reset_parameters(generator)

    def reset_parameters(self, generator=None):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=generator)
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features)
            init.uniform_(self.bias, -bound, bound, generator=generator)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


class Identity(Module):
    """Returns its input unchanged (a placeholder layer)."""

    def forward(self, x):
        return x


class Flatten(Module):
    """Merge axes ``start_dim`` .. ``end_dim`` into one: (N, C, H, W) -> (N, C*H*W) by default."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        ndim = len(x.shape)
        start, end = self.start_dim % max(ndim, 1), self.end_dim % max(ndim, 1)
        if not (-ndim <= self.start_dim < ndim and -ndim <= self.end_dim < ndim) or start > end:
            raise ValueError(f"Flatten: start_dim={self.start_dim}, end_dim={self.end_dim} do not "
                             f"select a range of axes of an input of shape {tuple(x.shape)}")
        shape = x.shape[:start] + (math.prod(x.shape[start:end + 1]),) + x.shape[end + 1:]
        return F.reshape(x, shape)
