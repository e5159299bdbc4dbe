"""The sinusoidal timestep embedding of a diffusion denoiser (Ho et al. 2020, Sec. 4 and
Appendix B: "diffusion time t is specified by adding the Transformer sinusoidal position
embedding"; Vaswani et al. 2017, Sec. 3.5)::

    f_k = max_period ** (-k / h),   k = 0..h-1,   h = dim / 2
    emb(t) = [sin(t f_0), ..., sin(t f_{h-1}), cos(t f_0), ..., cos(t f_{h-1})]

(sines first, then cosines, as in Ho et al.'s code; Vaswani et al. interleave them, which only
permutes the features). Frequencies run geometrically from 1 down to about 1 / max_period, so
nearby steps get similar codes and every step up to ~max_period gets a distinct one.
``t`` may be integer steps (a constant) or real times; for real t the embedding is
differentiable in t:  d emb / dt = [f cos(t f), -f sin(t f)].
"""
from ..autograd import Function
from ..backend import get_array_module

__all__ = ["timestep_embedding"]


class TimestepEmbedding(Function):
    def __init__(self, dim, max_period):
        self.dim, self.max_period = dim, max_period

    def forward(self, t):
        xp = get_array_module(t)
        dtype = t.dtype if t.dtype.kind == "f" else xp.float32
        h = self.dim // 2
        self.freqs = (float(self.max_period) ** (-xp.arange(h, dtype=xp.float64) / h)).astype(dtype)
        angle = t.astype(dtype, copy=False)[..., None] * self.freqs
        self.sin, self.cos = xp.sin(angle), xp.cos(angle)
        return xp.concatenate([self.sin, self.cos], axis=-1)

    def backward(self, g):
        h = self.dim // 2
        return (g[..., :h] * self.cos - g[..., h:] * self.sin) @ self.freqs


def timestep_embedding(t, dim, max_period=10000.0):
    """Sinusoidal embedding (..., dim) of timesteps ``t`` (...): integers or reals; ``dim`` even."""
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2 or dim % 2:
        raise ValueError(f"timestep_embedding: dim must be an even integer >= 2, got {dim!r}")
    if not max_period > 1:
        raise ValueError(f"timestep_embedding: max_period must be > 1, got {max_period!r}")
    return TimestepEmbedding(dim, max_period)(t)
