"""``minigen.nn.functional``: the same functions as ``minigen.functional`` (PyTorch's import path)."""
from ..functional import *  # noqa: F401,F403
