"""The exact Hamming top-k scan: XOR, popcount, count-based selection.

Two implementations of one algorithm: C (``semhash/_popcount.c``, AVX-512
VPOPCNTDQ where the CPU has it) when a compiler was there at install time, else
numba.  A code of b <= 128 bits is one or two uint64 words.  The database is
read in blocks that stay in cache while groups of 8 queries pass over them; each
core takes its own share of the queries (or, for a few queries, of the
database).  Per chunk of codes one vectorised pass tests, for each of the 8
queries, whether any code is within its ``bound``; only such a chunk is looked
at code by code.

Each query buffers candidates in position order, counting them per distance, and
keeps ``bound`` one below the k-th smallest buffered distance: a later code at
that distance loses the tie to the earlier one.  When the buffer fills, a stable
counting sort by distance (distances are small integers) keeps the best ``k``.
So every result equals a full sort by (distance, position).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import numba
import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

try:  # the C kernels (semhash/_popcount.c), built at install time where a compiler exists
    import semhash._popcount as _native

    _NATIVE: list[str] = _native.available()
except ImportError:  # no C compiler at install time: the numba kernel does it all
    _NATIVE = []
KERNELS = ("avx512", "avx2", "popcnt", "portable", "numba")
_numba = not _NATIVE  # whether the numba kernel runs instead of the C one
_forced_error = ""  # why SEMHASH_KERNEL could not be honoured


def available_kernels() -> list[str]:
    """The kernels this machine runs, fastest first: the C ones its CPU has, then numba."""
    return [*_NATIVE, "numba"]


def kernel() -> str:
    """The kernel scans run on now (``SEMHASH_KERNEL`` or :func:`use_kernel` to choose)."""
    if _forced_error:
        raise ValueError(_forced_error)
    return "numba" if _numba else _native.current()


def use_kernel(name: str) -> None:
    """Run scans on kernel ``name`` (one of :data:`KERNELS`) from now on, in this process."""
    global _numba, _forced_error
    if name not in available_kernels():
        raise ValueError(
            f"kernel {name!r} is not available here; this machine runs "
            f"{', '.join(available_kernels())} (of {', '.join(KERNELS)})"
        )
    if name != "numba":
        _native.use(name)
    _numba, _forced_error = name == "numba", ""


if os.environ.get("SEMHASH_KERNEL"):
    try:
        use_kernel(os.environ["SEMHASH_KERNEL"])
    except ValueError as err:
        _forced_error = f"SEMHASH_KERNEL: {err}"

_SPLIT_WORK = 1_000_000  # code-query pairs worth waking other cores for (~100 µs to wake them)
GROUP = 8  # queries sharing each pass over a chunk of codes
CHUNK = 64  # codes counted in one vectorised pass
BLOCK = 4096  # codes kept in cache while every query group passes over them
_SHIFT = np.uint64(8)  # (distance + 255 - bound) >> 8 is 1 exactly when distance > bound


@intrinsic
def _ctpop(typingctx, word):
    """LLVM's ctpop: one POPCNT / VPOPCNTQ instruction on CPUs that have it."""

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return types.uint64(types.uint64), codegen


_popcount = cast(Callable[[Any], Any], _ctpop)  # the same object, typed for mypy


@njit(inline="always")
def _distance(query, codes, j):
    total: Any = _popcount(query[0] ^ codes[j, 0])
    if codes.shape[1] == 2:
        total += _popcount(query[1] ^ codes[j, 1])
    return np.int64(total)


@njit(inline="always")
def _out_of_reach_1(queries, g, codes, c0, c1, offsets, out):
    """out[i] = how many of codes[c0:c1] are beyond query g+i's bound (one-word codes)."""
    q0, q1, q2, q3 = queries[g, 0], queries[g + 1, 0], queries[g + 2, 0], queries[g + 3, 0]
    q4, q5, q6, q7 = queries[g + 4, 0], queries[g + 5, 0], queries[g + 6, 0], queries[g + 7, 0]
    o0, o1, o2, o3 = offsets[0], offsets[1], offsets[2], offsets[3]
    o4, o5, o6, o7 = offsets[4], offsets[5], offsets[6], offsets[7]
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = np.uint64(0)
    for j in range(c0, c1):
        c = codes[j, 0]
        s0 += (_popcount(q0 ^ c) + o0) >> _SHIFT
        s1 += (_popcount(q1 ^ c) + o1) >> _SHIFT
        s2 += (_popcount(q2 ^ c) + o2) >> _SHIFT
        s3 += (_popcount(q3 ^ c) + o3) >> _SHIFT
        s4 += (_popcount(q4 ^ c) + o4) >> _SHIFT
        s5 += (_popcount(q5 ^ c) + o5) >> _SHIFT
        s6 += (_popcount(q6 ^ c) + o6) >> _SHIFT
        s7 += (_popcount(q7 ^ c) + o7) >> _SHIFT
    out[0], out[1], out[2], out[3] = s0, s1, s2, s3
    out[4], out[5], out[6], out[7] = s4, s5, s6, s7


