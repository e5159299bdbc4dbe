"""MNIST from the standard IDX files, and the fixed binarised MNIST split.

IDX format (LeCun et al.): a 4-byte magic number (two zero bytes, the type byte 0x08 for
unsigned bytes, the number of dimensions), one 4-byte big-endian size per dimension, then
the values in row-major order. Images have magic 0x00000803 (N x 28 x 28), labels
0x00000801 (N). Nothing is downloaded: pass the folder that holds the files.
"""
import gzip
import os
import zipfile
import zlib

import numpy as np

IMAGE_MAGIC, LABEL_MAGIC = 0x803, 0x801
SIDE = 28
FILES = {  # split -> (images, labels), without the optional ".gz"
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find_file(root, name):
    """``root/name.gz`` or else ``root/name``; FileNotFoundError saying where it looked."""
    candidates = [os.path.join(root, name + ".gz"), os.path.join(root, name)]
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"MNIST file {name}(.gz) not found; looked for {' and '.join(candidates)} "
        f"(pass the folder holding the IDX files as root)")


def read_idx(path, magic):
    """The uint8 array stored in IDX file ``path`` (gzip if it ends in .gz), checking its header."""
    try:
        with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:  # bad or truncated gzip stream
        raise ValueError(f"{path} could not be read ({e}); the file is corrupt") from e
    if len(data) < 4 or int.from_bytes(data[:4], "big") != magic:
        raise ValueError(f"{path} is not an IDX file of this kind: expected magic number "
                         f"0x{magic:08x}, got 0x{data[:4].hex():0>8} ({len(data)} bytes in all)")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise ValueError(f"{path} is truncated or corrupt: its header promises shape {shape}, "
                         f"i.e. {expected} bytes, but the file holds {len(data)} bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def load_mnist(root, split="train"):
    """MNIST ``split`` ('train': 60,000 images, 'test': 10,000) read from the IDX files in ``root``.

    Accepts ``train-images-idx3-ubyte.gz`` ... or the same names uncompressed. Returns
    ``(images, labels)``: float32 (N, 1, 28, 28) in [0, 1] (pixel / 255) and int64 (N,).
    """
    if split not in FILES:
        raise ValueError(f"split must be one of {sorted(FILES)}, got {split!r}")
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"MNIST folder {root!r} does not exist")
    image_path, label_path = (_find_file(root, name) for name in FILES[split])
    images = read_idx(image_path, IMAGE_MAGIC)
    labels = read_idx(label_path, LABEL_MAGIC)
    if images.shape[1:] != (SIDE, SIDE):
        raise ValueError(f"{image_path} holds images of {images.shape[1]}x{images.shape[2]} "
                         f"pixels, expected {SIDE}x{SIDE}")
    if len(images) != len(labels):
        raise ValueError(f"{image_path} holds {len(images)} images but {label_path} "
                         f"holds {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{label_path} is corrupt: labels must be 0-9, found {labels.max()}")
    return (images.astype(np.float32) / 255).reshape(-1, 1, SIDE, SIDE), labels.astype(np.int64)


def load_binarized_mnist(path, split="train"):
    """The fixed binarisation of MNIST (Larochelle & Murray, 2011) from its ``.npz`` file.

    ``path`` is the file or a folder holding ``binarized_mnist.npz``, whose arrays
    ``train`` (50,000), ``valid`` (10,000) and ``test`` (10,000) are uint8 (N, 784) in {0, 1}.
    Returns float32 images (N, 1, 28, 28) in {0, 1}; this data set has no labels.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "binarized_mnist.npz")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"binarized MNIST file {path!r} not found")
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path} is not a readable .npz file ({e})") from e
    if not hasattr(npz, "files"):
        raise ValueError(f"{path} holds a single array; expected an .npz archive of "
                         f"train/valid/test arrays")
    with npz:
        if split not in npz.files:
            raise ValueError(f"split must be one of {sorted(npz.files)} (the arrays in {path}), "
                             f"got {split!r}")
        x = npz[split]
    if x.ndim != 2 or x.shape[1] != SIDE * SIDE:
        raise ValueError(f"{path}[{split!r}] must have shape (N, {SIDE * SIDE}), got {x.shape}")
    if x.size and not ((x == 0) | (x == 1)).all():
        raise ValueError(f"{path}[{split!r}] must hold only 0 and 1")
    return x.astype(np.float32).reshape(-1, 1, SIDE, SIDE)
