"""MNIST IDX and binarised-MNIST readers on small files written here, and binarisation."""
import gzip
import struct

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import arrays

import minigen.random
from minigen.data import (binarize_dynamic, binarize_static, load_binarized_mnist,
                          load_mnist)

NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def idx_bytes(array, magic=None):
    """Encode a uint8 array in IDX (independently of minigen's reader)."""
    array = np.asarray(array, dtype=np.uint8)
    magic = 0x800 + array.ndim if magic is None else magic
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.tobytes()


def write(path, data, compress=True):
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def write_split(root, images, labels, split="train", compress=True):
    image_name, label_name = NAMES[split]
    return (write(root / image_name, idx_bytes(images), compress),
            write(root / label_name, idx_bytes(labels), compress))


def random_split(n, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, n, dtype=np.uint8))


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("compress", [True, False])
def test_round_trip(tmp_path, split, compress):
    images, labels = random_split(7)
    write_split(tmp_path, images, labels, split, compress)
    x, y = load_mnist(tmp_path, split)
    assert x.shape == (7, 1, 28, 28) and x.dtype == np.float32
    assert y.shape == (7,) and y.dtype == np.int64
    np.testing.assert_array_equal(np.round(x[:, 0] * 255), images)
    np.testing.assert_array_equal(y, labels)
    assert x.min() >= 0 and x.max() <= 1


@given(arrays(np.uint8, st.tuples(st.integers(0, 4), st.just(28), st.just(28))))
def test_pixels_are_byte_over_255(tmp_path_factory, images):
    root = tmp_path_factory.mktemp("mnist")
    write_split(root, images, np.zeros(len(images), np.uint8))
    x, _ = load_mnist(str(root))
    np.testing.assert_array_equal(x[:, 0], images.astype(np.float32) / 255)


def test_split_order_is_kept(tmp_path):
    train, test = random_split(5, seed=1), random_split(3, seed=2)
    write_split(tmp_path, *train, "train")
    write_split(tmp_path, *test, "test")
    assert len(load_mnist(tmp_path, "train")[0]) == 5
    np.testing.assert_array_equal(load_mnist(tmp_path, "test")[1], test[1])


def test_missing_file_names_file_and_folder(tmp_path):
    images, labels = random_split(2)
    write(tmp_path / NAMES["train"][0], idx_bytes(images))
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte") as info:
        load_mnist(tmp_path)
    assert str(tmp_path) in str(info.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mnist(tmp_path / "nowhere")


def test_bad_split(tmp_path):
    with pytest.raises(ValueError, match="split"):
        load_mnist(tmp_path, "valid")


@pytest.mark.parametrize("corrupt, message", [
    (lambda img, lab: (idx_bytes(img, magic=0x801), idx_bytes(lab)), "magic"),
    (lambda img, lab: (idx_bytes(img), idx_bytes(lab, magic=0x803)), "magic"),
    (lambda img, lab: (idx_bytes(img)[:-5], idx_bytes(lab)), "truncated"),
    (lambda img, lab: (idx_bytes(img) + b"\0", idx_bytes(lab)), "bytes"),
    (lambda img, lab: (idx_bytes(img[:, :27]), idx_bytes(lab)), "28x28"),
    (lambda img, lab: (idx_bytes(img), idx_bytes(lab[:-1])), "labels"),
    (lambda img, lab: (idx_bytes(img), idx_bytes(lab + 10)), "0-9"),
    (lambda img, lab: (b"\0\0", idx_bytes(lab)), "magic"),
])
def test_corrupt_files_raise_value_error(tmp_path, corrupt, message):
    image_bytes, label_bytes = corrupt(*random_split(3))
    write(tmp_path / NAMES["train"][0], image_bytes)
    write(tmp_path / NAMES["train"][1], label_bytes)
    with pytest.raises(ValueError, match=message):
        load_mnist(tmp_path)


def test_bad_gzip_names_the_file(tmp_path):
    images, labels = random_split(3)
    image_path, _ = write_split(tmp_path, images, labels)
    image_path.write_bytes(gzip.compress(idx_bytes(images))[:-20])  # cut the gzip stream
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz"):
        load_mnist(tmp_path)
    image_path.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="corrupt"):
        load_mnist(tmp_path)


