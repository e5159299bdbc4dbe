"""Work split among minigen's threads equals the same work in one piece: convolutions, masked
convolutions (values and every gradient, float64), and the pool and BLAS controls themselves."""
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import minigen
import minigen.functional as F
from devices import to_host
from minigen import threads
from minigen.backend import get_array_module
from minigen.nn.conv import pixelcnn_mask
from minigen.ops import masked_conv


@pytest.fixture
def split_counter(monkeypatch):
    """Counts the run_in_threads calls that really ran more than one piece."""
    calls = []
    original = threads.run_in_threads

    def counting(tasks):
        calls.append(len(tasks))
        return original(tasks)
    monkeypatch.setattr(threads, "run_in_threads", counting)
    monkeypatch.setattr(masked_conv, "MIN_COLUMNS", 1)  # split even the smallest test inputs
    yield calls
    threads.set_num_threads(threads.get_num_threads())


def values_and_grads(op, arrays, n_threads, upstream_seed=1):
    threads.set_num_threads(n_threads)
    ts = [minigen.tensor(a, requires_grad=True) for a in arrays]
    y = op(*ts)
    y.backward(minigen.tensor(np.random.default_rng(upstream_seed).standard_normal(y.shape)))
    return [to_host(y)] + [to_host(t.grad) for t in ts]


def assert_split_equals_whole(op, arrays, calls, has_work=True):
    """On NumPy the work must really be split; CuPy work never is (one call does it all)."""
    whole = values_and_grads(op, arrays, 1)
    calls.clear()
    split = values_and_grads(op, arrays, 3)
    on_numpy = get_array_module(minigen.tensor(arrays[0]).data) is np
    if on_numpy and has_work:
        assert max(calls, default=1) > 1, "the work was never split"
    if not on_numpy:
        assert max(calls, default=1) == 1, "CuPy work was split among threads"
    for got, want in zip(split, whole):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(2, 5), c=st.integers(1, 3), o=st.integers(1, 3), size=st.integers(3, 7),
       k=st.integers(1, 3), stride=st.integers(1, 2), padding=st.integers(0, 1),
       seed=st.integers(0, 2 ** 16))
def test_conv2d_and_its_transpose_split_by_samples_equal_one_piece(split_counter, n, c, o, size, k,
                                                                     stride, padding, seed):
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal((n, c, size, size)), rng.standard_normal((o, c, k, k)), rng.standard_normal(o)
    assert_split_equals_whole(lambda x_, w_, b_: F.conv2d(x_, w_, b_, stride, padding), (x, w, b),
                              split_counter)
    wt = rng.standard_normal((c, o, k, k))
    assert_split_equals_whole(lambda x_, w_, b_: F.conv_transpose2d(x_, w_, b_, stride, padding),
                              (x, wt, b), split_counter)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(2, 4), c=st.integers(1, 3), o=st.integers(1, 3), size=st.integers(2, 6),
       k=st.sampled_from([1, 3, 5]), mask_type=st.sampled_from(["A", "B", None]),
       relu_input=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_masked_conv2d_split_by_columns_and_samples_equals_one_piece(split_counter, n, c, o, size, k,
                                                                     mask_type, relu_input, seed):
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal((n, c, size, size)), rng.standard_normal((o, c, k, k)), rng.standard_normal(o)
    mask = None if mask_type is None else pixelcnn_mask(o, c, (k, k), mask_type, 1)
    padding = 0 if k == 1 else ((k - 1, 0), (k // 2, k // 2))  # 1x1: the per-image GEMM path
    assert_split_equals_whole(
        lambda x_, w_, b_: F.masked_conv2d(x_, w_, mask, b_, padding, relu_input=relu_input),
        (x, w, b), split_counter, has_work=(k, mask_type) != (1, "A"))  # 1x1 type A: no live tap


def test_split_covers_the_range_in_balanced_non_empty_pieces():
    for n in range(0, 12):
        for parts in range(1, 6):
            pieces = threads.split(n, parts)
            assert [i for p in pieces for i in range(n)[p]] == list(range(n))
            assert all(p.stop > p.start for p in pieces) or n == 0
            lengths = [p.stop - p.start for p in pieces]
            assert not lengths or max(lengths) - min(lengths) <= 1
    for n in (0, 5, 100, 1000):  # aligned: inner bounds on multiples, still a cover without gaps
        pieces = threads.split(n, 3, align=16)
        assert [i for p in pieces for i in range(n)[p]] == list(range(n))
        assert all(p.start % 16 == 0 for p in pieces) and all(p.stop > p.start for p in pieces)


def test_map_slices_returns_in_order_and_a_piece_splitting_again_runs_in_one_piece():
    threads.set_num_threads(3)
    try:
        inner_threads = []

        def piece(p):
            here = threading.current_thread().name
            inner = threads.map_slices(lambda q: threading.current_thread().name, 9, np.zeros(1))
            inner_threads.append(set(inner) == {here})
            return p.start, p.stop
        results = threads.map_slices(piece, 9, np.zeros(1))
        assert results == [(0, 3), (3, 6), (6, 9)]
        assert inner_threads == [True] * 3  # nested: one after another in the piece's thread
        assert threads.map_slices(lambda p: p, 9, np.zeros(1), min_size=5) == [slice(0, 9)]
    finally:
        threads.set_num_threads(threads.get_num_threads())


@pytest.mark.skipif(threads.blas_library() is None, reason="NumPy's BLAS here is not an OpenBLAS "
                    "whose thread count minigen can set")
def test_pieces_run_on_a_one_thread_blas_which_is_restored_after():
    blas = threads.blas_library()
    before = blas.get()
    threads.set_num_threads(2)
    try:
        seen = threads.run_in_threads([blas.get, blas.get])
        assert seen == [1, 1]
        assert blas.get() == before
        with pytest.raises(KeyError):
            with threads.blas_threads(1):
                raise KeyError("inside")
        assert blas.get() == before
    finally:
        threads.set_num_threads(threads.get_num_threads())


@pytest.mark.parametrize("n, step, min_size", [(0, 4, 1), (1, 4, 1), (10, 3, 1), (64, 8, 1), (7, 100, 1),
                                               (100, 50, 30)])
def test_share_out_hands_every_slice_to_exactly_one_thread(n, step, min_size):
    threads.set_num_threads(3)
    try:
        taken = threads.share_out(lambda chunks: list(chunks), n, step, np.zeros(1), min_size)
        slices = sorted((s for part in taken for s in part), key=lambda s: s.start)
        assert [i for s in slices for i in range(n)[s]] == list(range(n))
        assert all(s.stop - s.start <= step for s in slices)
        if n >= 6 and step >= 2 and min_size == 1:
            assert len(taken) == 3  # every thread takes part when there are chunks enough
    finally:
        threads.set_num_threads(threads.get_num_threads())


def test_an_error_in_the_first_piece_is_raised_after_the_others_have_finished():
    threads.set_num_threads(2)
    finished = []

    def slow():
        threading.Event().wait(0.05)
        finished.append("slow")

    def fail():
        raise KeyError("first piece")
    try:
        with pytest.raises(KeyError, match="first piece"):
            threads.run_in_threads([fail, slow])
        assert finished == ["slow"]
    finally:
        threads.set_num_threads(threads.get_num_threads())
