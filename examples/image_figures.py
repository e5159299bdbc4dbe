"""Labelled figures of images for the examples (matplotlib; skipped with a message without it).

``save_panels``: side-by-side grids, each with its title (data beside samples, so a reader can
judge them). ``save_labelled_rows``: one row of images per label (test images above their
reconstructions, completions), optionally with column labels. Images are (N, 1, H, W) in [0, 1]
(NumPy, CuPy or Tensor), shown in grey with black = 0 and white = 1, pixels as sharp squares.
"""
import math

import numpy as np

from minigen import backend

from common import import_pyplot, save_figure


def tile(images, ncol, pad=1):
    """(N, 1, H, W) images -> one (rows (H + pad) + pad, ncol (W + pad) + pad) array, grey padding."""
    x = backend.to_numpy(images).astype(np.float64)[:, 0]
    n, h, w = x.shape
    nrow = math.ceil(n / ncol)
    grid = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad), 0.5)
    for i in range(n):
        r, c = divmod(i, ncol)
        grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = x[i]
    return grid


def _show(ax, grid):
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def save_panels(panels, path, title, ncol=10):
    """Grids side by side: ``panels`` is a list of (panel title, images)."""
    plt = import_pyplot(path)
    if plt is None:
        return
    grids = [tile(images, ncol) for _, images in panels]
    aspect = max(g.shape[0] / g.shape[1] for g in grids)
    fig, axes = plt.subplots(1, len(panels), figsize=(max(4.2 * len(panels), 5), 4.2 * aspect + 0.9),
                             squeeze=False)
    for ax, (name, _), grid in zip(axes[0], panels, grids):
        _show(ax, grid)
        ax.set_title(name, fontsize=10)
    fig.suptitle(title, fontsize=11)
    save_figure(fig, path)


def save_labelled_rows(rows, path, title, col_labels=None):
    """One row per (row label, images (n, 1, H, W)); ``col_labels`` names the columns."""
    plt = import_pyplot(path)
    if plt is None:
        return
    n = max(len(images) for _, images in rows)
    h, w = backend.to_numpy(rows[0][1]).shape[-2:]
    width = min(14.0, 0.75 * n * max(1.0, w / 8) + 2.0)
    fig, axes = plt.subplots(len(rows), 1, figsize=(width, 0.8 * len(rows) * max(1.0, h / 8) + 1.2),
                             squeeze=False)
    for i, (ax, (name, images)) in enumerate(zip(axes[:, 0], rows)):
        _show(ax, tile(images, n))
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
        if col_labels is not None and i == 0:
            ax.set_xticks([1 + j * (w + 1) + w / 2 - 0.5 for j in range(len(col_labels))])
            ax.set_xticklabels(col_labels, fontsize=8)
            ax.xaxis.set_ticks_position("top")
            ax.tick_params(length=0)
    fig.suptitle(title, fontsize=11)
    save_figure(fig, path)
