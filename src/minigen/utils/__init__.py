"""Utilities: PNG image grids and a small progress display."""
from .images import save_image_grid
from .progress import progress

__all__ = ["save_image_grid", "progress"]
