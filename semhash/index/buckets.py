"""The Hamming bucket index: semantic hashing's lookup by bit-flip probing.

Documents with the same code share a bucket.  A query probes its own bucket,
then every code at distance 1, 2, ... by XOR-ing bit-flip masks, stopping once
it holds ``k`` documents: everything within the probed radius has been seen, so
the ``k`` nearest are exact.  Probing radius r costs sum C(b, i) lookups; where
that is dearer than scanning every code, the index scans instead.

Buckets are flat arrays (CSR-like): ``keys_`` sorted bucket keys, ``offsets_``
into ``members_`` (document positions, ascending within a bucket).
"""

from __future__ import annotations

import numpy as np

from semhash.codes import flip_masks, n_probes
from semhash.index.base import Hits, check_k, pad_hits, top_k_by_distance
from semhash.index.scan import LinearScan

# Costs measured with numpy on the 2-core development machine (200k codes), used only
# to choose between probing and scanning; issue 3's planner will measure them per machine.
PROBE_SECONDS = 400e-9  # one bucket lookup: binary search over the keys + gather
RADIUS_SECONDS = 30e-6  # fixed cost of probing one more radius
SCAN_SECONDS_PER_CODE = 4e-9  # top-k selection, per code
SCAN_SECONDS_PER_WORD = 1.6e-9  # XOR + popcount of one 64-bit word
_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F], dtype=np.uint64)


def bucket_keys(codes: np.ndarray) -> np.ndarray:
    """One uint64 key per code: the code itself for <= 64 bits, a mixed hash above."""
    if codes.shape[1] == 1:
        return codes[:, 0].copy()
    with np.errstate(over="ignore"):
        return np.bitwise_xor.reduce(codes * _MIX[: codes.shape[1]], axis=1)


