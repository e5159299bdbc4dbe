"""The op table: one row per differentiable op, shared by the gradient and one-code-path tests.

A row is ``Op(name, inputs, fn, ref)``: ``inputs`` is a hypothesis strategy drawing a
``Case(arrays, params)`` (float64 arrays are differentiated, integer arrays are constants;
``params`` are drawn settings such as an axis), ``fn(*tensors, **params)`` is the op under test,
and ``ref(*arrays, **params)`` the NumPy/SciPy reference for its forward value. To cover a new op,
add a row.

Draws: small shapes (size-1 axes, 0-d, broadcasting pairs), bounded float64 values (about
[-2, 2]), kept away from kinks by construction (``away_from`` for relu/abs/clip/..., distinct
values for max/min) rather than by loosening tolerances.
"""
import math
from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional

import numpy as np
import scipy.special as sps
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigen.functional as F


class Case(NamedTuple):
    arrays: list
    params: dict


@dataclass(frozen=True)
class Op:
    name: str
    inputs: st.SearchStrategy  # draws a Case
    fn: Callable               # fn(*tensors, **params) -> Tensor or tuple of Tensors
    ref: Callable              # ref(*arrays, **params) -> ndarray or tuple of ndarrays
    max_examples: Optional[int] = None  # fewer than the profile's for costly rows

    def __repr__(self):
        return self.name


# ----------------------------------------------------------------------------- strategies

SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3)
NONSCALAR = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3)
PAIRS = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3)
REDUCTIONS = ["sum", "mean", "none"]


def values(shape, lo=-2.0, hi=2.0):
    return hnp.arrays(np.float64, shape, elements=st.floats(lo, hi))


@st.composite
def signed(draw, shape, lo, hi):
    """Magnitudes in [lo, hi] with random signs: values kept away from zero."""
    magnitude = draw(values(shape, lo, hi))
    return np.where(draw(hnp.arrays(bool, shape)), magnitude, -magnitude)


def away_from(x, kinks, gap=1e-2):
    """Move values within ``gap`` of a kink to 2*gap from it, on the same side."""
    for k in kinks:
        x = np.where(np.abs(x - k) < gap, k + np.where(x >= k, 2 * gap, -2 * gap), x)
    return x


@st.composite
def distinct(draw, shape):
    """Values in about [-2, 2], pairwise at least half a grid step apart: max/min have no ties."""
    n = math.prod(shape)
    order = np.array(draw(st.permutations(range(n))), dtype=np.float64)
    jitter = draw(values((n,), 0.0, 0.5))
    step = 4.0 / n
    return ((order + jitter) * step - 2.0).reshape(shape)


@st.composite
def axes(draw, ndim):
    """None, one axis (maybe negative) or a tuple of distinct axes (maybe negative)."""
    kind = draw(st.sampled_from(["none", "int", "tuple"])) if ndim else "none"
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    chosen = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    return tuple(a - ndim if draw(st.booleans()) else a for a in chosen)


def reduced_count(shape, axis):
    if axis is None:
        return math.prod(shape)
    axis = (axis,) if isinstance(axis, int) else axis
    return math.prod(shape[a] for a in axis)


@st.composite
def unary(draw, lo=-2.0, hi=2.0, kinks=(), shapes=SHAPES, **params):
    x = draw(values(draw(shapes), lo, hi))
    return Case([away_from(x, kinks)], {k: draw(v) for k, v in params.items()})


@st.composite
def binary(draw, a_range=(-2.0, 2.0), b_range=(-2.0, 2.0), b_signed=False):
    shape_a, shape_b = draw(PAIRS).input_shapes
    a = draw(values(shape_a, *a_range))
    b = draw(signed(shape_b, *b_range) if b_signed else values(shape_b, *b_range))
    return Case([a, b], {})


@st.composite
def reduction(draw, max_min=False, ddof=False):
    shape = draw(SHAPES)
    x = draw(distinct(shape) if max_min else values(shape))
    params = {"axis": draw(axes(len(shape))), "keepdims": draw(st.booleans())}
    if ddof:
        params["ddof"] = draw(st.integers(0, 1)) if reduced_count(shape, params["axis"]) > 1 else 0
    return Case([x], params)


@st.composite
def along_axis(draw):
    shape = draw(NONSCALAR)
    return Case([draw(values(shape))], {"axis": draw(st.integers(-len(shape), len(shape) - 1))})


# -- shape ops

@st.composite
def basic_index(draw):
    shape = draw(NONSCALAR)
    index = draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))
    return Case([draw(values(shape))], {"index": index})


