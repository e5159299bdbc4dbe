"""Checkpoints: ``save(obj, path)`` / ``load(path)`` as an .npz archive (no pickle, ever), and
``load_model(path)``, which rebuilds any saved model or estimator in one call.

``obj`` is a dict whose values are arrays (NumPy or CuPy: moved to the CPU), Tensors, Python
numbers/strings, or dicts of the same (e.g. ``{"model": model.state_dict(),
"optimizer": optimizer.state_dict(), "epoch": 3}``). Nesting is stored by joining keys with
"/" (module names already use "."), so ``load`` gives back the same nesting, every leaf a NumPy
array (numbers come back as 0-d arrays). Empty dicts are not stored.

The file is written as a plain ``open(path, "w")`` would leave it, but atomically:

- into a temporary file ``.<name>.<pid>.<random>.tmp`` in the same directory, flushed and
  fsync'ed, then moved over ``path`` with ``os.replace``; an interrupted save leaves the old file
  (if any) untouched and, unless the process was killed, no temporary file behind;
- a save killed outright (SIGKILL, power loss) cannot remove its temporary file: the next save
  to the same path deletes such stale files (those whose process no longer runs);
- a new file gets the permissions ``open`` would give (0666 minus the umask); an existing file
  keeps its permissions; a symbolic link is written through (its target is replaced, the link
  stays).
"""
import json
import os
import secrets
import zipfile

import numpy

from . import backend

__all__ = ["save", "load", "load_model"]

SEP = "/"
ZIP_MAGIC, NPY_MAGIC = b"PK\x03\x04", b"\x93NUMPY"


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


def _check_path(path, what):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{what}: path must be a str or os.PathLike, got {type(path).__name__}")
    return os.fspath(path)


def _remove_stale_temporaries(directory, name):
    """Delete ``.<name>.<pid>.*.tmp`` files left by saves whose process no longer runs."""
    prefix = f".{name}."
    for entry in os.listdir(directory):
        if not (entry.startswith(prefix) and entry.endswith(".tmp")):
            continue
        pid = entry[len(prefix):].split(".")[0]
        if not pid.isdigit() or _process_alive(int(pid)):
            continue
        try:
            os.unlink(os.path.join(directory, entry))
        except FileNotFoundError:  # another save cleaned it first
            pass


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # someone else's process, or a platform without signals
        return True
    return True


def save(obj, path):
    """Write the dict ``obj`` to ``path`` (.npz, no pickle) atomically; returns ``path``.

    See the module docstring for permissions, symbolic links and stale temporary files.
    """
    if not isinstance(obj, dict):
        raise TypeError(f"save: expected a dict (e.g. model.state_dict()), got {type(obj).__name__}")
    path = _check_path(path, "save")
    arrays = {}
    _flatten(obj, "", arrays)
    target = os.path.realpath(path)  # through symbolic links: replace the target, keep the link
    directory, name = os.path.split(target)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"save: cannot write {path!r}: the directory {directory!r} does "
                                f"not exist")
    _remove_stale_temporaries(directory, name)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    except OSError as e:
        raise type(e)(e.errno, f"save: cannot write {path!r} ({e.strerror})") from e
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
                for key, array in arrays.items():  # the .npz layout: one .npy member per array
                    with archive.open(key + ".npy", "w", force_zip64=True) as member:
                        numpy.lib.format.write_array(member, array, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        if os.path.exists(target):
            os.chmod(tmp, os.stat(target).st_mode & 0o7777)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load(path):
    """Read a file written by ``save``: a dict (nested as saved) of NumPy arrays.

    Errors name ``path`` and the problem: missing, empty, not a checkpoint (a text file, a
    single .npy array, pickled data), or damaged/truncated.
    """
    path = _check_path(path, "load")
    try:
        with open(path, "rb") as f:
            head = f.read(len(NPY_MAGIC))
    except OSError as e:
        raise type(e)(e.errno, f"load: cannot read {path!r} ({e.strerror})") from e
    if not head:
        raise ValueError(f"load: {path!r} is empty (0 bytes), not a checkpoint; was its save "
                         f"interrupted?")
    if head.startswith(NPY_MAGIC):
        raise ValueError(f"load: {path!r} holds a single array, not a checkpoint written by "
                         f"minigen.save")
    if not head.startswith(ZIP_MAGIC):
        raise ValueError(f"load: {path!r} is not a checkpoint written by minigen.save (an .npz "
                         f"archive); it starts with {head!r}")
    try:
        with numpy.load(path, allow_pickle=False) as archive:
            flat = {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise ValueError(f"load: {path!r} is damaged or truncated ({e})") from e
    except ValueError as e:  # e.g. an entry holding pickled objects
        raise ValueError(f"load: {path!r} cannot be read without pickle ({e})") from e
    out = {}
    for key, array in flat.items():
        *parents, leaf = key.split(SEP)
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = array
    return out


def load_model(path, device=None):
    """Rebuild whatever model was saved at ``path``, in one call.

    A neural model saved with ``model.save(path)`` is rebuilt from its recorded constructor
    arguments and given its state (``device``: where to put it); an estimator saved with
    ``minigen.save(estimator.state_dict(), path)`` is rebuilt from its settings and fitted
    attributes. Classes of your own must be imported first.
    """
    checkpoint = load(path)
    if "config" in checkpoint:
        from .nn.module import _model_from_checkpoint
        return _model_from_checkpoint(checkpoint, path, device=device)
    if {"class", "params", "kinds"} <= set(checkpoint):
        from . import models  # noqa: F401  (registers the estimator classes)
        from .models.estimator import estimator_class
        cls = estimator_class(str(checkpoint["class"]))
        return cls(**json.loads(str(checkpoint["params"]))).load_state_dict(checkpoint)
    raise ValueError(f"load_model: {path!r} holds neither a model written by Module.save nor an "
                     f"estimator's state_dict() (keys: {', '.join(sorted(checkpoint))})")
