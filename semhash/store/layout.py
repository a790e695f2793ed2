"""The files of a saved index: its parts written to and read from a version folder.

Format 2, inside the live version folder (see :mod:`semhash.store.versions`)::

    model.safetensors, vocab.json      the trained hasher
    codes.npy         (n, words) uint64    activations.npy  (n, b) float32
    bucket_keys.npy   (m,) uint64          bucket_codes.npy (m, words) uint64
    bucket_offsets.npy (m + 1,) int64      bucket_members.npy (n,) int64
    ids.npy, id_order.npy, docs.jsonl, doc_offsets.npy   (see :mod:`semhash.store.documents`)
    summaries.jsonl, summary_offsets.npy                 each result's labels, title and snippet
                                                         (indexes saved before them read texts)
    terms_indptr.npy, terms_ids.npy, terms_counts.npy    word counts (see :mod:`semhash.lexical`;
                                                         indexes saved before them count again)

Arrays are memory-mapped on load: opening reads the manifest, the model and the
array headers, nothing in proportion to the number of documents.  Format 1 (files
at the top level, documents in ``docs.jsonl.gz``) is read into memory and
written as format 2 by the next save.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from semhash.codes import binarize, n_words, pack
from semhash.corpus import Corpus
from semhash.hasher import HasherConfig, SemanticHasher
from semhash.index.buckets import HammingBuckets
from semhash.lexical import TermCounts
from semhash.store import versions
from semhash.store.documents import Documents
from semhash.text import Vectorizer
from semhash.train.loop import History

_OPEN_ATTEMPTS = 5


class Parts(NamedTuple):
    """What a saved index is made of; the engine assembles a ``SemanticIndex`` from them."""

    hasher: SemanticHasher
    buckets: HammingBuckets
    activations: np.ndarray  # (n, b) float32
    docs: Documents
    created: str | None
    backend: dict[str, str] | None
    terms: TermCounts | None = None  # absent from indexes saved before them
    version: str | None = None  # the version folder read, when loaded


def save(index: Parts, stats: dict[str, Any], path: Path, overwrite: bool) -> str:
    """Write ``index`` as the new live version at ``path``; returns its creation time."""
    created = index.created or versions.now()
    manifest = {
        "created": created,
        "updated": versions.now(),
        "n_bits": index.hasher.n_bits,
        "n_docs": len(index.docs),
        "vocab_size": index.hasher.vectorizer.vocab_size,
        "config": index.hasher.config.to_dict(),
        "history": asdict(index.hasher.history),
        **({"backend": index.backend} if index.backend else {}),
        "stats": stats,
    }
    writers = {
        "model.safetensors": versions.save_tensors(index.hasher.weights()),
        "vocab.json": versions.save_json(index.hasher.vectorizer.to_dict()),
        "codes.npy": versions.save_array(index.buckets.codes),
        "activations.npy": versions.save_array(np.asarray(index.activations)),
        **{
            f"bucket_{name}.npy": versions.save_array(array)
            for name, array in index.buckets.arrays().items()
        },
        **index.docs.writers(),
        **{
            f"terms_{name}.npy": versions.save_array(array)
            for name, array in (index.terms.arrays() if index.terms is not None else {}).items()
        },
    }
    versions.write_index(path, manifest, writers, overwrite)
    return created


def load(path: Path, verify: bool) -> Parts:
    """Open the live version, again if a writer replaced it while we were opening it."""
    for _ in range(_OPEN_ATTEMPTS):
        version = versions.read_version(path)
        try:
            return _open(version, verify)
        except FileNotFoundError as err:
            if versions.read_version(path).folder == version.folder:
                raise versions.IndexFormatError(f"{err.filename}: missing from the index") from None
    raise versions.IndexFormatError(f"{path}: replaced {_OPEN_ATTEMPTS} times while opening it")


def problems(path: Path) -> list[str]:
    """Checksums of every file, then whether codes, buckets and documents agree."""
    version = versions.read_version(path)
    found = versions.file_problems(version, limit=None)
    if found:
        return found
    try:
        index = _open(version, verify=False)
    except versions.IndexFormatError as err:
        return [str(err)]
    if not np.array_equal(index.buckets.codes, pack(binarize(np.asarray(index.activations)))):
        found.append("codes.npy disagrees with activations.npy")
    found += index.buckets.problems()
    found += index.docs.problems()
    if index.terms is not None:
        found += index.terms.problems(len(index.docs))
    return found


def _open(version: versions.Version, verify: bool) -> Parts:
    if verify:
        versions.verify_files(version)
    manifest, folder = version.manifest, version.folder
    try:
        hasher = _hasher(manifest, folder)
        n, n_bits = int(manifest["n_docs"]), int(manifest["n_bits"])
        words = n_words(n_bits)
        if n_bits != hasher.n_bits:
            raise ValueError(f"n_bits {n_bits} but the model makes {hasher.n_bits}-bit codes")
        created = manifest.get("created")
    except (KeyError, TypeError, ValueError) as err:
        raise versions.IndexFormatError(f"{folder}: inconsistent model files ({err})") from None
    if manifest["format_version"] == 1:
        return _open_v1(hasher, folder, n, created)
    codes = versions.load_array(folder / "codes.npy", np.uint64, (n, words))
    buckets = HammingBuckets.from_arrays(
        n_bits,
        codes,
        {
            "keys": versions.load_array(folder / "bucket_keys.npy", np.uint64, (None,)),
            "codes": versions.load_array(folder / "bucket_codes.npy", np.uint64, (None, words)),
            "offsets": versions.load_array(folder / "bucket_offsets.npy", np.int64, (None,)),
            "members": versions.load_array(folder / "bucket_members.npy", np.int64, (n,)),
        },
    )
    activations = versions.load_array(folder / "activations.npy", np.float32, (n, n_bits))
    docs = Documents.open(folder, n)
    terms = _terms(folder, n, hasher.vectorizer.vocab_size)
    backend = manifest.get("backend")
    return Parts(hasher, buckets, activations, docs, created, backend, terms, folder.name)


def _terms(folder: Path, n: int, vocab_size: int) -> TermCounts | None:
    """The documents' word counts for BM25, or None where the index was saved without them."""
    if not (folder / "terms_indptr.npy").exists():
        return None
    indptr = versions.load_array(folder / "terms_indptr.npy", np.int64, (n + 1,))
    ids = versions.load_array(folder / "terms_ids.npy", np.int32, (None,))
    counts = versions.load_array(folder / "terms_counts.npy", np.float32, (len(ids),))
    return TermCounts.from_arrays(indptr, ids, counts, vocab_size)


