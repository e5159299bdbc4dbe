"""The user-facing functions (``import minigen.functional as F``), gathered from ``minigen.ops``.

Each is a thin wrapper that builds one Function (see the ops/ file named in its module)."""
from .ops.elementwise import *  # noqa: F401,F403
from .ops.reduce import *  # noqa: F401,F403
from .ops.shape import *  # noqa: F401,F403
from .ops.linalg import *  # noqa: F401,F403
from .ops.losses import *  # noqa: F401,F403
from .ops.conv import *  # noqa: F401,F403
from .ops.pool import *  # noqa: F401,F403
from .ops.norm import *  # noqa: F401,F403
from .ops.nn_misc import *  # noqa: F401,F403
from .ops.special import *  # noqa: F401,F403
from .ops.group_norm import *  # noqa: F401,F403
from .ops.silu import *  # noqa: F401,F403
from .ops.timestep_embedding import *  # noqa: F401,F403
from .ops.masked_conv import *  # noqa: F401,F403
