"""``SiLU``: x * sigmoid(x) (PyTorch's name; "swish" in the DDPM paper)."""
from .. import functional as F
from .module import Module

__all__ = ["SiLU"]


class SiLU(Module):
    """x * sigmoid(x), elementwise."""

    def forward(self, x):
        return F.silu(x)
