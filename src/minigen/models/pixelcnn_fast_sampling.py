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

For ``GatedPixelCNN`` the horizontal stack runs pixel by pixel from caches of every layer's h
input; the vertical stack at row r reads row r right of the current pixel, so it cannot run per
pixel, but it reaches h only shifted one row down: it runs a whole row at a time once that row is
complete, and its pre-activations wait for the next row's pixels (the paper's row-wise update).
"""
from .. import backend
from .. import functional as F
from ..autograd import Tensor, no_grad
from ..ops.masked_conv import live_taps

__all__ = ["sample_cached", "draw_cached"]


def sample_cached(model, n, shape, y=None, cond=None, temperature=1.0, generator=None):
    """``model.sample(n, shape, ...)`` (``PixelCNN`` or ``GatedPixelCNN``) by the cached sampler: the same
    arguments, the same images for the same ``generator`` seed, int64 tensor (n, C, H, W)."""
    return model.sample(n, shape, y=y, cond=cond, temperature=temperature, generator=generator,
                        cached=True)


def raw(a):
    return a.data if isinstance(a, Tensor) else a


class PixelKernel:
    """One masked convolution evaluated at a single pixel: its live taps, (W * M) on them, bias."""

    def __init__(self, layer):
        weight = raw(layer.weight)
        mask = raw(layer.mask) if hasattr(layer, "mask") else backend.get_array_module(weight).ones_like(weight)
        taps = live_taps(mask)
        self.rows, self.cols = [i for i, _ in taps], [j for _, j in taps]
        live = (weight * mask)[:, :, self.rows, self.cols]  # (O, C_in, T)
        xp = backend.get_array_module(weight)
        self.matrix = xp.ascontiguousarray(live.reshape(live.shape[0], -1).T)  # (C_in*T, O)
        self.bias = None if layer.bias is None else raw(layer.bias)
        self.kernel, self.dilation, self.padding = layer.kernel_size, layer.dilation, layer.padding

    def padded(self, a):
        """A layer-input map (N, C, H, W) as the padded cache this kernel reads."""
        return self.pad(a, self.padding)

    @staticmethod
    def pad(a, padding):
        xp = backend.get_array_module(a)
        (ph, pw), (n, c, h, w) = padding, a.shape
        cache = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=a.dtype)
        cache[:, :, ph:ph + h, pw:pw + w] = a
        return cache

    def write(self, cache, r, c, column):
        """Store the input column (N, C) of pixel (r, c) in the padded cache."""
        cache[:, :, r + self.padding[0], c + self.padding[1]] = column

    def at(self, cache, r, c):
        """The layer's output (N, O) at pixel (r, c) from its padded input cache."""
        d = self.dilation if isinstance(self.dilation, tuple) else (self.dilation, self.dilation)
        (kh, kw) = self.kernel
        window = cache[:, :, r:r + d[0] * (kh - 1) + 1:d[0], c:c + d[1] * (kw - 1) + 1:d[1]]
        return self.apply(window[:, :, self.rows, self.cols].reshape(len(cache), -1))

    def apply(self, live_inputs):
        """(N, C_in*T) inputs at the live taps -> the output (N, O)."""
        out = live_inputs @ self.matrix
        return out if self.bias is None else out + self.bias


def relu(a):
    return backend.get_array_module(a).maximum(a, 0)


def pointwise(kernel, column):
    """A 1x1 convolution at one pixel: column (N, C_in) -> (N, O)."""
    return kernel.apply(column)


def condition_terms(a, y, s, class_bias, projection):
    """The class and map terms a layer adds to its pre-activation a (N, F, H, W), as an array."""
    from .pixelcnn import add_conditions  # here: pixelcnn imports this module
    xp = backend.get_array_module(raw(a))
    return raw(add_conditions(Tensor(xp.zeros_like(raw(a))), y, s, class_bias, projection))


def draw_pixel_channel(model, x, r, c, ch, out, temperature, rng):
    """Draw x[:, ch, r, c] from the network's output column out (N, C*P) at pixel (r, c)."""
    P = model.n_outputs  # V logits, or a mixture's 3K parameters
    params = Tensor(out[:, ch * P:(ch + 1) * P])
    x[:, ch, r, c] = model.pixel_distribution(params, temperature).sample(generator=rng).data


@no_grad()
def draw_cached(model, x, first_row, y, s, temperature, rng):
    """Fill rows first_row.. of the int64 images x (N, C, H, W) in place, pixel by pixel and
    channel by channel, from a PixelCNN or GatedPixelCNN with caches. ``s``: the conditioning
    features m(s) (N, F, H, W) tensor or None; ``y``: checked labels or None; ``rng``: a generator."""
    from .pixelcnn import GatedPixelCNN, PixelCNN  # here: pixelcnn imports this module
    draw = {PixelCNN: draw_pixelcnn, GatedPixelCNN: draw_gated}.get(type(model))
    if draw is None:
        raise NotImplementedError(f"the cached sampler supports PixelCNN and GatedPixelCNN, got "
                                  f"{type(model).__name__}")
    return draw(model, x, first_row, y, s, temperature, rng)


