"""Approximate nearest TF-IDF neighbours for corpora too large for the exact search.

The exact search compares every document with every other (``n^2``).  Here each
document's candidates come from a graph index (faiss ``IndexHNSWFlat``) over a
low-rank projection of the TF-IDF rows (truncated SVD), and the candidates
are then ranked by their exact TF-IDF cosine, so the order among them is the
exact search's.  Cost: about ``n log n`` for the search and ``n x candidates x
words`` for the ranking; memory ``n x (dims + candidates)``.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from numba import njit, prange
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)


def approximate_neighbours(
    tfidf: sp.csr_matrix,
    k: int,
    dims: int = 512,
    pool: int = 400,
    ef_search: int = 400,
    seed: int = 0,
    progress: bool = False,
) -> np.ndarray:
    """The ``k`` most cosine-similar other rows of unit-norm ``tfidf``, found approximately.

    Each row's ``max(k, pool)`` nearest in the ``dims``-dimension projection (an HNSW
    search ``ef_search`` wide) are ranked by their exact cosine.  Returns ``(n, k)``
    int64 neighbour positions, nearest first.
    """
    n = tfidf.shape[0]
    k = min(k, n - 1)
    if k <= 0:
        return np.zeros((n, 0), dtype=np.int64)
    projected = project(tfidf, dims, seed)
    candidates = _search(projected, min(n - 1, max(k, pool)) + 1, ef_search, progress)
    return rank_exactly(tfidf, candidates, k, progress)


def project(tfidf: sp.csr_matrix, dims: int, seed: int) -> np.ndarray:
    """Unit-norm rows of a truncated SVD of ``tfidf`` fitted on a sample: ``(n, dims)``."""
    from sklearn.decomposition import TruncatedSVD

    n = tfidf.shape[0]
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, min(n, 100_000), replace=False))
    dims = max(1, min(dims, tfidf.shape[1] - 1))
    svd = TruncatedSVD(dims, algorithm="randomized", n_iter=4, random_state=seed)
    svd.fit(tfidf[sample])
    projected = np.empty((n, dims), dtype=np.float32)
    for start in range(0, n, 65_536):
        projected[start : start + 65_536] = svd.transform(tfidf[start : start + 65_536])
    norms = np.linalg.norm(projected, axis=1, keepdims=True)
    return projected / np.maximum(norms, 1e-12)


def _search(projected: np.ndarray, k: int, ef_search: int, progress: bool) -> np.ndarray:
    """Each row's ``k`` nearest rows by inner product in an HNSW graph (itself included)."""
    import faiss

    n, dims = projected.shape
    index = faiss.IndexHNSWFlat(dims, 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 80
    index.add(projected)
    index.hnsw.efSearch = max(ef_search, k)
    found = np.empty((n, k), dtype=np.int64)
    starts = range(0, n, 16_384)
    for start in tqdm(starts, desc="candidates", unit="block", disable=not progress):
        found[start : start + 16_384] = index.search(projected[start : start + 16_384], k)[1]
    return found


def rank_exactly(
    tfidf: sp.csr_matrix, candidates: np.ndarray, k: int, progress: bool = False
) -> np.ndarray:
    """The ``k`` of each row's ``candidates`` with the highest exact TF-IDF cosine.

    A row itself and faiss's -1 padding never count; ties keep the candidates' order.
    """
    n = candidates.shape[0]
    result = np.empty((n, k), dtype=np.int64)
    indptr, indices = tfidf.indptr.astype(np.int64), tfidf.indices.astype(np.int64)
    data = tfidf.data.astype(np.float32)
    starts = range(0, n, 65_536)
    for start in tqdm(starts, desc="ranking", unit="block", disable=not progress):
        pool = candidates[start : start + 65_536]
        sims = _cosines(indptr, indices, data, tfidf.shape[1], start, pool)
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        result[start : start + 65_536] = np.take_along_axis(pool, order, axis=1)
    return result


@njit(parallel=True, cache=True)
def _cosines(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    n_words: int,
    first: int,
    pool: np.ndarray,
) -> np.ndarray:  # pragma: no cover - compiled
    """Row ``first + i``'s dot product with each of ``pool[i]``: ``(m, c)`` float32.

    Itself and -1 padding score -inf.
    """
    m, c = pool.shape
    sims = np.empty((m, c), dtype=np.float32)
    for i in prange(m):
        row = first + i
        query = np.zeros(n_words, dtype=np.float32)
        for p in range(indptr[row], indptr[row + 1]):
            query[indices[p]] = data[p]
        for j in range(c):
            other = pool[i, j]
            if other < 0 or other == row:
                sims[i, j] = -np.inf
                continue
            total = np.float32(0.0)
            for p in range(indptr[other], indptr[other + 1]):
                total += data[p] * query[indices[p]]
            sims[i, j] = total
    return sims
