"""Threads for the NumPy work that one BLAS call does not parallelise.

BLAS runs each GEMM on every core, but NumPy's copies and elementwise loops run on one, and
OpenBLAS gains little on the smallish GEMMs of a minibatch. So where the work splits into a few
large independent pieces (the samples of a convolution's batch, the columns of a masked
convolution, slices of the optimisers' flat buffer) minigen runs the pieces at once in a small
pool, each piece all on one core: its copies, its elementwise loops and its GEMMs, on a BLAS
pinned to one thread for as long as the pieces run (else OpenBLAS's own threads would compete
for the cores). NumPy releases the GIL in all three. This is how PyTorch's CPU convolutions use
their intra-op threads (a batch split, one thread's GEMMs each). Chunks are handed out as the
threads ask for them (``share_out``): split in fixed halves, the two halves of a conv2d
forward + backward finished 1.2-5.3 ms apart in regions of 11-22 ms, one core being slower
than the other from moment to moment on a shared machine. The results equal one piece's
up to rounding (partial sums such as a weight gradient add in another order; tests check the
splits against the whole). CuPy work is never split.

Only coarse pieces pay. On the project's 2-core VM a hand-off to a pool thread costs about
0.1 ms (an executor round trip measured 0.2 ms), and threads that call NumPy many times on small
arrays take turns at the GIL. Measured there and not split, therefore: the rows of a Linear
layer's GEMMs (128x784 @ 784x512: 1.55 ms split against 1.01 ms on OpenBLAS's two threads), an
LSTM's batch rows through the steps (50 against 38 ms forward and backward), and the RBM's CD
step by rows of the batch (0.69 against 0.68 s per epoch of 10000 rows).

``get_num_threads()``: ``set_num_threads(n)`` if called, else $OMP_NUM_THREADS, else
$OPENBLAS_NUM_THREADS (as the BLAS), else the number of CPUs.

The BLAS is pinned through OpenBLAS's own ``openblas_set_num_threads`` (in NumPy's bundled
``scipy_openblas`` or a system OpenBLAS), found in the libraries this process has loaded; with
any other BLAS (``blas_library()`` is None) the pieces still run at once and the BLAS keeps its
own threads. The setting is the process's: minigen called from several threads at once may see
the BLAS at one thread for a while.
"""
import concurrent.futures
import contextlib
import ctypes
import os
import re
import threading

import numpy as np

from .backend import get_array_module

__all__ = ["get_num_threads", "set_num_threads", "run_in_threads", "map_slices", "share_out",
           "blas_threads", "blas_library"]

_threads = {"n": None, "pool": None, "workers": 0, "blas": None}
_pool_lock = threading.Lock()
_local = threading.local()  # .inside: this thread is running a piece (pieces do not split again)
# a forked child has none of the parent's pool threads: it starts its own pool when needed
os.register_at_fork(after_in_child=lambda: _threads.update(pool=None, workers=0))


def set_num_threads(n):
    """Threads for minigen's split work (1: no threads)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive integer, got {n!r}")
    with _pool_lock:
        _threads["n"] = n


def get_num_threads():
    """set_num_threads(n), else $OMP_NUM_THREADS, else $OPENBLAS_NUM_THREADS, else the CPU count."""
    if _threads["n"] is None:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            value = os.environ.get(var, "")
            if value.isdigit() and int(value) > 0:
                return int(value)
        return os.cpu_count() or 1
    return _threads["n"]


class _OpenBLAS:
    """The loaded OpenBLAS's thread-count setter and getter (``name``: its file)."""

    def __init__(self, path):
        lib = ctypes.CDLL(path)
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                if setter is not None and getter is not None:
                    setter.argtypes, setter.restype, getter.restype = [ctypes.c_int], None, ctypes.c_int
                    self.name, self.set, self.get = os.path.basename(path), setter, getter
                    return
        raise OSError(f"{path} has no openblas_set_num_threads")


