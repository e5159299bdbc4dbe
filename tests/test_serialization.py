"""minigen.save / minigen.load: exact round trips, no pickle, atomic writes."""
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import minigen
from devices import to_host
from minigen import nn, optim


def files_in(directory):
    return sorted(os.listdir(directory))


@settings(max_examples=10)
@given(hnp.arrays(st.sampled_from([np.float32, np.float64, np.int64, np.bool_, np.uint8]),
                  hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)))
def test_arrays_round_trip_exactly(tmp_path_factory, array):
    path = tmp_path_factory.mktemp("ckpt") / "a.npz"
    minigen.save({"x": array}, path)
    back = minigen.load(path)["x"]
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_nested_checkpoint_round_trip(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    opt = optim.Adam(model.parameters(), lr=0.01)
    opt.zero_grad()
    model(minigen.randn(5, 3)).sum().backward()
    opt.step()
    checkpoint = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3,
                  "note": "vae", "weight": minigen.tensor([1.0, 2.0])}
    path = minigen.save(checkpoint, tmp_path / "ckpt.npz")
    back = minigen.load(path)
    assert set(back) == {"model", "optimizer", "epoch", "note", "weight"}
    assert list(back["model"]) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert back["epoch"] == 3 and back["epoch"].shape == () and str(back["note"]) == "vae"
    assert all(isinstance(v, np.ndarray) for v in back["model"].values())
    np.testing.assert_array_equal(back["weight"], [1.0, 2.0])
    assert back["optimizer"]["state"]["1"]["step"] == 1

    fresh = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    fresh.load_state_dict(back["model"])
    for a, b in zip(model.parameters(), fresh.parameters()):
        np.testing.assert_array_equal(to_host(a), to_host(b))
    fresh_opt = optim.Adam(fresh.parameters(), lr=1.0)
    fresh_opt.load_state_dict(back["optimizer"])
    assert fresh_opt.lr == 0.01
    x = minigen.randn(5, 3, generator=1)
    for m, o in ((model, opt), (fresh, fresh_opt)):  # one more step each: identical
        o.zero_grad()
        m(x).sum().backward()
        o.step()
    for a, b in zip(model.parameters(), fresh.parameters()):
        np.testing.assert_array_equal(to_host(a), to_host(b))


def test_path_is_used_as_given(tmp_path):
    minigen.save({"a": np.ones(2)}, str(tmp_path / "weights.ckpt"))
    assert files_in(tmp_path) == ["weights.ckpt"]


@pytest.mark.parametrize("bad, error, match", [
    ({"a": np.array([1, None], dtype=object)}, TypeError, "object"),
    ({"a": None}, TypeError, "object"),
    ({"a/b": np.ones(1)}, ValueError, "'/'"),
    ({1: np.ones(1)}, ValueError, "strings"),
    ({"outer": {"": np.ones(1)}}, ValueError, "outer"),
    ([np.ones(1)], TypeError, "dict"),
])
def test_refuses_what_cannot_be_stored_without_pickle(tmp_path, bad, error, match):
    with pytest.raises(error, match=match):
        minigen.save(bad, tmp_path / "x.npz")
    assert files_in(tmp_path) == []


def test_load_refuses_pickled_and_single_array_files(tmp_path):
    np.savez(tmp_path / "pickled.npz", a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ValueError):
        minigen.load(tmp_path / "pickled.npz")
    np.save(tmp_path / "single.npy", np.ones(3))
    with pytest.raises(ValueError, match="single array"):
        minigen.load(tmp_path / "single.npy")


def test_interrupted_save_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    minigen.save({"w": np.arange(4.0)}, path)
    original_bytes = path.read_bytes()
    real_write_array = np.lib.format.write_array
    calls = []

    def fail_on_second_array(fp, array, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the first array is written, then half of the second, then a crash
            fp.write(b"\x93NUMPY partial")
            raise OSError("disk full")
        return real_write_array(fp, array, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", fail_on_second_array)
    with pytest.raises(OSError, match="disk full"):
        minigen.save({"w": np.zeros(1000), "b": np.zeros(1000)}, path)
    assert path.read_bytes() == original_bytes
    np.testing.assert_array_equal(minigen.load(path)["w"], np.arange(4.0))
    assert files_in(tmp_path) == ["model.npz"]
