"""Finite-difference gradient checking: the promise that every gradient in minigen is right.

For L(x) = <g, f(x)> with a random upstream gradient g (never all ones), backward gives
dL/dx analytically; central differences give it numerically:

    dL/dx_j  ~  (L(x + eps e_j) - L(x - eps e_j)) / (2 eps)        (small inputs: every element)
    <dL/dx, u>  ~  (L(x + eps u) - L(x - eps u)) / (2 eps)          (large inputs: random directions u)

Pass when |analytic - numeric| <= atol + rtol * |numeric|. Also checked: a zero upstream
gradient gives zero input gradients, and every gradient has its input's shape.
Work in float64: in float32 the differences drown in rounding error.
"""
import numpy

from . import backend
from .autograd import Tensor, no_grad


class GradcheckError(AssertionError):
    """Raised when analytic and numeric gradients disagree; the message says where and by how much."""


def _as_outputs(out):
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o for o in outs if isinstance(o, Tensor) and o.dtype.kind == "f"]


def _dot(a, b):
    return float((a * b).sum())


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, n_directions=3, full_jacobian_max=64,
              seed=0, check_zero_grad=True):
    """Check the gradients of ``fn(*inputs)`` against central differences; True or GradcheckError.

    ``inputs``: tensors or arrays. Floating ones with ``requires_grad=True`` (or plain arrays,
    which are wrapped as such) are checked; integer arrays and tensors without grad are passed
    through as constants. Inputs must be float64 (cast them first) so the check is meaningful.
    NumPy arrays go to the default device first ($MINIGEN_DEVICE), so that the same check runs
    on the GPU; tensors and device arrays stay where they are.
    ``fn`` returns a tensor or a tuple of tensors; hold any randomness inside it fixed.
    Up to ``full_jacobian_max`` checked elements in all: every element; beyond: ``n_directions``
    random directions over all inputs at once (two forward passes each).
    """
    tensors = [_as_input(x) for x in inputs]
    checked = [t for t in tensors if t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad, so there is nothing to check")
    for i, t in enumerate(checked):
        if t.dtype != numpy.float64:
            raise TypeError(f"gradcheck: inputs must be float64 for finite differences to be "
                            f"accurate, got {t.dtype} for input {i} (use .double())")
        if not t.is_leaf:
            raise ValueError(f"gradcheck: input {i} was computed from other tensors, so it gets no "
                             f".grad; pass a leaf (x.detach().requires_grad_())")
    xp = backend.get_array_module(*checked)
    rng = numpy.random.default_rng(seed)

    def draw(shape):
        return xp.asarray(rng.standard_normal(shape))

    def loss_value(upstream):
        outs = _as_outputs(fn(*tensors))
        return sum(_dot(o.data, g) for o, g in zip(outs, upstream))

    # Analytic gradient of L = <g, f(x)>.
    for t in checked:
        t.grad = None
    outs = _as_outputs(fn(*tensors))
    if not outs:
        raise ValueError("gradcheck: fn returned no floating-point tensor")
    upstream = [draw(o.shape) for o in outs]
    _backward_all(outs, upstream)
    analytic = []
    for i, t in enumerate(checked):
        grad = xp.zeros_like(t.data) if t.grad is None else t.grad
        if tuple(grad.shape) != t.shape:
            raise GradcheckError(f"gradient of input {i} has shape {tuple(grad.shape)}, "
                                 f"but the input has shape {t.shape}")
        analytic.append(grad)

    n_elements = sum(t.data.size for t in checked)
    with no_grad():
        if n_elements <= full_jacobian_max:
            _check_elements(checked, analytic, loss_value, upstream, eps, atol, rtol)
        else:
            _check_directions(checked, analytic, loss_value, upstream, draw, eps, atol, rtol,
                              n_directions, 8 * full_jacobian_max)

    if check_zero_grad:
        for t in checked:
            t.grad = None
        outs = _as_outputs(fn(*tensors))
        _backward_all(outs, [xp.zeros_like(o.data) for o in outs])
        for i, t in enumerate(checked):
            if t.grad is not None and bool(xp.any(t.grad != 0)):
                raise GradcheckError(f"a zero upstream gradient gave a non-zero gradient for "
                                     f"input {i} (max |grad| = {float(xp.abs(t.grad).max()):.3g})")
    for t in checked:
        t.grad = None
    return True


def _as_input(x):
    """A Tensor for gradcheck: a NumPy array moves to the default device; float arrays need grad."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, numpy.ndarray) and backend.get_array_module(x) is numpy:
        x = backend.to_device(x, backend.default_device())
    return Tensor(x, requires_grad=getattr(x, "dtype", numpy.dtype("O")).kind == "f")


def _backward_all(outs, upstream):
    """Backward from several outputs at once: L = sum_k <g_k, out_k>."""
    from .ops import sum as total
    loss = None
    for o, g in zip(outs, upstream):
        if o.requires_grad:
            term = total(o * Tensor(g))
            loss = term if loss is None else loss + term
    if loss is not None:
        loss.backward()


def _central_difference(loss_value, upstream, tensors, steps, eps):
    originals = [t.data.copy() for t in tensors]
    for t, step in zip(tensors, steps):
        t.data += eps * step
    plus = loss_value(upstream)
    for t, orig, step in zip(tensors, originals, steps):
        t.data[...] = orig - eps * step
    minus = loss_value(upstream)
    for t, orig in zip(tensors, originals):
        t.data[...] = orig
    return (plus - minus) / (2 * eps)


def _check_elements(tensors, analytic, loss_value, upstream, eps, atol, rtol, first=0):
    """Every element of every input; the error names the worst one (inputs numbered from ``first``)."""
    worst, n_bad = None, 0
    for i, t in enumerate(tensors):
        flat_grad = analytic[i].reshape(-1)
        for j in range(t.data.size):
            steps = [backend.get_array_module(t2.data).zeros_like(t2.data) for t2 in tensors]
            steps[i].reshape(-1)[j] = 1  # zeros_like, not data * 0: that is a scalar for 0-d data
            numeric = _central_difference(loss_value, upstream, tensors, steps, eps)
            exact = float(flat_grad[j])
            error = abs(exact - numeric) - (atol + rtol * abs(numeric))
            if error > 0:
                n_bad += 1
                if worst is None or error > worst[0]:
                    index = tuple(int(k) for k in numpy.unravel_index(j, t.shape))
                    worst = (error, i, index, exact, numeric)
    if worst is not None:
        _, i, index, exact, numeric = worst
        raise GradcheckError(
            f"gradient mismatch for input {first + i} (shape {tensors[i].shape}) at element {index}: "
            f"analytic {exact:.8g}, numeric {numeric:.8g}, difference {abs(exact - numeric):.3g} "
            f"(allowed {atol + rtol * abs(numeric):.3g}); {n_bad} of "
            f"{sum(t.data.size for t in tensors)} elements disagree")


def _check_directions(tensors, analytic, loss_value, upstream, draw, eps, atol, rtol, n_directions,
                      locate_max):
    """<dL/dx, u> for random directions u; on a mismatch, find the input (and, for inputs of up
    to ``locate_max`` elements, the element) that is wrong."""
    for d in range(n_directions):
        steps = [draw(t.shape) for t in tensors]
        numeric = _central_difference(loss_value, upstream, tensors, steps, eps)
        exact = sum(_dot(a, u) for a, u in zip(analytic, steps))
        if abs(exact - numeric) <= atol + rtol * abs(numeric):
            continue
        per_input, located = [], ""
        for i, t in enumerate(tensors):  # the same direction, one input at a time
            only = [s if k == i else s * 0 for k, s in enumerate(steps)]
            num_i = _central_difference(loss_value, upstream, tensors, only, eps)
            exact_i = _dot(analytic[i], steps[i])
            per_input.append(f"input {i} {t.shape}: analytic {exact_i:.8g}, numeric {num_i:.8g}")
            if (not located and t.data.size <= locate_max
                    and abs(exact_i - num_i) > atol + rtol * abs(num_i)):
                try:
                    _check_elements([t], [analytic[i]], loss_value, upstream, eps, atol, rtol, i)
                except GradcheckError as e:
                    located = f"; element by element: {e}"
        raise GradcheckError(
            f"directional derivative mismatch (direction {d}): analytic {exact:.8g}, numeric "
            f"{numeric:.8g}, difference {abs(exact - numeric):.3g} (allowed "
            f"{atol + rtol * abs(numeric):.3g}); per input: " + "; ".join(per_input) + located)
