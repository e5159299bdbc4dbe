"""Convolution layers: ``Conv2d``, ``ConvTranspose2d`` (PyTorch's layouts and default init) and
PixelCNN's ``MaskedConv2d``."""
import math

import numpy

from .. import backend
from .. import functional as F
from ..ops.conv import pair
from . import init
from ..validation import check_channels, check_int, check_positive_int
from .module import Module, empty_parameter

__all__ = ["Conv2d", "ConvTranspose2d", "MaskedConv2d", "pixelcnn_mask"]


class _ConvNd(Module):
    """Shared constructor: sizes, weight of ``weight_shape``, bias, PyTorch's default init."""

    def __init__(self, name, in_channels, out_channels, kernel_size, weight_shape, bias,
                 device, dtype, generator):
        super().__init__()
        check_positive_int(name, "in_channels", in_channels)
        check_positive_int(name, "out_channels", out_channels)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = pair(kernel_size, f"{name}: kernel_size")
        for k in self.kernel_size:
            check_int(k, f"{name}: kernel_size", minimum=1)
        self.weight = empty_parameter(weight_shape + self.kernel_size, device, dtype)
        self.bias = empty_parameter((out_channels,), device, dtype) if bias else None
        self.reset_parameters(generator)

    def reset_parameters(self, generator=None):
        """W ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform_, a = sqrt(5)), b likewise.

        fan_in = weight.shape[1] * kh * kw, as PyTorch computes it for both layouts.
        """
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=generator)
        if self.bias is not None:
            bound = 1 / math.sqrt(self.weight.shape[1] * self.kernel_size[0] * self.kernel_size[1])
            init.uniform_(self.bias, -bound, bound, generator=generator)


class Conv2d(_ConvNd):
    """2-D convolution (cross-correlation), weight (out_channels, in_channels, kh, kw), as in PyTorch."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 bias=True, device=None, dtype=None, generator=None):
        super().__init__("Conv2d", in_channels, out_channels, kernel_size,
                         (out_channels, in_channels), bias, device, dtype, generator)
        self.stride, self.padding, self.dilation = stride, padding, dilation

    def forward(self, x):
        check_channels(type(self).__name__, x, self.in_channels)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)


class ConvTranspose2d(_ConvNd):
    """Transposed convolution, weight (in_channels, out_channels, kh, kw), as in PyTorch."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 bias=True, dilation=1, device=None, dtype=None, generator=None):
        super().__init__("ConvTranspose2d", in_channels, out_channels, kernel_size,
                         (in_channels, out_channels), bias, device, dtype, generator)
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.output_padding = output_padding

    def forward(self, x):
        check_channels("ConvTranspose2d", x, self.in_channels)
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                  self.output_padding, self.dilation)


def pixelcnn_mask(out_channels, in_channels, kernel_size, mask_type, channel_groups=1):
    """The 0/1 mask (out_channels, in_channels, kh, kw) of a PixelCNN convolution.

    Pixels are generated in raster order, so an output pixel may see input pixels above it and to
    its left (mask 1) but none to its right or below (mask 0). At the centre pixel itself
    (van den Oord et al. 2016, "Pixel Recurrent Neural Networks", section 3.4) the channels are
    split into ``channel_groups`` consecutive groups (R, G, B for 3): output group k sees input
    groups l < k under type "A" (first layer: a pixel never sees itself) and l <= k under type
    "B" (later layers). With one group, type A masks the centre out and type B keeps it.
    """
    if mask_type not in ("A", "B"):
        raise ValueError(f"MaskedConv2d: mask_type must be 'A' or 'B', got {mask_type!r}")
    kh, kw = pair(kernel_size, "kernel_size")
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"MaskedConv2d: kernel_size must be odd so that it has a centre pixel, "
                         f"got {(kh, kw)}")
    check_int(channel_groups, "MaskedConv2d: channel_groups", minimum=1)
    for name, n in (("in_channels", in_channels), ("out_channels", out_channels)):
        if n % channel_groups:
            raise ValueError(f"MaskedConv2d: {name} ({n}) must be divisible by channel_groups "
                             f"({channel_groups})")
    ch, cw = kh // 2, kw // 2
    mask = numpy.zeros((out_channels, in_channels, kh, kw))
    mask[:, :, :ch, :] = 1  # rows above the centre
    mask[:, :, ch, :cw] = 1  # left of the centre, same row
    out_group = numpy.arange(out_channels) // (out_channels // channel_groups)
    in_group = numpy.arange(in_channels) // (in_channels // channel_groups)
    if mask_type == "A":
        mask[:, :, ch, cw] = in_group[None, :] < out_group[:, None]
    else:
        mask[:, :, ch, cw] = in_group[None, :] <= out_group[:, None]
    return mask


class MaskedConv2d(Conv2d):
    """PixelCNN's causal convolution: conv2d with weight * mask (see ``pixelcnn_mask``).

    ``mask`` is a buffer (saved in the state dict, not trained); since the layer uses
    W * mask, the weight's gradient is zero wherever the mask is. Stride 1 only, so output
    pixel i sits on input pixel i; ``padding`` defaults to dilation * (k // 2), which keeps
    the image size. Stack one type-"A" layer, then type-"B" layers.
    """

    def __init__(self, in_channels, out_channels, kernel_size, mask_type="A", padding=None,
                 dilation=1, bias=True, channel_groups=1, device=None, dtype=None, generator=None):
        mask = pixelcnn_mask(out_channels, in_channels, kernel_size, mask_type, channel_groups)
        kernel = pair(kernel_size, "kernel_size")
        dilation_hw = pair(dilation, "dilation")
        if padding is None:
            padding = tuple(d * (k // 2) for d, k in zip(dilation_hw, kernel))
        super().__init__(in_channels, out_channels, kernel, 1, padding, dilation, bias,
                         device, dtype, generator)
        self.mask_type, self.channel_groups = mask_type, channel_groups
        xp = backend.get_array_module(self.weight)
        self.register_buffer("mask", xp.asarray(mask, dtype=self.weight.dtype))

    def forward(self, x, relu_input=False):
        """conv2d(x, W * mask) computed over the mask's live taps only (``F.masked_conv2d``);
        ``relu_input=True``: conv2d(relu(x), W * mask) with the ReLU fused (the graph keeps x,
        not relu(x))."""
        check_channels("MaskedConv2d", x, self.in_channels)
        return F.masked_conv2d(x, self.weight, self.mask, self.bias, self.padding, self.dilation,
                               relu_input)

    def reference(self, x, relu_input=False):
        """The plain path forward must agree with (tested): conv2d with W * mask, every tap."""
        check_channels("MaskedConv2d", x, self.in_channels)
        x = F.relu(x) if relu_input else x
        return F.conv2d(x, self.weight * self.mask, self.bias, 1, self.padding, self.dilation)
