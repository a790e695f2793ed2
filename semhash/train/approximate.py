"""Approximate nearest TF-IDF neighbours for corpora too large for the exact search.

The exact search compares every document with every other.  Here a document's
candidates are found through a pruned inverted index: each word lists only the
``depth`` documents it weighs most in, and a document's candidates are scored by the
words it shares with them through those lists.  The ``pool`` best candidates are then
ranked by their exact TF-IDF cosine, so the order among them is the exact search's.
Pruning each list to a fixed depth bounds a document's work by its number of words,
whatever the corpus size, so the whole search grows with ``n``, not ``n^2``: a common
word's full list would pair each of its documents with a large share of all others,
and the documents it weighs little in are rarely anyone's nearest neighbours.

Memory: the corpus twice (rows and pruned lists) and one block of candidates.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from numba import njit, prange
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

DEPTH = 3000  # documents each word's list keeps: those it weighs most in
POOL = 1000  # candidates a document ranks exactly
BLOCK = 65_536  # documents whose candidates are held at once


def approximate_neighbours(
    tfidf: sp.csr_matrix,
    k: int,
    depth: int = DEPTH,
    pool: int = POOL,
    progress: bool = False,
) -> np.ndarray:
    """The ``k`` most cosine-similar other rows of unit-norm ``tfidf``, found approximately.

    Returns ``(n, k)`` int64 neighbour positions, nearest first, never the row itself.
    """
    n = tfidf.shape[0]
    k = min(k, n - 1)
    if k <= 0:
        return np.zeros((n, 0), dtype=np.int64)
    rows = sp.csr_matrix(tfidf, dtype=np.float32)
    row_arrays = (rows.indptr.astype(np.int64), rows.indices.astype(np.int64), rows.data)
    lists = word_lists(rows, depth)
    pool = min(n - 1, max(k, pool))
    result = np.empty((n, k), dtype=np.int64)
    starts = range(0, n, BLOCK)
    for start in tqdm(starts, desc="neighbours", unit="block", disable=not progress):
        stop = min(n, start + BLOCK)
        candidates = _candidates(*row_arrays, *lists, start, stop, pool)
        result[start:stop] = _nearest(*row_arrays, tfidf.shape[1], start, candidates, k)
    return result


def word_lists(rows: sp.csr_matrix, depth: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each word's ``depth`` highest-weighted documents, as CSC arrays (indptr, rows, weights)."""
    words = rows.indices.astype(np.int64)
    documents = np.repeat(np.arange(rows.shape[0], dtype=np.int64), np.diff(rows.indptr))
    order = np.lexsort((documents, -rows.data, words))  # by word, heaviest first
    words, documents, weights = words[order], documents[order], rows.data[order]
    starts = np.searchsorted(words, np.arange(rows.shape[1] + 1))
    kept = np.arange(len(words)) - starts[words] < depth
    indptr = np.searchsorted(words[kept], np.arange(rows.shape[1] + 1)).astype(np.int64)
    return indptr, documents[kept], weights[kept]


@njit(parallel=True, cache=True)
def _candidates(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    list_indptr: np.ndarray,
    list_rows: np.ndarray,
    list_weights: np.ndarray,
    first: int,
    last: int,
    pool: int,
) -> np.ndarray:  # pragma: no cover - compiled
    """Rows ``first:last``'s ``pool`` best other rows by the scores the word lists give.

    ``(last - first, pool)`` int64, in no particular order.  A row with fewer scored
    rows than ``pool`` is filled up with unscored ones, so every row gets ``pool``
    distinct candidates.
    """
    n = len(indptr) - 1
    m = last - first
    out = np.empty((m, pool), dtype=np.int64)
    chunks = 64
    for chunk in prange(chunks):
        scores = np.zeros(n, dtype=np.float32)
        touched = np.empty(n, dtype=np.int32)
        for i in range(chunk * m // chunks, (chunk + 1) * m // chunks):
            row = first + i
            count = 0
            for p in range(indptr[row], indptr[row + 1]):
                word, weight = indices[p], data[p]
                for q in range(list_indptr[word], list_indptr[word + 1]):
                    other = list_rows[q]
                    if scores[other] == 0:
                        touched[count] = other
                        count += 1
                    scores[other] += weight * list_weights[q]
            scores[row] = -1.0  # never itself
            filled = 0
            if count > pool + 1:
                values = np.empty(count, dtype=np.float32)
                for j in range(count):
                    values[j] = scores[touched[j]]
                threshold = np.partition(values, count - pool)[count - pool]
                for j in range(count):
                    if scores[touched[j]] > threshold:
                        out[i, filled] = touched[j]
                        filled += 1
                for j in range(count):
                    if filled < pool and scores[touched[j]] == threshold:
                        out[i, filled] = touched[j]
                        filled += 1
            else:
                for j in range(count):
                    if touched[j] != row:
                        out[i, filled] = touched[j]
                        filled += 1
            other = row
            while filled < pool:  # too few scored: any others, each once
                other = (other + 1) % n
                if scores[other] == 0:
                    out[i, filled] = other
                    filled += 1
            for j in range(count):
                scores[touched[j]] = 0.0
            scores[row] = 0.0
    return out


@njit(parallel=True, cache=True)
def _nearest(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    n_words: int,
    first: int,
    candidates: np.ndarray,
    k: int,
) -> np.ndarray:  # pragma: no cover - compiled
    """Row ``first + i``'s ``k`` candidates of highest exact dot product, best first.

    ``(m, k)`` int64; ties keep the candidates' order.
    """
    m, c = candidates.shape
    out = np.empty((m, k), dtype=np.int64)
    for i in prange(m):
        row = first + i
        query = np.zeros(n_words, dtype=np.float32)
        for p in range(indptr[row], indptr[row + 1]):
            query[indices[p]] = data[p]
        minus_sims = np.empty(c, dtype=np.float32)
        for j in range(c):
            total = np.float32(0.0)
            for p in range(indptr[candidates[i, j]], indptr[candidates[i, j] + 1]):
                total += data[p] * query[indices[p]]
            minus_sims[j] = -total
        order = np.argsort(minus_sims, kind="mergesort")
        for j in range(k):
            out[i, j] = candidates[i, order[j]]
    return out
