"""``SemanticIndex``: the public face — build, add, remove, search, save and load an index."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from semhash.codes import binarize, centred_norms, n_words, pack, unpack
from semhash.corpus import Corpus
from semhash.hasher import HasherConfig, SemanticHasher
from semhash.index.base import Hits
from semhash.index.buckets import HammingBuckets
from semhash.index.dense import DenseIndex
from semhash.index.milvus import MilvusCodes, MilvusError
from semhash.index.two_stage import ADDRESS_BITS, TwoStage
from semhash.lexical import TermCounts
from semhash.options import TWO_STAGE, QueryError, SearchOptions
from semhash.rank import rerank
from semhash.store import layout, mirror, versions
from semhash.store.documents import Documents
from semhash.text import Bags

__all__ = ["QueryError", "Result", "SearchOptions", "SemanticIndex", "TWO_STAGE"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    """One search hit: ``score`` is a Hamming distance (rank=hamming), else higher is closer."""

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
        terms: TermCounts | None = None,
    ) -> None:
        self.hasher = hasher
        self.buckets = buckets or HammingBuckets(hasher.n_bits)
        empty = np.zeros((0, hasher.n_bits), dtype=np.float32)
        self.activations = empty if activations is None else activations  # (n, b) float32
        self.docs = docs or Documents.from_corpus(Corpus([], [], [], []))
        self.created = created
        self._terms = terms  # word counts for BM25; rebuilt from the texts when missing
        self.version: str | None = None  # the saved version this was loaded from
        self._folder: Path | None = None  # the index folder it was loaded from
        self._dense: DenseIndex | None = None  # built from the activations on first use
        self._two_stage: TwoStage | None = None  # likewise, from the codes
        self._norms: np.ndarray | None = None  # centred activations' norms, for re-ranking
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
        counts = self.hasher.vectorizer.counts(corpus.texts, progress=progress)
        if activations is None:
            activations = self.hasher.activations_from_counts(counts, progress=progress)
        codes = pack(binarize(activations))
        if self.backend is not None:  # the server first: a failure there changes nothing here
            self._intend(corpus.ids)
            self.milvus.upsert(corpus.ids, codes, corpus.labels)
        self._delete(old[old >= 0])
        terms = self.terms.append(TermCounts(counts))
        self.buckets.add(codes)
        self.activations = np.concatenate([self.activations, activations])
        self.docs.append(Documents.from_corpus(corpus))
        self._terms = terms
        self._dense = self._two_stage = self._norms = None
        return int(np.sum(old >= 0))

    def remove(self, doc_ids: Sequence[str]) -> None:
        """Delete documents by id; an unknown id refuses the whole call."""
        positions = self.docs.positions(list(doc_ids))
        if np.any(positions < 0):
            missing = list(doc_ids)[int(np.flatnonzero(positions < 0)[0])]
            raise QueryError(f"no document with id {missing!r} in the index")
        if self.backend is not None:
            self._intend(doc_ids)
            self.milvus.delete(list(doc_ids))
        self._delete(positions)

    def _intend(self, doc_ids: Sequence[str]) -> None:
        """Note in the index folder that Milvus is about to change (see :mod:`.mirror`)."""
        if self._folder is not None:
            mirror.record(self._folder, doc_ids)

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

    def close(self) -> None:
        """Close the Milvus connection, if one is open (it reopens when next needed)."""
        if self._milvus is not None:
            self._milvus.close()
            self._milvus = None

    def _delete(self, positions: np.ndarray) -> None:
        if len(positions) == 0:
            return
        keep = np.ones(len(self), dtype=bool)
        keep[positions] = False
        self.buckets.remove(positions)
        self.activations = self.activations[keep]
        self._terms = self.terms.keep(keep)
        self.docs.keep(keep)
        self._dense = self._two_stage = self._norms = None

    @property
    def terms(self) -> TermCounts:
        """The indexed documents' word counts (an index saved without them counts its texts)."""
        if self._terms is None or len(self._terms) != len(self):
            self._terms = TermCounts(self.hasher.vectorizer.counts(self.texts))
        return self._terms

    def search(
        self, texts: Sequence[str], options: SearchOptions | None = None, **changes: Any
    ) -> list[list[Result]]:
        """Nearest documents to each text, ranked as ``options`` say (see :class:`SearchOptions`).

        Options may also be given by name: ``index.search(["nasa"], k=5, rank="hamming")``.
        """
        bags = self.hasher.vectorizer.bags(texts)
        return self._search_bags(bags, SearchOptions.of(options, **changes))

    def search_counts(
        self, counts: sp.csr_matrix, options: SearchOptions | None = None, **changes: Any
    ) -> list[list[Result]]:
        """``search`` for queries already counted by ``hasher.vectorizer`` (each counted once)."""
        return self._search_bags(Bags.of(counts), SearchOptions.of(options, **changes))

    def _search_bags(self, bags: Bags, options: SearchOptions) -> list[list[Result]]:
        empty = np.flatnonzero(np.diff(bags.indptr) == 0)
        if len(empty):
            raise QueryError(f"query {empty[0] + 1} has no words in the index's vocabulary")
        activations = self.hasher.activations_from_counts(bags)
        words = [bags.row(i) for i in range(len(bags))]
        return self._results(self._hits(activations, words, options))

    def similar(
        self, doc_id: str, options: SearchOptions | None = None, **changes: Any
    ) -> list[Result]:
        """Documents most like the indexed document ``doc_id`` (itself excluded); see search."""
        options = SearchOptions.of(options, **changes)
        position = self.position(doc_id)
        query = np.asarray(self.activations[position : position + 1])
        terms = self.terms
        words = [terms.ids[terms.indptr[position] : terms.indptr[position + 1]]]
        hits = self._hits(query, words, options.for_similar())
        keep = hits.positions[0] != position
        positions = hits.positions[0][keep][: options.k]
        scores = hits.distances[0][keep][: options.k]
        return self._results(Hits(positions[None, :], scores[None, :]))[0]

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

    def _hits(
        self, activations: np.ndarray, words: list[np.ndarray], options: SearchOptions
    ) -> Hits:
        """Each query's results as positions and scores, ranked as ``options`` say."""
        if options.radius is not None and options.radius > self.n_bits:
            raise QueryError(f"radius must be between 0 and {self.n_bits}, got {options.radius}")
        if options.engine == TWO_STAGE and self.n_bits <= ADDRESS_BITS:
            raise QueryError(f"two-stage search needs over {ADDRESS_BITS} bits")
        on_server = self.backend is not None and options.engine == "auto"
        if options.filter and (not on_server or options.rank == "dense"):
            raise QueryError("filters need the Milvus backend (not dense ranking, not --engine)")
        if options.rank == "dense":
            if self._dense is None:
                self._dense = DenseIndex(self.n_bits)
                self._dense.add(np.asarray(self.activations))
            return self._dense.search(activations, options.k)
        codes = pack(binarize(activations))
        if on_server:
            depth, radius = options.candidates, options.radius
            hits = self._milvus_hits(codes, depth, radius, options.filter or "")
        elif options.engine == TWO_STAGE:
            if self._two_stage is None:
                self._two_stage = TwoStage(self.n_bits, self.codes)
            hits = self._two_stage.search(codes, options.candidates)
        else:
            hits = self.buckets.search(codes, options.candidates, options.radius, options.engine)
        if options.rank == "hamming":
            return hits
        lexical = words if options.rank == "fused" else None
        return self._rerank(activations, lexical, hits, options.k)

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

    def _rerank(
        self, activations: np.ndarray, words: list[np.ndarray] | None, hits: Hits, k: int
    ) -> Hits:
        """Re-order each query's candidates by code cosine, fused with BM25 when ``words``."""
        units = np.asarray(self.activations)
        if self._norms is None or len(self._norms) != len(units):
            self._norms = centred_norms(units)
        ranked = []
        for i, candidates in enumerate(hits.positions):
            if candidates[-1] < 0:  # padded: fewer candidates than asked for
                candidates = candidates[candidates >= 0]
            lexical = None if words is None else self.terms.bm25(words[i], candidates)
            ranked.append(rerank(activations[i], units, self._norms, candidates, lexical, k))
        if len(ranked) == 1 and len(ranked[0][0]) == k:  # one typed query: nothing to pad
            return Hits(ranked[0][0][None, :], ranked[0][1][None, :])
        positions = np.full((len(ranked), k), -1, dtype=np.int64)
        scores = np.full((len(ranked), k), np.nan, dtype=np.float32)
        for i, (best, best_scores) in enumerate(ranked):
            positions[i, : len(best)] = best
            scores[i, : len(best)] = best_scores
        return Hits(positions, scores)

    def _results(self, hits: Hits) -> list[list[Result]]:
        """Hits as results: each returned document's id and summary read, nothing more."""
        out = []
        for positions, scores in zip(hits.positions, hits.distances, strict=True):
            if len(positions) and positions[-1] < 0:  # padding comes last
                found = positions >= 0
                positions, scores = positions[found], scores[found]
            shown = self.docs.summaries(positions)
            out.append(
                [
                    Result(rank, doc_id, score, labels, title, snippet)
                    for rank, ((doc_id, (labels, title, snippet)), score) in enumerate(
                        zip(shown, scores.astype(float).tolist(), strict=True), start=1
                    )
                ]
            )
        return out

    def save(self, path: str | Path, overwrite: bool = False) -> None:
        """Write the index as a new version of the folder, atomically (see ``store.versions``)."""
        parts = layout.Parts(
            self.hasher, self.buckets, self.activations, self.docs, self.created, self.backend,
            self.terms,
        )  # fmt: skip
        self.created = layout.save(parts, self.stats(), Path(path), overwrite)
        if self._folder is not None and Path(path).resolve() == self._folder.resolve():
            mirror.clear(self._folder)  # the Milvus changes begun from here are live locally

    @classmethod
    def load(cls, path: str | Path, verify: bool = True) -> SemanticIndex:
        """Open an index folder, memory-mapping its arrays; errors name the file at fault.

        ``verify`` checksums every file up to 64 MiB (``semhash check`` all of them).
        """
        parts = layout.load(Path(path), verify)
        index = cls(
            parts.hasher, parts.buckets, parts.activations, parts.docs, parts.created, parts.terms
        )
        index.backend = parts.backend
        index.version = parts.version
        index._folder = Path(path)
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
            try:
                index._finish_mirror(mirror.pending(Path(path)))
                yield index
                index.save(path, overwrite=True)
            finally:
                index.close()

    def _finish_mirror(self, doc_ids: Sequence[str]) -> None:
        """Bring Milvus back to the live version for a change a crashed writer left."""
        if doc_ids and self.backend is not None and self._folder is not None:
            logger.warning("completing an interrupted Milvus change of %d documents", len(doc_ids))
            mirror.reconcile(self, doc_ids)
            mirror.clear(self._folder)

    @classmethod
    def check(cls, path: str | Path, sample: int | None = None) -> list[str]:
        """Every problem found: checksums of all files, internal consistency, then Milvus.

        With a Milvus backend the collection is compared with the live version: counts,
        ids, and the codes of every document (or of ``sample`` drawn with seed 0).
        """
        found = layout.problems(Path(path))
        if found:
            return found
        index = cls.load(path, verify=False)
        if index.backend is None:
            return found
        if left := mirror.pending(Path(path)):
            found.append(
                f"{Path(path) / mirror.INTENT}: an interrupted change of {len(left)} "
                "document(s) in Milvus (the next add or remove, or check --repair, completes it)"
            )
        try:
            found += mirror.compare(index, sample).problems()
        except MilvusError as err:
            found.append(str(err))
        finally:
            index.close()
        return found

    @classmethod
    def repair(cls, path: str | Path) -> int:
        """Make the Milvus collection hold exactly the live version; returns documents fixed."""
        with versions.lock(Path(path)):
            index = cls.load(path)
            if index.backend is None:
                return 0
            try:
                ids = mirror.pending(Path(path)) + mirror.compare(index).ids()
                ids = list(dict.fromkeys(ids))
                mirror.reconcile(index, ids)
                mirror.clear(Path(path))
            finally:
                index.close()
            return len(ids)
