"""Hamming search speed and recall: every semhash engine against faiss IndexBinaryFlat (issue 3).

For random and clustered codes (N = 100k, 1M, 10M; b = 32, 64, 128) and the
real codes of built indexes (``--index DIR``), in one process:

- µs per query for a batch of queries and for queries one at a time;
- recall@100 against the exact top 100 (distances compared, so tie order is free);
- the ratio to faiss ``IndexBinaryFlat`` measured in the same run (2 threads);
- radius 0 and 1 lookups by bucket probing;
- for indexes with labels: precision@100 (test queries, train database) of exact
  search and of two-stage search (16-bit address, full code ranks 1,000 candidates).

Engines the planner expects to take over 30x the scan are skipped, with the estimate.

    python scripts/bench_search.py --index runs/20ng-32 --index runs/20ng-64 --index runs/20ng-128
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

from semhash import SemanticIndex
from semhash.index import HammingBuckets, LinearScan
from semhash.index.base import Hits
from semhash.index.planner import bucket_seconds, mih_seconds, scan_seconds
from semhash.index.popcount import available_kernels, kernel, top_k, use_kernel
from semhash.index.two_stage import TwoStage
from semhash.threads import cpu_name

K = 100
SKIP_FACTOR = 30


def random_codes(n: int, n_bits: int, rng: np.random.Generator) -> np.ndarray:
    return _masked(rng.integers(0, 2**64, (n, (n_bits + 63) // 64), dtype=np.uint64), n_bits)


def clustered_codes(n: int, n_bits: int, rng: np.random.Generator) -> np.ndarray:
    """Codes around 2,000 centres with ~6% of bits flipped: duplicates and near neighbours."""
    centres = random_codes(2000, n_bits, rng)
    words = centres.shape[1]
    noise = np.full((n, words), ~np.uint64(0))
    for _ in range(4):  # AND of 4 random words: each bit set with probability 1/16
        noise &= rng.integers(0, 2**64, (n, words), dtype=np.uint64)
    return _masked(centres[rng.integers(0, 2000, n)] ^ noise, n_bits)


def _masked(codes: np.ndarray, n_bits: int) -> np.ndarray:
    if n_bits % 64:
        codes[:, -1] &= np.uint64((1 << (n_bits % 64)) - 1)
    return codes


def timed(search: Callable[[np.ndarray], object], queries: np.ndarray) -> float:
    """Seconds per query, the batch at once."""
    start = time.perf_counter()
    search(queries)
    return (time.perf_counter() - start) / len(queries)


def timed_single(search: Callable[[np.ndarray], object], queries: np.ndarray) -> float:
    start = time.perf_counter()
    for i in range(len(queries)):
        search(queries[i : i + 1])
    return (time.perf_counter() - start) / len(queries)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Share of the true top-k distances matched, per query, as multisets."""
    total = 0
    for f, t in zip(found, truth, strict=True):
        f, t = f[f >= 0], t[t >= 0]
        values = np.union1d(f, t)
        total += np.minimum(
            np.searchsorted(np.sort(f), values, "right") - np.searchsorted(np.sort(f), values),
            np.searchsorted(np.sort(t), values, "right") - np.searchsorted(np.sort(t), values),
        ).sum()
    return total / max(1, int((truth >= 0).sum()))


