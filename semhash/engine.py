"""``SemanticIndex``: the public face — build, add, remove, search, save and load an index."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from semhash.codes import binarize, centred_unit_rows, n_words, pack, unpack
from semhash.corpus import Corpus
from semhash.hasher import HasherConfig, SemanticHasher
from semhash.index.base import Hits
from semhash.index.buckets import HammingBuckets
from semhash.index.dense import DenseIndex
from semhash.index.milvus import MilvusCodes, MilvusError
from semhash.index.planner import ENGINES
from semhash.index.two_stage import ADDRESS_BITS, TwoStage
from semhash.store import layout, versions
from semhash.store.documents import Documents
from semhash.text import snippet, title

TWO_STAGE = "two-stage"

logger = logging.getLogger(__name__)


class QueryError(ValueError):
    """A request cannot be served: unknown or duplicate id, no known words, bad k or radius."""


@dataclass(frozen=True)
class Result:
    """One search hit: ``score`` is a Hamming distance, or a cosine when dense or re-ranked."""

    rank: int
    id: str
    score: float
    labels: tuple[str, ...]
    title: str
    snippet: str

    def to_dict(self) -> dict[str, Any]:
        """The hit as JSON-ready values (labels as a list)."""
        return {**vars(self), "labels": list(self.labels)}


class SemanticIndex:
    """Documents, their binary codes and the trained hasher that made them.

    >>> index = SemanticIndex.build(load_corpus("20newsgroups"))  # doctest: +SKIP
    >>> [hit.labels for hit in index.search(["nasa shuttle launch"], k=2)[0]]  # doctest: +SKIP
    [('sci.space',), ('sci.space',)]
    """

    def __init__(
        self,
        hasher: SemanticHasher,
        buckets: HammingBuckets | None = None,
        activations: np.ndarray | None = None,
        docs: Documents | None = None,
        created: str | None = None,
    ) -> None:
        self.hasher = hasher
        self.buckets = buckets or HammingBuckets(hasher.n_bits)
        empty = np.zeros((0, hasher.n_bits), dtype=np.float32)
        self.activations = empty if activations is None else activations  # (n, b) float32
        self.docs = docs or Documents.from_corpus(Corpus([], [], [], []))
        self.created = created
        self._dense: DenseIndex | None = None  # built from the activations on first use
        self._two_stage: TwoStage | None = None  # likewise, from the codes
        self.backend: dict[str, str] | None = None  # where else the codes live (Milvus)
        self._milvus: MilvusCodes | None = None

    def __len__(self) -> int:
        return len(self.docs)

    @property
    def n_bits(self) -> int:
        return self.hasher.n_bits

    @property
    def codes(self) -> np.ndarray:
        """``(n, words)`` uint64 packed codes, in document order."""
        return self.buckets.codes

    @property
    def ids(self) -> list[str]:
        return self.docs.ids

    @property
    def labels(self) -> list[tuple[str, ...]]:
        return [r.labels for r in self.docs.records()]

    @property
    def splits(self) -> list[str]:
        return [r.split for r in self.docs.records()]

    @property
    def texts(self) -> list[str]:
        return [r.text for r in self.docs.records()]

    @classmethod
    def build(
        cls,
        corpus: Corpus,
        config: HasherConfig | None = None,
        progress: bool = False,
        device: str = "cpu",
    ) -> SemanticIndex:
        """Train on the corpus's train split (all of it when unsplit), then index every document."""
        train = corpus.split("train") if "train" in corpus.splits else corpus
        hasher = SemanticHasher(config).fit(train.texts, progress=progress, device=device)
        index = cls(hasher)
        index.add(corpus, progress=progress)
        return index

    @classmethod
    def from_codes(
        cls,
        hasher: SemanticHasher,
        ids: Sequence[str],
        codes: np.ndarray,
        labels: Sequence[tuple[str, ...]],
    ) -> SemanticIndex:
        """An index of codes computed elsewhere (``semhash encode``), without their texts.

        The real-valued codes are unknown, so dense search ranks by the binary codes.
        """
        if codes.shape != (len(ids), n_words(hasher.n_bits)) or len(labels) != len(ids):
            raise QueryError(
                f"{len(ids)} ids, {len(labels)} label sets and codes of shape {codes.shape} "
                f"do not make {hasher.n_bits}-bit codes of {len(ids)} documents"
            )
        index = cls(hasher)
        empty = [""] * len(ids)
        activations = unpack(codes, hasher.n_bits).astype(np.float32)
        index._insert(Corpus(list(ids), empty, list(labels), empty), activations, replace=True)
        return index

    def add(self, corpus: Corpus, replace: bool = True, progress: bool = False) -> int:
        """Encode and append documents with the trained model; returns how many replaced others.

        A document whose id is already indexed replaces the old one (it moves to the
        end), or, with ``replace=False``, the whole call is refused.
        """
        return self._insert(corpus, None, replace, progress)

    def _insert(
        self,
        corpus: Corpus,
        activations: np.ndarray | None,
        replace: bool,
        progress: bool = False,
    ) -> int:
        if len(set(corpus.ids)) != len(corpus.ids):
            twice = next(i for i in corpus.ids if corpus.ids.count(i) > 1)
            raise QueryError(f"document id {twice!r} appears twice")
        old = self.docs.positions(corpus.ids)
        if not replace and np.any(old >= 0):
            first = corpus.ids[int(np.flatnonzero(old >= 0)[0])]
            raise QueryError(f"document id {first!r} is already in the index")
        if activations is None:
            activations = self.hasher.activations(corpus.texts, progress=progress)
        codes = pack(binarize(activations))
        if self.backend is not None:  # the server first: a failure there changes nothing here
            self.milvus.upsert(corpus.ids, codes, corpus.labels)
        self._delete(old[old >= 0])
        self.buckets.add(codes)
        self.activations = np.concatenate([self.activations, activations])
        self.docs.append(Documents.from_corpus(corpus))
        self._dense = self._two_stage = None
        return int(np.sum(old >= 0))

    def remove(self, doc_ids: Sequence[str]) -> None:
        """Delete documents by id; an unknown id refuses the whole call."""
        positions = self.docs.positions(list(doc_ids))
        if np.any(positions < 0):
            missing = list(doc_ids)[int(np.flatnonzero(positions < 0)[0])]
            raise QueryError(f"no document with id {missing!r} in the index")
        if self.backend is not None:
            self.milvus.delete(list(doc_ids))
        self._delete(positions)

    def use_milvus(self, uri: str, collection: str) -> None:
        """Keep the codes in a Milvus collection too, and search there (see :mod:`.milvus`)."""
        self.backend = {"kind": "milvus", "uri": uri, "collection": collection}
        self._milvus = None
        records = self.docs.records()
        self.milvus.upsert(
            [r.id for r in records], np.asarray(self.codes), [r.labels for r in records]
        )

    @property
    def milvus(self) -> MilvusCodes:
        if self.backend is None:
            raise QueryError("this index keeps its codes locally only (no Milvus backend)")
        if self._milvus is None:
            self._milvus = MilvusCodes(self.backend["uri"], self.backend["collection"], self.n_bits)
        return self._milvus

    def _delete(self, positions: np.ndarray) -> None:
        if len(positions) == 0:
            return
        keep = np.ones(len(self), dtype=bool)
        keep[positions] = False
        self.buckets.remove(positions)
        self.activations = self.activations[keep]
        self.docs.keep(keep)
        self._dense = self._two_stage = None

    def search(
        self,
        texts: Sequence[str],
        k: int = 10,
        radius: int | None = None,
        dense: bool = False,
        rerank: int = 0,
        engine: str = "auto",
        filter: str | None = None,
    ) -> list[list[Result]]:
        """Nearest documents to each text.

        By Hamming distance (within ``radius`` when given); by cosine of the real-valued
        codes when ``dense``; or, with ``rerank`` = N > 0, the N nearest by Hamming
        distance re-ordered by cosine (scores are then cosines).  ``engine`` picks the
        Hamming search: "auto" (the planner's choice), "scan", "buckets", "mih" (all
        exact, identical results) or "two-stage" (approximate: the first 16 bits find
        1,000 candidates, the full code ranks them).  With a Milvus backend, "auto"
        searches the collection (ties then go by id), where ``filter`` (a Milvus boolean
        expression over ``id`` and ``labels``) restricts the documents.
        """
        counts = self.hasher.vectorizer.counts(texts)
        return self.search_counts(counts, k, radius, dense, rerank, engine, filter)

    def search_counts(
        self,
        counts: sp.csr_matrix,
        k: int = 10,
        radius: int | None = None,
        dense: bool = False,
        rerank: int = 0,
        engine: str = "auto",
        filter: str | None = None,
    ) -> list[list[Result]]:
        """``search`` for queries already counted by ``hasher.vectorizer`` (each counted once)."""
        for i, known in enumerate(np.asarray(counts.sum(axis=1)).ravel()):
            if known == 0:
                raise QueryError(f"query {i + 1} has no words in the index's vocabulary")
        activations = self.hasher.activations_from_counts(counts)
        return self._search(activations, k, radius, dense, rerank, engine, filter)

    def similar(
        self,
        doc_id: str,
        k: int = 10,
        radius: int | None = None,
        dense: bool = False,
        rerank: int = 0,
        engine: str = "auto",
        filter: str | None = None,
    ) -> list[Result]:
        """Documents most like the indexed document ``doc_id`` (itself excluded); see search."""
        position = self.position(doc_id)
        query = self.activations[position : position + 1]
        depth = rerank + 1 if rerank else 0  # one more candidate: the document itself
        results = self._search(query, k + 1, radius, dense, depth, engine, filter)[0]
        others = [r for r in results if r.id != doc_id][:k]
        return [replace(r, rank=i + 1) for i, r in enumerate(others)]

    def position(self, doc_id: str) -> int:
        position = self.docs.position(doc_id)
        if position < 0:
            raise QueryError(f"no document with id {doc_id!r} in the index")
        return position

    def stats(self) -> dict[str, Any]:
        """Documents, buckets used, largest bucket, mean bits set, bits always 0 or 1."""
        bits_set = np.bitwise_count(self.codes).sum(axis=1) if len(self) else np.zeros(1)
        ones = unpack(self.codes, self.n_bits).mean(axis=0) if len(self) else np.zeros(0)
        return {
            "n_docs": len(self),
            "n_buckets": self.buckets.n_buckets,
            "largest_bucket": self.buckets.largest_bucket(),
            "mean_bits_set": round(float(bits_set.mean()), 3),
            "constant_bits": int(np.sum((ones == 0) | (ones == 1))) if len(self) else 0,
        }

    def _search(
        self,
        activations: np.ndarray,
        k: int,
        radius: int | None,
        dense: bool,
        rerank: int,
        engine: str,
        filter: str | None = None,
    ) -> list[list[Result]]:
        if k < 1:
            raise QueryError(f"k must be at least 1, got {k}")
        if radius is not None and not 0 <= radius <= self.n_bits:
            raise QueryError(f"radius must be between 0 and {self.n_bits}, got {radius}")
        if rerank < 0:
            raise QueryError(f"rerank must be non-negative, got {rerank}")
        if dense and (radius is not None or rerank):
            raise QueryError("dense search takes neither a radius nor a rerank depth")
        if engine not in (*ENGINES, TWO_STAGE):
            raise QueryError(f"engine must be one of {', '.join((*ENGINES, TWO_STAGE))}")
        if engine == TWO_STAGE and (radius is not None or self.n_bits <= ADDRESS_BITS):
            raise QueryError(f"two-stage search takes no radius and needs over {ADDRESS_BITS} bits")
        on_server = self.backend is not None and engine == "auto" and not dense
        if filter and not on_server:
            raise QueryError("filters need the Milvus backend (and no --dense or --engine)")
        if dense:
            if self._dense is None:
                self._dense = DenseIndex(self.n_bits)
                self._dense.add(np.asarray(self.activations))
            return self._results(self._dense.search(activations, k))
        codes, depth = pack(binarize(activations)), max(k, rerank)
        if on_server:
            hits = self._milvus_hits(codes, depth, radius, filter or "")
        elif engine == TWO_STAGE:
            if self._two_stage is None:
                self._two_stage = TwoStage(self.n_bits, self.codes)
            hits = self._two_stage.search(codes, depth)
        else:
            hits = self.buckets.search(codes, depth, radius, engine)
        return self._results(self._rerank(activations, hits, k) if rerank else hits)

    def _milvus_hits(self, codes: np.ndarray, k: int, radius: int | None, filter: str) -> Hits:
        try:
            found = self.milvus.search(codes, k, radius, filter)
        except MilvusError as err:
            raise QueryError(str(err)) from None
        positions = np.full((len(codes), k), -1, dtype=np.int64)
        distances = np.full((len(codes), k), -1, dtype=np.int32)
        for i, pairs in enumerate(found):
            if pairs:
                positions[i, : len(pairs)] = self.docs.positions([doc_id for doc_id, _ in pairs])
                distances[i, : len(pairs)] = [d for _, d in pairs]
        return Hits(positions, distances)

    def _rerank(self, activations: np.ndarray, hits: Hits, k: int) -> Hits:
        """Re-order each query's Hamming candidates by cosine of the real-valued codes."""
        positions = np.full((len(hits.positions), k), -1, dtype=np.int64)
        scores = np.full((len(hits.positions), k), np.nan, dtype=np.float32)
        queries = centred_unit_rows(activations)
        for i, candidates in enumerate(hits.positions):
            candidates = candidates[candidates >= 0]
            cosines = centred_unit_rows(self.activations[candidates]) @ queries[i]
            best = np.argsort(-cosines, kind="stable")[:k]
            positions[i, : len(best)] = candidates[best]
            scores[i, : len(best)] = cosines[best]
        return Hits(positions, scores)

    def _results(self, hits: Hits) -> list[list[Result]]:
        out = []
        for positions, scores in zip(hits.positions, hits.distances, strict=True):
            records = [self.docs.record(p) for p in positions if p >= 0]
            out.append(
                [
                    Result(rank + 1, r.id, float(s), r.labels, title(r.text), snippet(r.text))
                    for rank, (r, s) in enumerate(zip(records, scores, strict=False))
                ]
            )
        return out

    def save(self, path: str | Path, overwrite: bool = False) -> None:
        """Write the index as a new version of the folder, atomically (see ``store.versions``)."""
        parts = layout.Parts(
            self.hasher, self.buckets, self.activations, self.docs, self.created, self.backend
        )
        self.created = layout.save(parts, self.stats(), Path(path), overwrite)

    @classmethod
    def load(cls, path: str | Path, verify: bool = True) -> SemanticIndex:
        """Open an index folder, memory-mapping its arrays; errors name the file at fault.

        ``verify`` checksums every file up to 64 MiB (``semhash check`` all of them).
        """
        parts = layout.load(Path(path), verify)
        index = cls(parts.hasher, parts.buckets, parts.activations, parts.docs, parts.created)
        index.backend = parts.backend
        return index

    @classmethod
    @contextlib.contextmanager
    def update(cls, path: str | Path) -> Iterator[SemanticIndex]:
        """Open an index for changes, saved as one new version when the block ends cleanly.

        Holds the folder's writer lock throughout, so two updates never lose each other's work.
        """
        versions.read_version(Path(path))  # a clear error before trying to lock a non-index
        with versions.lock(Path(path)):
            index = cls.load(path)
            yield index
            index.save(path, overwrite=True)

    @classmethod
    def check(cls, path: str | Path) -> list[str]:
        """Every problem found: checksums of all files, then internal consistency."""
        return layout.problems(Path(path))
