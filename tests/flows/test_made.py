"""MADE is autoregressive (perturbation over every input), and MAF / IAF run their parallel and
sequential directions as their papers say."""
import numpy as np
import pytest

import minigen
from devices import on_device, to_host
from minigen import flows


def perturbation_dependence(made, x, context=None):
    """dep[i, j] = True when changing input j changes some output of dimension i."""
    d = made.dim
    with minigen.no_grad():
        base = to_host(made(minigen.tensor(on_device(x)), context))
        dep = np.zeros((d, d), dtype=bool)
        for j in range(d):
            moved = x.copy()
            moved[:, j] += 1.0 + np.arange(len(x))  # a large, example-dependent change
            out = to_host(made(minigen.tensor(on_device(moved)), context))
            dep[:, j] = np.abs(out - base).max(axis=(0, 1)) > 1e-12
    return dep


@pytest.mark.parametrize("hidden_dims", [(), (16,), (16, 12)])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("with_context", [False, True])
def test_made_output_i_ignores_inputs_at_or_after_i(hidden_dims, reverse, with_context):
    minigen.manual_seed(0)
    d = 5
    made = flows.MADE(d, hidden_dims, n_params=2, context_dim=3 if with_context else None,
                      reverse=reverse).double()
    rng = np.random.default_rng(0)
    for p in made.parameters():
        p.data[...] = on_device(rng.standard_normal(p.shape))
    context = minigen.tensor(on_device(rng.standard_normal((4, 3)))) if with_context else None
    dep = perturbation_dependence(made, rng.standard_normal((4, d)), context)
    order = np.arange(d)[::-1] if reverse else np.arange(d)  # position of dimension i in the order
    rank = np.argsort(order)
    for i in range(d):
        for j in range(d):
            if rank[j] >= rank[i]:
                assert not dep[i, j], f"output {i} depends on input {j}, which is not before it"
    # and it is not trivially constant: with hidden layers every earlier input reaches the
    # last output, directly (no hidden layers) every earlier input reaches every output
    last = order[-1]
    assert dep[last, order[:-1]].all()


def test_the_perturbation_test_can_fail():
    made = flows.MADE(4, (8,)).double()
    for layer in made.net:
        if hasattr(layer, "mask"):
            layer.mask[...] = 1  # an unmasked MLP
    dep = perturbation_dependence(made, np.random.default_rng(1).standard_normal((3, 4)))
    assert dep[0, 0] and dep[0, 3]


class CountingMADE(flows.MADE):
    calls = 0

    def forward(self, x, context=None):
        CountingMADE.calls += 1
        return super().forward(x, context)


@pytest.mark.parametrize("cls, parallel", [(flows.MAF, "inverse"), (flows.IAF, "forward")])
def test_one_direction_is_one_pass_and_the_other_is_sequential(cls, parallel):
    d = 4
    layer = cls(d, (8,)).double()
    layer.made.__class__ = CountingMADE
    x = minigen.tensor(on_device(np.random.default_rng(0).standard_normal((3, d))))
    for direction in ("forward", "inverse"):
        CountingMADE.calls = 0
        getattr(layer, direction)(x)
        assert CountingMADE.calls == (1 if direction == parallel else d)