# --- the fixed binarised split -------------------------------------------------------------

def write_npz(path, **splits):
    np.savez(path, **splits)
    return path


def test_binarized_mnist(tmp_path):
    rng = np.random.default_rng(0)
    splits = {name: rng.integers(0, 2, (n, 784), dtype=np.uint8)
              for name, n in (("train", 5), ("valid", 2), ("test", 3))}
    path = write_npz(tmp_path / "binarized_mnist.npz", **splits)
    for name, x in splits.items():
        for where in (path, tmp_path, str(path)):
            images = load_binarized_mnist(where, name)
            assert images.shape == (len(x), 1, 28, 28) and images.dtype == np.float32
            np.testing.assert_array_equal(images.reshape(len(x), 784), x)


def test_binarized_mnist_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="binarized_mnist.npz"):
        load_binarized_mnist(tmp_path)
    ones = np.ones((2, 784), np.uint8)
    path = write_npz(tmp_path / "b.npz", train=ones, bad_shape=ones[:, :700], bad_values=ones * 3)
    with pytest.raises(ValueError, match="split"):
        load_binarized_mnist(path, "valid")
    with pytest.raises(ValueError, match="shape"):
        load_binarized_mnist(path, "bad_shape")
    with pytest.raises(ValueError, match="0 and 1"):
        load_binarized_mnist(path, "bad_values")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ValueError, match="npz"):
        load_binarized_mnist(tmp_path / "junk.npz")


# --- binarisation ---------------------------------------------------------------------------

unit_images = arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(1, 6)),
                     elements=st.floats(0, 1, width=32))


@given(unit_images, st.floats(0, 0.99))
def test_binarize_static_is_a_threshold(x, threshold):
    b = binarize_static(x, threshold)
    assert b.dtype == np.float32 and b.shape == x.shape
    np.testing.assert_array_equal(b, (x > threshold).astype(np.float32))
    np.testing.assert_array_equal(binarize_static(x, threshold), b)  # deterministic


@given(unit_images, st.integers(0, 2**32 - 1))
def test_binarize_dynamic_support_and_seed(x, seed):
    b = binarize_dynamic(x, generator=seed)
    assert b.dtype == np.float32 and set(np.unique(b)) <= {0.0, 1.0}
    assert (b[x == 0] == 0).all() and (b[x == 1] == 1).all()
    np.testing.assert_array_equal(binarize_dynamic(x, generator=seed), b)


def test_binarize_dynamic_mean_is_the_intensity():
    p = np.array([0.05, 0.3, 0.5, 0.9])
    x = np.tile(p, (50_000, 1))
    mean = binarize_dynamic(x, np.random.default_rng(0)).mean(axis=0)
    np.testing.assert_array_less(np.abs(mean - p), 5 * np.sqrt(p * (1 - p) / 50_000))
    assert binarize_dynamic(x).dtype == np.float64


def test_binarize_dynamic_is_fresh_each_call_and_follows_manual_seed():
    x = np.full((100, 100), 0.5)
    minigen.random.manual_seed(3)
    first, second = binarize_dynamic(x), binarize_dynamic(x)
    assert (first != second).any()
    minigen.random.manual_seed(3)
    np.testing.assert_array_equal(binarize_dynamic(x), first)


@pytest.mark.parametrize("f", [binarize_static, binarize_dynamic])
def test_binarize_rejects_bad_input(f):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        f(np.array([0.5, 255.0]))
    with pytest.raises(ValueError, match="NaN"):
        f(np.array([0.5, np.nan]))
    with pytest.raises(TypeError, match="array"):
        f([0.5, 0.2])
    assert f(np.array([0, 1], np.uint8)).dtype == np.float32
