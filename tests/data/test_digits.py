"""The bundled 8x8 digits: exact copy of the UCI/scikit-learn file, read as documented."""
import gzip
import hashlib
import os
import subprocess
import sys
from importlib import resources

import numpy as np

from minigen.data import load_digits

SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"


def bundled_bytes():
    return resources.files("minigen.data").joinpath("digits.csv.gz").read_bytes()


def test_bundled_file_is_the_documented_copy():
    assert hashlib.sha256(bundled_bytes()).hexdigest() == SHA256
    assert resources.files("minigen.data").joinpath("DATA_LICENSE.md").is_file()


def test_shapes_dtypes_and_range():
    images, labels = load_digits()
    assert images.shape == (1797, 1, 8, 8) and images.dtype == np.float32
    assert labels.shape == (1797,) and labels.dtype == np.int64
    assert images.min() == 0 and images.max() == 1
    # pixels are counts 0..16 divided by 16: multiples of 1/16 exactly
    np.testing.assert_array_equal(images * 16, np.round(images * 16))
    np.testing.assert_array_equal(np.bincount(labels),
                                  [178, 182, 177, 183, 181, 182, 181, 179, 174, 180])


def test_matches_rows_of_the_csv():
    rows = gzip.decompress(bundled_bytes()).decode().splitlines()
    images, labels = load_digits()
    for i in (0, 1, 1000, 1796):
        values = [int(v) for v in rows[i].split(",")]
        np.testing.assert_array_equal(images[i, 0] * 16, np.reshape(values[:64], (8, 8)))
        assert labels[i] == values[64]


def test_return_labels_false():
    images = load_digits(return_labels=False)
    assert isinstance(images, np.ndarray) and images.shape == (1797, 1, 8, 8)


def test_loads_from_another_directory(tmp_path):
    """The file comes from the package (importlib.resources), not from the working directory."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c",
                          "from minigen.data import load_digits; print(load_digits()[0].shape)"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(1797, 1, 8, 8)"