def faiss_index(codes: np.ndarray, n_bits: int) -> tuple[faiss.IndexBinaryFlat, Callable]:
    as_bytes = (codes.view(np.uint8).reshape(len(codes), -1)[:, : n_bits // 8]).copy()
    index = faiss.IndexBinaryFlat(n_bits)
    index.add(as_bytes)

    def search(queries: np.ndarray) -> Hits:
        q = queries.view(np.uint8).reshape(len(queries), -1)[:, : n_bits // 8].copy()
        distances, positions = index.search(q, K)
        return Hits(positions, distances)

    return index, search


def bench(name: str, codes: np.ndarray, queries: np.ndarray, n_bits: int, single: int) -> list:
    """One dataset: every engine, batch and single-query timings, recall, ratio to faiss."""
    rows = []
    buckets = HammingBuckets(n_bits)
    start = time.perf_counter()
    buckets.add(codes)
    build_buckets = time.perf_counter() - start
    start = time.perf_counter()
    mih = buckets.mih
    build_mih = time.perf_counter() - start
    truth = top_k(queries, codes, K, n_bits)[1]
    plan = buckets.plan(len(queries), K)
    _, faiss_search = faiss_index(codes, n_bits)
    two_stage = TwoStage(n_bits, codes)
    default = kernel()

    def scan_on(name: str) -> Callable[[np.ndarray], Hits]:
        def search(q: np.ndarray) -> Hits:
            use_kernel(name)
            try:
                return Hits(*top_k(q, codes, K, n_bits))
            finally:
                use_kernel(default)

        return search

    engines: dict[str, Callable[[np.ndarray], Hits]] = {
        "faiss IndexBinaryFlat": faiss_search,
        **{f"scan ({name})": scan_on(name) for name in available_kernels()},
        "buckets": lambda q: buckets.search(q, K, engine="buckets"),
        "mih": lambda q: buckets.search(q, K, engine="mih"),
        f"auto -> {plan.engine}": lambda q: buckets.search(q, K),
        "two-stage (16-bit address)": lambda q: two_stage.search(q, K),
    }
    profile = buckets._profile
    assert profile is not None
    estimates = {
        "buckets": bucket_seconds(profile, plan.radius),
        "mih": mih_seconds(profile, plan.radius),
    }
    scan_estimate = scan_seconds(profile, len(queries))
    faiss_times = None
    for engine, search in engines.items():
        estimate = estimates.get(engine)
        if estimate is not None and estimate > SKIP_FACTOR * scan_estimate:
            guess = f"{estimate * 1e6:.0f} µs" if estimate < 1 else "> 1 s"
            rows.append([name, len(codes), n_bits, engine, f"skipped (est. {guess})"])
            continue
        search(queries)  # compile each path once, build lazily, warm caches
        search(queries[:1])
        batch = timed(search, queries)
        one = timed_single(search, queries[:single])
        found = search(queries)
        if faiss_times is None:
            faiss_times = (batch, one)
        rows.append(
            [
                name, len(codes), n_bits, engine, f"{batch * 1e6:.1f}", f"{one * 1e6:.0f}",
                f"{recall(np.asarray(found.distances), truth):.3f}",
                f"{faiss_times[0] / batch:.1f}x", f"{faiss_times[1] / one:.1f}x",
            ]
        )  # fmt: skip
    for radius in (0, 1):
        buckets.search(queries, K, radius, engine="buckets")
        lookup = timed(lambda q, r=radius: buckets.search(q, K, r, engine="buckets"), queries)
        rows.append([name, len(codes), n_bits, f"radius {radius} (buckets)", f"{lookup * 1e6:.1f}"])
    print(
        f"  {name} N={len(codes):,} b={n_bits}: buckets built in {build_buckets:.2f} s, "
        f"MIH in {build_mih:.2f} s ({mih.nbytes / len(codes):.0f} bytes/doc); "
        f"planner: {plan.describe()}",
        flush=True,
    )
    return rows


def two_stage_precision(index: SemanticIndex) -> list:
    """Precision@100 of test queries against train documents: exact Hamming vs two-stage."""
    splits = np.array(index.splits)
    train, test = np.flatnonzero(splits == "train"), np.flatnonzero(splits == "test")
    labels = [set(label) for label in index.labels]
    db = np.ascontiguousarray(index.codes[train])
    queries = np.ascontiguousarray(index.codes[test])

    def precision(hits: Hits) -> float:
        hit_rates = [
            np.mean([bool(labels[test[i]] & labels[train[p]]) for p in row[row >= 0]])
            for i, row in enumerate(hits.positions)
        ]
        return float(np.mean(hit_rates))

    scan = LinearScan(index.n_bits)
    scan.add(db)
    two_stage = TwoStage(index.n_bits, db)
    rows = []
    for name, search in (
        ("exact (scan)", lambda q: scan.search(q, K)),
        ("two-stage (16-bit address, 1,000 candidates)", lambda q: two_stage.search(q, K)),
    ):
        start = time.perf_counter()
        hits = search(queries)
        seconds = (time.perf_counter() - start) / len(queries)
        rows.append([index.n_bits, name, f"{precision(hits):.3f}", f"{seconds * 1e6:.1f}"])
    return rows


def markdown(header: list[str], rows: list[list]) -> str:
    width = len(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * width]
    for row in rows:
        cells = [f"{c:,}" if isinstance(c, int) else str(c) for c in row]
        lines.append("| " + " | ".join(cells + [""] * (width - len(cells))) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000,10000000")
    parser.add_argument("--bits", default="32,64,128")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--single", type=int, default=50, help="queries timed one at a time")
    parser.add_argument("--index", action="append", default=[], help="a built index's real codes")
    parser.add_argument("--out", type=Path, help="also write the tables (markdown) and JSON here")
    args = parser.parse_args()
    print(f"CPU: {cpu_name()}; kernels: {', '.join(available_kernels())} (default {kernel()})")
    faiss.omp_set_num_threads(2)
    rng = np.random.default_rng(0)
    rows = []
    for n in map(int, args.sizes.split(",")):
        for n_bits in map(int, args.bits.split(",")):
            for kind, make in (("random", random_codes), ("clustered", clustered_codes)):
                codes = make(n + args.queries, n_bits, rng)
                queries, db = codes[: args.queries].copy(), codes[args.queries :].copy()
                rows += bench(kind, db, queries, n_bits, args.single)
    precision_rows = []
    for path in args.index:
        index = SemanticIndex.load(path)
        codes = np.ascontiguousarray(index.codes)
        rows += bench(f"20NG ({Path(path).name})", codes, codes[: args.queries], index.n_bits, 50)
        precision_rows += two_stage_precision(index)
    header = [
        "codes", "N", "bits", "engine", "µs/query (batch)", "µs/query (single)",
        "recall@100", "vs faiss (batch)", "vs faiss (single)",
    ]  # fmt: skip
    tables = markdown(header, rows)
    if precision_rows:
        tables += "\n\n" + markdown(
            ["bits", "search (20NG, test queries, train database)", "P@100", "µs/query"],
            precision_rows,
        )
    print(tables)
    if args.out:
        args.out.with_suffix(".md").write_text(tables + "\n")
        args.out.with_suffix(".json").write_text(
            json.dumps({"speed": rows, "precision": precision_rows}, indent=1)
        )


if __name__ == "__main__":
    main()
