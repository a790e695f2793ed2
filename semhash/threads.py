"""One setting for every thread pool semhash uses, and a default from the free cores.

torch trains and encodes, numba splits the scan and probes buckets and multi-index
hashing tables, faiss runs dense search, numpy's BLAS encodes a few queries.  On a
machine whose cores are busy with other work, threads that wait on each other at every
small operation cost far more than they add, so training takes as many threads as
there are idle cores unless told otherwise (``set_threads``, ``--threads``, ``SEMHASH_THREADS``).
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

_chosen: int | None = None  # threads set by the user, if any


def set_threads(n: int) -> None:
    """Use at most ``n`` CPU threads in each pool."""
    global _chosen
    if n < 1:
        raise ValueError(f"threads must be at least 1, got {n}")
    import faiss  # each library loads here, not when semhash is imported
    import numba
    import torch
    from threadpoolctl import threadpool_limits

    _chosen = n
    threadpool_limits(n)  # numpy's BLAS (and any OpenMP pool it finds), for good
    torch.set_num_threads(n)
    most = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]  # set at import
    numba.set_num_threads(min(n, most))
    faiss.omp_set_num_threads(n)


def cores() -> int:
    """The threads set by :func:`set_threads`, else the cores this process may run on."""
    return _chosen if _chosen is not None else _usable_cores()


def use_free_cores() -> int:
    """Let torch and numba use the cores idle right now (at least one), unless threads were set.

    numba's OpenMP pool matters as much as torch's: a pool wider than the idle cores
    slows every later step of training, though numba runs only the neighbour search
    (see the busy-core rows of ``benchmarks/RESULTS.md``).  Returns torch's threads.
    """
    import numba
    import torch

    if _chosen is None and "SEMHASH_THREADS" not in os.environ:
        free = free_cores()
        torch.set_num_threads(free)
        numba.set_num_threads(min(free, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    return torch.get_num_threads()


def free_cores(seconds: float = 0.2) -> int:
    """How many of this process's cores were idle over ``seconds`` (all, without /proc/stat)."""
    cores = _usable_cores()
    try:
        before = _cpu_times()
        time.sleep(seconds)
        after = _cpu_times()
    except (OSError, ValueError, IndexError):
        return cores
    total = sum(after) - sum(before)
    idle = (after[3] + after[4]) - (before[3] + before[4])  # idle and iowait
    all_cores = os.cpu_count() or cores
    free = round(idle / total * all_cores) if total > 0 else cores
    return max(1, min(cores, free))


def _usable_cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _cpu_times() -> list[int]:
    """The machine's CPU time counters (user, nice, system, idle, iowait, ...)."""
    with open("/proc/stat", encoding="ascii") as stat:
        return [int(x) for x in stat.readline().split()[1:]]


def cpu_name() -> str:
    """The CPU's model name, to print beside every speed figure."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"