def draw_pixelcnn(model, x, first_row, y, s, temperature, rng):
    """The plain PixelCNN: caches of the one-hot image and of every block's 3x3 input."""
    xp = backend.get_array_module(x)
    _, C, H, W = x.shape
    V = model.n_values
    first = PixelKernel(model.input_conv)
    convs = [PixelKernel(block.conv) for block in model.blocks]
    reduces = [PixelKernel(block.reduce) for block in model.blocks]
    expands = [PixelKernel(block.expand) for block in model.blocks]
    out1, out2 = PixelKernel(model.output[1]), PixelKernel(model.output[3])

    # Fill the caches (and the condition terms) with one full pass over the image as it is now:
    # every entry before row first_row is then final, and every later one is written before use.
    h = model.one_hot(x)
    image_cache = first.padded(raw(h))
    a = model.input_conv(h)
    conditions = [condition_terms(a, y, s, model.input_class_bias, model.input_cond_projection)]
    a = a + conditions[0]
    caches = []
    for block, conv in zip(model.blocks, convs):
        u = F.relu(block.reduce(F.relu(a)))
        caches.append(conv.padded(raw(u)))
        conditions.append(condition_terms(u, y, s, block.class_bias, block.cond_projection))
        a = block(a, y, s)
    values = xp.arange(V)

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
                draw_pixel_channel(model, x, r, c, ch, out, temperature, rng)
            first.write(image_cache, r, c, one_hot_pixel(r, c))  # the whole pixel drawn
    return x


def draw_gated(model, x, first_row, y, s, temperature, rng):
    """The Gated PixelCNN. The horizontal stack is causal pixel by pixel and runs per pixel from
    caches of each layer's h input; the vertical stack at row r reads row r to the right of the
    current pixel, and enters h only shifted one row down, so it is computed a whole row at a
    time, once row r is complete (its pre-activations kept for the next row's pixels)."""
    from .pixelcnn import gate, shift_down
    xp = backend.get_array_module(x)
    _, C, H, W = x.shape
    V, G = model.n_values, model.in_channels
    layers = model.layers
    horizontal = [PixelKernel(layer.horizontal) for layer in layers]
    to_h = [PixelKernel(layer.vertical_to_horizontal) for layer in layers]
    h_out = [PixelKernel(layer.horizontal_out) for layer in layers]
    out1, out2 = PixelKernel(model.output[1]), PixelKernel(model.output[3])

    def gate_column(a):
        return raw(gate(Tensor(a[:, :, None, None]), G))[:, :, 0, 0]

    # Caches from one full pass over the image as it is now (see draw_pixelcnn): padded inputs of
    # every layer's vertical (v_pad) and horizontal (h_cache) convolution, the vertical
    # pre-activations shifted one row down (v_above), and the condition terms.
    v = h = model.one_hot(x)
    v_pad, h_cache, v_above, cond_v, cond_h = [], [], [], [], []
    for layer, hk in zip(layers, horizontal):
        (pv, pw) = layer.vertical.padding
        v_pad.append(PixelKernel.pad(raw(v), (pv, pw)))
        h_cache.append(hk.padded(raw(h)))
        v_pre = layer.vertical(v)[:, :, :H]
        v_above.append(raw(shift_down(v_pre)).copy())
        cond_v.append(condition_terms(v_pre, y, s, layer.class_v, layer.cond_v))
        cond_h.append(condition_terms(v_pre, y, s, layer.class_h, layer.cond_h))
        v, h = layer(v, h, y, s)
    values = xp.arange(V)

    def one_hot_pixel(r, c):
        return (x[:, :, r, c, None] == values).reshape(len(x), C * V)

    for r in range(first_row, H):
        for c in range(W):
            for ch in range(C):
                stream = one_hot_pixel(r, c)  # channels < ch drawn
                for l, layer in enumerate(layers):
                    horizontal[l].write(h_cache[l], r, c, stream)
                    pre = (horizontal[l].at(h_cache[l], r, c) + pointwise(to_h[l], v_above[l][:, :, r, c])
                           + cond_h[l][:, :, r, c])
                    out = pointwise(h_out[l], gate_column(pre))
                    stream = out if layer.first else stream + out
                out = pointwise(out2, relu(pointwise(out1, relu(stream))))
                draw_pixel_channel(model, x, r, c, ch, out, temperature, rng)
            horizontal[0].write(h_cache[0], r, c, one_hot_pixel(r, c))  # the whole pixel drawn
        # row r is complete: its vertical stack, layer by layer, for the pixels of row r + 1
        row = (x[:, :, r, :, None] == values).transpose(0, 1, 3, 2).reshape(len(x), C * V, W)
        for l, layer in enumerate(layers):
            (pv, pw) = layer.vertical.padding
            v_pad[l][:, :, r + pv, pw:pw + W] = row
            band = v_pad[l][:, :, r:r + pv + 1]  # rows r - pv .. r of the layer's v input
            v_pre = raw(F.conv2d(band, raw(layer.vertical.weight), raw(layer.vertical.bias)))
            if r + 1 < H:
                v_above[l][:, :, r + 1] = v_pre[:, :, 0]
            row = raw(gate(Tensor(v_pre + cond_v[l][:, :, r:r + 1]), G))[:, :, 0]
    return x
