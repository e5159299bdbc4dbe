"""Plumbing shared by the benchmarks: BLAS threads, interleaved median timings, and the
examples' training epoch and test NLL (so that a benchmark times what the examples run).

A script imports it with ``from common import ...``: Python puts the folder of the script it
runs first on sys.path, from any working directory. Importing this module does not import
NumPy, so ``set_blas_threads`` can still take effect after it.
"""
import functools
import importlib.util
import os
import statistics
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def set_blas_threads(n):
    """Ask OpenMP, OpenBLAS and MKL for ``n`` threads: call it before NumPy is first imported."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)


def median_times(fns, repeats, warmup=0, sync=None):
    """{name: median seconds} of the functions ``fns`` ({name: function}).

    ``warmup`` untimed rounds first; then in each of ``repeats`` rounds every function runs once,
    in turn, so that a change in the machine's load hits them alike. ``sync`` (e.g. waiting for
    the GPU, whose kernels run asynchronously) is called before starting and before stopping
    the clock.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if sync is not None:
                sync()
            start = time.perf_counter()
            fn()
            if sync is not None:
                sync()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def import_torch():
    """torch, or None when it is not installed (it is never a dependency of minigen)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


@functools.cache
def _examples_common():
    """examples/common.py, loaded from its path (``import common`` here means this file)."""
    spec = importlib.util.spec_from_file_location("examples_common",
                                                  os.path.join(ROOT, "examples", "common.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_epoch(loader, optimizer, loss_fn):
    """examples/common.py's ``train_epoch``: one pass over ``loader``, the mean loss per example."""
    return _examples_common().train_epoch(loader, optimizer, loss_fn)


def mean_nll(model, x, batch_size=500):
    """examples/common.py's ``mean_nll``: mean -model.log_prob(x) in nats, in batches."""
    return _examples_common().mean_nll(model, x, batch_size)
