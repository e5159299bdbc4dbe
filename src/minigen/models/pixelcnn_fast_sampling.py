"""PixelCNN sampling with per-layer activation caches: a new pixel costs the work of one
kernel per layer, not a network pass over an image or a receptive-field window.

Ramachandran et al. (2017), "Fast Generation for Convolutional Autoregressive Models", Sec. 3:
keep every layer's activations of the pixels already generated in a cache; when pixel p is
generated, compute each layer's output at p alone from its cached inputs in the kernel's window
and store it. Lecture deck 002 (PixelCNN sampling is sequential: HW network evaluations).

Why this is exact. Masks only let output p read input positions that come before p in raster
order, or p itself (type B; type A keeps only earlier channel groups of p). So every layer's
activation at p depends on x_{<p} and the channels of x_p already drawn, and once all of x_p is
drawn it never changes: the cache value written at p is the one the full network computes.
Within a pixel the channels are drawn in turn; the column at p is recomputed for each, and the
one computed for the last channel is final (no output group sees its own input group under
mask A). Here the paper's general queue of future positions is not needed: a stride-1 masked
convolution's output at p reads the cache directly (at the live taps of its kernel).

For the plain ``PixelCNN`` the only layers wider than 1x1 are the k x k mask-A input layer and
each residual block's 3x3 mask-B layer, so two kinds of caches suffice: the one-hot image (the
input layer's input) and, per block, ReLU(reduce(ReLU(x))) (the 3x3's input); the 1x1 layers and
the residual additions run on the current pixel's column only. The draws use the same generator
calls in the same order as ``PixelCNN.sample``, so a seed gives the same images (the logits agree
up to float rounding, tested).
"""
from .. import backend
from .. import functional as F
from ..autograd import Tensor, no_grad
from ..distributions import Categorical
from ..ops.masked_conv import live_taps

__all__ = ["sample_cached", "draw_cached"]


def sample_cached(model, n, shape, y=None, cond=None, temperature=1.0, generator=None):
    """``model.sample(n, shape, ...)`` (a plain ``PixelCNN``) by the cached sampler: the same
    arguments, the same images for the same ``generator`` seed, int64 tensor (n, C, H, W)."""
    return model.sample(n, shape, y=y, cond=cond, temperature=temperature, generator=generator,
                        cached=True)


def raw(a):
    return a.data if isinstance(a, Tensor) else a


class PixelKernel:
    """One masked convolution evaluated at a single pixel: its live taps, (W * M) on them, bias."""

    def __init__(self, layer):
        weight, mask = raw(layer.weight), raw(layer.mask)
        taps = live_taps(mask)
        self.rows, self.cols = [i for i, _ in taps], [j for _, j in taps]
        self.weight = (weight * mask)[:, :, self.rows, self.cols]  # (O, C_in, T)
        self.bias = None if layer.bias is None else raw(layer.bias)
        self.kernel, self.dilation, self.padding = layer.kernel_size, layer.dilation, layer.padding

    def padded(self, a):
        """A layer-input map (N, C, H, W) as the padded cache this kernel reads."""
        xp = backend.get_array_module(a)
        (ph, pw), (n, c, h, w) = self.padding, a.shape
        cache = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=a.dtype)
        cache[:, :, ph:ph + h, pw:pw + w] = a
        return cache

    def write(self, cache, r, c, column):
        """Store the input column (N, C) of pixel (r, c) in the padded cache."""
        cache[:, :, r + self.padding[0], c + self.padding[1]] = column

    def at(self, cache, r, c):
        """The layer's output (N, O) at pixel (r, c) from its padded input cache."""
        xp = backend.get_array_module(cache)
        d = self.dilation if isinstance(self.dilation, tuple) else (self.dilation, self.dilation)
        (kh, kw) = self.kernel
        window = cache[:, :, r:r + d[0] * (kh - 1) + 1:d[0], c:c + d[1] * (kw - 1) + 1:d[1]]
        out = xp.tensordot(window[:, :, self.rows, self.cols], self.weight, axes=([1, 2], [1, 2]))
        return out if self.bias is None else out + self.bias


def relu(a):
    return backend.get_array_module(a).maximum(a, 0)


@no_grad()
def draw_cached(model, x, first_row, y, s, temperature, rng):
    """Fill rows first_row.. of the int64 images x (N, C, H, W) in place, pixel by pixel and
    channel by channel, from a plain PixelCNN with caches. ``s``: the conditioning features m(s)
    (N, F, H, W) tensor or None; ``y``: checked labels or None; ``rng``: a generator."""
    from .pixelcnn import PixelCNN, add_conditions  # here: pixelcnn imports this module
    if type(model) is not PixelCNN:
        raise NotImplementedError(f"the cached sampler supports PixelCNN, got {type(model).__name__}")
    xp = backend.get_array_module(x)
    _, C, H, W = x.shape
    V = model.n_values
    first = PixelKernel(model.input_conv)
    convs = [PixelKernel(block.conv) for block in model.blocks]
    points = [PixelKernel(layer) for layer in
              [model.output[1], model.output[3]] + [b.reduce for b in model.blocks]
              + [b.expand for b in model.blocks]]
    out1, out2 = points[:2]
    reduces, expands = points[2:2 + len(convs)], points[2 + len(convs):]

    def extra(a, class_bias, projection):
        """The class and map terms a layer adds to its pre-activation a (N, F, H, W)."""
        return raw(add_conditions(Tensor(xp.zeros_like(raw(a))), y, s, class_bias, projection))

    # Fill the caches (and the condition terms) with one full pass over the image as it is now:
    # every entry before row first_row is then final, and every later one is written before use.
    h = model.one_hot(x)
    image_cache = first.padded(raw(h))
    a = model.input_conv(h)
    conditions = [extra(a, model.input_class_bias, model.input_cond_projection)]
    a = a + conditions[0]
    caches = []
    for block in model.blocks:
        u = F.relu(block.reduce(F.relu(a)))
        caches.append(PixelKernel(block.conv).padded(raw(u)))
        conditions.append(extra(u, block.class_bias, block.cond_projection))
        a = block(a, y, s)
    values = xp.arange(V)

    def pointwise(kernel, column):
        out = column @ kernel.weight[:, :, 0].T
        return out if kernel.bias is None else out + kernel.bias

    def one_hot_pixel(r, c):
        return (x[:, :, r, c, None] == values).reshape(len(x), C * V)

    for r in range(first_row, H):
        for c in range(W):
            for ch in range(C):
                first.write(image_cache, r, c, one_hot_pixel(r, c))  # channels < ch drawn
                stream = first.at(image_cache, r, c) + conditions[0][:, :, r, c]
                for conv, reduce, expand, cache, cond in zip(convs, reduces, expands, caches,
                                                              conditions[1:]):
                    conv.write(cache, r, c, relu(pointwise(reduce, relu(stream))))
                    pre = conv.at(cache, r, c) + cond[:, :, r, c]
                    stream = stream + pointwise(expand, relu(pre))
                out = pointwise(out2, relu(pointwise(out1, relu(stream))))  # (N, C*V)
                logits = Tensor(out[:, ch * V:(ch + 1) * V])
                x[:, ch, r, c] = Categorical(logits=logits / temperature).sample(generator=rng).data
            first.write(image_cache, r, c, one_hot_pixel(r, c))  # the whole pixel drawn
    return x
