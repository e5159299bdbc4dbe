"""Data: the bundled 8x8 digits, MNIST readers, binarisation and a mini-batch iterator.

Everything returns raw NumPy arrays (``DataLoader`` moves batches to the device);
MNIST is never downloaded: pass the folder that holds its files.
"""
from .binarize import binarize_dynamic, binarize_static
from .digits import load_digits
from .loader import DataLoader
from .mnist import load_binarized_mnist, load_mnist
from .shakespeare import load_shakespeare

__all__ = ["load_digits", "load_mnist", "load_binarized_mnist", "binarize_static",
           "binarize_dynamic", "DataLoader", "load_shakespeare"]
from .text import Vocabulary, pad_sequences, padding_mask, sequence_batches, stream_batches  # noqa: E402
__all__ += ["Vocabulary", "pad_sequences", "padding_mask", "sequence_batches", "stream_batches"]
from .shakespeare import load_shakespeare_lines  # noqa: E402
__all__ += ["load_shakespeare_lines"]
