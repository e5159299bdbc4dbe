"""Save a batch of images as one PNG grid, with a tiny pure-Python PNG writer (zlib + struct)."""
import math
import os
import struct
import zlib

import numpy as np

from .. import backend
from ..validation import check_int

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(tag, payload):
    """One PNG chunk: length, tag, payload, CRC-32 of tag + payload."""
    return (struct.pack(">I", len(payload)) + tag + payload
            + struct.pack(">I", zlib.crc32(tag + payload)))


def write_png(path, pixels):
    """Write uint8 ``pixels`` of shape (H, W) (grey) or (H, W, 3) (RGB) as an 8-bit PNG."""
    height, width = pixels.shape[:2]
    color_type = 0 if pixels.ndim == 2 else 2  # PNG spec: 0 greyscale, 2 truecolour
    rows = pixels.reshape(height, -1)
    # Each scanline starts with its filter type; 0 means "None" (bytes stored as they are).
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw, 9))
                + _chunk(b"IEND", b""))


def save_image_grid(images, path, nrow=None, padding=1, pad_value=0.5, upscale=1):
    """Tile ``images`` into a grid and write it to ``path`` as a PNG; returns ``path``.

    ``images``: (N, C, H, W) with C in {1, 3}, or (N, H, W), values in [0, 1] (clipped),
    as a NumPy or CuPy array or a minigen Tensor. ``nrow`` images per row (default: a
    square-ish grid, ceil(sqrt(N))), ``padding`` pixels of ``pad_value`` around and between
    images, and every pixel of the grid repeated ``upscale`` x ``upscale`` times (useful for
    8x8 digits). Missing parent folders are created.
    """
    x = backend.to_numpy(images)
    if not isinstance(x, np.ndarray):
        raise TypeError(f"images must be an array or Tensor, got {type(images).__name__}")
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] not in (1, 3) or x.shape[0] == 0:
        raise ValueError("images must have shape (N, C, H, W) with C in {1, 3} or (N, H, W) "
                         f"with N >= 1, got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("images contain NaN or infinite values")
    n, c, h, w = x.shape
    padding = check_int(padding, "padding", minimum=0)
    upscale = check_int(upscale, "upscale", minimum=1)
    ncol = min(n, math.ceil(math.sqrt(n)) if nrow is None else check_int(nrow, "nrow", minimum=1))
    nrows = math.ceil(n / ncol)
    grid = np.full((c, nrows * (h + padding) + padding, ncol * (w + padding) + padding),
                   pad_value, dtype=np.float64)
    for i in range(n):
        top = padding + (i // ncol) * (h + padding)
        left = padding + (i % ncol) * (w + padding)
        grid[:, top:top + h, left:left + w] = x[i]
    grid = grid.repeat(upscale, axis=1).repeat(upscale, axis=2)
    pixels = np.round(np.clip(grid, 0, 1) * 255).astype(np.uint8)
    pixels = pixels[0] if c == 1 else pixels.transpose(1, 2, 0)
    parent = os.path.dirname(os.fspath(path))
    if parent:
        os.makedirs(parent, exist_ok=True)
    write_png(path, pixels)
    return path
