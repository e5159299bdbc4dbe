"""Optimisers: ``SGD`` (momentum, Nesterov) and ``Adam``, with PyTorch's update rules.

Storage -- what a user may be surprised by: the optimiser takes the parameters' memory over.
At construction the parameters are grouped by (device, dtype); each group's values are copied
into ONE flat array and every ``p.data`` is REPLACED by a view into it (an array obtained from
``p.data`` before building the optimiser is no longer the parameter's memory, and is not
updated by ``step()``); ``zero_grad()`` likewise points every ``p.grad`` at a view of one zeroed
flat gradient array, so backward accumulates straight into it. ``step()`` then updates a whole
group with a dozen vectorised in-place operations instead of a dozen per parameter (see
benchmarks/bench_mlp_vae_step.py). Hold on to Parameters, not to their arrays.

``ReferenceSGD`` and ``ReferenceAdam`` below are the same algorithms written plainly, one
parameter at a time, for reading beside the papers; tests/test_optim.py checks that the flat
versions give the same parameters.

The flat view is kept in sync with what users do:
- ``p.data = new_array`` (same shape, dtype, device): copied into the flat buffer at the next step;
  a different shape, dtype or device raises (build the optimiser after ``model.to(...)``).
- ``p.grad = array`` or a gradient made by backward after ``p.grad = None``: copied in at the step.
- ``p.grad is None``: as in PyTorch, that parameter is not updated at all (its state neither):
  the update runs on the slices of consecutive parameters that do have a gradient.

Threads: the update is elementwise, so ``step()`` cuts a NumPy flat buffer into
``get_num_threads()`` pieces (``set_num_threads(n)``; default $OMP_NUM_THREADS, else
$OPENBLAS_NUM_THREADS, else the CPU count) and updates them at once, with the same values as
one piece; buffers under 2^17 elements, and CuPy buffers, are updated in one piece.

Every ``step()`` bumps the version of each parameter it updates, so a backward through a graph
built before the step raises instead of using the new values (see minigen.autograd).
Hyperparameters are plain attributes (``optimizer.lr = 1e-4`` takes effect at the next step).
"""
import math
import threading

import numpy

from . import backend
from .autograd import Tensor
from .threads import get_num_threads, map_slices, set_num_threads
from .validation import check_float

__all__ = ["Optimizer", "SGD", "Adam", "ReferenceSGD", "ReferenceAdam", "get_num_threads",
           "set_num_threads"]  # the two thread settings live in minigen.threads

_MIN_CHUNK = 1 << 16  # elements per thread below which a thread costs more than it saves


class _FlatGroup:
    """Parameters sharing a device and dtype, their data and gradients viewed in flat arrays."""

    def __init__(self, params, indices, state_names):
        self.params, self.indices = params, indices  # indices: positions in the optimiser's list
        self.device = backend.device_of(params[0].data)
        self.xp = xp = backend.get_array_module(params[0].data)
        dtype = params[0].data.dtype
        self.shapes = [p.data.shape for p in params]
        self.offsets = [0]
        for p in params:
            self.offsets.append(self.offsets[-1] + p.data.size)
        self.data = xp.empty(self.offsets[-1], dtype=dtype)
        self.grad = xp.zeros(self.offsets[-1], dtype=dtype)
        self.data_views = [self.view(self.data, i) for i in range(len(params))]
        self.grad_views = [self.view(self.grad, i) for i in range(len(params))]
        for p, data_view, grad_view in zip(params, self.data_views, self.grad_views):
            data_view[...] = p.data
            p.data = data_view
            if p.grad is not None:
                grad_view[...] = p.grad
                p.grad = grad_view
        self.state = {name: xp.zeros(self.offsets[-1], dtype=dtype) for name in state_names}
        self.steps = [0] * len(params)
        self._scratch = {}
        self._scratch_lock = threading.Lock()  # pieces of one update may run in threads

    def view(self, flat, i):
        """Parameter i's slice of a flat array, in the parameter's shape."""
        return flat[self.offsets[i]:self.offsets[i + 1]].reshape(self.shapes[i])

    def scratch(self, name):
        """A flat work array of this group's size, allocated on first use."""
        with self._scratch_lock:
            if name not in self._scratch:
                self._scratch[name] = self.xp.empty_like(self.data)
            return self._scratch[name]

    def zero_grad(self, set_to_none):
        if not set_to_none:
            self.grad.fill(0)
        for p, grad_view in zip(self.params, self.grad_views):
            p.grad = grad_view if p.requires_grad and not set_to_none else None  # frozen: skipped

    def _adopt(self, i):
        """Copy a replaced ``p.data`` / ``p.grad`` into the flat views; True if p has a gradient."""
        p, data_view, grad_view = self.params[i], self.data_views[i], self.grad_views[i]
        if p.data is not data_view:
            new = p.data
            if new.shape != data_view.shape or new.dtype != data_view.dtype \
                    or backend.device_of(new) != self.device:
                raise RuntimeError(
                    f"optimizer: parameter {self.indices[i]} was {data_view.shape} {data_view.dtype} on "
                    f"{self.device} when the optimizer was built, now {tuple(new.shape)} {new.dtype} on "
                    f"{backend.device_of(new)}; build the optimizer after model.to(...)/.double()")
            data_view[...] = new
            p.data = data_view
        if p.grad is None:
            return False
        if p.grad is not grad_view:
            if tuple(p.grad.shape) != data_view.shape or backend.device_of(p.grad) != self.device:
                raise ValueError(f"optimizer: parameter {self.indices[i]} of shape {data_view.shape} on "
                                 f"{self.device} has a gradient of shape {tuple(p.grad.shape)} on "
                                 f"{backend.device_of(p.grad)}")
            grad_view[...] = p.grad
            p.grad = grad_view
        return True

    def runs(self):
        """Runs (slice of the flat arrays, step count, parameter positions) of consecutive
        parameters that have a gradient and the same step count; usually one run: everything."""
        runs = []
        for i in range(len(self.params)):
            if not self._adopt(i):
                continue
            if runs and runs[-1][1] == i and self.steps[runs[-1][0]] == self.steps[i]:
                runs[-1][1] = i + 1
            else:
                runs.append([i, i + 1])
        return [(slice(self.offsets[a], self.offsets[b]), self.steps[a], range(a, b)) for a, b in runs]