@njit(inline="always")
def _out_of_reach_2(queries, g, codes, c0, c1, offsets, out):
    """As :func:`_out_of_reach_1` for two-word codes (65..128 bits), 4 queries at a time."""
    for h in range(0, GROUP, 4):
        a0, a1, a2, a3 = (
            queries[g + h, 0],
            queries[g + h + 1, 0],
            queries[g + h + 2, 0],
            queries[g + h + 3, 0],
        )
        b0, b1, b2, b3 = (
            queries[g + h, 1],
            queries[g + h + 1, 1],
            queries[g + h + 2, 1],
            queries[g + h + 3, 1],
        )
        o0, o1, o2, o3 = offsets[h], offsets[h + 1], offsets[h + 2], offsets[h + 3]
        s0 = s1 = s2 = s3 = np.uint64(0)
        for j in range(c0, c1):
            c, d = codes[j, 0], codes[j, 1]
            s0 += (_popcount(a0 ^ c) + _popcount(b0 ^ d) + o0) >> _SHIFT
            s1 += (_popcount(a1 ^ c) + _popcount(b1 ^ d) + o1) >> _SHIFT
            s2 += (_popcount(a2 ^ c) + _popcount(b2 ^ d) + o2) >> _SHIFT
            s3 += (_popcount(a3 ^ c) + _popcount(b3 ^ d) + o3) >> _SHIFT
        out[h], out[h + 1], out[h + 2], out[h + 3] = s0, s1, s2, s3


@njit(inline="always")
def _out_of_reach_one(query, codes, c0, c1, offset):
    """How many of codes[c0:c1] are beyond one query's bound."""
    s = np.uint64(0)
    if codes.shape[1] == 1:
        q0 = query[0]
        for j in range(c0, c1):
            s += (_popcount(q0 ^ codes[j, 0]) + offset) >> _SHIFT
    else:
        q0, q1 = query[0], query[1]
        for j in range(c0, c1):
            s += (_popcount(q0 ^ codes[j, 0]) + _popcount(q1 ^ codes[j, 1]) + offset) >> _SHIFT
    return s


@njit
def _compact(positions, distances, fill, k, histogram, scratch_p, scratch_d):
    """Keep the best ``k`` of ``fill`` buffered candidates, sorted; returns how many remain."""
    histogram[:] = 0
    for i in range(fill):
        histogram[distances[i] + 1] += 1
    for d in range(1, histogram.shape[0]):  # then histogram[d] = how many are < d
        histogram[d] += histogram[d - 1]
    for i in range(fill):
        d = distances[i]
        slot = histogram[d]
        histogram[d] += 1
        if slot < k:
            scratch_p[slot], scratch_d[slot] = positions[i], d
    kept = min(fill, k)
    positions[:kept], distances[:kept] = scratch_p[:kept], scratch_d[:kept]
    return kept


@njit
def _offer_chunk(query, codes, c0, c1, k, q, state, work):
    """Buffer each code of codes[c0:c1] within query q's bound, lowering the bound as it goes.

    ``bounds[q]`` stays one below the k-th smallest buffered distance: ``counts[q, d]``
    counts buffered candidates at distance d and ``below[q]`` those within the bound.
    """
    positions, distances, fills, bounds, counts, below = state
    fill, bound, n_below = fills[q], bounds[q], below[q]
    chunk = work[3]
    for j in range(c0, c1):  # vectorised: every distance of the chunk first
        chunk[j - c0] = _distance(query, codes, j)
    for j in range(c0, c1):
        d = chunk[j - c0]
        if d > bound:
            continue
        positions[q, fill], distances[q, fill] = j, d
        fill += 1
        counts[q, d] += 1
        n_below += 1
        while n_below >= k:
            n_below -= counts[q, bound]
            bound -= 1
        if fill == positions.shape[1]:
            fill = _compact(positions[q], distances[q], fill, k, *work[:3])
            counts[q, :] = 0
            n_below = 0
            for i in range(fill):
                counts[q, distances[q, i]] += 1
                n_below += distances[q, i] <= bound
    fills[q], bounds[q], below[q] = fill, bound, n_below


