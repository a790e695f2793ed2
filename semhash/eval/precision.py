"""Retrieval precision, the text-hashing literature's protocol.

Queries are ranked against a database; a retrieved document is relevant when
it shares at least one label with the query.  Hamming distances tie
constantly, so each precision comes two ways: with ties broken at random (what
most papers report) and tie-aware (the expected precision over all orders of
the tied documents, which needs no random numbers).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from semhash.codes import hamming


class Precision(NamedTuple):
    """Mean precision@k over queries: random tie-break and tie-aware expectation."""

    random: float
    tie_aware: float


def label_matrix(labels: Sequence[Sequence[str]], vocabulary: dict[str, int]) -> sp.csr_matrix:
    """Multi-hot ``(n, n_labels)`` float32 rows; labels not in ``vocabulary`` are ignored."""
    rows, cols = [], []
    for i, doc_labels in enumerate(labels):
        for label in doc_labels:
            if label in vocabulary:
                rows.append(i)
                cols.append(vocabulary[label])
    data = np.ones(len(rows), dtype=np.float32)
    return sp.csr_matrix((data, (rows, cols)), shape=(len(labels), len(vocabulary)))


def precision_at_k(
    distances: np.ndarray, relevant: np.ndarray, k: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Per-query precision@k for one block: ``(nq, n)`` distances and relevance -> two ``(nq,)``.

    Smaller distance ranks first.  Returns (random tie-break, tie-aware).
    """
    k = min(k, distances.shape[1])
    noisy = distances
    if np.issubdtype(distances.dtype, np.integer):  # jitter below the gap between distances
        noisy = distances + 0.5 * rng.random(distances.shape)
    top = np.argpartition(noisy, k - 1, axis=1)[:, :k]
    random = np.take_along_axis(relevant, top, axis=1).mean(axis=1)
    kth = np.partition(distances, k - 1, axis=1)[:, k - 1 : k]
    closer, tied = distances < kth, distances == kth
    n_closer = closer.sum(axis=1)
    hits_closer = (relevant & closer).sum(axis=1)
    tied_rate = (relevant & tied).sum(axis=1) / tied.sum(axis=1)
    tie_aware = (hits_closer + (k - n_closer) * tied_rate) / k
    return random, tie_aware


def mean_precision(
    distance_block: Callable[[slice], np.ndarray],
    query_labels: sp.csr_matrix,
    db_labels: sp.csr_matrix,
    k: int = 100,
    block: int = 512,
    seed: int = 0,
) -> Precision:
    """Mean precision@k, computing distances ``block`` queries at a time.

    ``distance_block(rows)`` returns the ``(len(rows), n_db)`` distances of those queries.
    """
    rng = np.random.default_rng(seed)
    randoms, aware = [], []
    db_t = db_labels.T.tocsc()
    for distances, relevant in _blocks(distance_block, query_labels, db_t, block):
        r, t = precision_at_k(distances, relevant, k, rng)
        randoms.append(r)
        aware.append(t)
    return Precision(float(np.concatenate(randoms).mean()), float(np.concatenate(aware).mean()))


def hamming_precision(
    query_codes: np.ndarray,
    db_codes: np.ndarray,
    query_labels: sp.csr_matrix,
    db_labels: sp.csr_matrix,
    k: int = 100,
    seed: int = 0,
) -> Precision:
    """Precision@k ranking the database by Hamming distance of packed codes."""
    return mean_precision(
        lambda rows: hamming(query_codes[rows], db_codes), query_labels, db_labels, k, seed=seed
    )


def cosine_precision(
    query_vectors: np.ndarray | sp.spmatrix,
    db_vectors: np.ndarray | sp.spmatrix,
    query_labels: sp.csr_matrix,
    db_labels: sp.csr_matrix,
    k: int = 100,
    seed: int = 0,
) -> Precision:
    """Precision@k ranking by inner product of unit-norm vectors (higher is closer)."""
    db_t = db_vectors.T

    def negative_similarity(rows: slice) -> np.ndarray:
        sims = query_vectors[rows] @ db_t
        return -np.asarray(sims.toarray() if sp.issparse(sims) else sims)

    return mean_precision(negative_similarity, query_labels, db_labels, k, seed=seed)


def precision_curve(
    distance_block: Callable[[slice], np.ndarray],
    query_labels: sp.csr_matrix,
    db_labels: sp.csr_matrix,
    max_k: int = 1000,
    block: int = 256,
    seed: int = 0,
) -> np.ndarray:
    """Mean precision@k for every k = 1..max_k (ties broken at random): ``(max_k,)``."""
    rng = np.random.default_rng(seed)
    max_k = min(max_k, db_labels.shape[0])
    total = np.zeros(max_k)
    db_t = db_labels.T.tocsc()
    for distances, relevant in _blocks(distance_block, query_labels, db_t, block):
        if np.issubdtype(distances.dtype, np.integer):
            distances = distances + 0.5 * rng.random(distances.shape)
        top = np.argpartition(distances, max_k - 1, axis=1)[:, :max_k]
        order = np.argsort(np.take_along_axis(distances, top, axis=1), axis=1)
        hits = np.take_along_axis(relevant, np.take_along_axis(top, order, axis=1), axis=1)
        total += (np.cumsum(hits, axis=1) / np.arange(1, max_k + 1)).sum(axis=0)
    return total / query_labels.shape[0]


def radius_curve(
    query_codes: np.ndarray,
    db_codes: np.ndarray,
    query_labels: sp.csr_matrix,
    db_labels: sp.csr_matrix,
    n_bits: int,
    block: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall of "everything within Hamming radius r", r = 0..b, over all queries.

    Pooled over queries: precision = relevant retrieved / retrieved, recall =
    relevant retrieved / relevant (NaN precision where nothing is retrieved).
    """
    retrieved = np.zeros(n_bits + 1)
    relevant_retrieved = np.zeros(n_bits + 1)
    n_relevant = 0
    db_t = db_labels.T.tocsc()

    def distances(rows: slice) -> np.ndarray:
        return hamming(query_codes[rows], db_codes)

    for dist, relevant in _blocks(distances, query_labels, db_t, block):
        retrieved += np.bincount(dist.ravel(), minlength=n_bits + 1)[: n_bits + 1]
        relevant_retrieved += np.bincount(dist[relevant], minlength=n_bits + 1)[: n_bits + 1]
        n_relevant += int(relevant.sum())
    retrieved, relevant_retrieved = np.cumsum(retrieved), np.cumsum(relevant_retrieved)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(retrieved > 0, relevant_retrieved / retrieved, np.nan)
    return precision, relevant_retrieved / max(n_relevant, 1)


def _blocks(
    distance_block: Callable[[slice], np.ndarray],
    query_labels: sp.csr_matrix,
    db_t: sp.csc_matrix,
    block: int,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(distances, relevance) of ``block`` queries at a time."""
    for start in range(0, query_labels.shape[0], block):
        rows = slice(start, min(start + block, query_labels.shape[0]))
        yield distance_block(rows), (query_labels[rows] @ db_t).toarray() > 0