@st.composite
def integer_array_index(draw):
    """An integer index array (1-D or 2-D, negative entries allowed) with at least one repeat."""
    shape = draw(NONSCALAR)
    axis = draw(st.sampled_from([0, len(shape) - 1]))
    n = shape[axis]
    index_shape = draw(st.sampled_from([(2,), (4,), (2, 2), (1, 3)]))
    index = draw(hnp.arrays(np.int64, index_shape, elements=st.integers(-n, n - 1)))
    index.reshape(-1)[-1] = index.reshape(-1)[0]  # a repeat: its gradient must accumulate
    full = index if axis == 0 else (Ellipsis, index)
    return Case([draw(values(shape))], {"index": full})


@st.composite
def mask_index(draw):
    shape = draw(NONSCALAR)
    k = draw(st.integers(1, len(shape)))
    return Case([draw(values(shape))], {"index": draw(hnp.arrays(bool, shape[:k]))})


@st.composite
def new_shape(draw):
    shape = draw(SHAPES)
    size = math.prod(shape)
    target = draw(st.sampled_from([shape[::-1], (size,), (-1,), (1, size), (size, 1, 1),
                                   (1,) + shape + (1,)]))
    return Case([draw(values(shape))], {"shape": target})


@st.composite
def permutation(draw):
    shape = draw(SHAPES)
    return Case([draw(values(shape))], {"axes": tuple(draw(st.permutations(range(len(shape)))))})


@st.composite
def broadcast_target(draw, use_minus_one=False):
    shape = draw(SHAPES)
    other = draw(hnp.broadcastable_shapes(shape, min_dims=0, max_dims=4, max_side=3))
    target = np.broadcast_shapes(shape, other)
    if use_minus_one:  # -1 keeps an existing axis's size (PyTorch's expand)
        lead = len(target) - len(shape)
        target = tuple(-1 if i >= lead and n == shape[i - lead] and draw(st.booleans()) else n
                       for i, n in enumerate(target))
    return Case([draw(values(shape))], {"shape": target})


@st.composite
def parts_for_concatenate(draw):
    ndim = draw(st.integers(1, 3))
    base = list(draw(hnp.array_shapes(min_dims=ndim, max_dims=ndim, max_side=3)))
    axis = draw(st.integers(-ndim, ndim - 1))
    arrays = []
    for _ in range(draw(st.integers(1, 3))):
        base[axis] = draw(st.integers(1, 3))
        arrays.append(draw(values(tuple(base))))
    return Case(arrays, {"axis": axis})


@st.composite
def parts_for_stack(draw):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=3))
    arrays = [draw(values(shape)) for _ in range(draw(st.integers(1, 3)))]
    return Case(arrays, {"axis": draw(st.integers(-len(shape) - 1, len(shape)))})


@st.composite
def split_sections(draw):
    shape = draw(NONSCALAR)
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[axis]
    if draw(st.booleans()):
        sections = draw(st.sampled_from([k for k in range(1, n + 1) if n % k == 0]))
    else:
        cuts = sorted(draw(st.lists(st.integers(1, n - 1), max_size=2, unique=True))) if n > 1 else []
        sections = [b - a for a, b in zip([0] + cuts, cuts + [n])]
    return Case([draw(values(shape))], {"sections": sections, "axis": axis})


@st.composite
def pad_widths(draw):
    shape = draw(NONSCALAR)
    widths = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in shape)
    return Case([draw(values(shape))], {"pad_width": widths, "value": draw(st.floats(-1, 1))})


@st.composite
def where_case(draw):
    cond_shape, a_shape, b_shape = draw(hnp.mutually_broadcastable_shapes(
        num_shapes=3, min_dims=0, max_dims=3, max_side=3)).input_shapes
    cond = draw(hnp.arrays(bool, cond_shape))
    return Case([draw(values(a_shape)), draw(values(b_shape))], {"cond": cond})


# -- linear algebra

@st.composite
def matmul_case(draw, a_vector=False, b_vector=False):
    """Broadcasting batch axes on matrix operands; a 1-D operand (a vector) has none."""
    batch_a, batch_b = draw(hnp.mutually_broadcastable_shapes(
        num_shapes=2, min_dims=0, max_dims=2, max_side=3)).input_shapes
    m, n, p = (draw(st.integers(1, 3)) for _ in range(3))
    shape_a = (n,) if a_vector else batch_a + (m, n)
    shape_b = (n,) if b_vector else batch_b + (n, p)
    return Case([draw(values(shape_a)), draw(values(shape_b))], {})


