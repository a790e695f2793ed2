"""Multi-index hashing: exact Hamming k-NN from tables of short substrings.

Norouzi, Punjani & Fleet (TPAMI 2014).  A b-bit code is cut into m substrings
of at most 16 bits, each indexed by a direct-address table (CSR: ``offsets``
over every substring value, ``members`` positions in ascending order).  By the
pigeonhole principle a code within distance m*s + i of the query has, in one
of the tables 0..i, a substring within s of the query's, or within s - 1 in
the others.  So a query probes substring radius s = 0, 1, ... table by table,
computes the full distance of each new candidate, and stops as soon as its k-th
best distance is within the radius covered: the result equals a full scan's,
ties by position.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from semhash.index.base import FEW, Hits, check_k
from semhash.index.popcount import _popcount

MAX_SUBSTRING_BITS = 16


def substring_spans(n_bits: int) -> np.ndarray:
    """``(m, 2)`` [start, stop) bit ranges: m = ceil(b / 16) substrings of near-equal width."""
    m = -(-n_bits // MAX_SUBSTRING_BITS)
    edges = np.linspace(0, n_bits, m + 1).round().astype(np.int64)
    return np.stack([edges[:-1], edges[1:]], axis=1)


def substrings(codes: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """``(n, m)`` int64 substring values of packed codes.

    A span is at most 16 bits, so it lies in one word or crosses into the next: a
    shift and a mask (two shifts at a crossing), whatever the number of codes.
    """
    out = np.empty((len(codes), len(spans)), dtype=np.int64)
    for i, (start, stop) in enumerate(spans):
        word, shift = divmod(int(start), 64)
        width = int(stop - start)
        value = codes[:, word] >> np.uint64(shift)
        if shift + width > 64:  # the high bits come from the next word
            value = value | (codes[:, word + 1] << np.uint64(64 - shift))
        out[:, i] = (value & np.uint64((1 << width) - 1)).astype(np.int64)
    return out


class MultiIndexHashing:
    """Exact k-nearest and radius search by substring tables; needs no rebuild to be exact.

    Memory: 4 bytes per document per table (m = ceil(b / 16) tables), plus
    ``m * 2^16`` offsets.
    """

    def __init__(self, n_bits: int, codes: np.ndarray) -> None:
        self.n_bits = n_bits
        self.codes = np.ascontiguousarray(codes, dtype=np.uint64)
        self.spans = substring_spans(n_bits)
        values = substrings(self.codes, self.spans)
        size = 1 << MAX_SUBSTRING_BITS
        self.offsets = np.zeros((len(self.spans), size + 1), dtype=np.int64)
        self.members = np.empty((len(self.spans), len(codes)), dtype=np.uint32)
        for i in range(len(self.spans)):
            order = np.argsort(values[:, i], kind="stable")
            self.members[i] = order
            self.offsets[i, 1:] = np.cumsum(np.bincount(values[:, i], minlength=size))
        widths = self.spans[:, 1] - self.spans[:, 0]
        by_weight = np.argsort(np.bitwise_count(np.arange(size)), kind="stable")
        self.flips = by_weight.astype(np.int64)  # every 16-bit mask, fewest bits first
        weights = np.bitwise_count(self.flips)
        self.flip_starts = np.searchsorted(weights, np.arange(MAX_SUBSTRING_BITS + 2))
        self.widths = widths.astype(np.int64)

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def nbytes(self) -> int:
        return int(self.offsets.nbytes + self.members.nbytes)

    def search(self, queries: np.ndarray, k: int, radius: int | None = None) -> Hits:
        """The ``k`` nearest codes (within ``radius`` if given), exactly, ties by position."""
        check_k(k)
        queries = np.ascontiguousarray(queries, dtype=np.uint64)
        limit = self.n_bits if radius is None else min(radius, self.n_bits)
        tables = (
            queries, substrings(queries, self.spans), self.codes, self.offsets, self.members,
            self.widths, self.flips, self.flip_starts, k, limit,
        )  # fmt: skip
        if len(queries) < FEW:
            positions, distances = _search_serial(*tables)
        else:
            positions, distances = _search(*tables, min(len(queries), numba.get_num_threads()))
        return Hits(positions, distances)


@njit(cache=True)
def _search_one(query, parts, codes, offsets, members, widths, flips, flip_starts, k, limit, seen):
    """Sorted ``distance * n + position`` keys of the top k within ``limit`` of one query."""
    n, m = len(codes), len(widths)
    found = np.empty(max(4 * k, 64), np.int64)
    count = 0
    within = np.zeros(limit + 2, np.int64)  # candidates at each distance <= limit
    done = False
    for s in range(MAX_SUBSTRING_BITS + 1):
        for i in range(m):
            if s > widths[i]:
                continue
            for f in range(flip_starts[s], flip_starts[s + 1]):
                flip = flips[f]
                if flip >> widths[i]:
                    continue  # a mask wider than this substring
                value = parts[i] ^ flip
                for slot in range(offsets[i, value], offsets[i, value + 1]):
                    p = members[i, slot]
                    if seen[p]:
                        continue
                    seen[p] = True
                    d = np.int64(_popcount(query[0] ^ codes[p, 0]))
                    if codes.shape[1] == 2:
                        d += np.int64(_popcount(query[1] ^ codes[p, 1]))
                    if count == len(found):
                        grown = np.empty(2 * count, np.int64)
                        grown[:count] = found
                        found = grown
                    found[count] = d * n + p  # kept even beyond the limit, to reset seen
                    count += 1
                    if d <= limit:
                        within[d] += 1
            covered = min(limit, m * s + i)  # every code this close has been seen
            total = 0
            for distance in range(covered + 1):
                total += within[distance]
            if total >= k or covered == limit:
                done = True
                break
        if done:
            break
    for j in range(count):  # forget this query's candidates for the next one
        seen[found[j] % n] = False
    best = np.sort(found[:count])[:k]
    return best[best < (limit + 1) * n]


@njit(parallel=True, cache=True)
def _search(queries, parts, codes, offsets, members, widths, flips, flip_starts, k, limit, n_parts):
    nq = queries.shape[0]
    positions = np.full((nq, k), -1, np.int64)
    distances = np.full((nq, k), -1, np.int32)
    per = (nq + n_parts - 1) // n_parts
    for part in prange(n_parts):
        first, stop = part * per, min(nq, (part + 1) * per)
        _search_range(first, stop, queries, parts, codes, offsets, members, widths, flips,
                      flip_starts, k, limit, positions, distances)  # fmt: skip
    return positions, distances


@njit(cache=True)
def _search_serial(queries, parts, codes, offsets, members, widths, flips, flip_starts, k, limit):
    """:func:`_search` on this thread: a few queries do not wait for busy cores to wake."""
    nq = queries.shape[0]
    positions = np.full((nq, k), -1, np.int64)
    distances = np.full((nq, k), -1, np.int32)
    _search_range(0, nq, queries, parts, codes, offsets, members, widths, flips, flip_starts,
                  k, limit, positions, distances)  # fmt: skip
    return positions, distances


@njit(cache=True)
def _search_range(first, stop, queries, parts, codes, offsets, members, widths, flips,
                  flip_starts, k, limit, positions, distances):  # fmt: skip
    n = len(codes)
    seen = np.zeros(n, np.bool_)
    for q in range(first, stop):
        best = _search_one(
            queries[q], parts[q], codes, offsets, members,
            widths, flips, flip_starts, k, limit, seen,
        )  # fmt: skip
        for j in range(len(best)):
            positions[q, j] = best[j] % n
            distances[q, j] = best[j] // n
