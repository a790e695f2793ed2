"""Dense search over the real-valued code activations with faiss.

Activations are centred at 0.5 and L2-normalised, so inner product is cosine
similarity around the binarisation threshold: two documents agree when their
units sit on the same side of 0.5, weighted by how sure each unit is.
"""

from __future__ import annotations

import numpy as np

from semhash.codes import centred_unit_rows
from semhash.index.base import Hits, check_k


class DenseIndex:
    """Exact cosine search (faiss ``IndexFlatIP``) over ``(n, b)`` activations in (0, 1)."""

    def __init__(self, dim: int) -> None:
        import faiss  # only this backend needs faiss

        self.dim = dim
        self._index = faiss.IndexFlatIP(dim)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, activations: np.ndarray) -> None:
        """Append ``(n, dim)`` activations; positions continue from ``len(self)``."""
        self._check(activations)
        self._index.add(centred_unit_rows(activations))

    def remove(self, positions: np.ndarray) -> None:
        """Delete the rows at ``positions``; later rows move down (faiss flat semantics)."""
        self._index.remove_ids(np.asarray(positions, dtype=np.int64))  # type: ignore[arg-type]

    def search(self, activations: np.ndarray, k: int) -> Hits:
        """Top ``k`` by cosine: distances are similarities (higher is closer), NaN padding."""
        check_k(k)
        self._check(activations)
        scores, positions = self._index.search(
            centred_unit_rows(activations), min(k, max(1, len(self)))
        )
        out_p = np.full((len(activations), k), -1, dtype=np.int64)
        out_s = np.full((len(activations), k), np.nan, dtype=np.float32)
        out_p[:, : positions.shape[1]] = positions
        out_s[:, : scores.shape[1]] = np.where(positions >= 0, scores, np.nan)
        return Hits(out_p, out_s)

    def _check(self, activations: np.ndarray) -> None:
        if activations.ndim != 2 or activations.shape[1] != self.dim:
            raise ValueError(f"expected (n, {self.dim}) activations, got {activations.shape}")
