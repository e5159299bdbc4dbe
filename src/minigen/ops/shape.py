"""Shape Functions: reshape, transpose, broadcast, indexing, concatenate/stack/split, pad.

Their backward passes only move gradient entries back to where they came from.
"""
import numpy

from ..autograd import Function, Tensor
from ..backend import get_array_module, scatter_add

__all__ = ["reshape", "transpose", "permute", "broadcast_to", "expand", "getitem", "concatenate",
           "stack", "split", "pad", "flatten", "squeeze", "unsqueeze"]


class Reshape(Function):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        return x.reshape(self.shape)

    def backward(self, g):
        return g.reshape(self.input_shapes[0])


class Transpose(Function):
    def __init__(self, axes=None):
        self.axes = axes

    def forward(self, x):
        n = x.ndim
        axes = tuple(range(n))[::-1] if self.axes is None else tuple(self.axes)
        if sorted(a + n if -n <= a < 0 else a for a in axes) != list(range(n)):
            raise ValueError(f"transpose: axes {axes} are not a permutation of the {n} dimensions "
                             f"of shape {x.shape}")
        self.axes = tuple(a % n for a in axes)
        return x.transpose(self.axes)

    def backward(self, g):
        inverse = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inverse[a] = i
        return g.transpose(inverse)


class BroadcastTo(Function):
    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, x):
        return get_array_module(x).broadcast_to(x, self.shape)

    def backward(self, g):
        return g  # the walk sums it back to the input's shape


def _is_basic_index(index):
    """True for ints/slices/None/Ellipsis only: then every output element has one source."""
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, slice)) or i is None or i is Ellipsis for i in items)


class GetItem(Function):
    """x[index]; the gradient scatters back, and repeated indices accumulate."""

    def __init__(self, index):
        self.index = index

    def forward(self, x):
        self.dtype = x.dtype
        return x[self.index]

    def backward(self, g):
        xp = get_array_module(g)
        gx = xp.zeros(self.input_shapes[0], dtype=self.dtype)
        if _is_basic_index(self.index):
            gx[self.index] = g
        else:
            scatter_add(gx, self.index, g)
        return gx


class Concatenate(Function):
    def __init__(self, axis=0):
        self.axis = axis

    def forward(self, *xs):
        return get_array_module(*xs).concatenate(xs, axis=self.axis)

    def backward(self, g):
        grads, start = [], 0
        axis = self.axis % g.ndim
        for shape in self.input_shapes:
            index = [slice(None)] * g.ndim
            index[axis] = slice(start, start + shape[axis])
            grads.append(g[tuple(index)])
            start += shape[axis]
        return tuple(grads)


class Stack(Function):
    def __init__(self, axis=0):
        self.axis = axis

    def forward(self, *xs):
        return get_array_module(*xs).stack(xs, axis=self.axis)

    def backward(self, g):
        xp = get_array_module(g)
        return tuple(xp.take(g, i, axis=self.axis) for i in range(len(self.input_shapes)))


class Pad(Function):
    """Constant padding; ``pad_width`` as in numpy.pad: ((before, after), ...) per axis."""

    def __init__(self, pad_width, value=0.0):
        self.pad_width, self.value = pad_width, value

    def forward(self, x):
        xp = get_array_module(x)
        self.pad_width = _normalize_pad(self.pad_width, x.ndim)
        return xp.pad(x, self.pad_width, mode="constant", constant_values=self.value)

    def backward(self, g):
        return g[tuple(slice(b, n - a) for (b, a), n in zip(self.pad_width, g.shape))]


def _normalize_pad(pad_width, ndim):
    """numpy.pad's rules: n, (n,), (before, after) for every axis, or one (before, after) per axis."""
    widths = numpy.asarray(pad_width)  # host-side settings, not data
    try:
        widths = numpy.broadcast_to(widths, (ndim, 2))
    except ValueError:
        widths = None
    if widths is None or widths.dtype.kind not in "iu" or (widths < 0).any():
        raise ValueError(f"pad: expected non-negative integer widths as in numpy.pad for {ndim} "
                         f"dimensions, got {pad_width!r}")
    return tuple((int(b), int(a)) for b, a in widths)


