"""One setting for every thread pool semhash uses.

torch trains and encodes, numba splits the scan and probes buckets and multi-index
hashing tables, faiss runs dense search.
"""

from __future__ import annotations


def set_threads(n: int) -> None:
    """Use at most ``n`` CPU threads in each pool.

    Worth it on a machine whose cores are busy with other work, where torch's threads
    wait on each other at every small operation: beside two busy processes a
    60-document folder's model trained in 91-130 s on two threads, 32-35 s on one (README).
    """
    if n < 1:
        raise ValueError(f"threads must be at least 1, got {n}")
    import faiss  # each library loads here, not when semhash is imported
    import numba
    import torch

    torch.set_num_threads(n)
    most = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]  # set at import
    numba.set_num_threads(min(n, most))
    faiss.omp_set_num_threads(n)
