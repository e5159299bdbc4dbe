"""The 8x8 handwritten digits bundled with minigen (UCI optdigits test set, CC BY 4.0).

1,797 images of 8x8 pixels, each pixel the count (0-16) of ink pixels in a 4x4 block of a
32x32 bitmap. Small enough to train every model in this package in about a minute on a CPU.
Licence and attribution: ``DATA_LICENSE.md`` beside this file.
"""
import gzip
from importlib import resources

import numpy as np

N_DIGITS, SIDE, MAX_COUNT = 1797, 8, 16


def load_digits(return_labels=True):
    """The bundled digits as float32 images (1797, 1, 8, 8) in [0, 1] (pixel / 16).

    Returns ``(images, labels)`` with int64 labels 0-9, or only ``images`` when
    ``return_labels=False``. Arrays are NumPy; move them with ``minigen.backend.to_device``.
    """
    with resources.files(__package__).joinpath("digits.csv.gz").open("rb") as raw, \
            gzip.open(raw) as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if table.shape != (N_DIGITS, SIDE * SIDE + 1):
        raise ValueError(f"bundled digits.csv.gz is corrupt: expected shape "
                         f"({N_DIGITS}, {SIDE * SIDE + 1}), got {table.shape}")
    images = (table[:, :-1] / MAX_COUNT).astype(np.float32).reshape(-1, 1, SIDE, SIDE)
    labels = table[:, -1]
    return (images, labels) if return_labels else images
