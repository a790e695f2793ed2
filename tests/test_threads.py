import os

import torch

from semhash import threads


def test_free_cores_count_the_idle_share_of_the_machine(monkeypatch) -> None:
    counters = iter([[100, 0, 0, 100, 0, 0, 0], [150, 0, 0, 150, 0, 0, 0]])
    monkeypatch.setattr(threads, "_cpu_times", lambda: next(counters))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0, 1})
    # Half the machine's time idle over the sample: one of its two cores is free.
    assert threads.free_cores(seconds=0) == 1
    busy = iter([[0, 0, 0, 0, 0, 0, 0], [100, 0, 0, 0, 0, 0, 0]])
    monkeypatch.setattr(threads, "_cpu_times", lambda: next(busy))
    assert threads.free_cores(seconds=0) == 1  # never fewer than one


def test_training_threads_follow_the_free_cores_unless_set(monkeypatch) -> None:
    import numba

    before = torch.get_num_threads(), numba.get_num_threads()
    monkeypatch.delenv("SEMHASH_THREADS", raising=False)
    monkeypatch.setattr(threads, "_chosen", None)
    monkeypatch.setattr(threads, "free_cores", lambda: 1)
    try:
        assert threads.use_free_cores() == 1
        assert numba.get_num_threads() == 1  # numba too: its pool slows training beside a busy core
        monkeypatch.setattr(threads, "_chosen", 2)  # the user's choice stands
        torch.set_num_threads(2)
        assert threads.use_free_cores() == 2
    finally:
        torch.set_num_threads(before[0])
        numba.set_num_threads(before[1])
