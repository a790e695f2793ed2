"""The files of a saved index and how a ``SemanticIndex`` is written to and read from them.

Format 2, inside the live version folder (see :mod:`semhash.store`)::

    model.safetensors, vocab.json      the trained hasher
    codes.npy         (n, words) uint64    activations.npy  (n, b) float32
    bucket_keys.npy   (m,) uint64          bucket_codes.npy (m, words) uint64
    bucket_offsets.npy (m + 1,) int64      bucket_members.npy (n,) int64
    ids.npy, id_order.npy, docs.jsonl, doc_offsets.npy   (see :mod:`semhash.documents`)

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
from typing import TYPE_CHECKING, Any

import numpy as np

from semhash import store
from semhash.codes import binarize, n_words, pack
from semhash.corpus import Corpus
from semhash.documents import Documents
from semhash.hasher import HasherConfig, SemanticHasher
from semhash.index.buckets import HammingBuckets
from semhash.text import Vectorizer
from semhash.train import History

if TYPE_CHECKING:
    from semhash.engine import SemanticIndex

_OPEN_ATTEMPTS = 5


def save(index: SemanticIndex, path: Path, overwrite: bool) -> str:
    """Write ``index`` as the new live version at ``path``; returns its creation time."""
    created = index.created or store.now()
    manifest = {
        "created": created,
        "updated": store.now(),
        "n_bits": index.n_bits,
        "n_docs": len(index),
        "vocab_size": index.hasher.vectorizer.vocab_size,
        "config": index.hasher.config.to_dict(),
        "history": asdict(index.hasher.history),
        **({"backend": index.backend} if index.backend else {}),
        "stats": index.stats(),
    }
    writers = {
        "model.safetensors": store.save_tensors(index.hasher.weights()),
        "vocab.json": store.save_json(index.hasher.vectorizer.to_dict()),
        "codes.npy": store.save_array(index.codes),
        "activations.npy": store.save_array(np.asarray(index.activations)),
        **{
            f"bucket_{name}.npy": store.save_array(array)
            for name, array in index.buckets.arrays().items()
        },
        **index.docs.writers(),
    }
    store.write_index(path, manifest, writers, overwrite)
    return created


def load(cls: type[SemanticIndex], path: Path, verify: bool) -> SemanticIndex:
    """Open the live version, again if a writer replaced it while we were opening it."""
    for _ in range(_OPEN_ATTEMPTS):
        version = store.read_version(path)
        try:
            return _open(cls, version, verify)
        except FileNotFoundError as err:
            if store.read_version(path).folder == version.folder:
                raise store.IndexFormatError(f"{err.filename}: missing from the index") from None
    raise store.IndexFormatError(f"{path}: replaced {_OPEN_ATTEMPTS} times while opening it")


def problems(cls: type[SemanticIndex], path: Path) -> list[str]:
    """Checksums of every file, then whether codes, buckets and documents agree."""
    version = store.read_version(path)
    found = store.file_problems(version, limit=None)
    if found:
        return found
    try:
        index = _open(cls, version, verify=False)
    except store.IndexFormatError as err:
        return [str(err)]
    if not np.array_equal(index.codes, pack(binarize(np.asarray(index.activations)))):
        found.append("codes.npy disagrees with activations.npy")
    found += index.buckets.problems()
    found += index.docs.problems()
    return found


def _open(cls: type[SemanticIndex], version: store.Version, verify: bool) -> SemanticIndex:
    if verify:
        store.verify_files(version)
    manifest, folder = version.manifest, version.folder
    try:
        hasher = _hasher(manifest, folder)
        n, n_bits = int(manifest["n_docs"]), int(manifest["n_bits"])
        words = n_words(n_bits)
        if n_bits != hasher.n_bits:
            raise ValueError(f"n_bits {n_bits} but the model makes {hasher.n_bits}-bit codes")
        created = manifest.get("created")
    except (KeyError, TypeError, ValueError) as err:
        raise store.IndexFormatError(f"{folder}: inconsistent model files ({err})") from None
    if manifest["format_version"] == 1:
        return _open_v1(cls, hasher, folder, n, created)
    codes = store.load_array(folder / "codes.npy", np.uint64, (n, words))
    buckets = HammingBuckets.from_arrays(
        n_bits,
        codes,
        {
            "keys": store.load_array(folder / "bucket_keys.npy", np.uint64, (None,)),
            "codes": store.load_array(folder / "bucket_codes.npy", np.uint64, (None, words)),
            "offsets": store.load_array(folder / "bucket_offsets.npy", np.int64, (None,)),
            "members": store.load_array(folder / "bucket_members.npy", np.int64, (n,)),
        },
    )
    activations = store.load_array(folder / "activations.npy", np.float32, (n, n_bits))
    docs = Documents.open(folder, n)
    index = cls(hasher, buckets, activations, docs, created)
    index.backend = manifest.get("backend")
    return index


def _hasher(manifest: dict[str, Any], folder: Path) -> SemanticHasher:
    hasher = SemanticHasher(HasherConfig.from_dict(manifest["config"]))
    hasher.vectorizer = Vectorizer.from_dict(store.load_json(folder / "vocab.json"))
    hasher.load_weights(store.load_tensors(folder / "model.safetensors"))
    hasher.history = History(**manifest.get("history", {}))  # older indexes kept none
    return hasher


def _open_v1(
    cls: type[SemanticIndex], hasher: SemanticHasher, folder: Path, n: int, created: str | None
) -> SemanticIndex:
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
        raise store.IndexFormatError(f"{file}: not readable document lines ({err})") from None
    b = hasher.n_bits
    activations = store.load_array(folder / "activations.npy", np.float32, (n, b), mmap=False)
    codes = store.load_array(folder / "codes.npy", np.uint64, (n, n_words(b)), mmap=False)
    if len(corpus) != n:
        raise store.IndexFormatError(f"{file}: {len(corpus)} documents, the manifest says {n}")
    buckets = HammingBuckets(hasher.n_bits)
    buckets.add(pack(binarize(activations)))
    if not np.array_equal(buckets.codes, codes):
        raise store.IndexFormatError(f"{folder / 'codes.npy'}: codes disagree with activations")
    return cls(hasher, buckets, activations, Documents.from_corpus(corpus), created)
