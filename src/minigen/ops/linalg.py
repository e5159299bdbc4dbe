"""Matrix products: batched ``matmul``, the fused ``linear`` layer op, and two-operand ``einsum``."""
from ..autograd import Function
from ..backend import get_array_module

__all__ = ["matmul", "linear", "einsum"]


def _swap_last(a):
    return a.swapaxes(-1, -2)


class MatMul(Function):
    """a @ b with NumPy's rules: 1-D operands are promoted, leading axes broadcast."""

    def forward(self, a, b):
        self.a, self.b = a, b
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: operands must be at least 1-D, got shapes {a.shape} and {b.shape}")
        if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align "
                             f"({a.shape[-1]} != {b.shape[-2 if b.ndim > 1 else 0]})")
        return a @ b

    def backward(self, g):
        # Promote 1-D operands to matrices so one formula serves: dA = G B^T, dB = A^T G;
        # the walk then sums any broadcast batch axes back to each operand's shape.
        a, b = self.a, self.b
        A = a[None, :] if a.ndim == 1 else a
        B = b[:, None] if b.ndim == 1 else b
        G = g[..., None] if b.ndim == 1 else g
        G = G[..., None, :] if a.ndim == 1 else G
        need_a, need_b = self.needs_input_grad
        ga = G @ _swap_last(B) if need_a else None
        gb = _swap_last(A) @ G if need_b else None
        if need_a and a.ndim == 1:
            ga = ga[..., 0, :]
        if need_b and b.ndim == 1:
            gb = gb[..., 0]
        return ga, gb


class Linear(Function):
    """y = x W^T + b, fused: one GEMM forward, two GEMMs and a column sum backward."""

    def forward(self, x, weight, bias=None):
        if weight.ndim != 2 or x.ndim == 0 or x.shape[-1] != weight.shape[1]:
            raise ValueError(f"linear: input of shape {x.shape} needs a weight of shape "
                             f"(out_features, {x.shape[-1] if x.ndim else '?'}), got {weight.shape}")
        self.x, self.weight = x, weight
        y = x @ weight.T
        if bias is not None:
            y += bias
        return y

    def backward(self, g):
        need_x, need_w = self.needs_input_grad[:2]
        g2 = g.reshape(-1, g.shape[-1])
        gx = g @ self.weight if need_x else None
        gw = g2.T @ self.x.reshape(-1, self.x.shape[-1]) if need_w else None
        gb = g if len(self.needs_input_grad) > 2 else None  # the walk sums it to the bias's shape
        return gx, gw, gb


def _parse_einsum(spec, n_operands):
    spec = spec.replace(" ", "")
    if "." in spec:
        raise ValueError("einsum: ellipsis ('...') is not supported; name every axis")
    if "->" in spec:
        inputs, output = spec.split("->")
    else:  # implicit mode: the letters that appear exactly once, sorted
        inputs = spec
        letters = inputs.replace(",", "")
        output = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    inputs = inputs.split(",")
    if len(inputs) != n_operands:
        raise ValueError(f"einsum: '{spec}' names {len(inputs)} operands but {n_operands} were given")
    for term in inputs + [output]:
        if len(set(term)) != len(term):
            raise ValueError(f"einsum: repeated index within one operand ('{term}') is not supported")
    return inputs, output


class Einsum(Function):
    """Einstein summation; the gradient for operand k is itself an einsum of the others and g."""

    def __init__(self, spec):
        self.spec = spec

    def forward(self, *operands):
        xp = get_array_module(*operands)
        self.terms, self.output = _parse_einsum(self.spec, len(operands))
        for term, op in zip(self.terms, operands):
            if len(term) != op.ndim:
                raise ValueError(f"einsum: term '{term}' needs a {len(term)}-D operand, got shape {op.shape}")
        self.operands = operands
        return xp.einsum(",".join(self.terms) + "->" + self.output, *operands)

    def backward(self, g):
        xp = get_array_module(g)
        grads = []
        for k, (term, need) in enumerate(zip(self.terms, self.needs_input_grad)):
            if not need:
                grads.append(None)
                continue
            others = [(t, op) for i, (t, op) in enumerate(zip(self.terms, self.operands)) if i != k]
            available = set(self.output).union(*[set(t) for t, _ in others])
            kept = "".join(c for c in term if c in available)  # axes summed alone come back by broadcasting
            spec = ",".join([self.output] + [t for t, _ in others]) + "->" + kept
            gk = xp.einsum(spec, g, *[op for _, op in others])
            sizes = dict(zip(term, self.input_shapes[k]))
            gk = gk.reshape([sizes[c] if c in kept else 1 for c in term])
            grads.append(xp.broadcast_to(gk, self.input_shapes[k]))
        return tuple(grads)


def matmul(a, b):
    return MatMul()(a, b)


def linear(x, weight, bias=None):
    """PyTorch's F.linear: x @ weight.T + bias, weight of shape (out_features, in_features)."""
    return Linear()(x, weight) if bias is None else Linear()(x, weight, bias)


def einsum(spec, *operands):
    return Einsum(spec)(*operands)
