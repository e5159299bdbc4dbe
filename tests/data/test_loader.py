"""DataLoader: every row once per epoch, batch counts, seeding, transform, clear errors."""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import minigen.random
from devices import to_host
from minigen.data import DataLoader, binarize_dynamic


def rows(n):
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    return x, np.arange(n)


@given(st.integers(0, 40), st.integers(1, 12), st.booleans(), st.booleans())
def test_each_row_once_per_epoch(n, batch_size, shuffle, drop_last):
    x, y = rows(n)
    loader = DataLoader(x, y, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, seed=0)
    expected_len = n // batch_size if drop_last else math.ceil(n / batch_size)
    assert len(loader) == expected_len
    for _ in range(2):  # two epochs
        batches = list(loader)
        assert len(batches) == expected_len
        if batches:
            full = batches if drop_last else batches[:-1]
            assert all(len(bx) == batch_size for bx, _ in full)
            seen = np.concatenate([to_host(by) for _, by in batches])
            np.testing.assert_array_equal(
                np.concatenate([to_host(bx) for bx, _ in batches]), x[seen])  # arrays stay aligned
            if drop_last:
                assert len(seen) == expected_len * batch_size and len(set(seen)) == len(seen)
            else:
                np.testing.assert_array_equal(np.sort(seen), y)
            if not shuffle:
                np.testing.assert_array_equal(seen, y[:len(seen)])


def test_single_array_yields_arrays(xp):
    x, _ = rows(5)
    batches = list(DataLoader(x, batch_size=2))  # on the default device
    assert all(isinstance(b, xp.ndarray) for b in batches)
    assert [len(b) for b in batches] == [2, 2, 1]


def test_shuffle_is_seeded_and_changes_each_epoch():
    _, y = rows(50)

    def epochs(loader, k=3):
        return [np.concatenate([to_host(b) for b in loader]) for _ in range(k)]

    a = epochs(DataLoader(y, batch_size=7, shuffle=True, seed=1))
    b = epochs(DataLoader(y, batch_size=7, shuffle=True, generator=1))
    c = epochs(DataLoader(y, batch_size=7, shuffle=True, generator=np.random.default_rng(1)))
    for ea, eb, ec in zip(a, b, c):
        np.testing.assert_array_equal(ea, eb)
        np.testing.assert_array_equal(ea, ec)
    assert not np.array_equal(a[0], a[1]) and not np.array_equal(a[0], y)
    minigen.random.manual_seed(4)
    d = epochs(DataLoader(y, batch_size=7, shuffle=True))
    minigen.random.manual_seed(4)
    np.testing.assert_array_equal(d, epochs(DataLoader(y, batch_size=7, shuffle=True)))


def test_transform_applies_to_the_inputs():
    x = np.full((6, 1, 2, 2), 0.5)
    y = np.arange(6)
    loader = DataLoader(x, y, batch_size=4, transform=lambda b: b * 2)
    for bx, by in loader:
        assert (bx == 1.0).all()
    np.testing.assert_array_equal(np.concatenate([to_host(by) for _, by in loader]), y)
    binary = np.concatenate([to_host(b) for b in DataLoader(x, batch_size=4, transform=binarize_dynamic,
                                                            seed=0)])
    assert set(np.unique(binary)) == {0.0, 1.0}
    assert (x == 0.5).all()  # the data itself is untouched


def test_batches_live_on_cpu():
    x, _ = rows(3)
    (batch,) = DataLoader(x, batch_size=3, device="cpu")
    assert type(batch) is np.ndarray


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(batch_size=-2), ValueError, "batch_size"),
    (dict(batch_size=2.0), ValueError, "batch_size"),
    (dict(batch_size=True), ValueError, "batch_size"),
    (dict(batch_size=2, device="tpu"), ValueError, "device"),
    (dict(batch_size=2, seed=0, generator=0), ValueError, "seed or generator"),
    (dict(batch_size=2, transform="binarize"), TypeError, "transform"),
])
def test_bad_arguments(kwargs, error, message):
    x, y = rows(4)
    with pytest.raises(error, match=message):
        DataLoader(x, y, **kwargs)


def test_bad_arrays():
    x, y = rows(4)
    with pytest.raises(ValueError, match=r"same length.*\[4, 3\]"):
        DataLoader(x, y[:3], batch_size=2)
    with pytest.raises(ValueError, match="at least one"):
        DataLoader(batch_size=2)
    with pytest.raises(TypeError, match="array 1"):
        DataLoader(x, list(y), batch_size=2)
    with pytest.raises(ValueError, match="scalar"):
        DataLoader(np.float32(1.0), batch_size=2)