def blas_library():
    """The OpenBLAS that NumPy calls, as an object with ``set(n)``, ``get()`` and ``name``; None
    when it cannot be found (another BLAS, or no /proc/self/maps to look in). A library under
    NumPy's folder is preferred to others a process may have loaded (SciPy bundles its own)."""
    if _threads["blas"] is None:
        found = False
        try:
            with open("/proc/self/maps") as maps:
                paths = sorted(set(re.findall(r"(/\S*openblas\S*\.so[\w.]*)", maps.read())),
                               key=lambda path: ("numpy" not in path, path))  # NumPy's own first
            for path in paths:
                try:
                    found = _OpenBLAS(path)
                    break
                except OSError:
                    continue
        except OSError:
            pass
        _threads["blas"] = found
    return _threads["blas"] or None


@contextlib.contextmanager
def blas_threads(n):
    """Within the block, the BLAS runs ``n`` threads per call (restored after); does nothing if
    the BLAS cannot be set (``blas_library()`` is None)."""
    blas = blas_library()
    before = blas.get() if blas is not None else n
    if before == n:
        yield
        return
    blas.set(n)
    try:
        yield
    finally:
        blas.set(before)


def _as_piece(task):
    def piece():
        _local.inside = True
        try:
            return task()
        finally:
            _local.inside = False
    return piece


def run_in_threads(tasks):
    """Call every task (a function of no arguments) and return their results in order: the first
    in this thread, the others at the same time in a shared pool, with the BLAS at one thread
    while they run. Inside a task (a piece splitting again) they run one after another. An
    exception in one is raised here."""
    if len(tasks) == 1 or getattr(_local, "inside", False):
        return [task() for task in tasks]
    with _pool_lock:
        pool = _threads["pool"]
        if pool is None or _threads["workers"] < len(tasks) - 1:
            pool = _threads["pool"] = concurrent.futures.ThreadPoolExecutor(
                len(tasks) - 1, thread_name_prefix="minigen")
            _threads["workers"] = len(tasks) - 1
    with blas_threads(1):
        futures = [pool.submit(_as_piece(task)) for task in tasks[1:]]
        try:
            first = _as_piece(tasks[0])()
        finally:  # every piece has stopped before anything is returned or raised
            concurrent.futures.wait(futures)
        return [first] + [future.result() for future in futures]


def split(n, parts, align=1):
    """range(n) as at most ``parts`` contiguous, non-empty slices of nearly equal length, the
    inner bounds multiples of ``align``."""
    parts = max(1, min(parts, n))
    bounds = [0] + [n * k // parts // align * align for k in range(1, parts)] + [n]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def map_slices(function, n, like, min_size=1, align=1):
    """[function(s) for s in split(n, get_num_threads(), align)], the calls at once
    (``run_in_threads``).

    ``like``: an array of the work (CuPy work is never split); ``min_size``: the least length of
    a slice worth a thread (smaller work runs as one slice)."""
    parts = get_num_threads() if get_array_module(like) is np else 1
    parts = min(parts, max(1, n // max(1, min_size)))
    return run_in_threads([lambda s=s: function(s) for s in split(n, parts, align)])



def share_out(function, n, step, like, min_size=1):
    """Dynamic scheduling: each of up to get_num_threads() threads calls function(chunks) once,
    ``chunks`` an iterator over slices of range(n) that no other thread has taken (a thread that
    finishes early takes more); returns the threads' results.

    Slices are ``step`` long, shorter if that gives every thread at least two (but not shorter
    than ``min_size``). ``like``: an array of the work (CuPy work runs in one call)."""
    threads = get_num_threads() if get_array_module(like) is np else 1
    step = max(1, min(step, max(min_size, -(-n // (2 * threads)))))
    slices = iter([slice(a, min(a + step, n)) for a in range(0, n, step)])
    lock = threading.Lock()

    def chunks():
        while True:
            with lock:
                taken = next(slices, None)
            if taken is None:
                return
            yield taken
    return run_in_threads([lambda: function(chunks()) for _ in range(min(threads, -(-n // step)) or 1)])
