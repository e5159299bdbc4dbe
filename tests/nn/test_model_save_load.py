"""Recorded constructor arguments (issue 10.9): repr is the constructor call, Module.save writes
it beside the state, Model.load / minigen.load_model rebuild any model in one call; loading
checks the class and never half-loads; Module.dtype / Module.device."""
from collections import OrderedDict

import numpy as np
import pytest

import minigen
from devices import to_host
from minigen import nn
from minigen.nn import Linear, Sequential, Tanh, Conv2d, ModuleList  # noqa: F401  (eval(repr))


class Block(nn.Module):
    """A user model: positional, keyword, *args and a Module-valued argument."""

    def __init__(self, width, *extra, head=None, scale=1.0):
        super().__init__()
        self.body = Linear(width, width)
        self.extra = ModuleList(extra)
        self.head = head if head is not None else nn.Identity()
        self.scale = scale

    def forward(self, x):
        return self.head(self.body(x)) * self.scale


class Wider(Block):
    """Its super().__init__(...) must not overwrite what the outermost call recorded."""

    def __init__(self, width, factor=2):
        super().__init__(width * factor, scale=0.5)


def states_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(np.array_equal(to_host(sa[k]), to_host(sb[k])) for k in sa)


def test_repr_is_the_constructor_call_and_evaluates_to_the_same_architecture():
    model = Sequential(Linear(2, 3), Tanh(), Linear(3, 1, bias=False))
    assert repr(model) == ("Sequential(\n  Linear(in_features=2, out_features=3),\n  Tanh(),\n"
                           "  Linear(in_features=3, out_features=1, bias=False),\n)")
    rebuilt = eval(repr(model))
    assert [(k, v.shape) for k, v in rebuilt.state_dict().items()] == \
        [(k, v.shape) for k, v in model.state_dict().items()]
    assert repr(Wider(3)) == "Wider(width=3)"
    assert repr(Sequential(OrderedDict([("a", Tanh())]))) == "Sequential(OrderedDict([('a', Tanh())]))"
    assert repr(Conv2d(1, 2, (3, 1), dtype=np.float64)) == \
        "Conv2d(in_channels=1, out_channels=2, kernel_size=(3, 1), dtype='float64')"


def test_vae_repr_uses_the_constructor_s_own_keywords():
    from minigen.models import VAE
    model = VAE(64, hidden_dims=(8,), latent_dim=2)
    assert repr(model) == "VAE(input_dim=64, hidden_dims=(8,), latent_dim=2)"
    assert [v.shape for v in eval(repr(model), {"VAE": VAE}).state_dict().values()] == \
        [v.shape for v in model.state_dict().values()]


def test_save_then_load_rebuilds_the_model_in_one_call(tmp_path):
    model = Block(3, Linear(3, 3), Tanh(), head=Sequential(Linear(3, 2)), scale=2.0).double()
    path = model.save(tmp_path / "block.npz")
    for loaded in (Block.load(path), minigen.load_model(path)):
        assert type(loaded) is Block and loaded.scale == 2.0 and loaded.dtype == np.float64
        assert states_equal(loaded, model)
        x = minigen.randn(4, 3, dtype="float64")
        np.testing.assert_array_equal(to_host(loaded(x).data), to_host(model(x).data))
    wider = Wider(2, factor=3)
    assert states_equal(nn.Module.load(wider.save(tmp_path / "w.npz")), wider)


def test_saved_neural_model_and_estimator_both_load_with_load_model(tmp_path):
    from minigen.models import VAE, GaussianMixture
    vae = VAE(16, hidden_dims=(4,), latent_dim=2)
    assert states_equal(VAE.load(vae.save(tmp_path / "vae.npz")), vae)
    X = np.random.default_rng(0).standard_normal((40, 2))
    gmm = GaussianMixture(2, random_state=0).fit(X)
    minigen.save(gmm.state_dict(), tmp_path / "gmm.npz")
    loaded = minigen.load_model(tmp_path / "gmm.npz")
    assert type(loaded) is GaussianMixture
    np.testing.assert_array_equal(loaded.score_samples(X), gmm.score_samples(X))


def test_loading_checks_the_class_and_never_half_loads(tmp_path):
    path = Block(3).save(tmp_path / "block.npz")
    with pytest.raises(TypeError, match=r"holds a Block .*not a Wider; load it with Block.load"):
        Wider.load(path)
    with pytest.raises(ValueError, match="not a saved model"):
        minigen.save({"w": np.ones(2)}, tmp_path / "bare.npz")
        Block.load(tmp_path / "bare.npz")


def test_load_state_dict_is_all_or_nothing():
    model = Sequential(Linear(2, 2), Linear(2, 2))
    before = {k: to_host(v).copy() for k, v in model.state_dict().items()}
    state = {k: np.zeros(v.shape) for k, v in before.items()}
    state["1.bias"] = np.array(["a", "b"])  # the last entry cannot be converted
    with pytest.raises(ValueError, match=r"nothing was loaded.*1.bias: expected numbers"):
        model.load_state_dict(state)
    assert all(np.array_equal(to_host(v), before[k]) for k, v in model.state_dict().items())


def test_unsaveable_constructor_arguments_are_named(tmp_path):
    class Holder(nn.Module):
        def __init__(self, table):
            super().__init__()
            self.table = table

    with pytest.raises(TypeError, match=r"Holder argument 1 is <object"):
        Holder(object()).save(tmp_path / "h.npz")
    assert not list(tmp_path.iterdir())


def test_dtype_and_device_are_those_of_the_parameters():
    model = Sequential(Linear(2, 2), Linear(2, 2))
    assert model.dtype == np.float32 and model.device == minigen.backend.default_device()
    model[1].double()
    with pytest.raises(ValueError, match=r"different dtypes \(0.weight is float32, 1.weight is float64\)"):
        model.dtype
    with pytest.raises(ValueError, match="Tanh has no parameters"):
        Tanh().device
