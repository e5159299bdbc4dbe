"""``Embedding``: a lookup table of learned vectors, one row per index."""
from .. import functional as F
from . import init
from ..validation import check_positive_int
from .module import Module, empty_parameter

__all__ = ["Embedding"]


class Embedding(Module):
    """weight (num_embeddings, embedding_dim) ~ N(0, 1) as in PyTorch; forward(indices) = weight[indices]."""

    def __init__(self, num_embeddings, embedding_dim, device=None, dtype=None, generator=None):
        super().__init__()
        check_positive_int("Embedding", "num_embeddings", num_embeddings)
        check_positive_int("Embedding", "embedding_dim", embedding_dim)
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = empty_parameter((num_embeddings, embedding_dim), device, dtype)
        init.normal_(self.weight, generator=generator)

    def forward(self, indices):
        return F.embedding(indices, self.weight)
