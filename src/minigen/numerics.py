"""Raw-array numerics shared by the ops and the estimators (NumPy or CuPy, no autograd).

The autograd ops in ``minigen.functional`` (``F.logsumexp``, ``F.sigmoid``, ...) compute the
same functions on tensors; the estimators (GMM, RBM, LDA, Ising, ...) work on raw arrays and
call these. Each one takes its array module from its input.
"""
from .backend import get_array_module


def logsumexp(a, axis=None, keepdims=False):
    """log sum exp(a) along ``axis`` (None: all entries), with the max taken out first so that
    nothing overflows; a slice that is all -inf gives -inf."""
    xp = get_array_module(a)
    a_max = xp.max(a, axis=axis, keepdims=True)
    a_max = xp.where(xp.isfinite(a_max), a_max, 0)
    out = xp.log(xp.sum(xp.exp(a - a_max), axis=axis, keepdims=True)) + a_max
    return out if keepdims else xp.squeeze(out, axis=axis)


def sigmoid(x):
    """1 / (1 + exp(-x)) as (1 + tanh(x/2)) / 2: cannot overflow, one transcendental per element."""
    y = get_array_module(x).tanh(0.5 * x)
    y += 1
    y *= 0.5
    return y


def softplus(x):
    """log(1 + exp(x)) without overflow."""
    return get_array_module(x).logaddexp(0, x)


def log_sigmoid(x):
    """log sigmoid(x) = -softplus(-x), exact for large |x|."""
    return -softplus(-x)


def one_hot(labels, n_classes, dtype="float64"):
    """(N, n_classes) indicator rows of the integer ``labels`` (N,)."""
    xp = get_array_module(labels)
    return (labels[:, None] == xp.arange(n_classes)).astype(dtype)


def bernoulli(p, rng):
    """0/1 draws with probabilities ``p`` from generator ``rng``, in ``p``'s dtype."""
    return (rng.random(p.shape, dtype=p.dtype) < p).astype(p.dtype)