def _shape_arg(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def reshape(x, *shape):
    return Reshape(_shape_arg(shape))(x)


def transpose(x, *axes):
    """Reverse the axes, or permute them: transpose(x, 0, 2, 1) or transpose(x, (0, 2, 1))."""
    return Transpose(_shape_arg(axes) if axes else None)(x)


def permute(x, *axes):
    return Transpose(_shape_arg(axes))(x)


def broadcast_to(x, shape):
    return BroadcastTo(shape)(x)


def expand(x, *shape):
    """Broadcast to ``shape``; -1 keeps the size of that axis (PyTorch's expand)."""
    shape = _shape_arg(shape)
    lead = len(shape) - x.ndim
    if any(n == -1 for n in shape[:lead]):
        raise ValueError(f"expand: -1 is not allowed for the new leading axes of {tuple(shape)} "
                         f"(input shape {x.shape})")
    shape = tuple(x.shape[i - lead] if n == -1 else n for i, n in enumerate(shape))
    return BroadcastTo(shape)(x)


def _unwrap_index(index):
    if isinstance(index, tuple):
        return tuple(_unwrap_index(i) for i in index)
    if isinstance(index, Tensor):
        return index.data
    return index


def getitem(x, index):
    return GetItem(_unwrap_index(index))(x)


def concatenate(tensors, axis=0):
    return Concatenate(axis)(*tensors)


def stack(tensors, axis=0):
    return Stack(axis)(*tensors)


def split(x, sections, axis=0):
    """Split into equal parts (``sections`` an int) or at sizes (a list of sizes), like torch.split."""
    n = x.shape[axis]
    if isinstance(sections, int):
        if sections < 1 or n % sections:
            raise ValueError(f"split: axis {axis} of size {n} does not divide into {sections} parts")
        sizes = [n // sections] * sections
    else:
        sizes = list(sections)
        if sum(sizes) != n:
            raise ValueError(f"split: sizes {sizes} do not add up to {n}, the size of axis {axis}")
    parts, start = [], 0
    for size in sizes:
        index = [slice(None)] * x.ndim
        index[axis] = slice(start, start + size)
        parts.append(GetItem(tuple(index))(x))
        start += size
    return parts


def pad(x, pad_width, value=0.0):
    return Pad(pad_width, value)(x)


def flatten(x, start_axis=0):
    """Merge the axes from ``start_axis`` on into one, as torch.flatten: by default everything,
    (N, C, H, W) -> (N*C*H*W,); ``start_axis=1`` keeps the batch axis, -> (N, C*H*W).

    A tensor with at most ``start_axis`` dimensions becomes 1-D: a 0-d tensor gives shape (1,),
    a 1-D tensor of 3 elements keeps its shape (3,). (``nn.Flatten`` starts at axis 1, as
    PyTorch's does.)
    """
    if x.ndim <= start_axis:
        return Reshape((-1,))(x)
    return Reshape(tuple(x.shape[:start_axis]) + (-1,))(x)


def squeeze(x, axis=None):
    """Drop axes of length 1 (all of them, or those in ``axis``; others are kept as PyTorch does)."""
    if x.ndim == 0:
        if axis not in (None, 0, -1, (), (0,), (-1,)):
            raise ValueError(f"squeeze: axis {axis!r} is out of range for a 0-d tensor")
        return Reshape(())(x)
    axes = tuple(range(x.ndim)) if axis is None else ((axis,) if isinstance(axis, int) else axis)
    for a in axes:
        if not -x.ndim <= a < x.ndim:
            raise ValueError(f"squeeze: axis {a} is out of range for a tensor of shape {x.shape}")
    axes = {a % x.ndim for a in axes}
    return Reshape(tuple(n for i, n in enumerate(x.shape) if not (i in axes and n == 1)))(x)


def unsqueeze(x, axis):
    axis = axis % (x.ndim + 1)
    return Reshape(tuple(x.shape[:axis]) + (1,) + tuple(x.shape[axis:]))(x)