@st.composite
def einsum_case(draw, spec):
    size = {c: draw(st.integers(1, 3)) for c in sorted(set(spec) - set(",->"))}
    terms = spec.split("->")[0].split(",")
    return Case([draw(values(tuple(size[c] for c in t))) for t in terms], {"spec": spec})


@st.composite
def linear_case(draw):
    n_in, n_out = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    lead = draw(st.sampled_from([(), (2,), (3,), (2, 2)]))
    arrays = [draw(values(lead + (n_in,))), draw(values((n_out, n_in)))]
    if draw(st.booleans()):
        arrays.append(draw(values((n_out,))))
    return Case(arrays, {})


# -- losses

@st.composite
def bce_case(draw, reduction):
    shape = draw(SHAPES)
    return Case([draw(values(shape)), draw(values(shape, 0.0, 1.0))], {"reduction": reduction})


@st.composite
def cross_entropy_case(draw, reduction, spatial):
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    extra = (draw(st.integers(1, 3)),) if spatial else ()  # (N, C, d) or (N, C)
    logits = draw(values((n, c) + extra))
    target = draw(hnp.arrays(np.int64, (n,) + extra, elements=st.integers(0, c - 1)))
    return Case([logits, target], {"reduction": reduction})


@st.composite
def mse_case(draw, reduction):
    shape = draw(SHAPES)
    return Case([draw(values(shape)), draw(values(shape))], {"reduction": reduction})


@st.composite
def gaussian_nll_case(draw, reduction, scalar_var=False):
    shape = draw(SHAPES)
    arrays = [draw(values(shape)), draw(values(shape))]
    params = {"reduction": reduction, "full": draw(st.booleans())}
    if scalar_var:
        params["var"] = draw(st.floats(0.2, 2.0))
    else:  # one variance per element, or shared along the last axis
        var_shape = shape[:-1] + (1,) if shape and draw(st.booleans()) else shape
        arrays.append(draw(values(var_shape, 0.2, 2.0)))
    return Case(arrays, params)


# ----------------------------------------------------------------------------- references

def reduce_ref(loss, reduction):
    return {"sum": np.sum, "mean": np.mean, "none": lambda v: v}[reduction](loss)


def gaussian_nll_ref(x, t, var, *, reduction, full):
    loss = 0.5 * (np.log(var) + (x - t) ** 2 / var) + (0.5 * math.log(2 * math.pi) if full else 0.0)
    return reduce_ref(loss, reduction)


def gaussian_nll_fn(x, t, var, *, reduction, full):
    return F.gaussian_nll(x, t, var, full=full, reduction=reduction)


def split_ref(x, sections, axis):
    if isinstance(sections, int):
        return tuple(np.split(x, sections, axis=axis))
    return tuple(np.split(x, np.cumsum(sections)[:-1], axis=axis))


def cross_entropy_ref(x, target, reduction):
    log_p = sps.log_softmax(x, axis=1)
    return reduce_ref(-np.take_along_axis(log_p, target[:, None], axis=1)[:, 0], reduction)


def linear_ref(x, w, b=None):
    return x @ w.T + (0 if b is None else b)


# ----------------------------------------------------------------------------- the table

