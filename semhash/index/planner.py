"""Which exact engine answers a batch: a popcount scan, bucket probing or multi-index hashing.

All three return the same hits; they differ in cost.  A scan costs the same for
every query; probing and multi-index hashing cost what they look at, which
depends on how close the k-th neighbour is.  The planner estimates that from a
sample of the index's own pairwise distances and picks the cheapest engine
using per-operation costs measured on a 2-core machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from semhash.codes import hamming, n_probes
from semhash.index.base import FEW
from semhash.index.mih import MAX_SUBSTRING_BITS, substring_spans, substrings
from semhash.index.popcount import kernel

# Seconds per operation and query, fitted to the search benchmark's timings (2 cores).
SCAN_PER_CODE = {  # by kernel, then uint64 words per code; batches of >= 32 queries
    "avx512": {1: 0.065e-9, 2: 0.095e-9},
    "avx2": {1: 0.27e-9, 2: 0.31e-9},
    "popcnt": {1: 0.67e-9, 2: 0.56e-9},
    "portable": {1: 2.2e-9, 2: 2.2e-9},
    "numba": {1: 0.15e-9, 2: 0.25e-9},
}
SCAN_PER_CODE_FEW = {1: 0.45e-9, 2: 0.62e-9}  # fewer queries: memory-bound, either kernel
PROBE = 100e-9  # one bucket lookup (binary search over the keys)
PROBE_FAR = 400e-9  # the same when the keys outgrow the cache
MEMBER = 25e-9  # gathering and sorting one document of a probed bucket
SUBSTRING_PROBE = 100e-9  # one substring-table lookup
CANDIDATE = 25e-9  # full distance of one multi-index candidate, codes in cache
CANDIDATE_FAR = 80e-9  # the same when the codes outgrow the cache (a miss each)
CACHED_BYTES = 16 << 20
_SAMPLE_QUERIES, _SAMPLE_CODES = 64, 32768


@dataclass(frozen=True)
class Profile:
    """How far apart the index's codes lie, from a sample: cumulative fractions by distance."""

    n: int
    n_bits: int
    within: np.ndarray  # within[r]: fraction of codes within r of a typical query
    substring_within: np.ndarray  # the same for one substring table, by substring radius

    @classmethod
    def of(cls, codes: np.ndarray, n_bits: int, seed: int = 0) -> Profile:
        rng = np.random.default_rng(seed)
        n = len(codes)
        queries = codes[rng.choice(n, min(n, _SAMPLE_QUERIES), replace=False)] if n else codes
        sample = codes[rng.choice(n, min(n, _SAMPLE_CODES), replace=False)] if n else codes
        full = np.bincount(hamming(queries, sample).ravel(), minlength=n_bits + 1)
        spans = substring_spans(n_bits)
        q_parts, s_parts = substrings(queries, spans), substrings(sample, spans)
        parts = np.zeros(MAX_SUBSTRING_BITS + 1, dtype=np.int64)
        for i in range(len(spans)):
            xor = q_parts[:, i, None] ^ s_parts[None, :, i]
            parts += np.bincount(np.bitwise_count(xor).ravel(), minlength=len(parts))
        return cls(n, n_bits, _cumulative(full), _cumulative(parts))

    def radius_for(self, k: int) -> int:
        """The radius expected to hold ``k`` codes around a query."""
        enough = np.flatnonzero(self.within * self.n >= min(k, self.n))
        return int(enough[0]) if len(enough) else self.n_bits


@dataclass(frozen=True)
class Plan:
    """The chosen engine and the estimates that chose it."""

    engine: str
    radius: int  # the radius the estimate was made for
    seconds: dict[str, float]  # estimated seconds per query of each engine

    def describe(self) -> str:
        costs = ", ".join(
            f"{name} {s * 1e6:.0f} µs" if s < 1 else f"{name} > 1 s"
            for name, s in self.seconds.items()
        )
        return f"{self.engine} (radius ~{self.radius}; estimated per query: {costs})"


def choose(profile: Profile, n_queries: int, k: int, radius: int | None) -> Plan:
    """The engine expected to answer this batch fastest."""
    r = profile.radius_for(k) if radius is None else radius
    one_core = 2.0 if n_queries < FEW else 1.0
    seconds = {
        "scan": scan_seconds(profile, n_queries),
        "buckets": one_core * bucket_seconds(profile, r),
        "mih": one_core * mih_seconds(profile, r),
    }
    return Plan(min(seconds, key=seconds.__getitem__), r, seconds)


def scan_seconds(profile: Profile, n_queries: int) -> float:
    words = (profile.n_bits + 63) // 64
    per_code = SCAN_PER_CODE[kernel()] if n_queries >= FEW else SCAN_PER_CODE_FEW
    return profile.n * per_code[words]


def bucket_seconds(profile: Profile, radius: int) -> float:
    found = profile.n * profile.within[radius]
    probe = PROBE_FAR if profile.n * 8 > CACHED_BYTES else PROBE
    return n_probes(profile.n_bits, radius) * probe + found * MEMBER


def mih_seconds(profile: Profile, radius: int) -> float:
    spans = substring_spans(profile.n_bits)
    m = len(spans)
    s = min(radius // m, MAX_SUBSTRING_BITS)
    widths = spans[:, 1] - spans[:, 0]
    probes = sum(sum(math.comb(int(w), i) for i in range(min(s, int(w)) + 1)) for w in widths)
    candidates = m * profile.n * profile.substring_within[s]
    far = profile.n * 8 * ((profile.n_bits + 63) // 64) > CACHED_BYTES
    return probes * SUBSTRING_PROBE + candidates * (CANDIDATE_FAR if far else CANDIDATE)


def _cumulative(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return np.cumsum(counts) / total if total else np.ones(len(counts))
