"""The Hamming bucket index: semantic hashing's lookup by bit-flip probing.

Documents with the same code share a bucket.  A query probes its own bucket,
then every code at distance 1, 2, ... by XOR-ing bit-flip masks, stopping once
it holds ``k`` documents: everything within the probed radius has been seen, so
the ``k`` nearest are exact.  Probing radius r costs sum C(b, i) lookups, so
this index is also where the engines meet: per batch, the planner
(:mod:`.planner`) picks probing, the popcount scan (:mod:`.popcount`) or
multi-index hashing (:mod:`.mih`), whichever it expects to be fastest.

Buckets are flat arrays (CSR-like): ``keys_`` sorted bucket keys, ``offsets_``
into ``members_`` (document positions, ascending within a bucket).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from semhash.codes import flip_masks, n_probes
from semhash.index.base import FEW, Hits, check_k
from semhash.index.mih import MultiIndexHashing
from semhash.index.planner import Plan, Profile, choose
from semhash.index.scan import LinearScan
from semhash.options import ENGINES

_MAX_PROBES = 2_000_000  # flip masks held in memory for one probing radius
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
        self._masks: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._profile: Profile | None = None  # built on first use, dropped by every change
        self._plans: dict[tuple[bool, int, int | None], Plan] = {}
        self._mih: MultiIndexHashing | None = None
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

    def search(
        self, queries: np.ndarray, k: int, radius: int | None = None, engine: str = "auto"
    ) -> Hits:
        """The ``k`` nearest codes, within ``radius`` when given; exact, ties by position.

        ``engine``: "scan", "buckets", "mih" (multi-index hashing) or "auto", the
        one :func:`~semhash.index.planner.choose` expects to be fastest.  All give
        identical hits.
        """
        check_k(k)
        if radius is not None and radius < 0:
            raise ValueError(f"radius must be non-negative, got {radius}")
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
        queries = np.ascontiguousarray(queries, dtype=np.uint64)
        if len(self) == 0:
            return self.scan.search(queries, k, radius)
        if engine in ("auto", "buckets"):
            plan = self.plan(len(queries), k, radius)  # buckets need its expected radius too
            engine = plan.engine if engine == "auto" else engine
            if engine == "buckets":
                return self._probe(queries, k, radius, plan.radius)
        if engine == "mih":
            return self.mih.search(queries, k, radius)
        return self.scan.search(queries, k, radius)

    def plan(self, n_queries: int, k: int, radius: int | None = None) -> Plan:
        """The engine ``search(engine="auto")`` uses for such a batch, with its estimates."""
        if self._profile is None:
            self._profile = Profile.of(self.codes, self.n_bits)
        key = (n_queries >= FEW, k, radius)  # all a plan depends on, besides the codes
        if key not in self._plans:
            self._plans[key] = choose(self._profile, n_queries, k, radius)
        return self._plans[key]

    @property
    def mih(self) -> MultiIndexHashing:
        """Substring tables over the codes, built on first use (and after each change)."""
        if self._mih is None:
            self._mih = MultiIndexHashing(self.n_bits, self.codes)
        return self._mih

    def _probe(self, queries: np.ndarray, k: int, radius: int | None, expected: int) -> Hits:
        """Probe radius 0, 1, ...; queries short of ``k`` past ``expected`` + 1 are scanned."""
        if radius is None:
            limit = expected + 1
            while limit > 0 and n_probes(self.n_bits, limit) > _MAX_PROBES:
                limit -= 1
        else:
            limit = min(radius, self.n_bits)
            if n_probes(self.n_bits, limit) > _MAX_PROBES:  # a forced probe this wide: scan
                return self.scan.search(queries, k, radius)
        masks, starts = self._masks_up_to(limit)
        nq = len(queries)
        positions = np.full((nq, k), -1, np.int64)
        distances = np.full((nq, k), -1, np.int32)
        complete = np.zeros(nq, np.bool_)
        probe = _probe_all if nq >= FEW else _probe_few
        probe(
            queries, masks, starts, k, radius is not None, self.keys_, self.bucket_codes_,
            self.offsets_, self.members_, (positions, distances, complete),
        )  # fmt: skip
        short = np.flatnonzero(~complete)
        if len(short):
            hits = self.scan.search(queries[short], k)
            positions[short], distances[short] = hits.positions, hits.distances
        return Hits(positions, distances)

    def _masks_up_to(self, radius: int) -> tuple[np.ndarray, np.ndarray]:
        """Flip masks of radius 0..``radius`` in one array, and where each radius starts."""
        if radius not in self._masks:
            masks = [flip_masks(self.n_bits, r) for r in range(radius + 1)]
            starts = np.cumsum([0] + [len(m) for m in masks])
            self._masks[radius] = (np.concatenate(masks), starts.astype(np.int64))
        return self._masks[radius]

    def _rebuild(self) -> None:
        self._profile = None
        self._plans = {}
        self._mih = None
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


@njit(inline="always")
def _key(probe):
    """As :func:`bucket_keys` for one code."""
    if probe.shape[0] == 1:
        return probe[0]
    return (probe[0] * _MIX[0]) ^ (probe[1] * _MIX[1])


@njit(cache=True)
def _probe_one(query, masks, starts, k, whole_radius, keys, bucket_codes, offsets, members):
    """Sorted ``distance * n + position`` of everything found for one query."""
    words, n = len(query), len(members)
    probe = np.empty(words, np.uint64)
    found = np.empty(max(k, 16), np.int64)
    count = 0
    for r in range(len(starts) - 1):
        for m in range(starts[r], starts[r + 1]):
            for w in range(words):
                probe[w] = query[w] ^ masks[m, w]
            key = _key(probe)
            b = np.searchsorted(keys, key)
            while b < len(keys) and keys[b] == key:
                same = True
                for w in range(words):
                    same = same and bucket_codes[b, w] == probe[w]
                if same:
                    size = offsets[b + 1] - offsets[b]
                    if count + size > len(found):
                        grown = np.empty(2 * (count + size), np.int64)
                        grown[:count] = found[:count]
                        found = grown
                    for i in range(size):
                        found[count + i] = r * n + members[offsets[b] + i]
                    count += size
                b += 1
        if count >= k and not whole_radius:
            break
    return np.sort(found[:count])


@njit(parallel=True, cache=True)
def _probe_all(queries, masks, starts, k, whole_radius, keys, codes, offsets, members, out):
    """Probe radius 0, 1, ... of each query's code into ``out`` = (positions, distances, complete).

    A query stops after the first radius that brings its count to ``k`` (or, with
    ``whole_radius``, after the last one); found documents are sorted by (distance,
    position).  ``complete`` is False where fewer than ``k`` turned up and the
    caller must look further.
    """
    for q in prange(queries.shape[0]):
        _answer(q, queries, masks, starts, k, whole_radius, keys, codes, offsets, members, out)


@njit(cache=True)
def _probe_few(queries, masks, starts, k, whole_radius, keys, codes, offsets, members, out):
    """:func:`_probe_all` on this thread: a few queries do not wait for busy cores to wake."""
    for q in range(queries.shape[0]):
        _answer(q, queries, masks, starts, k, whole_radius, keys, codes, offsets, members, out)


@njit(cache=True)
def _answer(q, queries, masks, starts, k, whole_radius, keys, bucket_codes, offsets, members, out):
    positions, distances, complete = out
    n = len(members)
    found = _probe_one(
        queries[q], masks, starts, k, whole_radius, keys, bucket_codes, offsets, members
    )
    complete[q] = len(found) >= k or whole_radius
    for i in range(min(k, len(found))):
        positions[q, i] = found[i] % n
        distances[q, i] = found[i] // n