def _restore(current, value):
    """A saved hyperparameter (Python value or 0-d/1-d array) with the type of ``current``."""
    value = numpy.asarray(backend.to_numpy(value))  # host-side metadata
    if isinstance(current, tuple):
        return tuple(float(v) for v in value.ravel())
    return type(current)(value.item())


class Optimizer:
    """Base class: flat storage, ``zero_grad``, ``step`` and checkpoints; subclasses write ``_update``.

    ``_update(group, flat_slice, t)`` updates ``group.data[flat_slice]`` from ``group.grad[flat_slice]``
    and the state arrays, where ``t`` (1, 2, ...) is the step number of those parameters.
    """

    _state_names = ()       # per-element state, e.g. ("exp_avg", "exp_avg_sq")
    _hyperparameters = ()   # attributes saved in state_dict, e.g. ("lr", "betas")

    def __init__(self, params):
        if isinstance(params, Tensor):
            params = [params]
        unique = {}
        for p in params:
            if isinstance(p, dict):
                raise TypeError("optimizer: parameter groups (dicts) are not supported; pass an "
                                "iterable of Parameters, e.g. model.parameters()")
            if not isinstance(p, Tensor) or p.dtype.kind != "f":
                got = f"a Tensor of dtype {p.dtype}" if isinstance(p, Tensor) else type(p).__name__
                raise TypeError(f"optimizer: expected floating-point Parameters/Tensors, got {got}")
            unique.setdefault(id(p), p)
        self.params = list(unique.values())
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        by_key = {}
        for k, p in enumerate(self.params):
            by_key.setdefault((backend.device_of(p.data), p.data.dtype.str), []).append(k)
        self._groups = [_FlatGroup([self.params[k] for k in ks], ks, self._state_names)
                        for ks in by_key.values()]

    def zero_grad(self, set_to_none=False):
        """Zero the flat gradient buffers and point each ``p.grad`` at its view (the fast path).

        Then, as with PyTorch's ``zero_grad(set_to_none=False)``, a parameter that the next
        backward does not reach keeps a zero gradient and is still moved by momentum and weight
        decay. ``set_to_none=True`` (PyTorch's default) sets every ``p.grad`` to None instead, so
        such parameters are skipped, at the cost of copying fresh gradients in at each step.
        Parameters with ``requires_grad=False`` always get None (frozen: never updated).
        """
        for group in self._groups:
            group.zero_grad(set_to_none)

    def step(self):
        """One update of every parameter that has a gradient (NumPy buffers in get_num_threads()
        pieces at once: the same values as one piece)."""
        for group in self._groups:
            for flat_slice, steps_done, positions in group.runs():
                start = flat_slice.start

                def update(piece, start=start, t=steps_done + 1):  # piece: offsets from start
                    self._update(group, slice(start + piece.start, start + piece.stop), t)
                # pieces of 16-element multiples (no cache line shared); CuPy: one piece
                map_slices(update, flat_slice.stop - start, group.data, _MIN_CHUNK, align=16)
                for i in positions:
                    group.steps[i] += 1
                    group.params[i]._bump_version()

    def _update(self, group, flat_slice, t):
        raise NotImplementedError

    # -- checkpoints
    def _locations(self):
        for group in self._groups:
            for i, k in enumerate(group.indices):
                yield k, group, i

    def state_dict(self):
        """{"hyperparameters": {name: value}, "state": {"0": {"step": t, <state name>: array}, ...}}.

        State entries are numbered by the parameters' order at construction (as PyTorch);
        arrays are copies. ``minigen.save`` stores this nested dict as it is.
        """
        state = {}
        for k, group, i in sorted(self._locations(), key=lambda loc: loc[0]):
            entry = {"step": group.steps[i]}
            for name in self._state_names:
                entry[name] = group.view(group.state[name], i).copy()
            state[str(k)] = entry
        return {"hyperparameters": {name: getattr(self, name) for name in self._hyperparameters},
                "state": state}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and state saved by ``state_dict`` (e.g. via minigen.save/load)."""
        if not isinstance(state_dict, dict) or set(state_dict) != {"hyperparameters", "state"}:
            keys = list(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(f"{type(self).__name__}.load_state_dict: expected a dict with keys "
                             f"'hyperparameters' and 'state' (from state_dict()), got {keys}")
        hyper, state = state_dict["hyperparameters"], state_dict["state"]
        problems = [f"missing hyperparameter {name!r}" for name in self._hyperparameters if name not in hyper]
        if len(state) != len(self.params):
            problems.append(f"state for {len(state)} parameters, but the optimizer has {len(self.params)}")
        for k, group, i in self._locations():
            entry = state.get(str(k), {})
            for name in ("step",) + self._state_names:
                if name not in entry:
                    problems.append(f"state {k} lacks {name!r}")
                elif name != "step" and tuple(entry[name].shape) != group.data_views[i].shape:
                    problems.append(f"state {k} {name!r} has shape {tuple(entry[name].shape)}, "
                                    f"parameter has {group.data_views[i].shape}")
        if problems:
            raise ValueError(f"{type(self).__name__}.load_state_dict failed: " + "; ".join(problems))
        for name in self._hyperparameters:
            setattr(self, name, _restore(getattr(self, name), hyper[name]))
        for k, group, i in self._locations():
            entry = state[str(k)]
            group.steps[i] = int(entry["step"])
            for name in self._state_names:
                group.view(group.state[name], i)[...] = backend.to_device(entry[name], group.device)

    def __repr__(self):
        settings = ", ".join(f"{name}={getattr(self, name)}" for name in self._hyperparameters)
        return f"{type(self).__name__}({settings})"


def _check_betas(betas, optimizer):
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"{optimizer}: betas must be a pair (beta1, beta2), got {betas!r}")
    for i, beta in enumerate(betas):
        if check_float(beta, f"{optimizer}: betas[{i}]", minimum=0) >= 1:
            raise ValueError(f"{optimizer}: betas[{i}] must be < 1, got {beta!r}")
    return tuple(float(beta) for beta in betas)


def _check_sgd(lr, momentum, weight_decay, nesterov):
    settings = [check_float(value, f"SGD: {name}", minimum=0) for name, value in
                (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay))]
    if nesterov and settings[1] == 0:
        raise ValueError("SGD: nesterov=True needs momentum > 0")
    return settings + [bool(nesterov)]


def _check_adam(lr, betas, eps, weight_decay):
    return (check_float(lr, "Adam: lr", minimum=0), _check_betas(betas, "Adam"),
            check_float(eps, "Adam: eps", minimum=0),
            check_float(weight_decay, "Adam: weight_decay", minimum=0))


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and L2 weight decay (torch.optim.SGD):

        g = grad + weight_decay * p
        b = momentum * b + g                         (b = 0 before the first step)
        p = p - lr * (g + momentum * b)              (nesterov)
        p = p - lr * b                               (momentum, not nesterov; b = g without momentum)

    Memory: the parameters' arrays are replaced by views into one flat buffer per device and
    dtype (see the module docstring); ``ReferenceSGD`` is the plain per-parameter version.
    """

    _state_names = ("momentum_buffer",)  # kept even at momentum 0, so momentum can be changed later
    _hyperparameters = ("lr", "momentum", "weight_decay", "nesterov")

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
        self.lr, self.momentum, self.weight_decay, self.nesterov = _check_sgd(
            lr, momentum, weight_decay, nesterov)
        super().__init__(params)

    def _update(self, group, flat_slice, t):
        xp = group.xp
        p, g = group.data[flat_slice], group.grad[flat_slice]
        work = group.scratch("work")[flat_slice]
        if self.weight_decay:
            g = xp.multiply(p, self.weight_decay, out=work)
            g += group.grad[flat_slice]
        if self.momentum:
            b = group.state["momentum_buffer"][flat_slice]
            b *= self.momentum
            b += g
            if self.nesterov:
                p -= xp.multiply(g, self.lr, out=work)
                p -= xp.multiply(b, self.lr * self.momentum, out=work)
                return
            g = b
        p -= xp.multiply(g, self.lr, out=work)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015, Algorithm 1) with L2 weight decay added to the gradient (torch.optim.Adam):

        g = grad + weight_decay * p
        m = beta1 m + (1 - beta1) g                  v = beta2 v + (1 - beta2) g^2
        p = p - lr / (1 - beta1^t) * m / (sqrt(v / (1 - beta2^t)) + eps)

    Memory: the parameters' arrays are replaced by views into one flat buffer per device and
    dtype (see the module docstring); ``ReferenceAdam`` is the plain per-parameter version.
    """

    _state_names = ("exp_avg", "exp_avg_sq")
    _hyperparameters = ("lr", "betas", "eps", "weight_decay")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.lr, self.betas, self.eps, self.weight_decay = _check_adam(lr, betas, eps, weight_decay)
        super().__init__(params)

    def _update(self, group, flat_slice, t):
        xp = group.xp
        beta1, beta2 = self.betas
        p, g = group.data[flat_slice], group.grad[flat_slice]
        m, v = group.state["exp_avg"][flat_slice], group.state["exp_avg_sq"][flat_slice]
        work = group.scratch("work")[flat_slice]
        if self.weight_decay:
            g = xp.multiply(p, self.weight_decay, out=group.scratch("decayed_grad")[flat_slice])
            g += group.grad[flat_slice]
        m *= beta1
        m += xp.multiply(g, 1 - beta1, out=work)
        v *= beta2
        g2 = xp.multiply(g, g, out=work)
        g2 *= 1 - beta2
        v += g2
        # Bias corrections folded into two scalars:
        # lr/bc1 * m / (sqrt(v/bc2) + eps) = (lr sqrt(bc2)/bc1) * m / (sqrt(v) + eps sqrt(bc2)).
        sqrt_bc2, bc1 = math.sqrt(1 - beta2 ** t), 1 - beta1 ** t
        denom = xp.sqrt(v, out=work)
        denom += self.eps * sqrt_bc2
        step = xp.divide(m, denom, out=work)
        step *= self.lr * sqrt_bc2 / bc1
        p -= step


class _Reference:
    """Shared by the reference optimisers: the parameter list and ``zero_grad``."""

    def __init__(self, params):
        self.params = [params] if isinstance(params, Tensor) else list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")

    def zero_grad(self, set_to_none=False):
        """Zero every gradient (or set it to None: the parameter is then skipped), as ``SGD``'s."""
        for p in self.params:
            p.grad = None if set_to_none or not p.requires_grad else \
                backend.get_array_module(p.data).zeros_like(p.data)


