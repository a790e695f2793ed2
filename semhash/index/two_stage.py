"""Two-stage search (Salakhutdinov & Hinton): a short address code finds, the full code ranks.

The first ``address_bits`` bits of each code are its address: bucket probing
around the query's address gathers at least ``candidates`` documents, and the
full Hamming distance orders them.  It reads a few buckets instead of every
code, at the price of missing neighbours whose address lies farther away.
"""

from __future__ import annotations

import numpy as np

from semhash.codes import pack, unpack
from semhash.index.base import Hits, check_k
from semhash.index.buckets import HammingBuckets

ADDRESS_BITS = 16
CANDIDATES = 1000


class TwoStage:
    """Approximate k-NN: address-bucket candidates re-ranked by the full code."""

    def __init__(self, n_bits: int, codes: np.ndarray, address_bits: int = ADDRESS_BITS) -> None:
        if not 1 <= address_bits < n_bits:
            raise ValueError(f"address bits must be between 1 and {n_bits - 1}, got {address_bits}")
        self.n_bits, self.address_bits = n_bits, address_bits
        self.codes = codes
        self.addresses = HammingBuckets(address_bits)
        self.addresses.add(self.address(codes))

    def address(self, codes: np.ndarray) -> np.ndarray:
        return pack(unpack(codes, self.n_bits)[:, : self.address_bits])

    def search(self, queries: np.ndarray, k: int, candidates: int = CANDIDATES) -> Hits:
        """The best ``k`` of at least ``candidates`` address neighbours, ties by position."""
        check_k(k)
        near = self.addresses.search(self.address(queries), max(k, candidates), engine="buckets")
        found = near.positions  # (nq, c), -1 padding
        xor = self.codes[np.maximum(found, 0)] ^ queries[:, None, :]
        full = np.bitwise_count(xor).sum(axis=2, dtype=np.int64)
        key = np.where(found >= 0, full * (len(self.codes) + 1) + found, np.iinfo(np.int64).max)
        best = np.sort(key, axis=1)[:, :k]  # by (distance, position)
        valid = best < np.iinfo(np.int64).max
        positions = np.where(valid, best % (len(self.codes) + 1), -1)
        distances = np.where(valid, best // (len(self.codes) + 1), -1).astype(np.int32)
        return Hits(positions, distances)
