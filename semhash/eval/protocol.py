"""The evaluation protocol: test documents query the train documents, precision@k.

Runs semhash and the baselines (exact TF-IDF cosine, random-hyperplane LSH,
ITQ) on the same split in the same process, so their rows compare directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import scipy.sparse as sp

from semhash.codes import binarize, centred_unit_rows, pack
from semhash.corpus import Corpus
from semhash.engine import SemanticIndex
from semhash.eval.baselines import ITQ, RandomHyperplaneLSH
from semhash.eval.precision import Precision, cosine_precision, hamming_precision, label_matrix
from semhash.eval.report import Report
from semhash.hasher import HasherConfig, SemanticHasher
from semhash.text import Vectorizer


class ProtocolError(ValueError):
    """The documents cannot be evaluated (no labels, or no train/test split)."""


@dataclass(frozen=True)
class Row:
    """One line of the results table; ``n_bits`` is 0 for exact (unhashed) methods."""

    method: str
    n_bits: int
    precision: float
    tie_aware: float
    seconds: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Split:
    """Train (database) and test (query) documents with their multi-hot labels."""

    train: Corpus
    test: Corpus
    train_labels: sp.csr_matrix
    test_labels: sp.csr_matrix


def make_split(corpus: Corpus, report: Report | None = None) -> Split:
    """Split by the documents' ``split`` field; both parts must exist and carry labels."""
    train, test = corpus.split("train"), corpus.split("test")
    if not len(train) or not len(test):
        raise ProtocolError(
            "evaluation needs documents with split 'train' and split 'test' (the 'split' "
            "field of a JSONL or CSV corpus; `semhash eval CORPUS` holds out a share of a "
            f"corpus without one): found {len(train)} train and {len(test)} test"
        )
    if not train.has_labels or not test.has_labels:
        raise ProtocolError("evaluation needs labelled documents (field 'labels')")
    vocabulary = {
        label: i for i, label in enumerate(sorted({x for ls in corpus.labels for x in ls}))
    }
    split = Split(
        train, test, label_matrix(train.labels, vocabulary), label_matrix(test.labels, vocabulary)
    )
    if report is not None:
        report.use_split(split.test_labels, split.train_labels, list(test.labels))
    return split


def evaluate_index(
    index: SemanticIndex, k: int = 100, baselines: bool = True, report: Report | None = None
) -> list[Row]:
    """Score an index's stored codes, with baselines at its bit length."""
    corpus = Corpus(index.ids, index.texts, index.labels, index.splits)
    split = make_split(corpus, report)
    train = np.array([s == "train" for s in index.splits])
    test = np.array([s == "test" for s in index.splits])
    activations = np.asarray(index.activations)
    codes = np.asarray(index.codes)
    rows = [_hamming_row("semhash", index.n_bits, codes[test], codes[train], split, k, report)]
    rows.append(_dense_row(activations[test], activations[train], split, k, report))
    if report is not None:
        report.add_model(index.n_bits, codes[train], activations[test], index.hasher.history)
    if baselines:
        rows += baseline_rows(index.hasher.vectorizer, split, [index.n_bits], k, report)
    return rows