class ReferenceSGD(_Reference):
    """``SGD`` written plainly, one parameter at a time (for learners; ``SGD`` is the fast one).

    For each parameter p with a gradient:  g = grad + weight_decay p;  b = momentum b + g;
    p -= lr (g + momentum b) with Nesterov, else p -= lr b  (b = g without momentum).
    """

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
        self.lr, self.momentum, self.weight_decay, self.nesterov = _check_sgd(
            lr, momentum, weight_decay, nesterov)
        super().__init__(params)
        self.momentum_buffers = {}  # id(p) -> b

    def step(self):
        for p in self.params:
            if p.grad is None:
                continue
            g = p.grad + self.weight_decay * p.data
            if self.momentum:
                b = self.momentum * self.momentum_buffers.get(id(p), 0) + g
                self.momentum_buffers[id(p)] = b
                g = g + self.momentum * b if self.nesterov else b
            p.data -= self.lr * g
            p._bump_version()


class ReferenceAdam(_Reference):
    """``Adam`` written plainly, one parameter at a time (Kingma & Ba 2015, Algorithm 1):

        g = grad + weight_decay p
        m = beta1 m + (1 - beta1) g,   v = beta2 v + (1 - beta2) g^2        (m = v = 0 at t = 0)
        m_hat = m / (1 - beta1^t),     v_hat = v / (1 - beta2^t)
        p = p - lr m_hat / (sqrt(v_hat) + eps)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.lr, self.betas, self.eps, self.weight_decay = _check_adam(lr, betas, eps, weight_decay)
        super().__init__(params)
        self.state = {}  # id(p) -> (t, m, v)

    def step(self):
        beta1, beta2 = self.betas
        for p in self.params:
            if p.grad is None:
                continue
            xp = backend.get_array_module(p.data)
            g = p.grad + self.weight_decay * p.data
            t, m, v = self.state.get(id(p), (0, 0, 0))
            t, m, v = t + 1, beta1 * m + (1 - beta1) * g, beta2 * v + (1 - beta2) * g * g
            self.state[id(p)] = (t, m, v)
            m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
            p.data -= self.lr * m_hat / (xp.sqrt(v_hat) + self.eps)
            p._bump_version()