CLIP = dict(low=st.floats(-1.5, -0.1), high=st.floats(0.1, 1.5))
OPS = [
    # arithmetic (broadcasting pairs)
    Op("add", binary(), lambda a, b: a + b, np.add),
    Op("sub", binary(), lambda a, b: a - b, np.subtract),
    Op("mul", binary(), lambda a, b: a * b, np.multiply),
    Op("div", binary(b_range=(0.3, 2.0), b_signed=True), lambda a, b: a / b, np.divide),
    Op("pow_tensor_exponent", binary(a_range=(0.2, 2.0)), lambda a, b: a ** b, np.power),
    *[Op(f"pow_constant[{p:.3g}]", unary(0.2, 2.0, p=st.just(p)), lambda x, p: x ** p,
         lambda x, p: x ** p, max_examples=5) for p in (0, 2, 3, 0.5, -1.5, 1 / 3)],
    Op("pow_integer_signed_base", unary(p=st.sampled_from([2, 3])),
       lambda x, p: x ** p, lambda x, p: x ** p),
    Op("rpow", unary(base=st.floats(0.5, 3.0)), lambda x, base: base ** x, lambda x, base: base ** x),
    Op("scalar_reflected", SHAPES.flatmap(lambda s: signed(s, 0.3, 2.0)).map(lambda x: Case([x], {})),
       lambda x: 1.5 / x - 2.0 * x + (1.0 - x) + 0.5, lambda x: 1.5 / x - 2.0 * x + (1.0 - x) + 0.5),
    Op("neg", unary(), lambda x: -x, np.negative),
    # elementwise functions
    Op("exp", unary(), lambda x: x.exp(), np.exp),
    Op("log", unary(0.1, 2.0), lambda x: x.log(), np.log),
    Op("log1p", unary(-0.5, 2.0), F.log1p, np.log1p),
    Op("sqrt", unary(0.1, 2.0), lambda x: x.sqrt(), np.sqrt),
    Op("abs", unary(kinks=(0.0,)), lambda x: x.abs(), np.abs),
    Op("clip", unary(**CLIP).map(lambda c: Case([away_from(c.arrays[0], c.params.values())], c.params)),
       lambda x, low, high: F.clip(x, low, high), lambda x, low, high: np.clip(x, low, high)),
    Op("clip_lower_only", unary(kinks=(0.25,)), lambda x: F.clip(x, 0.25), lambda x: np.maximum(x, 0.25)),
    Op("tanh", unary(), F.tanh, np.tanh),
    Op("sin", unary(), F.sin, np.sin),
    Op("cos", unary(), F.cos, np.cos),
    Op("sigmoid", unary(), F.sigmoid, sps.expit),
    Op("relu", unary(kinks=(0.0,)), F.relu, lambda x: np.maximum(x, 0)),
    Op("leaky_relu", unary(kinks=(0.0,), negative_slope=st.floats(0.01, 0.3)),
       F.leaky_relu, lambda x, negative_slope: np.where(x > 0, x, negative_slope * x)),
    Op("elu", unary(kinks=(0.0,), alpha=st.floats(0.5, 2.0)),
       F.elu, lambda x, alpha: np.where(x > 0, x, alpha * np.expm1(x))),
    Op("softplus", unary(), F.softplus, lambda x: np.logaddexp(0, x)),
    Op("where", where_case(), lambda a, b, cond: F.where(cond, a, b),
       lambda a, b, cond: np.where(cond, a, b)),
    # shape
    Op("getitem_basic", basic_index(), lambda x, index: x[index], lambda x, index: x[index]),
    Op("getitem_int_array", integer_array_index(), lambda x, index: x[index], lambda x, index: x[index]),
    Op("getitem_bool_mask", mask_index(), lambda x, index: x[index], lambda x, index: x[index]),
    Op("reshape", new_shape(), lambda x, shape: x.reshape(shape), lambda x, shape: x.reshape(shape)),
    Op("transpose_T", unary(), lambda x: x.T, lambda x: x.T),
    Op("permute", permutation(), lambda x, axes: x.permute(*axes), np.transpose),
    Op("broadcast_to", broadcast_target(), F.broadcast_to, np.broadcast_to),
    Op("expand", broadcast_target(use_minus_one=True), lambda x, shape: x.expand(*shape),
       lambda x, shape: np.broadcast_to(x, tuple(
           x.shape[i - len(shape) + x.ndim] if n == -1 else n for i, n in enumerate(shape)))),
    Op("concatenate", parts_for_concatenate(), lambda *xs, axis: F.concatenate(xs, axis),
       lambda *xs, axis: np.concatenate(xs, axis)),
    Op("stack", parts_for_stack(), lambda *xs, axis: F.stack(xs, axis), lambda *xs, axis: np.stack(xs, axis)),
    Op("split", split_sections(), lambda x, sections, axis: tuple(F.split(x, sections, axis)), split_ref),
    Op("pad", pad_widths(), F.pad,
       lambda x, pad_width, value: np.pad(x, pad_width, constant_values=value)),
    Op("flatten", unary(shapes=NONSCALAR), lambda x: x.flatten(), lambda x: x.reshape(-1)),
    Op("flatten_from_1", unary(shapes=NONSCALAR), lambda x: x.flatten(1),
       lambda x: x.reshape(x.shape[:1] + (-1,)) if x.ndim > 1 else x.reshape(-1)),
    Op("squeeze_unsqueeze", unary(), lambda x: x.unsqueeze(0).squeeze(),
       lambda x: np.squeeze(x[None])),
    # reductions and the softmax family
    Op("sum", reduction(), lambda x, **kw: x.sum(**kw), lambda x, **kw: np.sum(x, **kw)),
    Op("mean", reduction(), lambda x, **kw: x.mean(**kw), lambda x, **kw: np.mean(x, **kw)),
    Op("max", reduction(max_min=True), lambda x, **kw: x.max(**kw), lambda x, **kw: np.max(x, **kw)),
    Op("min", reduction(max_min=True), lambda x, **kw: x.min(**kw), lambda x, **kw: np.min(x, **kw)),
    Op("var", reduction(ddof=True), F.var, lambda x, **kw: np.var(x, **kw)),
    Op("logsumexp", reduction(), F.logsumexp,  # (scipy gives shape (1,) for 0-d, keepdims)
       lambda x, **kw: np.reshape(sps.logsumexp(x, **kw), np.sum(x, **kw).shape)),
    Op("softmax", along_axis(), F.softmax, sps.softmax),
    Op("log_softmax", along_axis(), F.log_softmax, sps.log_softmax),
    # linear algebra
    *[Op(name, matmul_case(a_vector, b_vector), lambda a, b: a @ b, np.matmul, max_examples)
      for name, a_vector, b_vector, max_examples in [
          ("matmul", False, False, None), ("matmul_matrix_vector", False, True, 8),
          ("matmul_vector_matrix", True, False, 8), ("matmul_vector_vector", True, True, 5)]],
    *[Op(f"einsum[{spec}]", einsum_case(spec), lambda *xs, spec: F.einsum(spec, *xs),
         lambda *xs, spec: np.einsum(spec, *xs), max_examples=6)
      for spec in ["ij,jk->ik", "bij,bjk->bik", "ij,k->i", "i,i->", "ij,ij->i", "ij,jk", "bi,bj->bij",
                   "ijk,ik->j", "ij,kj->ki"]],
    Op("linear", linear_case(), F.linear, linear_ref, max_examples=10),
    # losses, one row per reduction (and layout)
    *[row for reduction in REDUCTIONS for row in [
        Op(f"binary_cross_entropy_with_logits[{reduction}]", bce_case(reduction),
           F.binary_cross_entropy_with_logits,
           lambda x, t, reduction: reduce_ref(np.logaddexp(0, x) - x * t, reduction), max_examples=8),
        Op(f"cross_entropy[(N,C),{reduction}]", cross_entropy_case(reduction, spatial=False),
           F.cross_entropy, cross_entropy_ref, max_examples=8),
        Op(f"cross_entropy[(N,C,d),{reduction}]", cross_entropy_case(reduction, spatial=True),
           F.cross_entropy, cross_entropy_ref, max_examples=8),
        Op(f"mse_loss[{reduction}]", mse_case(reduction), F.mse_loss,
           lambda x, t, reduction: reduce_ref((x - t) ** 2, reduction), max_examples=8),
        Op(f"gaussian_nll[{reduction}]", gaussian_nll_case(reduction), gaussian_nll_fn,
           gaussian_nll_ref, max_examples=8),
        Op(f"gaussian_nll_scalar_var[{reduction}]", gaussian_nll_case(reduction, scalar_var=True),
           gaussian_nll_fn, gaussian_nll_ref, max_examples=5)]],
]


