"""Module / Parameter bookkeeping, containers, activation layers and state dicts."""
from collections import OrderedDict

import numpy as np
import pytest

import minigen
import minigen.functional as F
from devices import on_device, to_host
from minigen import nn


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 4)
        self.act = nn.Tanh()
        self.fc2 = nn.Linear(4, 2)
        self.register_buffer("count", on_device(np.zeros(1)))

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def test_attribute_assignment_registers_parameters_and_children():
    m = TwoLayer()
    assert [n for n, _ in m.named_parameters()] == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert [type(c).__name__ for c in m.children()] == ["Linear", "Tanh", "Linear"]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in m.parameters())
    m.fc2 = nn.Identity()  # replacing a child drops its parameters
    assert [n for n, _ in m.named_parameters()] == ["fc1.weight", "fc1.bias"]
    m.extra = nn.Parameter(np.ones(2))
    assert "extra" in dict(m.named_parameters())
    del m.extra
    assert "extra" not in dict(m.named_parameters())


def test_shared_parameter_is_listed_once():
    m = TwoLayer()
    m.fc3 = nn.Linear(4, 2)
    m.fc3.weight = m.fc2.weight
    assert sum(p is m.fc2.weight for p in m.parameters()) == 1


def test_super_init_is_required():
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.ones(2))

    with pytest.raises(AttributeError, match="super"):
        Bad()


def test_train_eval_reach_every_submodule():
    m = TwoLayer()
    assert m.eval() is m
    assert not any(sub.training for sub in m.modules())
    m.train()
    assert all(sub.training for sub in m.modules())


def test_zero_grad_and_to_dtype():
    m = TwoLayer()
    m(minigen.randn(5, 3)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    m.double()
    assert all(p.dtype == np.float64 for p in m.parameters())
    assert m(minigen.randn(2, 3, dtype="float64")).dtype == np.float64


def test_state_dict_round_trip_includes_buffers():
    a, b = TwoLayer(), TwoLayer()
    a.count[...] = 7
    state = a.state_dict()
    assert list(state) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "count"]
    missing, unexpected = b.load_state_dict({k: v.copy() for k, v in state.items()})
    assert missing == [] and unexpected == []
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(to_host(pa), to_host(pb), err_msg=name)
    assert to_host(b.count)[0] == 7


def test_load_state_dict_lists_every_problem():
    m = TwoLayer()
    state = dict(m.state_dict())
    del state["fc1.bias"]
    state["fc9.weight"] = np.zeros(3)
    state["fc2.weight"] = np.zeros((5, 4))
    with pytest.raises(ValueError) as info:
        m.load_state_dict(state)
    message = str(info.value)
    assert "fc1.bias" in message and "fc9.weight" in message
    assert "fc2.weight" in message and "(5, 4)" in message and "(2, 4)" in message
    # Non-strict: names may differ but shapes must still agree.
    with pytest.raises(ValueError, match="fc2.weight"):
        m.load_state_dict(state, strict=False)
    state["fc2.weight"] = np.zeros((2, 4), dtype=np.float32)
    missing, unexpected = m.load_state_dict(state, strict=False)
    assert missing == ["fc1.bias"] and unexpected == ["fc9.weight"]
    np.testing.assert_array_equal(to_host(m.fc2.weight), 0)


def test_load_state_dict_writes_in_place():
    m = TwoLayer()
    before = m.fc1.weight.data
    m.load_state_dict({k: np.ones(v.shape) for k, v in m.state_dict().items()})
    assert m.fc1.weight.data is before and np.all(to_host(before) == 1)


# ----------------------------------------------------------------------------- containers

def test_sequential_applies_in_order_with_pytorch_names():
    seq = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = minigen.randn(5, 3)
    expected = seq[2](seq[1](seq[0](x)))
    np.testing.assert_array_equal(to_host(seq(x)), to_host(expected))
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert len(seq) == 3 and seq[-1] is seq[2]
    assert [type(m).__name__ for m in seq[1:]] == ["ReLU", "Linear"]
    seq[1] = nn.Tanh()
    assert isinstance(list(seq)[1], nn.Tanh)
    with pytest.raises(IndexError):
        seq[3]
    with pytest.raises(TypeError, match="Module"):
        nn.Sequential(nn.ReLU(), lambda x: x)


def test_sequential_from_ordered_dict_keeps_names():
    seq = nn.Sequential(OrderedDict([("encoder", nn.Linear(2, 3)), ("act", nn.Sigmoid())]))
    assert [n for n, _ in seq.named_parameters()] == ["encoder.weight", "encoder.bias"]
    assert seq.encoder is seq[0]
    assert list(seq[1:]._modules) == ["act"]


def test_module_list_and_dict_register_their_modules():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
            self.heads = nn.ModuleDict({"mu": nn.Linear(2, 1), "logvar": nn.Linear(2, 1)})

    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names[:2] == ["layers.0.weight", "layers.0.bias"]
    assert "heads.logvar.bias" in names and len(names) == 10
    net.layers.append(nn.Linear(2, 2))
    assert len(net.layers) == 4 and len(list(net.parameters())) == 12
    assert isinstance(net.layers[1:3], nn.ModuleList) and len(net.layers[1:3]) == 2
    assert "mu" in net.heads and list(net.heads) == ["mu", "logvar"]
    assert net.heads["mu"] is net.heads.mu
    with pytest.raises(KeyError):
        net.heads["sigma"]
    with pytest.raises(KeyError):
        net.heads["a.b"] = nn.ReLU()


# ----------------------------------------------------------------------------- activations

@pytest.mark.parametrize("layer, fn", [
    (nn.ReLU(), F.relu), (nn.Sigmoid(), F.sigmoid), (nn.Tanh(), F.tanh), (nn.Softplus(), F.softplus),
    (nn.LeakyReLU(0.2), lambda x: F.leaky_relu(x, 0.2)), (nn.ELU(0.5), lambda x: F.elu(x, 0.5)),
    (nn.Softmax(dim=0), lambda x: F.softmax(x, axis=0)), (nn.LogSoftmax(), F.log_softmax),
])
def test_activation_layers_match_functions(layer, fn):
    x = minigen.randn(4, 3, generator=0)
    np.testing.assert_array_equal(to_host(layer(x)), to_host(fn(x)))


def test_softplus_beta_and_identity_flatten():
    x = minigen.randn(2, 3, 4, 5, generator=1)
    expected = np.log1p(np.exp(2 * x.numpy())) / 2
    np.testing.assert_allclose(to_host(nn.Softplus(beta=2)(x)), expected, rtol=1e-5)
    assert nn.Identity()(x) is x
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(1, 2)(x).shape == (2, 12, 5)
    assert nn.Flatten(0, -2)(x).shape == (24, 5)
    with pytest.raises(ValueError, match="Flatten"):
        nn.Flatten(2, 1)(x)


def test_nn_functional_is_minigen_functional():
    import minigen.nn.functional as NF
    assert NF.linear is F.linear and NF.binary_cross_entropy_with_logits is F.binary_cross_entropy_with_logits


def test_parameter_accepts_lists_as_float32():
    p = nn.Parameter([1, 2, 3])
    assert p.dtype == np.float32 and p.requires_grad and p.tolist() == [1.0, 2.0, 3.0]