def evaluate_corpus(
    corpus: Corpus,
    bits: Sequence[int],
    config: HasherConfig | None = None,
    k: int = 100,
    baselines: bool = True,
    progress: bool = False,
    device: str = "cpu",
    on_row: Callable[[Row], None] | None = None,
    report: Report | None = None,
) -> list[Row]:
    """Train on the train split at each bit length and score it, with baselines.

    A length made of the first blocks of a longer one is read off that one's training
    (:meth:`SemanticHasher.first_blocks`: the same codes, without training them again).
    """
    split = make_split(corpus, report)
    config = config or HasherConfig()
    rows: list[Row] = []
    vectorizer = None
    for longest, lengths in training_plan(config, bits).items():
        start = time.perf_counter()
        trained = SemanticHasher(replace(config, n_bits=longest))
        trained.fit(split.train.texts, progress=progress, device=device)
        seconds_per_bit = (time.perf_counter() - start) / longest
        for n_bits in lengths:
            start = time.perf_counter()
            hasher = trained.first_blocks(n_bits)
            db = hasher.activations(split.train.texts)
            queries = hasher.activations(split.test.texts)
            db_codes = pack(binarize(db))
            row = _hamming_row(
                "semhash", n_bits, pack(binarize(queries)), db_codes, split, k, report
            )
            seconds = seconds_per_bit * n_bits + time.perf_counter() - start  # its blocks' time
            rows.append(replace(row, seconds=seconds))
            if report is not None:
                report.add_model(n_bits, db_codes, queries, hasher.history)
            if on_row:
                on_row(rows[-1])
        vectorizer = trained.vectorizer
    if baselines and vectorizer is not None:
        for row in baseline_rows(vectorizer, split, bits, k, report):
            rows.append(row)
            if on_row:
                on_row(row)
    return rows


def training_plan(config: HasherConfig, bits: Sequence[int]) -> dict[int, list[int]]:
    """Which lengths to train (keys) and the lengths each one's codes give (values).

    Each length is read off the longest trained length that covers it, so a
    32/64/128-bit evaluation trains four 32-bit blocks instead of seven.  Trainings
    come shortest first, each one's lengths in ascending order.
    """
    plan: dict[int, list[int]] = {}
    for n_bits in sorted(set(bits), reverse=True):
        source = next(
            (b for b in plan if SemanticHasher(replace(config, n_bits=b)).covers(n_bits)), n_bits
        )
        plan.setdefault(source, []).insert(0, n_bits)
    return dict(sorted(plan.items(), key=lambda item: item[1][0]))


def baseline_rows(
    vectorizer: Vectorizer,
    split: Split,
    bits: Sequence[int],
    k: int,
    report: Report | None = None,
) -> list[Row]:
    """Exact TF-IDF cosine once, then LSH and ITQ at each bit length."""
    db = vectorizer.weight(vectorizer.counts(split.train.texts))
    queries = vectorizer.weight(vectorizer.counts(split.test.texts))
    start = time.perf_counter()
    p = cosine_precision(queries, db, split.test_labels, split.train_labels, k)
    rows = [_row("tfidf-cosine (exact)", 0, p, start)]
    if report is not None:
        report.add_cosine("tfidf-cosine (exact)", 0, queries, db)
    for n_bits in bits:
        for name, hasher in (("lsh", RandomHyperplaneLSH(n_bits)), ("itq", ITQ(n_bits))):
            start = time.perf_counter()
            hasher.fit(db)
            codes = hasher.encode(queries), hasher.encode(db)
            rows.append(_hamming_row(name, n_bits, *codes, split, k, report, start))
    return rows


def _hamming_row(
    name: str,
    n_bits: int,
    queries: np.ndarray,
    db: np.ndarray,
    split: Split,
    k: int,
    report: Report | None,
    start: float | None = None,
) -> Row:
    start = time.perf_counter() if start is None else start
    p = hamming_precision(queries, db, split.test_labels, split.train_labels, k)
    if report is not None:
        report.add_hamming(name, n_bits, queries, db)
    return _row(name, n_bits, p, start)


def _dense_row(
    queries: np.ndarray, db: np.ndarray, split: Split, k: int, report: Report | None
) -> Row:
    start = time.perf_counter()
    q, d = centred_unit_rows(queries), centred_unit_rows(db)
    p = cosine_precision(q, d, split.test_labels, split.train_labels, k)
    if report is not None:
        report.add_cosine("semhash-dense (cosine)", queries.shape[1], q, d)
    return _row("semhash-dense (cosine)", queries.shape[1], p, start)


def _row(name: str, n_bits: int, p: Precision, start: float) -> Row:
    return Row(name, n_bits, p.random, p.tie_aware, time.perf_counter() - start)
