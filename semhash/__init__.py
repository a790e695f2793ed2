"""semhash: semantic hashing document search.

Train a deep autoencoder whose sigmoid code units learn binary codes, index
documents by code, and search by Hamming distance or dense similarity.
"""

from semhash.corpus import Corpus, CorpusError, load_corpus
from semhash.engine import QueryError, Result, SemanticIndex
from semhash.hasher import HasherConfig, SemanticHasher
from semhash.index import DenseIndex, HammingBuckets, Hits, LinearScan
from semhash.store import IndexFormatError
from semhash.text import VectorizerConfig
from semhash.threads import set_threads
from semhash.train import TrainConfig

__version__ = "0.1.0"

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
    "SemanticHasher",
    "SemanticIndex",
    "TrainConfig",
    "VectorizerConfig",
    "__version__",
    "load_corpus",
    "set_threads",
]
