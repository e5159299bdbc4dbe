"""Threads for the NumPy work that BLAS does not parallelise: elementwise updates and copies.

BLAS runs the GEMMs on every core, but NumPy's own loops (the optimisers' elementwise updates,
the copies that lay out a convolution's columns) run on one. They release the GIL, so
independent pieces of such work can run at once in a few threads, with the same values as one
pass; PyTorch's CPU kernels likewise use their intra-op threads. CuPy work is never split (the
GPU already runs it in parallel).

``get_num_threads()``: ``set_num_threads(n)`` if called, else $OMP_NUM_THREADS, else
$OPENBLAS_NUM_THREADS (as the BLAS), else the number of CPUs.
"""
import concurrent.futures
import functools
import os
import threading

import numpy

__all__ = ["get_num_threads", "set_num_threads", "run_in_threads", "assign_in_threads",
           "run_in_blocks"]

_threads = {"n": None, "pool": None, "workers": 0}
_pool_lock = threading.Lock()
# a forked child has none of the parent's pool threads: it starts its own pool when needed
os.register_at_fork(after_in_child=lambda: _threads.update(pool=None, workers=0))


def set_num_threads(n):
    """Threads for NumPy's elementwise updates and copies (1: no threads)."""
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


def run_in_threads(tasks):
    """Call every task (a function of no arguments): the first in this thread, the others at the
    same time in a shared pool. Returns when all are done; an exception in one is raised here."""
    if len(tasks) == 1:
        tasks[0]()
        return
    with _pool_lock:
        pool = _threads["pool"]
        if pool is None or _threads["workers"] < len(tasks) - 1:
            pool = _threads["pool"] = concurrent.futures.ThreadPoolExecutor(
                len(tasks) - 1, thread_name_prefix="minigen")
            _threads["workers"] = len(tasks) - 1
    futures = [pool.submit(task) for task in tasks[1:]]
    tasks[0]()
    for future in futures:
        future.result()


PARALLEL_BYTES = 1 << 18  # copies of fewer bytes than this in all run in one thread


def assign_in_threads(pairs):
    """dst[...] = src for every (dst, src) pair, the copies shared among ``get_num_threads()``
    threads when they are NumPy arrays of at least PARALLEL_BYTES in all: pairs go to threads in
    turn, and when there are fewer pairs than threads each is first cut along its first axis."""
    n_threads = get_num_threads()
    if (n_threads == 1 or type(pairs[0][0]) is not numpy.ndarray
            or sum(dst.nbytes for dst, _ in pairs) < PARALLEL_BYTES):
        for dst, src in pairs:
            dst[...] = src
        return
    if len(pairs) < n_threads:
        pairs = [(dst[block], src[block]) for dst, src in pairs
                 for block in _blocks(dst.shape[0], n_threads)]
    groups = [pairs[k::n_threads] for k in range(n_threads)]
    run_in_threads([functools.partial(_assign, group) for group in groups if group])


def run_in_blocks(fn, n, like):
    """fn(block) for consecutive slices ``block`` covering range(n), one per thread at once when
    ``like`` (the array fn writes) is a NumPy array of at least PARALLEL_BYTES; else fn(slice(None))."""
    n_threads = get_num_threads()
    if n_threads == 1 or n < 2 or type(like) is not numpy.ndarray or like.nbytes < PARALLEL_BYTES:
        fn(slice(None))
        return
    run_in_threads([functools.partial(fn, block) for block in _blocks(n, min(n, n_threads))])


def _blocks(n, parts):
    """``parts`` consecutive slices covering range(n) (some empty when n < parts)."""
    return [slice(n * k // parts, n * (k + 1) // parts) for k in range(parts)]


def _assign(pairs):
    for dst, src in pairs:
        dst[...] = src
