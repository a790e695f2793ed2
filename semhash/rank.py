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
from numba import njit

LEXICAL_WEIGHT = 1.0  # BM25's share, relative to a cosine
FEEDBACK = 5  # best first-pass candidates whose codes refine the query's
FEEDBACK_WEIGHT = 2.0  # their mean unit vector's weight against the query's own
ROUNDING = 1e-3  # more than float32 arithmetic can push a cosine above 1


def rerank(
    query_units: np.ndarray,
    units: np.ndarray,
    norms: np.ndarray,
    candidates: np.ndarray,
    lexical: np.ndarray | None,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best ``candidates`` (positions into ``units``) and their scores, best first.

    Without ``lexical`` (BM25 of each candidate) by the cosine of the centred code
    units; with it by the fused score of the module docstring.  Ties go to the lower
    position.  ``norms`` are every row's :func:`semhash.codes.centred_norms`: a
    candidate is scored as ``(u . q - 0.5 sum(q)) / norm``, never centred itself.
    Compiled, one pass over the candidates' rows: numpy calls cost several times more.
    """
    fused = lexical is not None
    words = lexical if lexical is not None else _NO_WORDS
    query = np.asarray(query_units, dtype=np.float32)
    return _rerank(units, norms, np.asarray(candidates, dtype=np.int64), query, words, fused, k)


_NO_WORDS = np.zeros(0, dtype=np.float32)


@njit(cache=True, nogil=True)
def _rerank(units, norms, candidates, query_units, lexical, fused, k):  # pragma: no cover
    """:func:`rerank`'s work: cosines, feedback, BM25 added, the ``k`` best kept in order."""
    m, b = len(candidates), len(query_units)
    centred = query_units - np.float32(0.5)  # as semhash.codes.centred_unit_rows
    query = centred / max(np.sqrt(np.sum(centred * centred)), np.float32(1e-12))
    if not fused or m == 0:
        scores = _cosine_pass(units, norms, candidates, query)
        chosen = _best(scores, candidates, min(k, m))
        return candidates[chosen], scores[chosen]
    best = np.float32(0.0)
    for i in range(m):
        best = max(best, lexical[i])
    words = np.empty(m, dtype=np.float32)
    for i in range(m):
        words[i] = LEXICAL_WEIGHT * (lexical[i] / best if best > 0 else lexical[i])
    worded = np.flatnonzero(words > 0)
    top, _ = _fused_best(units, norms, candidates, query, words, worded, min(FEEDBACK, m),
                         np.arange(m))  # fmt: skip
    refined = query.astype(np.float64)
    for j in range(len(top)):
        row = candidates[top[j]]
        for d in range(b):
            refined[d] += FEEDBACK_WEIGHT * (units[row, d] - 0.5) / norms[row] / len(top)
    length = max(np.sqrt(np.sum(refined * refined)), 1e-12)
    refined_query = (refined / length).astype(np.float32)
    chosen, scores = _fused_best(units, norms, candidates, refined_query, words, worded,
                                 min(k, m), candidates)  # fmt: skip
    return candidates[chosen], scores


@njit(cache=True, nogil=True)
def _fused_best(units, norms, candidates, query, words, worded, count, ties):  # pragma: no cover
    """The ``count`` best candidates by cosine + ``words`` (indices, scores), best first.

    Ties go to the lower ``ties`` value.  A cosine is at most 1, so when the
    ``count``-th best of the candidates holding a query word (``worded``) scores above
    1, no other candidate can enter: their rows are not read.  Otherwise every one is.
    """
    if len(worded) >= count:
        scores = _cosine_pass(units, norms, candidates[worded], query)
        for i in range(len(worded)):
            scores[i] += words[worded[i]]
        chosen = _best(scores, ties[worded], count)
        if count == 0 or scores[chosen[count - 1]] > 1.0 + ROUNDING:
            return worded[chosen], scores[chosen]
    scores = _cosine_pass(units, norms, candidates, query)
    for i in range(len(candidates)):
        scores[i] += words[i]
    chosen = _best(scores, ties, count)
    return chosen, scores[chosen]


@njit(cache=True, nogil=True, fastmath=True)
def _cosine_pass(units, norms, candidates, query):  # pragma: no cover - compiled
    """(u . q - 0.5 sum(q)) / norm for each candidate's units u: float32."""
    offset = np.float32(0.5) * np.sum(query)
    out = np.empty(len(candidates), dtype=np.float32)
    for i in range(len(candidates)):
        row = candidates[i]
        total = np.float32(0.0)
        for d in range(len(query)):
            total += units[row, d] * query[d]
        out[i] = (total - offset) / norms[row]
    return out


@njit(cache=True, nogil=True)
def _best(scores, positions, k):  # pragma: no cover - compiled
    """Indices of the ``k`` highest ``scores``, best first, ties to the lower position."""
    chosen = np.empty(k, dtype=np.int64)
    filled = 0
    for i in range(len(scores) if k > 0 else 0):
        if filled == k and not _before(scores[i], positions[i], scores[chosen[k - 1]],
                                       positions[chosen[k - 1]]):  # fmt: skip
            continue
        at = min(filled, k - 1)  # insert, shifting the worse ones down
        while at > 0 and _before(scores[i], positions[i], scores[chosen[at - 1]],
                                 positions[chosen[at - 1]]):  # fmt: skip
            chosen[at] = chosen[at - 1]
            at -= 1
        chosen[at] = i
        filled = min(filled + 1, k)
    return chosen[:filled]


@njit(cache=True, inline="always")
def _before(score, position, other_score, other_position):  # pragma: no cover - compiled
    return score > other_score or (score == other_score and position < other_position)
