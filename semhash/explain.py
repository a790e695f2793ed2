"""Why a document got its code: the words its code stands for, bit by bit, and its neighbours.

The decoder turns a code back into word probabilities, so it says what a code means:
``code words`` are the words whose probability the document's code raises most
over the average code's; a bit's words are those whose probability setting it
(rather than clearing it, all other bits as in the document) raises most.
``document words`` are the document's own heaviest TF-IDF words, the encoder's input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from semhash.codes import binarize
from semhash.engine import Result, SemanticIndex
from semhash.text import title


@dataclass(frozen=True)
class Explanation:
    """What :func:`explain` found out about one document."""

    doc_id: str
    title: str
    labels: tuple[str, ...]
    code: str  # bit 0 first
    code_words: list[tuple[str, float]]
    bit_words: list[tuple[int, list[str]]]  # each active bit and its top words
    document_words: list[tuple[str, float]]
    neighbours: list[Result]


def explain(index: SemanticIndex, doc_id: str, n_words: int = 12, k: int = 10) -> Explanation:
    """The words behind ``doc_id``'s code and its ``k`` nearest neighbours."""
    position = index.position(doc_id)
    record = index.docs.record(position)
    bits = binarize(index.activations[position])
    mean = binarize(np.asarray(index.activations)).mean(axis=0)
    vocabulary = np.array(index.hasher.vectorizer.vocabulary_)
    active = np.flatnonzero(bits)
    with_bit = np.repeat(bits[None, :].astype(np.float32), len(active), axis=0)
    without = with_bit.copy()
    with_bit[np.arange(len(active)), active] = 1
    without[np.arange(len(active)), active] = 0
    scores = np.exp(
        index.hasher.word_scores(np.vstack([bits[None, :], mean[None, :], with_bit, without]))
    )
    code_effect = scores[0] - scores[1]
    bit_effect = scores[2 : 2 + len(active)] - scores[2 + len(active) :]
    vectorizer = index.hasher.vectorizer
    tfidf = vectorizer.weight(vectorizer.counts([record.text])).toarray()[0]
    heaviest = np.argsort(-tfidf)[:n_words]
    return Explanation(
        doc_id=record.id,
        title=title(record.text),
        labels=record.labels,
        code="".join("1" if b else "0" for b in bits),
        code_words=_top(vocabulary, code_effect, n_words),
        bit_words=[
            (int(b), [w for w, _ in _top(vocabulary, effect, 6)])
            for b, effect in zip(active, bit_effect, strict=True)
        ],
        document_words=[(str(vocabulary[i]), float(tfidf[i])) for i in heaviest if tfidf[i] > 0],
        neighbours=index.similar(doc_id, k=k, rank="hamming"),
    )


def _top(vocabulary: np.ndarray, scores: np.ndarray, n: int) -> list[tuple[str, float]]:
    best = np.argsort(-scores, kind="stable")[:n]
    return [(str(vocabulary[i]), round(float(scores[i]), 3)) for i in best]
