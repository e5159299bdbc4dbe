"""Layers and models' building blocks, with PyTorch's names and parameter layouts."""
from .module import Module, Parameter
from .vector_quantizer import *  # noqa: F401,F403
from .linear import *  # noqa: F401,F403
from .activation import *  # noqa: F401,F403
from .container import *  # noqa: F401,F403
from . import init, utils, functional  # noqa: F401
from .conv import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403
from .normalization import *  # noqa: F401,F403
from .recurrent import *  # noqa: F401,F403
from .embedding import *  # noqa: F401,F403
from .dropout import *  # noqa: F401,F403
from .group_norm import *  # noqa: F401,F403
from .silu import *  # noqa: F401,F403
from .timestep_embedding import *  # noqa: F401,F403
from .unet import *  # noqa: F401,F403
from .mlp import *  # noqa: F401,F403
