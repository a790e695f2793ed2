"""semhash: semantic hashing document search.

Train a deep autoencoder whose sigmoid code units learn binary codes, index
documents by code, and search by Hamming distance or dense similarity.

The public names load on first use, so ``import semhash`` stays cheap: torch,
numba, faiss and scikit-learn load with the part that needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from semhash.corpus import Corpus, CorpusError, load_corpus
    from semhash.engine import QueryError, Result, SemanticIndex
    from semhash.hasher import HasherConfig, SemanticHasher
    from semhash.index import DenseIndex, HammingBuckets, Hits, LinearScan
    from semhash.options import SearchOptions
    from semhash.store.versions import IndexFormatError
    from semhash.text import VectorizerConfig
    from semhash.threads import set_threads
    from semhash.train.loop import TrainConfig

__version__ = "0.1.0"

_HOMES = {
    "Corpus": "semhash.corpus",
    "CorpusError": "semhash.corpus",
    "load_corpus": "semhash.corpus",
    "QueryError": "semhash.engine",
    "Result": "semhash.engine",
    "SemanticIndex": "semhash.engine",
    "HasherConfig": "semhash.hasher",
    "SemanticHasher": "semhash.hasher",
    "DenseIndex": "semhash.index",
    "HammingBuckets": "semhash.index",
    "Hits": "semhash.index",
    "LinearScan": "semhash.index",
    "SearchOptions": "semhash.options",
    "IndexFormatError": "semhash.store.versions",
    "VectorizerConfig": "semhash.text",
    "set_threads": "semhash.threads",
    "TrainConfig": "semhash.train.loop",
}

__all__ = [
    "Corpus",
    "CorpusError",
    "DenseIndex",
    "HammingBuckets",
    "HasherConfig",
    "Hits",
    "IndexFormatError",
    "LinearScan",
    "QueryError",
    "Result",
    "SearchOptions",
    "SemanticHasher",
    "SemanticIndex",
    "TrainConfig",
    "VectorizerConfig",
    "__version__",
    "load_corpus",
    "set_threads",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module the first time the name is used."""
    if name not in _HOMES:
        raise AttributeError(f"module 'semhash' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value