def _hasher(manifest: dict[str, Any], folder: Path) -> SemanticHasher:
    hasher = SemanticHasher(HasherConfig.from_dict(manifest["config"]))
    hasher.vectorizer = Vectorizer.from_dict(versions.load_json(folder / "vocab.json"))
    hasher.load_weights(versions.load_tensors(folder / "model.safetensors"))
    hasher.history = History(**manifest.get("history", {}))  # older indexes kept none
    return hasher


def _open_v1(hasher: SemanticHasher, folder: Path, n: int, created: str | None) -> Parts:
    """Format 1: documents in one gzipped JSON-lines file, buckets rebuilt in memory."""
    file = folder / "docs.jsonl.gz"
    try:
        with gzip.open(file, "rt", encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle]
        corpus = Corpus(
            ids=[d["id"] for d in rows],
            texts=[d["text"] for d in rows],
            labels=[tuple(d["labels"]) for d in rows],
            splits=[d["split"] for d in rows],
        )
    except (OSError, EOFError, ValueError, KeyError, TypeError) as err:
        raise versions.IndexFormatError(f"{file}: not readable document lines ({err})") from None
    b = hasher.n_bits
    activations = versions.load_array(folder / "activations.npy", np.float32, (n, b), mmap=False)
    codes = versions.load_array(folder / "codes.npy", np.uint64, (n, n_words(b)), mmap=False)
    if len(corpus) != n:
        raise versions.IndexFormatError(f"{file}: {len(corpus)} documents, the manifest says {n}")
    buckets = HammingBuckets(hasher.n_bits)
    buckets.add(pack(binarize(activations)))
    if not np.array_equal(buckets.codes, codes):
        raise versions.IndexFormatError(f"{folder / 'codes.npy'}: codes disagree with activations")
    return Parts(hasher, buckets, activations, Documents.from_corpus(corpus), created, None)
