"""Exact Hamming search by scanning every code with XOR + popcount (see :mod:`.popcount`)."""

from __future__ import annotations

import numpy as np

from semhash.codes import n_words
from semhash.index.base import Hits, check_k
from semhash.index.popcount import top_k


class LinearScan:
    """Brute force, exact: the reference every other Hamming backend must match.

    >>> from semhash.codes import pack
    >>> scan = LinearScan(8)
    >>> scan.add(pack(np.array([[1, 0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0, 0, 0]])))
    >>> scan.search(pack(np.array([[1, 1, 0, 0, 0, 0, 0, 0]])), k=2).distances.tolist()
    [[1, 1]]
    """

    def __init__(self, n_bits: int) -> None:
        self.n_bits = n_bits
        self.codes = np.zeros((0, n_words(n_bits)), dtype=np.uint64)

    @property
    def codes(self) -> np.ndarray:
        """``(n, words)`` uint64 packed codes, in position order."""
        return self._codes

    @codes.setter
    def codes(self, codes: np.ndarray) -> None:
        self._codes = codes
        self._narrow: np.ndarray | None = None  # made again on the next lone query

    def narrow(self) -> np.ndarray | None:
        """The codes as uint32 when they have at most 32 bits, made once; else None.

        A lone query's scan reads these: half the bytes of the uint64 codes.
        """
        if self._narrow is None and self.n_bits <= 32:
            self._narrow = self._codes[:, 0].astype(np.uint32)
        return self._narrow

    def __len__(self) -> int:
        return len(self.codes)

    def add(self, codes: np.ndarray) -> None:
        """Append ``(n, words)`` uint64 codes; their positions continue from ``len(self)``."""
        self.codes = np.concatenate([self.codes, _checked(codes, self.codes.shape[1])])

    def remove(self, positions: np.ndarray) -> None:
        """Delete the codes at ``positions``; later codes move down to fill the gaps."""
        self.codes = np.delete(self.codes, np.asarray(positions, dtype=np.int64), axis=0)

    def distances(self, queries: np.ndarray) -> np.ndarray:
        """``(nq, len(self))`` int32 Hamming distances to every code."""
        out = np.zeros((len(queries), len(self.codes)), dtype=np.int32)
        for w in range(self.codes.shape[1]):
            out += np.bitwise_count(queries[:, w, None] ^ self.codes[None, :, w])
        return out

    def search(self, queries: np.ndarray, k: int, radius: int | None = None) -> Hits:
        """The ``k`` nearest codes (within ``radius`` if given), ties by position."""
        check_k(k)
        queries = _checked(queries, self.codes.shape[1])
        narrow = self.narrow() if len(queries) == 1 else None
        positions, distances = top_k(queries, self.codes, k, self.n_bits, radius, narrow)
        return Hits(positions, distances)


def _checked(codes: np.ndarray, words: int) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.shape[1:] != (words,) or codes.dtype != np.uint64:
        raise ValueError(
            f"codes must be a (n, {words}) uint64 array, got {codes.shape} {codes.dtype}"
        )
    return np.ascontiguousarray(codes)
