"""Search backends behind one small interface: ``add``, ``search(codes, k) -> Hits``, ``len``."""

from semhash.index.base import Hits
from semhash.index.buckets import HammingBuckets
from semhash.index.dense import DenseIndex
from semhash.index.scan import LinearScan

__all__ = ["DenseIndex", "HammingBuckets", "Hits", "LinearScan"]
