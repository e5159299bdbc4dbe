"""save_image_grid: the PNG is valid (signature, CRCs, IHDR) and holds the expected grid."""
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import arrays

from minigen.utils import save_image_grid


def read_png(path):
    """Parse an 8-bit, non-interlaced, filter-0 PNG written by minigen: (pixels, color_type)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        tag, payload = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(tag + payload), f"bad CRC in {tag}"
        chunks.append((tag, payload))
        pos += 12 + length
    assert [t for t, _ in chunks][0] == b"IHDR" and chunks[-1] == (b"IEND", b"")
    width, height, depth, color_type, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", chunks[0][1])
    assert (depth, compression, filtering, interlace) == (8, 0, 0, 0)
    channels = {0: 1, 2: 3}[color_type]
    raw = zlib.decompress(b"".join(p for t, p in chunks if t == b"IDAT"))
    scanlines = np.frombuffer(raw, np.uint8).reshape(height, 1 + width * channels)
    assert (scanlines[:, 0] == 0).all()  # filter type None on every row
    pixels = scanlines[:, 1:].reshape(height, width, channels)
    return (pixels[..., 0] if channels == 1 else pixels), color_type


def to_bytes(x):
    return np.round(np.clip(np.asarray(x, dtype=np.float64), 0, 1) * 255).astype(np.uint8)


def test_grey_grid_layout(tmp_path):
    images = np.linspace(0, 1, 5 * 2 * 3).reshape(5, 1, 2, 3)
    path = save_image_grid(images, tmp_path / "g.png", nrow=2, padding=1, pad_value=0.0)
    pixels, color_type = read_png(path)
    assert color_type == 0
    assert pixels.shape == (3 * (2 + 1) + 1, 2 * (3 + 1) + 1)  # 3 rows x 2 columns of images
    for i in range(5):
        r, c = divmod(i, 2)
        top, left = 1 + r * 3, 1 + c * 4
        np.testing.assert_array_equal(pixels[top:top + 2, left:left + 3], to_bytes(images[i, 0]))
    assert (pixels[7:9, 5:8] == 0).all()  # the empty sixth cell is padding
    assert (pixels[0] == 0).all() and (pixels[:, 0] == 0).all()


@given(arrays(np.float32, st.tuples(st.integers(1, 7), st.integers(1, 5), st.integers(1, 5)),
              elements=st.floats(0, 1, width=32)),
       st.integers(1, 8))
def test_no_padding_tiles_images_exactly(tmp_path_factory, images, nrow):
    path = tmp_path_factory.mktemp("png") / "grid.png"
    save_image_grid(images, path, nrow=nrow, padding=0)
    pixels, _ = read_png(path)
    n, h, w = images.shape
    ncol = min(nrow, n)
    assert pixels.shape == (-(-n // ncol) * h, ncol * w)
    for i in range(n):
        r, c = divmod(i, ncol)
        np.testing.assert_array_equal(pixels[r * h:(r + 1) * h, c * w:(c + 1) * w],
                                      to_bytes(images[i]))


def test_rgb_default_nrow_and_upscale(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((4, 3, 2, 2))
    pixels, color_type = read_png(save_image_grid(images, tmp_path / "rgb.png", padding=0,
                                                  upscale=3))
    assert color_type == 2 and pixels.shape == (12, 12, 3)  # default nrow: ceil(sqrt(4)) = 2
    np.testing.assert_array_equal(pixels[:6:3, :6:3], to_bytes(images[0].transpose(1, 2, 0)))
    np.testing.assert_array_equal(pixels[:3, :3], np.broadcast_to(pixels[0, 0], (3, 3, 3)))


def test_clips_and_accepts_tensor_like_and_creates_folders(tmp_path):
    class FakeTensor:  # what backend.to_numpy unwraps
        _is_minigen_tensor = True
        data = np.array([[[-1.0, 0.5, 2.0]]])

    path = save_image_grid(FakeTensor(), tmp_path / "a" / "b" / "t.png", padding=0)
    pixels, _ = read_png(path)
    np.testing.assert_array_equal(pixels, [[0, 128, 255]])


@pytest.mark.parametrize("images, kwargs, message", [
    (np.zeros((2, 2, 4, 4)), {}, "C in"),
    (np.zeros((4, 4)), {}, "shape"),
    (np.zeros((0, 1, 4, 4)), {}, "N >= 1"),
    (np.full((1, 4, 4), np.nan), {}, "NaN"),
    (np.zeros((2, 4, 4)), dict(nrow=0), "nrow"),
    (np.zeros((2, 4, 4)), dict(padding=-1), "padding"),
    (np.zeros((2, 4, 4)), dict(upscale=0), "upscale"),
    (np.zeros((2, 4, 4)), dict(upscale=1.5), "upscale"),
])
def test_bad_input(tmp_path, images, kwargs, message):
    error = TypeError if kwargs.get("upscale") == 1.5 else ValueError  # a wrong type, not a wrong value
    with pytest.raises(error, match=message):
        save_image_grid(images, tmp_path / "x.png", **kwargs)
    assert not (tmp_path / "x.png").exists()
