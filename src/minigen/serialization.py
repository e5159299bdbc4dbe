"""Checkpoints: ``save(obj, path)`` / ``load(path)`` as an .npz archive (no pickle, ever).

``obj`` is a dict whose values are arrays (NumPy or CuPy: moved to the CPU), Tensors, Python
numbers/strings, or dicts of the same (e.g. ``{"model": model.state_dict(),
"optimizer": optimizer.state_dict(), "epoch": 3}``). Nesting is stored by joining keys with
"/" (module names already use "."), so ``load`` gives back the same nesting, every leaf a NumPy
array (numbers come back as 0-d arrays). Empty dicts are not stored.

The file is written atomically: into a temporary file in the same directory, flushed and
fsync'ed, then moved over ``path`` with ``os.replace``; an interrupted save leaves the old
file (if any) untouched and no temporary file behind.
"""
import os
import tempfile
import zipfile

import numpy

from . import backend

__all__ = ["save", "load"]

SEP = "/"


def _flatten(obj, prefix, out):
    for key, value in obj.items():
        if not isinstance(key, str) or not key or SEP in key:
            raise ValueError(f"save: keys must be non-empty strings without {SEP!r}, got {key!r} "
                             f"(under {prefix.rstrip(SEP) or 'the top level'})")
        name = prefix + key
        if isinstance(value, dict):
            _flatten(value, name + SEP, out)
            continue
        array = backend.to_numpy(value) if hasattr(value, "shape") else numpy.asarray(value)
        if array.dtype.kind == "O":
            raise TypeError(f"save: entry {name!r} is a {type(value).__name__} that is not a numeric, "
                            f"boolean or string array (object arrays need pickle, which minigen refuses)")
        out[name] = array


def save(obj, path):
    """Write the dict ``obj`` to ``path`` (.npz, no pickle) atomically; returns ``path``."""
    if not isinstance(obj, dict):
        raise TypeError(f"save: expected a dict (e.g. model.state_dict()), got {type(obj).__name__}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"save: path must be a str or os.PathLike, got {type(path).__name__}")
    arrays = {}
    _flatten(obj, "", arrays)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
                for name, array in arrays.items():  # the .npz layout: one .npy member per array
                    with archive.open(name + ".npy", "w", force_zip64=True) as member:
                        numpy.lib.format.write_array(member, array, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load(path):
    """Read a file written by ``save``: a dict (nested as saved) of NumPy arrays."""
    archive = numpy.load(path, allow_pickle=False)
    if not isinstance(archive, numpy.lib.npyio.NpzFile):
        raise ValueError(f"load: {os.fspath(path)!r} holds a single array, not a checkpoint "
                         f"written by minigen.save")
    with archive:
        flat = {name: archive[name] for name in archive.files}
    out = {}
    for name, array in flat.items():
        *parents, leaf = name.split(SEP)
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = array
    return out
