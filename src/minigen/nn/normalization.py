"""Normalisation layers: ``LayerNorm``, ``BatchNorm1d``, ``BatchNorm2d`` (PyTorch's names and buffers)."""
from .. import backend
from .. import functional as F
from . import init
from ..validation import check_positive_int
from .module import Module, empty_parameter

__all__ = ["LayerNorm", "BatchNorm1d", "BatchNorm2d"]


class LayerNorm(Module):
    """Standardise over the trailing ``normalized_shape`` axes, then weight * x_hat + bias (ones, zeros at init)."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, device=None, dtype=None):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.weight = self.bias = None
        if elementwise_affine:
            self.weight = init.ones_(empty_parameter(shape, device, dtype))
            self.bias = init.zeros_(empty_parameter(shape, device, dtype))

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


class _BatchNorm(Module):
    """Per-channel batch normalisation; ``running_mean``/``running_var`` are buffers.

    Training mode: batch statistics, and (with track_running_stats) the running averages move by
    ``momentum`` towards them (unbiased variance). Eval mode: the running averages are used.
    """

    input_dims = ()  # allowed input ndims, set by subclasses

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 device=None, dtype=None):
        super().__init__()
        check_positive_int(type(self).__name__, "num_features", num_features)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = self.bias = None
        if affine:
            self.weight = init.ones_(empty_parameter((num_features,), device, dtype))
            self.bias = init.zeros_(empty_parameter((num_features,), device, dtype))
        running_mean = running_var = None
        if track_running_stats:
            xp = backend.array_module_for(backend.default_device() if device is None else device)
            running_mean = xp.zeros(num_features, dtype="float32" if dtype is None else dtype)
            running_var = xp.ones(num_features, dtype="float32" if dtype is None else dtype)
        self.register_buffer("running_mean", running_mean)
        self.register_buffer("running_var", running_var)

    def forward(self, x):
        name = type(self).__name__
        if x.ndim not in self.input_dims:
            raise ValueError(f"{name}: expected a {' or '.join(f'{d}-D' for d in self.input_dims)} "
                             f"input, got shape {tuple(x.shape)}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{name}: expected {self.num_features} channels, got {x.shape[1]} "
                             f"(input shape {tuple(x.shape)})")
        use_batch_stats = self.training or self.running_mean is None
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            use_batch_stats, self.momentum, self.eps)


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L) inputs."""

    input_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W) inputs: statistics per channel over N, H and W."""

    input_dims = (4,)
