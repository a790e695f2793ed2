"""Two-stage search (Salakhutdinov & Hinton): a short address code finds, the full code ranks.

The first ``address_bits`` bits of each code are its address: bucket probing
around the query's address gathers at least ``candidates`` documents, and the
full Hamming distance orders them.  It reads a few buckets instead of every
code, at the price of missing neighbours whose address lies farther away.
"""

from __future__ import annotations

import numpy as np

from semhash.codes import hamming, pack, unpack
from semhash.index.base import Hits, check_k, top_k_by_distance
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
        positions = np.full((len(queries), k), -1, dtype=np.int64)
        distances = np.full((len(queries), k), -1, dtype=np.int32)
        for i, found in enumerate(near.positions):
            found = found[found >= 0]
            full = hamming(queries[i : i + 1], self.codes[found])[0]
            d, p = top_k_by_distance(full, found, k)
            positions[i, : len(p)], distances[i, : len(d)] = p, d
        return Hits(positions, distances)
