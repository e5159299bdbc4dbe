"""Optimisers against hand-written NumPy updates, the flat-buffer bookkeeping, and clip_grad_norm_."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minigen
from devices import on_device, to_host
from minigen import backend, nn, optim
from minigen.nn.utils import clip_grad_norm_

SHAPES = [(3, 4), (4,), (2, 3)]


def make_params(seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    return [nn.Parameter(rng.standard_normal(s).astype(dtype)) for s in SHAPES]


def grads_for(step, seed=100):
    rng = np.random.default_rng(seed + step)
    return [rng.standard_normal(s) for s in SHAPES]


def run(optimizer, params, n_steps):
    """n_steps of zero_grad; add the step's gradient into p.grad (as backward does); step."""
    for t in range(n_steps):
        optimizer.zero_grad()
        for p, g in zip(params, grads_for(t)):
            p.grad += on_device(g)
        optimizer.step()
    return [p.numpy().copy() for p in params]


# ----------------------------------------------------------------------------- references

def sgd_reference(ps, n_steps, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
    ps = [p.copy() for p in ps]
    bufs = [None] * len(ps)
    for t in range(n_steps):
        for i, g in enumerate(grads_for(t)):
            g = g + weight_decay * ps[i]
            if momentum:
                bufs[i] = g.copy() if bufs[i] is None else momentum * bufs[i] + g
                g = g + momentum * bufs[i] if nesterov else bufs[i]
            ps[i] = ps[i] - lr * g
    return ps


def adam_reference(ps, n_steps, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    ps = [p.copy() for p in ps]
    b1, b2 = betas
    m, v = [np.zeros_like(p) for p in ps], [np.zeros_like(p) for p in ps]
    for t in range(1, n_steps + 1):
        for i, g in enumerate(grads_for(t - 1)):
            g = g + weight_decay * ps[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            m_hat, v_hat = m[i] / (1 - b1 ** t), v[i] / (1 - b2 ** t)
            ps[i] = ps[i] - lr * m_hat / (np.sqrt(v_hat) + eps)
    return ps


@pytest.mark.parametrize("kwargs", [
    dict(lr=0.1), dict(lr=0.1, momentum=0.9), dict(lr=0.05, momentum=0.8, nesterov=True),
    dict(lr=0.1, momentum=0.9, weight_decay=0.01), dict(lr=0.1, weight_decay=0.1),
])
def test_sgd_matches_numpy_reference(kwargs):
    params = make_params()
    start = [p.numpy().copy() for p in params]
    got = run(optim.SGD(params, **kwargs), params, 3)
    for a, b in zip(got, sgd_reference(start, 3, **kwargs)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kwargs", [
    dict(lr=0.01), dict(lr=0.1, betas=(0.5, 0.9), eps=1e-3), dict(lr=0.01, weight_decay=0.1),
])
def test_adam_matches_numpy_reference(kwargs):
    params = make_params()
    start = [p.numpy().copy() for p in params]
    got = run(optim.Adam(params, **kwargs), params, 3)
    for a, b in zip(got, adam_reference(start, 3, **kwargs)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@settings(max_examples=15)
@given(st.lists(st.floats(-1e3, 1e3).filter(lambda g: abs(g) > 1e-3), min_size=1, max_size=6),
       st.floats(1e-4, 1.0))
def test_first_adam_step_moves_each_coordinate_by_lr_against_the_gradient(g, lr):
    """t = 1: m_hat = g, v_hat = g^2, so the step is lr * g / (|g| + eps) ~ lr * sign(g)."""
    p = nn.Parameter(np.zeros(len(g)))
    opt = optim.Adam([p], lr=lr, eps=1e-12)
    p.grad = on_device(g)
    opt.step()
    np.testing.assert_allclose(p.numpy(), -lr * np.sign(g), rtol=1e-9)


# ----------------------------------------------------------------------------- flat storage

def test_parameters_become_views_of_one_flat_buffer_and_backward_fills_it():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    before = [p.numpy().copy() for p in model.parameters()]
    opt = optim.Adam(model.parameters())
    (group,) = opt._groups
    group.data += 1  # every parameter sees a change to the flat buffer
    for p, b in zip(model.parameters(), before):
        np.testing.assert_allclose(p.numpy(), b + 1, rtol=1e-6)
    opt.zero_grad()
    views = [p.grad for p in model.parameters()]
    assert not to_host(group.grad).any()
    group.grad += 2
    assert all(np.all(to_host(g) == 2) for g in views)
    opt.zero_grad()
    model(minigen.randn(5, 3)).sum().backward()
    assert all(p.grad is v for p, v in zip(model.parameters(), views))  # accumulated in place
    expected = np.concatenate([to_host(p.grad).ravel() for p in model.parameters()])
    np.testing.assert_array_equal(to_host(group.grad), expected)
    assert expected.any()


def test_parameter_without_grad_is_not_updated_nor_its_state():
    params = make_params()
    start = [p.numpy().copy() for p in params]
    opt = optim.Adam(params, lr=0.1, weight_decay=0.1)
    for t in range(2):
        for p, g in zip(params, grads_for(t)):
            p.grad = on_device(g)
        params[1].grad = None  # the middle parameter gets no gradient: the flat update splits
        opt.step()
    np.testing.assert_array_equal(params[1].numpy(), start[1])
    state = opt.state_dict()["state"]
    assert state["1"]["step"] == 0 and not to_host(state["1"]["exp_avg"]).any()
    assert state["0"]["step"] == state["2"]["step"] == 2
    ref = adam_reference(start, 2, lr=0.1, weight_decay=0.1)
    np.testing.assert_allclose(params[0].numpy(), ref[0], rtol=1e-12)
    np.testing.assert_allclose(params[2].numpy(), ref[2], rtol=1e-12)
    # Its first real step uses t = 1 bias corrections even though the others are at t = 3.
    g = grads_for(0)[1]
    for p in params:
        p.grad = p.data * 0
    params[1].grad = on_device(g)
    opt.step()
    d = g + 0.1 * start[1]
    np.testing.assert_allclose(params[1].numpy(), start[1] - 0.1 * d / (np.abs(d) + 1e-8), rtol=1e-12)


def test_set_to_none_and_module_zero_grad_paths_agree_with_the_fast_path():
    results = []
    for mode in ("fast", "none", "module"):
        params = make_params()
        model_like = nn.Module()
        for i, p in enumerate(params):
            setattr(model_like, f"p{i}", p)
        opt = optim.SGD(params, lr=0.1, momentum=0.9)
        for t in range(3):
            if mode == "fast":
                opt.zero_grad()
            elif mode == "none":
                opt.zero_grad(set_to_none=True)
            else:
                model_like.zero_grad()
            loss = sum(((p * minigen.tensor(g)).sum() for p, g in zip(params, grads_for(t))),
                       minigen.tensor(0.0, dtype="float64"))
            loss.backward()
            opt.step()
        results.append([p.numpy().copy() for p in params])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_replaced_data_is_adopted_and_bad_replacements_raise():
    params = make_params()
    opt = optim.SGD(params, lr=0.5)
    params[0].data = on_device(np.full(SHAPES[0], 3.0))
    params[0].grad = on_device(np.ones(SHAPES[0]))
    opt.step()
    np.testing.assert_array_equal(params[0].numpy(), 2.5)
    assert params[0].data is opt._groups[0].data_views[0]  # back in the flat buffer
    params[0].data = on_device(np.zeros(SHAPES[0], dtype=np.float32))
    with pytest.raises(RuntimeError, match="float32"):
        opt.step()
    params[0].data = on_device(np.zeros(SHAPES[0]))
    params[2].grad = on_device(np.ones(5))
    with pytest.raises(ValueError, match="gradient of shape"):
        opt.step()


def test_lr_attribute_and_mixed_dtypes():
    p32, p64 = nn.Parameter(np.ones(3, dtype=np.float32)), nn.Parameter(np.ones(2))
    opt = optim.SGD([p32, p64, p32], lr=1.0)  # duplicates are ignored
    assert len(opt._groups) == 2 and len(opt.params) == 2
    opt.lr = 0.25
    p32.grad, p64.grad = on_device(np.ones(3, dtype=np.float32)), on_device(np.ones(2))
    opt.step()
    assert p32.dtype == np.float32 and np.all(p32.numpy() == 0.75) and np.all(p64.numpy() == 0.75)


def test_bad_hyperparameters_and_inputs_raise():
    with pytest.raises(ValueError, match="lr"):
        optim.SGD(make_params(), lr=-1)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD(make_params(), lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam(make_params(), betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="empty"):
        optim.Adam([])
    with pytest.raises(TypeError, match="groups"):
        optim.Adam([{"params": make_params()}])
    with pytest.raises(TypeError, match="floating"):
        optim.Adam([np.zeros(3)])


def test_state_dict_round_trip_continues_identically():
    params_a, params_b = make_params(), make_params()
    opt_a = optim.Adam(params_a, lr=0.05)
    run(opt_a, params_a, 2)
    for pa, pb in zip(params_a, params_b):
        pb.data[...] = pa.data
    opt_b = optim.Adam(params_b, lr=1.0)
    opt_b.load_state_dict(opt_a.state_dict())
    assert opt_b.lr == 0.05 and opt_b.betas == (0.9, 0.999)
    run(opt_a, params_a, 2)
    run(opt_b, params_b, 2)
    for pa, pb in zip(params_a, params_b):
        np.testing.assert_array_equal(pa.numpy(), pb.numpy())
    bad = opt_a.state_dict()
    bad["state"]["1"]["exp_avg"] = np.zeros(7)
    with pytest.raises(ValueError, match="exp_avg"):
        opt_b.load_state_dict(bad)
    with pytest.raises(ValueError, match="hyperparameters"):
        opt_b.load_state_dict({"lr": 1.0})


# ----------------------------------------------------------------------------- clip_grad_norm_

@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
def test_clip_grad_norm_matches_direct_computation(norm_type):
    params = make_params()
    for p, g in zip(params, grads_for(0)):
        p.grad = on_device(10 * g)
    params.append(nn.Parameter(np.ones(2)))  # grad None: skipped
    flat = np.concatenate([to_host(p.grad).ravel() for p in params[:3]])
    expected = np.linalg.norm(flat, ord=norm_type)
    total = clip_grad_norm_(params, max_norm=1.0, norm_type=norm_type)
    assert total.item() == pytest.approx(expected, rel=1e-12)
    clipped = np.concatenate([to_host(p.grad).ravel() for p in params[:3]])
    np.testing.assert_allclose(clipped, flat / (expected + 1e-6), rtol=1e-12)
    assert np.linalg.norm(clipped, ord=norm_type) == pytest.approx(1.0, rel=1e-5)
    # Under the limit nothing changes.
    total = clip_grad_norm_(params, max_norm=5.0, norm_type=norm_type)
    np.testing.assert_array_equal(np.concatenate([to_host(p.grad).ravel() for p in params[:3]]), clipped)


def test_clip_grad_norm_on_flat_views_and_errors():
    model = nn.Linear(4, 3)
    opt = optim.SGD(model.parameters(), lr=0.1)
    opt.zero_grad()
    (model(minigen.randn(8, 4)) * 100).sum().backward()
    clip_grad_norm_(model.parameters(), 0.5)
    assert np.linalg.norm(to_host(opt._groups[0].grad)) == pytest.approx(0.5, rel=1e-4)
    model.weight.grad[0, 0] = np.nan
    with pytest.raises(RuntimeError, match="nan"):
        clip_grad_norm_(model.parameters(), 1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm_(model.parameters(), -1.0)


# ----------------------------------------------------------------------------- one code path

@pytest.mark.cpu_only  # swaps NumPy arrays for the strict stand-in; a cuda run is the real check
@pytest.mark.parametrize("make", [
    lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.1),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True),
])
def test_optimizers_and_clipping_use_only_the_array_module(make):
    """On strict arrays (a CuPy stand-in that refuses NumPy calls) the results equal NumPy's."""
    from strict_xp import StrictArray, to_plain, to_strict

    results = []
    for convert in (lambda a: a, to_strict):
        params = [nn.Parameter(convert(p.numpy())) for p in make_params()]
        opt = make(params)
        for t in range(3):
            opt.zero_grad()
            for p, g in zip(params, grads_for(t)):
                p.grad += convert(g)
            clip_grad_norm_(params, 2.0)
            opt.step()
        state = opt.state_dict()["state"]["0"]
        results.append([to_plain(p.data) for p in params] + [to_plain(v) for k, v in state.items()
                                                               if k != "step"])
        if convert is to_strict:
            assert all(isinstance(p.data, StrictArray) and isinstance(p.grad, StrictArray) for p in params)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_frozen_parameter_is_never_updated():
    params = make_params()
    params[0].requires_grad = False
    start = params[0].numpy().copy()
    opt = optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=0.5)
    for _ in range(2):
        opt.zero_grad()
        assert params[0].grad is None and params[1].grad is not None
        (params[1] * params[2].sum()).sum().backward()
        opt.step()
    np.testing.assert_array_equal(params[0].numpy(), start)


def test_data_or_gradient_on_another_device_raises(fake_cupy):
    p = nn.Parameter(np.ones(3), device="cpu")
    opt = optim.SGD([p], lr=0.1)
    p.grad = backend.to_device(np.ones(3), "cuda")
    with pytest.raises(ValueError, match="on cuda"):
        opt.step()
    p.grad = None
    p.data = backend.to_device(np.ones(3), "cuda")
    with pytest.raises(RuntimeError, match="on cuda"):
        opt.step()


@pytest.mark.parametrize("flat, reference, settings", [
    (optim.SGD, optim.ReferenceSGD, dict(lr=0.1)),
    (optim.SGD, optim.ReferenceSGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    (optim.SGD, optim.ReferenceSGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (optim.Adam, optim.ReferenceAdam, dict(lr=0.01)),
    (optim.Adam, optim.ReferenceAdam, dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1)),
], ids=["sgd", "sgd-momentum-decay", "sgd-nesterov", "adam", "adam-decay"])
def test_flat_optimisers_equal_the_plain_per_parameter_reference(flat, reference, settings):
    """The flat-buffer SGD/Adam and the plain loops kept beside them for learners agree after
    several steps (the reference writes the textbook formulas without any buffer tricks)."""
    fast, plain = make_params(), make_params()
    run(flat(fast, **settings), fast, 6)
    run(reference(plain, **settings), plain, 6)
    for a, b in zip(fast, plain):
        np.testing.assert_allclose(to_host(a.data), to_host(b.data), rtol=1e-12, atol=1e-14)
    assert all(p._version == 6 for p in fast + plain)  # every step bumps each parameter's version


@pytest.fixture
def restore_threads():
    from minigen import threads
    saved = threads._threads["n"]
    yield
    threads._threads["n"] = saved


@pytest.mark.parametrize("flat, settings", [
    (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (optim.Adam, dict(lr=0.01, weight_decay=0.1)),
    (optim.Adam, dict(lr=0.01)),
], ids=["sgd-nesterov-decay", "adam-decay", "adam"])
def test_updates_in_threaded_pieces_equal_one_piece(flat, settings, restore_threads):
    """The flat buffer of 2^18 + 37 float32 elements updated in 3 pieces at once (threads) and in
    one: bit-identical parameters and state after several steps (the update is elementwise)."""
    shapes = [(512, 512), (37,)]
    results = []
    for n_threads in (1, 3):
        optim.set_num_threads(n_threads)
        assert optim.get_num_threads() == n_threads
        rng = np.random.default_rng(0)
        params = [nn.Parameter(rng.standard_normal(s).astype(np.float32)) for s in shapes]
        optimizer = flat(params, **settings)
        for t in range(3):
            optimizer.zero_grad()
            for p in params:
                p.grad += on_device(rng.standard_normal(p.shape).astype(np.float32))
            optimizer.step()
        results.append([to_host(p.data).copy() for p in params] +
                       [to_host(a).copy() for a in optimizer._groups[0].state.values()])
    for one, pieces in zip(*results):
        np.testing.assert_array_equal(one, pieces)


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_set_num_threads_rejects_what_is_not_a_positive_integer(bad, restore_threads):
    with pytest.raises(ValueError, match=r"set_num_threads: n must be a positive integer, got"):
        optim.set_num_threads(bad)
