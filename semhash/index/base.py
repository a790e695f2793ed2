"""What every search backend returns, and the rules its results follow."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

FEW = 32  # fewer queries than this run on the calling thread: waking busy cores costs more


class Hits(NamedTuple):
    """Search results, one row per query, best first.

    ``positions``: ``(nq, k)`` int64, the documents' positions in the index, -1 where a
    query has fewer than ``k`` results.  ``distances``: ``(nq, k)``, Hamming distances
    (int32, -1 padding) or dense scores (float32, higher is closer, NaN padding).
    Exact Hamming results break ties by position, lowest first.
    """

    positions: np.ndarray
    distances: np.ndarray


def check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