# ----------------------------------------------------------------------------- U-Net / diffusion ops

@st.composite
def group_norm_case(draw):
    """x (N, G*k, *spatial) with at least two values per group; weight and bias sometimes absent."""
    n, groups, per_group = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    spatial = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3))
    if per_group * math.prod(spatial) < 2:
        spatial = (2,)
    c = groups * per_group
    arrays = [draw(values((n, c) + spatial))]
    affine = draw(st.booleans())
    if affine:
        arrays += [draw(values((c,))), draw(values((c,)))]
    return Case(arrays, {"num_groups": groups})


def group_norm_fn(x, weight=None, bias=None, *, num_groups):
    return F.group_norm(x, num_groups, weight, bias)


def group_norm_ref(x, weight=None, bias=None, *, num_groups):
    grouped = x.reshape(x.shape[0], num_groups, -1)
    x_hat = ((grouped - grouped.mean(axis=2, keepdims=True))
             / np.sqrt(grouped.var(axis=2, keepdims=True) + 1e-5)).reshape(x.shape)
    per_channel = (1, -1) + (1,) * (x.ndim - 2)
    if weight is None:
        return x_hat
    return x_hat * weight.reshape(per_channel) + bias.reshape(per_channel)


def timestep_embedding_ref(t, dim, max_period):
    freqs = max_period ** (-np.arange(dim // 2) / (dim // 2))
    return np.concatenate([np.sin(t[..., None] * freqs), np.cos(t[..., None] * freqs)], axis=-1)


OPS += [
    Op("group_norm", group_norm_case(), group_norm_fn, group_norm_ref, max_examples=10),
    Op("silu", unary(), F.silu, lambda x: x * sps.expit(x)),
    Op("timestep_embedding", unary(0.0, 50.0, dim=st.sampled_from([2, 4, 6, 8]),
                                   max_period=st.sampled_from([10.0, 10000.0])),
       F.timestep_embedding, timestep_embedding_ref, max_examples=10),
]
