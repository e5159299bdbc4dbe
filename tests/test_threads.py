"""minigen.threads: the pool that runs pieces of the optimisers' updates at once."""
import pytest

from minigen import threads


def test_run_in_threads_runs_every_task_and_raises_their_errors(monkeypatch):
    monkeypatch.setitem(threads._threads, "n", 3)
    done = []
    threads.run_in_threads([lambda k=k: done.append(k) for k in range(5)])
    assert sorted(done) == list(range(5))

    def fail():
        raise KeyError("in a pool thread")
    with pytest.raises(KeyError, match="in a pool thread"):
        threads.run_in_threads([lambda: None, fail])


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_set_num_threads_rejects_what_is_not_a_positive_integer(bad):
    with pytest.raises(ValueError, match=r"set_num_threads: n must be a positive integer, got"):
        threads.set_num_threads(bad)