class HammingBuckets:
    """Exact k-nearest and radius search over binary codes by bucket probing.

    >>> from semhash.codes import pack
    >>> index = HammingBuckets(4)
    >>> index.add(pack(np.array([[0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]])))
    >>> index.search(pack(np.array([[0, 0, 0, 1]])), k=2).positions.tolist()
    [[0, 1]]
    """

    def __init__(self, n_bits: int) -> None:
        self.n_bits = n_bits
        self.scan = LinearScan(n_bits)
        self._masks: dict[int, np.ndarray] = {}
        self._rebuild()

    @property
    def codes(self) -> np.ndarray:
        return self.scan.codes

    def __len__(self) -> int:
        return len(self.scan)

    @property
    def n_buckets(self) -> int:
        return len(self.keys_)

    def add(self, codes: np.ndarray) -> None:
        """Append ``(n, words)`` uint64 codes and rebuild the buckets."""
        self.scan.add(codes)
        self._rebuild()

    def remove(self, positions: np.ndarray) -> None:
        """Delete the codes at ``positions`` (later ones move down) and rebuild the buckets."""
        self.scan.remove(positions)
        self._rebuild()

    def arrays(self) -> dict[str, np.ndarray]:
        """The bucket arrays, to save beside the codes (see :meth:`from_arrays`)."""
        return {
            "keys": self.keys_,
            "codes": self.bucket_codes_,
            "offsets": self.offsets_,
            "members": self.members_,
        }

    @classmethod
    def from_arrays(
        cls, n_bits: int, codes: np.ndarray, arrays: dict[str, np.ndarray]
    ) -> HammingBuckets:
        """Reopen saved buckets without sorting again (arrays may be memory-mapped)."""
        index = cls(n_bits)
        index.scan.codes = codes
        index.keys_, index.bucket_codes_ = arrays["keys"], arrays["codes"]
        index.offsets_, index.members_ = arrays["offsets"], arrays["members"]
        return index

    def largest_bucket(self) -> int:
        return int(np.diff(self.offsets_).max()) if len(self.keys_) else 0

    def problems(self) -> list[str]:
        """Ways the buckets disagree with the codes (for ``semhash check``); empty if none."""
        n = len(self)
        offsets = np.asarray(self.offsets_)
        if len(offsets) != len(self.keys_) + 1 or offsets[0] != 0 or offsets[-1] != n:
            return ["bucket offsets do not cover the documents"]
        if np.any(np.diff(offsets) <= 0) or np.any(self.keys_[1:] < self.keys_[:-1]):
            return ["bucket offsets or keys are out of order"]
        members = np.asarray(self.members_)
        if not np.array_equal(np.sort(members), np.arange(n)):
            return ["bucket entries do not point at each live document exactly once"]
        owner = np.repeat(np.arange(len(self.keys_)), np.diff(offsets))
        if not np.array_equal(self.codes[members], self.bucket_codes_[owner]):
            return ["a bucket holds a document whose code is not the bucket's"]
        if not np.array_equal(bucket_keys(self.bucket_codes_), self.keys_):
            return ["bucket keys do not match their codes"]
        return []

    def max_probe_radius(self) -> int:
        """The largest radius whose probing is expected to cost less than one scan."""
        words = self.codes.shape[1]
        scan_cost = len(self) * (SCAN_SECONDS_PER_CODE + words * SCAN_SECONDS_PER_WORD)
        radius = -1
        while radius < self.n_bits and self._probe_cost(radius + 1) < scan_cost:
            radius += 1
        return radius

    def _probe_cost(self, radius: int) -> float:
        """Expected seconds to probe every radius up to ``radius`` for one query."""
        return (radius + 1) * RADIUS_SECONDS + n_probes(self.n_bits, radius) * PROBE_SECONDS

    def search(self, queries: np.ndarray, k: int, radius: int | None = None) -> Hits:
        """The ``k`` nearest codes, within ``radius`` when given; exact, ties by position."""
        check_k(k)
        if radius is not None and radius < 0:
            raise ValueError(f"radius must be non-negative, got {radius}")
        affordable = self.max_probe_radius()
        if affordable < 0 or (radius is not None and radius > affordable):
            return self.scan.search(queries, k, radius)
        limit = affordable if radius is None else radius
        rows: list[tuple[np.ndarray, np.ndarray]] = []
        for query in queries:
            distances, positions = self._probe(query, k, limit)
            if len(positions) < k and radius is None and limit < self.n_bits:
                hits = self.scan.search(query[None], k)  # too few nearby: scan everything
                positions, distances = hits.positions[0], hits.distances[0]
                positions, distances = positions[positions >= 0], distances[positions >= 0]
            rows.append(top_k_by_distance(distances, positions, k))
        return pad_hits(rows, k)

    def _probe(self, query: np.ndarray, k: int, limit: int) -> tuple[np.ndarray, np.ndarray]:
        """(distances, positions) of everything within the first radius holding ``k`` documents.

        Probing stops at ``limit``, with whatever it found by then.
        """
        distances, positions = [], []
        count = 0
        for r in range(limit + 1):
            members = self._lookup(query[None, :] ^ self._flip_masks(r))
            distances.append(np.full(len(members), r, dtype=np.int32))
            positions.append(members)
            count += len(members)
            if count >= k:
                break
        return np.concatenate(distances), np.concatenate(positions)

    def _lookup(self, probes: np.ndarray) -> np.ndarray:
        """Positions of every document whose code equals one of ``probes`` ``(m, words)``."""
        keys = bucket_keys(probes)
        lo = np.searchsorted(self.keys_, keys, side="left")
        hi = np.searchsorted(self.keys_, keys, side="right")
        hit = hi > lo
        if not hit.any():
            return np.zeros(0, dtype=np.int64)
        counts = (hi - lo)[hit]
        buckets = np.repeat(lo[hit], counts) + _ranges(counts)
        probe_rows = np.repeat(np.flatnonzero(hit), counts)
        same = np.all(self.bucket_codes_[buckets] == probes[probe_rows], axis=1)  # hash collisions
        buckets = buckets[same]
        sizes = self.offsets_[buckets + 1] - self.offsets_[buckets]
        return self.members_[np.repeat(self.offsets_[buckets], sizes) + _ranges(sizes)]

    def _flip_masks(self, radius: int) -> np.ndarray:
        if radius not in self._masks:
            self._masks[radius] = flip_masks(self.n_bits, radius)
        return self._masks[radius]

    def _rebuild(self) -> None:
        codes = self.codes
        keys = bucket_keys(codes)
        order = np.lexsort((np.arange(len(codes)), *codes.T[::-1], keys))
        sorted_codes = codes[order]
        new_bucket = np.ones(len(order), dtype=bool)
        new_bucket[1:] = np.any(sorted_codes[1:] != sorted_codes[:-1], axis=1)
        starts = np.flatnonzero(new_bucket)
        self.keys_ = keys[order][starts]
        self.bucket_codes_ = sorted_codes[starts]
        self.offsets_ = np.append(starts, len(order)).astype(np.int64)
        self.members_ = order.astype(np.int64)


def _ranges(counts: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(c)`` for each c in ``counts``."""
    if len(counts) == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(counts)
    return np.arange(ends[-1], dtype=np.int64) - np.repeat(ends - counts, counts)
