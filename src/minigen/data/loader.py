"""Mini-batches of in-memory arrays: shuffled each epoch, moved to the device, transformed."""
import math
import numbers

import numpy as np

from .. import backend
from ..random import get_generator


class DataLoader:
    """Iterate over ``arrays`` (sliced together along axis 0) in batches of ``batch_size``.

    Each batch is a tuple with one slice per array, or the slice itself when one array was
    given; slices are raw arrays on ``device`` (default: $MINIGEN_DEVICE or "cpu"; wrap them
    in tensors yourself). With
    ``shuffle=True`` every epoch (every ``iter``) draws a new permutation from ``generator``:
    None for minigen's global generator, a NumPy Generator, or an int seed for a generator of
    the loader's own (two loaders with the same seed give the same batches); ``seed`` is the
    same as an int ``generator``. ``transform`` is applied to the first array of each batch
    (the inputs) after the move, e.g. ``transform=binarize_dynamic``. ``len(loader)`` is the
    number of batches per epoch; ``drop_last`` drops a final batch smaller than ``batch_size``.
    """

    def __init__(self, *arrays, batch_size, shuffle=False, drop_last=False, seed=None,
                 generator=None, device=None, transform=None):
        if not arrays:
            raise ValueError("DataLoader needs at least one array")
        for i, a in enumerate(arrays):
            if not hasattr(a, "shape") or getattr(a, "_is_minigen_tensor", False):
                raise TypeError(f"array {i} must be a NumPy or CuPy array (for a Tensor, pass "
                                f"tensor.data), got {type(a).__name__}")
            if a.ndim == 0:
                raise ValueError(f"array {i} is a scalar; arrays need a batch axis")
        lengths = [len(a) for a in arrays]
        if len(set(lengths)) > 1:
            raise ValueError(f"all arrays must have the same length along axis 0, got {lengths}")
        if not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) \
                or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if seed is not None and generator is not None:
            raise ValueError("give either seed or generator, not both")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable, got {type(transform).__name__}")
        self.device = backend.default_device() if device is None else backend.check_device(device)
        if self.device == "cuda":
            backend.import_cupy()  # fail now, not at the first batch
        self.arrays = arrays
        self.n = lengths[0]
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        # Permutations are drawn on the host: indices are metadata, not data.
        self.generator = get_generator(seed if seed is not None else generator, np)
        self.transform = transform

    def __len__(self):
        if self.drop_last:
            return self.n // self.batch_size
        return math.ceil(self.n / self.batch_size)

    def __iter__(self):
        order = self.generator.permutation(self.n) if self.shuffle else None
        for b in range(len(self)):
            rows = slice(b * self.batch_size, (b + 1) * self.batch_size)
            if order is not None:
                rows = order[rows]
            batch = [backend.to_device(a[rows], self.device) for a in self.arrays]
            if self.transform is not None:
                batch[0] = self.transform(batch[0])
            yield batch[0] if len(batch) == 1 else tuple(batch)
