"""What the decoder learns to reconstruct: a document's words, or its neighbourhood's.

Reconstructing the word distribution of a document *and* of its nearest
neighbours (found without labels: first by TF-IDF cosine, later also by the
model's own codes) asks the code to describe the topic a document shares with similar
documents rather than its idiosyncratic words.  A target is kept as neighbour ids
and made when a batch asks for it, so a large corpus costs ``n x k`` integers, not
``n x V`` floats; a small one has them all made once.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp

from semhash.codes import centred_unit_rows
from semhash.train.approximate import approximate_neighbours

logger = logging.getLogger(__name__)
EXACT_LIMIT = 50_000  # training documents up to which the TF-IDF neighbours are exact


def word_distributions(counts: sp.csr_matrix) -> sp.csr_matrix:
    """Rows of ``counts`` scaled to sum to one (empty rows stay zero): ``(n, V)`` float32."""
    sums = np.asarray(counts.sum(axis=1)).ravel()
    sums[sums == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / sums) @ counts, dtype=np.float32)


def nearest_neighbours(tfidf: sp.csr_matrix, k: int, progress: bool = False) -> np.ndarray:
    """The ``k`` most cosine-similar other rows of unit-norm ``tfidf``: ``(n, k)`` int64, exactly.

    Through the word lists of :mod:`semhash.train.approximate` with every list whole:
    each document sharing a word with a row is scored, so the scores are the exact
    cosines, summed word by word without the sparse product's intermediate matrices.
    """
    return approximate_neighbours(tfidf, k, depth=tfidf.shape[0], pool=k, progress=progress)


def code_neighbours(activations: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` nearest other rows by cosine of the centred code units: ``(n, k)`` int64.

    The trained model's codes group documents by topic better than raw TF-IDF
    does, so neighbours found again in code space make better targets.
    """
    n = len(activations)
    k = min(k, n - 1)
    if k <= 0:
        return np.zeros((n, 0), dtype=np.int64)
    import faiss  # loaded only when a refinement searches the codes

    rows = centred_unit_rows(activations)
    index = faiss.IndexFlatIP(rows.shape[1])
    index.add(rows)
    found = index.search(rows, k + 1)[1]
    # Drop each row itself; where exact duplicates hid it, drop the last neighbour instead.
    is_self = found == np.arange(n)[:, None]
    is_self[~is_self.any(axis=1), -1] = True
    return found[~is_self].reshape(n, k).astype(np.int64)


def neighbours_of(tfidf: sp.csr_matrix, k: int, progress: bool = False) -> np.ndarray:
    """The ``k`` nearest TF-IDF neighbours of each row: exact up to ``EXACT_LIMIT`` rows.

    Beyond it the exact search's ``n^2`` cost gives way to :func:`approximate_neighbours`.
    """
    if tfidf.shape[0] <= EXACT_LIMIT:
        logger.info("finding %d TF-IDF neighbours per document, exactly", k)
        return nearest_neighbours(tfidf, k, progress=progress)
    logger.info("finding %d TF-IDF neighbours per document, approximately", k)
    return approximate_neighbours(tfidf, k, progress=progress)


def rerank_by_codes(activations: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` of each row's ``candidates`` nearest by cosine of the code units: ``(n, k)``.

    Chosen among a document's nearest TF-IDF neighbours, the codes' neighbours stay
    related to its text: free to roam the whole corpus, they drew small topics into
    the big clusters the codes had already formed (Reuters, small corpora).
    """
    rows = centred_unit_rows(activations)
    k = min(k, candidates.shape[1])
    result = np.empty((len(rows), k), dtype=np.int64)
    block = 1024  # rows at a time: block x candidates x bits floats
    for start in range(0, len(rows), block):
        pool = candidates[start : start + block]
        sims = np.einsum("nkd,nd->nk", rows[pool], rows[start : start + block])
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        result[start : start + block] = np.take_along_axis(pool, order, axis=1)
    return result


class NeighbourhoodTargets:
    """``self_weight`` x a document's word distribution + the rest spread over its neighbours.

    ``targets[rows]`` is a ``(len(rows), V)`` float32 CSR block, made from the
    ``(n, k)`` neighbour ids when asked; with no neighbours (k == 0), the documents'
    own word distributions.  When all of them fit in ``materialise_bytes`` they are
    made once, at the start.
    """

    def __init__(
        self,
        counts: sp.csr_matrix,
        neighbours: np.ndarray,
        self_weight: float,
        materialise_bytes: int = 2 << 30,
    ) -> None:
        self.own = word_distributions(counts)
        self.neighbours = neighbours
        self.self_weight = self_weight
        self.shape = counts.shape
        self._all: sp.csr_matrix | None = None
        n = self.shape[0]
        sample = self._mix(np.arange(min(n, 256)))
        if sample.nnz / max(1, sample.shape[0]) * n * 8 <= materialise_bytes:
            self._all = self._mix(np.arange(n))

    def __getitem__(self, rows: np.ndarray | slice) -> sp.csr_matrix:
        if self._all is not None:
            return self._all[rows]
        return self._mix(np.arange(self.shape[0])[rows])

    def _mix(self, rows: np.ndarray) -> sp.csr_matrix:
        k = self.neighbours.shape[1]
        if k == 0:
            return self.own[rows]
        m, n = len(rows), self.shape[0]
        picks = np.repeat(np.arange(m), k)
        weights = np.full(picks.size, (1.0 - self.self_weight) / k)
        mixing = sp.csr_matrix((weights, (picks, self.neighbours[rows].ravel())), shape=(m, n))
        mixing = mixing + sp.csr_matrix(
            (np.full(m, self.self_weight), (np.arange(m), rows)), shape=(m, n)
        )
        return sp.csr_matrix(mixing @ self.own, dtype=np.float32)
