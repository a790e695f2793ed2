"""``SemanticIndex``: the public face — build, add, search, save and load an index."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semhash import store
from semhash.codes import binarize, pack
from semhash.corpus import Corpus
from semhash.hasher import HasherConfig, SemanticHasher
from semhash.index.base import Hits
from semhash.index.buckets import HammingBuckets
from semhash.index.dense import DenseIndex, centred_unit_rows
from semhash.text import Vectorizer

logger = logging.getLogger(__name__)
SNIPPET_CHARS = 160


class QueryError(ValueError):
    """A request cannot be served: unknown or duplicate id, no known words, bad k or radius."""


@dataclass(frozen=True)
class Result:
    """One search hit: ``score`` is a Hamming distance, or a cosine when dense or re-ranked."""

    rank: int
    id: str
    score: float
    labels: tuple[str, ...]
    snippet: str


class SemanticIndex:
    """Documents, their binary codes and the trained hasher that made them.

    >>> index = SemanticIndex.build(load_corpus("20newsgroups"))  # doctest: +SKIP
    >>> [hit.labels for hit in index.search(["nasa shuttle launch"], k=2)[0]]  # doctest: +SKIP
    [('sci.space',), ('sci.space',)]
    """

    def __init__(self, hasher: SemanticHasher) -> None:
        self.hasher = hasher
        self.buckets = HammingBuckets(hasher.n_bits)
        self.dense = DenseIndex(hasher.n_bits)
        self.activations = np.zeros((0, hasher.n_bits), dtype=np.float32)
        self.ids: list[str] = []
        self.labels: list[tuple[str, ...]] = []
        self.splits: list[str] = []
        self.texts: list[str] = []
        self._positions: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_bits(self) -> int:
        return self.hasher.n_bits

    @property
    def codes(self) -> np.ndarray:
        """``(n, words)`` uint64 packed codes, in document order."""
        return self.buckets.codes

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

    def add(self, corpus: Corpus, progress: bool = False) -> None:
        """Encode and append documents; an id already in the index is an error."""
        seen: set[str] = set()
        for doc_id in corpus.ids:
            if doc_id in self._positions:
                raise QueryError(f"document id {doc_id!r} is already in the index")
            if doc_id in seen:
                raise QueryError(f"document id {doc_id!r} appears twice")
            seen.add(doc_id)
        self._append(corpus, self.hasher.activations(corpus.texts, progress=progress))

    def _append(self, corpus: Corpus, activations: np.ndarray) -> None:
        start = len(self.ids)
        self.buckets.add(pack(binarize(activations)))
        self.dense.add(activations)
        self.activations = np.concatenate([self.activations, activations])
        self.ids += corpus.ids
        self.labels += corpus.labels
        self.splits += corpus.splits
        self.texts += corpus.texts
        self._positions.update((doc_id, start + i) for i, doc_id in enumerate(corpus.ids))

    def search(
        self,
        texts: Sequence[str],
        k: int = 10,
        radius: int | None = None,
        dense: bool = False,
        rerank: int = 0,
    ) -> list[list[Result]]:
        """Nearest documents to each text.

        By Hamming distance (within ``radius`` when given); by cosine of the real-valued
        codes when ``dense``; or, with ``rerank`` = N > 0, the N nearest by Hamming
        distance re-ordered by cosine (scores are then cosines).
        """
        counts = self.hasher.vectorizer.counts(texts)
        for i, n_words in enumerate(np.asarray(counts.sum(axis=1)).ravel()):
            if n_words == 0:
                raise QueryError(f"query {i + 1} has no words in the index's vocabulary")
        return self._search(self.hasher.activations(texts), k, radius, dense, rerank)

    def similar(
        self,
        doc_id: str,
        k: int = 10,
        radius: int | None = None,
        dense: bool = False,
        rerank: int = 0,
    ) -> list[Result]:
        """Documents most like the indexed document ``doc_id`` (itself excluded); see search."""
        position = self.position(doc_id)
        query = self.activations[position : position + 1]
        depth = rerank + 1 if rerank else 0  # one more candidate: the document itself
        results = self._search(query, k + 1, radius, dense, depth)[0]
        others = [r for r in results if r.id != doc_id][:k]
        return [Result(i + 1, r.id, r.score, r.labels, r.snippet) for i, r in enumerate(others)]

    def position(self, doc_id: str) -> int:
        if doc_id not in self._positions:
            raise QueryError(f"no document with id {doc_id!r} in the index")
        return self._positions[doc_id]

    def _search(
        self, activations: np.ndarray, k: int, radius: int | None, dense: bool, rerank: int
    ) -> list[list[Result]]:
        if k < 1:
            raise QueryError(f"k must be at least 1, got {k}")
        if radius is not None and not 0 <= radius <= self.n_bits:
            raise QueryError(f"radius must be between 0 and {self.n_bits}, got {radius}")
        if rerank < 0:
            raise QueryError(f"rerank must be non-negative, got {rerank}")
        if dense and (radius is not None or rerank):
            raise QueryError("dense search takes neither a radius nor a rerank depth")
        if dense:
            return self._results(self.dense.search(activations, k))
        hits = self.buckets.search(pack(binarize(activations)), max(k, rerank), radius)
        return self._results(self._rerank(activations, hits, k) if rerank else hits)

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
            out.append(
                [
                    Result(rank + 1, self.ids[p], float(s), self.labels[p], snippet(self.texts[p]))
                    for rank, (p, s) in enumerate(zip(positions, scores, strict=True))
                    if p >= 0
                ]
            )
        return out

    def save(self, path: str | Path, overwrite: bool = False) -> None:
        """Write the index folder atomically (see :mod:`semhash.store`)."""
        docs = (
            {"id": i, "labels": list(lab), "split": s, "text": t}
            for i, lab, s, t in zip(self.ids, self.labels, self.splits, self.texts, strict=True)
        )
        manifest = {
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "n_bits": self.n_bits,
            "n_docs": len(self),
            "vocab_size": self.hasher.vectorizer.vocab_size,
            "config": self.hasher.config.to_dict(),
        }
        store.write_index(
            Path(path),
            manifest,
            {
                "model.safetensors": store.save_tensors(self.hasher.weights()),
                "vocab.json": store.save_json(self.hasher.vectorizer.to_dict()),
                "codes.npy": store.save_array(self.codes),
                "activations.npy": store.save_array(self.activations),
                "docs.jsonl.gz": store.save_jsonl_gz(docs),
            },
            overwrite=overwrite,
        )

    @classmethod
    def load(cls, path: str | Path, verify: bool = True) -> SemanticIndex:
        """Open an index folder; ``IndexFormatError`` names the file at fault."""
        path = Path(path)
        manifest = store.read_manifest(path, verify=verify)
        try:
            config = HasherConfig.from_dict(manifest["config"])
            hasher = SemanticHasher(config)
            hasher.vectorizer = Vectorizer.from_dict(store.load_json(path / "vocab.json"))
            hasher.load_weights(store.load_tensors(path / "model.safetensors"))
        except (KeyError, TypeError, ValueError) as err:
            raise store.IndexFormatError(f"{path}: inconsistent model files ({err})") from None
        docs = store.load_jsonl_gz(path / "docs.jsonl.gz")
        activations = store.load_array(path / "activations.npy", mmap=False)
        codes = store.load_array(path / "codes.npy", mmap=False)
        if not len(docs) == len(activations) == len(codes) == manifest["n_docs"]:
            raise store.IndexFormatError(f"{path}: documents, codes and activations disagree")
        corpus = Corpus(
            ids=[d["id"] for d in docs],
            texts=[d["text"] for d in docs],
            labels=[tuple(d["labels"]) for d in docs],
            splits=[d["split"] for d in docs],
        )
        index = cls(hasher)
        index._append(corpus, np.asarray(activations, dtype=np.float32))
        if not np.array_equal(index.codes, codes):
            raise store.IndexFormatError(f"{path / 'codes.npy'}: codes disagree with activations")
        return index


def snippet(text: str, chars: int = SNIPPET_CHARS) -> str:
    """The text's first ``chars`` characters on one line."""
    line = " ".join(text.split())
    return line if len(line) <= chars else line[: chars - 1] + "…"
