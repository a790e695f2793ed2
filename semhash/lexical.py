"""Word counts of the indexed documents, and BM25 scores of a query's words on a few of them.

A typed query is a handful of words; its binary code places it among the right
topic but cannot tell apart the documents at the same Hamming distance, and a
code learnt from whole documents says little about one rare word the user typed.
BM25 (Robertson & Zaragoza's saturating term frequency, scaled by document
length) says exactly that, so the default ranking fuses the two: the codes choose
the candidates, and a candidate's BM25 score for the query's words moves it up or
down among them (see :mod:`semhash.rank`).

Counts are kept as CSR rows (one per indexed document, term ids sorted), saved with
the index as ``terms_indptr.npy``, ``terms_ids.npy`` and ``terms_counts.npy``; an
index saved before them rebuilds them from its texts on first use.  Scoring reads
each query word's postings (the documents holding it, made once from the rows on
first use) against the candidates, so its cost follows the query words' document
frequencies, not thousands of scattered rows.
"""

from __future__ import annotations

import threading

import numpy as np
import scipy.sparse as sp
from numba import njit

K1 = 1.2  # how fast a word's repeats saturate
B = 0.75  # how much a long document's counts are discounted


class TermCounts:
    """``(n, V)`` word counts of the indexed documents, in index order."""

    def __init__(self, counts: sp.csr_matrix) -> None:
        counts = sp.csr_matrix(counts)
        counts.sort_indices()
        self.indptr = np.asarray(counts.indptr, dtype=np.int64)
        self.ids = np.asarray(counts.indices, dtype=np.int32)
        self.counts = np.asarray(counts.data, dtype=np.float32)
        self.vocab_size = counts.shape[1]
        self._stats: tuple[np.ndarray, np.ndarray, float] | None = None
        self._postings: sp.csc_matrix | None = None
        self._local = threading.local()

    @classmethod
    def from_arrays(
        cls, indptr: np.ndarray, ids: np.ndarray, counts: np.ndarray, vocab_size: int
    ) -> TermCounts:
        """Counts already sorted by term within each row (as saved); nothing is copied."""
        self = cls.__new__(cls)
        self.indptr, self.ids, self.counts = indptr, ids, counts
        self.vocab_size = vocab_size
        self._stats = None
        self._postings = None
        self._local = threading.local()
        return self

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def matrix(self) -> sp.csr_matrix:
        shape = (len(self), self.vocab_size)
        return sp.csr_matrix((self.counts, self.ids, self.indptr), shape=shape)

    def arrays(self) -> dict[str, np.ndarray]:
        """What is saved: ``terms_{name}.npy`` for each."""
        return {"indptr": self.indptr, "ids": self.ids, "counts": self.counts}

    def append(self, other: TermCounts) -> TermCounts:
        return TermCounts(sp.vstack([self.matrix(), other.matrix()], format="csr"))

    def keep(self, mask: np.ndarray) -> TermCounts:
        return TermCounts(self.matrix()[np.flatnonzero(mask)])

    def problems(self, n_docs: int) -> list[str]:
        if len(self) != n_docs:
            return [f"terms_indptr.npy: {len(self)} documents, the index has {n_docs}"]
        ends = self.indptr[0] == 0 and self.indptr[-1] == len(self.ids)
        if not ends or np.any(np.diff(self.indptr) < 0):
            return ["terms_indptr.npy: offsets out of order"]
        if len(self.ids) and (self.ids.min() < 0 or self.ids.max() >= self.vocab_size):
            return ["terms_ids.npy: a word id outside the vocabulary"]
        return []

    def bm25(self, query_ids: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """BM25 of the words ``query_ids`` (repeats count once) on documents ``candidates``.

        ``candidates`` are distinct positions in any order; returns float32, one each.
        """
        idf, lengths, mean_length = self._statistics()
        postings = self.postings()
        return _bm25(
            postings.indptr, postings.indices, postings.data, lengths, mean_length, idf,
            np.asarray(query_ids), np.asarray(candidates, dtype=np.int64), self._slots(),
        )  # fmt: skip

    def _slots(self) -> np.ndarray:
        """A ``(n,)`` int32 of -1 per thread: a scoring marks its candidates, then clears them."""
        slots = getattr(self._local, "slots", None)
        if slots is None:
            slots = self._local.slots = np.full(len(self), -1, dtype=np.int32)
        return slots

    def postings(self) -> sp.csc_matrix:
        """The counts by word: each word's documents in increasing order, made once."""
        if self._postings is None:
            postings = self.matrix().tocsc()
            postings.sort_indices()
            postings.indptr = postings.indptr.astype(np.int64)
            postings.indices = postings.indices.astype(np.int64)
            self._postings = postings
        return self._postings

    def _statistics(self) -> tuple[np.ndarray, np.ndarray, float]:
        """(idf per word, length per document, mean length), computed once per state."""
        if self._stats is None:
            n = max(1, len(self))
            df = np.bincount(self.ids, minlength=self.vocab_size).astype(np.float64)
            idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)
            rows = np.repeat(np.arange(len(self)), np.diff(self.indptr))
            lengths = np.bincount(rows, self.counts, len(self)).astype(np.float32)
            self._stats = (idf, lengths, float(lengths.mean()) if len(lengths) else 1.0)
        return self._stats


@njit(cache=True, nogil=True)
def _bm25(
    indptr, docs, counts, lengths, mean_length, idf, query_ids, candidates, slots
):  # pragma: no cover
    """BM25 of each candidate: float32.

    A word in few documents walks its postings, finding candidates through ``slots``
    (document -> candidate index, -1 elsewhere, restored before returning); a word in
    many more documents than there are candidates finds each candidate in its postings
    by binary search instead: whichever reads fewer entries.  Nothing is sorted.
    """
    m = len(candidates)
    totals = np.zeros(m, dtype=np.float64)
    words = np.unique(query_ids)
    marked = False
    for j in range(len(words)):
        word = words[j]
        start, stop = indptr[word], indptr[word + 1]
        if stop - start > m * 16:
            for i in range(m):
                low, high = start, stop
                while low < high:  # the first posting whose document is >= the candidate
                    middle = (low + high) // 2
                    if docs[middle] < candidates[i]:
                        low = middle + 1
                    else:
                        high = middle
                if low < stop and docs[low] == candidates[i]:
                    d = candidates[i]
                    totals[i] += _term(idf[word], counts[low], lengths[d], mean_length)
        else:
            if not marked:
                for i in range(m):
                    slots[candidates[i]] = i
                marked = True
            for at in range(start, stop):
                i = slots[docs[at]]
                if i >= 0:
                    totals[i] += _term(idf[word], counts[at], lengths[docs[at]], mean_length)
    if marked:
        for i in range(m):
            slots[candidates[i]] = -1
    return totals.astype(np.float32)


@njit(cache=True, inline="always")
def _term(idf, tf, length, mean_length):  # pragma: no cover
    """One word's BM25 term: its idf times the saturated, length-scaled count."""
    norm = K1 * (1.0 - B + B * length / max(mean_length, 1e-9))
    return idf * tf * (K1 + 1.0) / (tf + norm)
