"""What every search backend returns, and the rules its results follow."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


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


def top_k_by_distance(
    distances: np.ndarray, positions: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` smallest of one query's candidates, ties by position: 1-D arrays in, out."""
    if len(distances) > k:
        key = distances.astype(np.int64) * (int(positions.max()) + 1) + positions
        keep = np.argpartition(key, k - 1)[:k]
        distances, positions = distances[keep], positions[keep]
    order = np.lexsort((positions, distances))
    return distances[order], positions[order]


def pad_hits(rows: list[tuple[np.ndarray, np.ndarray]], k: int) -> Hits:
    """Stack per-query (distances, positions) of length <= k into padded ``Hits``."""
    positions = np.full((len(rows), k), -1, dtype=np.int64)
    distances = np.full((len(rows), k), -1, dtype=np.int32)
    for i, (d, p) in enumerate(rows):
        positions[i, : len(p)] = p
        distances[i, : len(d)] = d
    return Hits(positions, distances)
