"""Threads for NumPy work that BLAS does not parallelise: the optimisers' elementwise updates.

BLAS runs the GEMMs on every core, but NumPy's own loops run on one. They release the GIL, so
independent pieces of an update can run at once in a few threads, with the same values as one
pass; PyTorch's CPU optimisers likewise use their intra-op threads. CuPy work is never split.
(Splitting the convolutions' column copies the same way was measured slower, at one and at two
BLAS threads: the copy threads compete with OpenBLAS's own, which spin between GEMMs.)

``get_num_threads()``: ``set_num_threads(n)`` if called, else $OMP_NUM_THREADS, else
$OPENBLAS_NUM_THREADS (as the BLAS), else the number of CPUs.
"""
import concurrent.futures
import os
import threading

__all__ = ["get_num_threads", "set_num_threads", "run_in_threads"]

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

