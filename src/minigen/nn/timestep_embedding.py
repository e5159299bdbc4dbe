"""``SinusoidalTimestepEmbedding``: diffusion steps t -> fixed sinusoidal codes (no parameters)."""
from .. import functional as F
from ..autograd import Tensor
from ..validation import check_float, check_int
from .module import Module

__all__ = ["SinusoidalTimestepEmbedding"]


class SinusoidalTimestepEmbedding(Module):
    """t (N,) (integers or reals) -> (N, dim): sines then cosines of t at geometric frequencies
    from 1 down to 1 / max_period (Ho et al. 2020, Appendix B; see ``minigen.ops.timestep_embedding``).

    Integer steps come back as float32; a float tensor keeps its dtype.
    """

    def __init__(self, dim, max_period=10000.0):
        super().__init__()
        self.dim = check_int(dim, "dim", minimum=2)
        if self.dim % 2:
            raise ValueError(f"SinusoidalTimestepEmbedding: dim must be even, got {dim}")
        self.max_period = check_float(max_period, "max_period", minimum=1.0, strict=True)

    def forward(self, t):
        return F.timestep_embedding(t if isinstance(t, Tensor) else Tensor(t), self.dim, self.max_period)