@njit
def _scan_range(queries, g, codes, a, b, k, state, work):
    """Offer codes[a:b] to queries g..g+GROUP-1 (to query g alone if it is the last one)."""
    bounds = state[3]
    if g + 1 == queries.shape[0]:
        for c0 in range(a, b, CHUNK):
            c1 = min(b, c0 + CHUNK)
            if _out_of_reach_one(queries[g], codes, c0, c1, np.uint64(255 - bounds[g])) < c1 - c0:
                _offer_chunk(queries[g], codes, c0, c1, k, g, state, work)
        return
    offsets = np.empty(GROUP, np.uint64)
    out = np.empty(GROUP, np.uint64)
    for c0 in range(a, b, CHUNK):
        c1 = min(b, c0 + CHUNK)
        for i in range(GROUP):
            offsets[i] = np.uint64(255 - bounds[g + i])
        if codes.shape[1] == 1:
            _out_of_reach_1(queries, g, codes, c0, c1, offsets, out)
        else:
            _out_of_reach_2(queries, g, codes, c0, c1, offsets, out)
        for i in range(GROUP):
            if out[i] < c1 - c0:
                _offer_chunk(queries[g + i], codes, c0, c1, k, g + i, state, work)


@njit
def _new_state(nq, k, n_bits, bound):
    """Per query: candidate buffer (positions, distances), fill, bound, counts, below."""
    return (
        np.empty((nq, 2 * k), np.int64),
        np.empty((nq, 2 * k), np.int32),
        np.zeros(nq, np.int64),
        np.full(nq, bound, np.int64),
        np.zeros((nq, n_bits + 1), np.int64),
        np.zeros(nq, np.int64),
    )


@njit
def _new_work(k, n_bits):
    """Scratch space of one core: compaction histogram and buffers, a chunk's distances."""
    return (
        np.empty(n_bits + 2, np.int64),
        np.empty(k, np.int64),
        np.empty(k, np.int32),
        np.empty(CHUNK, np.int64),
    )


@njit(parallel=True, cache=True)
def _top_k_queries_split(queries, codes, k, n_bits, bound, n_parts):
    """Many queries: each core takes its share of the query groups over the whole database."""
    nq, n = queries.shape[0], codes.shape[0]
    state = _new_state(nq, k, n_bits, bound)
    n_groups = nq // GROUP
    per = (n_groups + n_parts - 1) // n_parts
    for part in prange(n_parts):
        work = _new_work(k, n_bits)
        g0, g1 = part * per, min(n_groups, (part + 1) * per)
        for a in range(0, n, BLOCK):
            for group in range(g0, g1):
                _scan_range(queries, group * GROUP, codes, a, min(n, a + BLOCK), k, state, work)
        for q in range(g0 * GROUP, g1 * GROUP):
            state[2][q] = _compact(state[0][q], state[1][q], state[2][q], k, *work[:3])
    return state[0][:, :k], state[1][:, :k], state[2]


