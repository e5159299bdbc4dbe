"""Checkpoint files as a plain open() would leave them (issues 10.10-10.12): permissions,
symbolic links, stale temporary files of killed saves, and errors that name the path."""
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

import minigen

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions and signals")


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_file_gets_the_umask_mode_and_an_existing_file_keeps_its_mode(tmp_path):
    old = os.umask(0o027)
    try:
        minigen.save({"a": np.ones(2)}, tmp_path / "new.npz")
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(old)
    assert mode(tmp_path / "new.npz") == mode(tmp_path / "plain") == 0o640
    os.chmod(tmp_path / "new.npz", 0o604)
    minigen.save({"a": np.zeros(2)}, tmp_path / "new.npz")
    assert mode(tmp_path / "new.npz") == 0o604


def test_a_symbolic_link_is_written_through(tmp_path):
    (tmp_path / "real").mkdir()
    minigen.save({"a": np.ones(2)}, tmp_path / "real" / "ckpt.npz")
    os.symlink(tmp_path / "real" / "ckpt.npz", tmp_path / "link.npz")
    minigen.save({"a": np.full(2, 7.0)}, tmp_path / "link.npz")
    assert os.path.islink(tmp_path / "link.npz")
    np.testing.assert_array_equal(minigen.load(tmp_path / "real" / "ckpt.npz")["a"], [7.0, 7.0])


def test_stale_temporary_files_of_a_killed_save_are_cleaned_by_the_next_save(tmp_path):
    code = ("import os, signal, numpy, minigen.serialization as s\n"
            "real = numpy.lib.format.write_array\n"
            "def die(*a, **k): os.kill(os.getpid(), signal.SIGKILL)\n"
            "numpy.lib.format.write_array = die\n"
            f"s.save({{'w': numpy.ones(10)}}, {str(tmp_path / 'model.npz')!r})\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert result.returncode == -9
    stale = [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    assert len(stale) == 1 and stale[0].startswith(".model.npz.")
    other = tmp_path / f".other.npz.{os.getpid()}.x.tmp"  # another target's: left alone
    other.write_bytes(b"")
    minigen.save({"w": np.ones(3)}, tmp_path / "model.npz")
    assert sorted(os.listdir(tmp_path)) == sorted(["model.npz", other.name])


def _truncated(path):
    minigen.save({"w": np.arange(1000.0)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("make, error, pattern", [
    (_truncated, ValueError, r"is damaged or truncated"),
    (lambda p: p.write_text("hello, I am text\n"), ValueError, r"is not a checkpoint written by minigen.save .*b'hello,'"),
    (lambda p: p.write_bytes(b""), ValueError, r"is empty \(0 bytes\)"),
    (lambda p: None, FileNotFoundError, r"load: cannot read .*No such file"),
], ids=["truncated", "text file", "empty", "missing"])
def test_load_errors_name_the_path_and_the_problem(tmp_path, make, error, pattern):
    path = tmp_path / "ckpt.npz"
    make(path)
    with pytest.raises(error, match=pattern) as info:
        minigen.load(path)
    assert str(path) in str(info.value)


def test_save_into_a_missing_directory_names_the_user_s_path(tmp_path):
    path = tmp_path / "no" / "such" / "ckpt.npz"
    with pytest.raises(FileNotFoundError, match="the directory .* does not exist") as info:
        minigen.save({"a": np.ones(1)}, path)
    assert str(path) in str(info.value) and ".tmp" not in str(info.value)
