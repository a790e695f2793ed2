"""Ordering a query's Hamming candidates: by code cosine, or fused with BM25.

The binary codes find the right neighbourhood fast, but many candidates share a
distance and a short typed query's code is a blunt instrument.  The fused order
(the default for text) scores each candidate by

    cosine(query', candidate) + LEXICAL_WEIGHT * bm25 / best bm25 among the candidates

over the real-valued code units (centred), where query' is the query's units
moved towards the mean of the ``FEEDBACK`` candidates that a first pass with
the query itself ranks best (pseudo-relevance feedback, in code space): a
five-word query's code is noisy, the codes of the documents that both look like
it and contain its words are not.  BM25 (:mod:`semhash.lexical`) is computed on
the candidates only.  Both terms are on fixed scales ([-1, 1] and [0,
LEXICAL_WEIGHT]) whatever the corpus; ties, rare with real values, go to the
lower position.  The constants were chosen on the validation half of
``scripts/bench_queries.py``.
"""

from __future__ import annotations

import numpy as np

from semhash.codes import centred_unit_rows

LEXICAL_WEIGHT = 1.0  # BM25's share, relative to a cosine
FEEDBACK = 5  # best first-pass candidates whose codes refine the query's
FEEDBACK_WEIGHT = 2.0  # their mean unit vector's weight against the query's own


def cosine_scores(
    query_units: np.ndarray, candidate_units: np.ndarray, candidate_norms: np.ndarray
) -> np.ndarray:
    """Cosine of the centred code units of one query and each candidate: float32.

    ``candidate_norms`` are the candidates' :func:`semhash.codes.centred_norms`.
    """
    return _cosines(centred_unit_rows(query_units[None, :])[0], candidate_units, candidate_norms)


def fused_scores(
    query_units: np.ndarray,
    candidate_units: np.ndarray,
    candidate_norms: np.ndarray,
    lexical: np.ndarray,
) -> np.ndarray:
    """The fused score of each candidate (see the module docstring): float32."""
    query = centred_unit_rows(query_units[None, :])[0]
    best = float(lexical.max()) if len(lexical) else 0.0
    words = LEXICAL_WEIGHT * (lexical / best if best > 0 else lexical)
    first = _cosines(query, candidate_units, candidate_norms) + words
    if len(first) == 0:
        return first.astype(np.float32)
    top, _ = best_first(np.arange(len(first)), first, FEEDBACK)
    centred = (candidate_units[top] - np.float32(0.5)) / candidate_norms[top, None]
    refined = query + FEEDBACK_WEIGHT * centred.mean(axis=0)
    refined /= max(float(np.linalg.norm(refined)), 1e-12)
    return (_cosines(refined, candidate_units, candidate_norms) + words).astype(np.float32)


def _cosines(query: np.ndarray, units: np.ndarray, norms: np.ndarray) -> np.ndarray:
    """Cosines of a centred unit-length ``query`` and the centred ``units``.

    The units are not centred one by one: (u - 0.5) . q = u . q - 0.5 sum(q).
    """
    query = query.astype(np.float32, copy=False)
    return (units @ query - np.float32(0.5 * float(query.sum()))) / norms


def best_first(candidates: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best candidates and their scores, highest first, ties by position."""
    chosen = np.arange(len(scores))
    if len(scores) > k:  # only those scoring at least the k-th best need sorting
        chosen = np.flatnonzero(scores >= np.partition(scores, len(scores) - k)[len(scores) - k])
    order = chosen[np.lexsort((candidates[chosen], -scores[chosen]))][:k]
    return candidates[order], scores[order]