@njit(parallel=True, cache=True)
def _top_k_codes_split(queries, codes, k, n_bits, bound, n_parts):
    """Few queries: each core scans its share of the codes; shares merge in position order."""
    nq, n = queries.shape[0], codes.shape[0]
    states = [_new_state(nq, k, n_bits, bound) for _ in range(n_parts)]
    per = (n + n_parts - 1) // n_parts
    for part in prange(n_parts):
        work = _new_work(k, n_bits)
        state = states[part]
        a0, a1 = part * per, min(n, (part + 1) * per)
        for a in range(a0, a1, BLOCK):
            for g in range(0, nq, GROUP):
                _scan_range(queries, g, codes, a, min(a1, a + BLOCK), k, state, work)
        for q in range(nq):
            state[2][q] = _compact(state[0][q], state[1][q], state[2][q], k, *work[:3])
    merged = _new_state(nq, (n_parts * k + 1) // 2, n_bits, bound)
    work = _new_work(k, n_bits)
    positions, distances, fills = merged[0], merged[1], merged[2]
    for q in range(nq):
        for state in states:  # earlier parts hold lower positions: ties stay in order
            f, at = state[2][q], fills[q]
            positions[q, at : at + f] = state[0][q, :f]
            distances[q, at : at + f] = state[1][q, :f]
            fills[q] += f
        fills[q] = _compact(positions[q], distances[q], fills[q], k, *work[:3])
    return positions[:, :k], distances[:, :k], fills


def top_k(
    queries: np.ndarray,
    codes: np.ndarray,
    k: int,
    n_bits: int,
    radius: int | None = None,
    narrow: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` by Hamming distance, ties by position: ``(nq, k)`` positions, distances.

    ``queries`` ``(nq, w)`` and ``codes`` ``(n, w)`` are uint64 with w = 1 or 2.
    Padding is -1 where fewer than ``k`` codes lie within ``radius`` (or exist).
    Runs on :func:`kernel`.  ``narrow``: the same codes as uint32 when ``n_bits`` <= 32,
    which the AVX2 kernel reads for a lone query (half the bytes of ``codes``).
    """
    nq = len(queries)
    if nq == 0 or len(codes) == 0:
        return np.full((nq, k), -1, np.int64), np.full((nq, k), -1, np.int32)
    if nq == 1 and narrow is not None and n_bits <= 32 and kernel() == "avx2":
        positions = np.empty((1, k), np.int64)
        distances = np.empty((1, k), np.int32)
        bound = n_bits if radius is None else min(radius, n_bits)
        _native.top_one_narrow(int(queries[0, 0]), narrow, k, bound, positions, distances)
        return positions, distances
    fill_up = -nq % GROUP if nq > 1 else 0  # one query scans alone
    padded = np.ascontiguousarray(queries, dtype=np.uint64)
    if fill_up:
        padded = np.concatenate([padded, np.repeat(padded[-1:], fill_up, axis=0)])
    codes = np.ascontiguousarray(codes, dtype=np.uint64)
    bound = n_bits if radius is None else min(radius, n_bits)
    # One query scans on its own core: waking another costs about what it saves, and on a
    # busy machine the query would wait for the slower half.
    threads = numba.get_num_threads() if nq > 1 and nq * len(codes) >= _SPLIT_WORK else 1
    n_groups = len(padded) // GROUP
    split_queries = n_groups >= 2 * threads
    parts = threads if split_queries else max(1, min(threads, len(codes) // BLOCK))
    if kernel() == "numba":
        split = _top_k_queries_split if split_queries else _top_k_codes_split
        positions, distances, fills = split(padded, codes, k, n_bits, bound, parts)
    elif split_queries:
        positions, distances, fills = _native_queries_split(padded, codes, k, n_bits, bound, parts)
    else:
        positions, distances, fills = _native_codes_split(padded, codes, k, n_bits, bound, parts)
    positions, distances, fills = positions[:nq], distances[:nq], fills[:nq]
    if fills.min() == k:  # the usual case: nothing to pad
        return positions, distances
    empty = np.arange(k)[None, :] >= fills[:, None]
    return np.where(empty, -1, positions), np.where(empty, -1, distances)


def _native_queries_split(queries, codes, k, n_bits, bound, parts):
    """Each core answers its share of the query groups (the C kernel releases the GIL)."""
    nq = len(queries)
    positions = np.empty((nq, k), np.int64)
    distances = np.empty((nq, k), np.int32)
    fills = np.empty(nq, np.int64)
    per = -(-nq // GROUP // parts) * GROUP
    ranges = [(a, min(nq, a + per)) for a in range(0, nq, per)]
    _each(
        lambda r: _native.top_k(
            queries[r[0] : r[1]], codes, codes.shape[1], n_bits, k, bound, 0,
            positions[r[0] : r[1]], distances[r[0] : r[1]], fills[r[0] : r[1]],
        ),
        ranges,
    )  # fmt: skip
    return positions, distances, fills


def _native_codes_split(queries, codes, k, n_bits, bound, parts):
    """Each core scans its share of the codes; the shares' top k merge in position order."""
    nq, n = len(queries), len(codes)
    if parts == 1:  # one call does it all, nothing to merge
        positions = np.empty((nq, k), np.int64)
        distances = np.empty((nq, k), np.int32)
        fills = np.empty(nq, np.int64)
        _native.top_k(
            queries, codes, codes.shape[1], n_bits, k, bound, 0, positions, distances, fills
        )
        return positions, distances, fills
    per = -(-n // parts)
    starts = list(range(0, n, per))
    positions = np.empty((len(starts), nq, k), np.int64)
    distances = np.empty((len(starts), nq, k), np.int32)
    fills = np.empty((len(starts), nq), np.int64)
    _each(
        lambda i: _native.top_k(
            queries, codes[starts[i] : starts[i] + per], codes.shape[1], n_bits, k, bound,
            starts[i], positions[i], distances[i], fills[i],
        ),
        range(len(starts)),
    )  # fmt: skip
    positions = positions.transpose(1, 0, 2).reshape(nq, -1)  # parts in position order
    distances = distances.transpose(1, 0, 2).reshape(nq, -1)
    order = np.argsort(np.where(distances < 0, n_bits + 1, distances), axis=1, kind="stable")
    return (
        np.take_along_axis(positions, order, 1)[:, :k],
        np.take_along_axis(distances, order, 1)[:, :k],
        np.minimum(fills.sum(axis=0), k),
    )


def _each(work: Callable[[Any], None], items: Sequence[Any]) -> None:
    """Run ``work`` on every item, one core each (the C kernel releases the GIL)."""
    if len(items) == 1:
        work(items[0])
    else:
        list(_threads().map(work, items))


@functools.cache
def _threads() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="semhash-scan")
