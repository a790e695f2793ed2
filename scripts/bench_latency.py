"""One query, end to end: typed text to ranked results with ids, scores and titles.

``SemanticIndex.search`` for one query at a time (k = 10), p50 and p99 over a few
hundred typed queries, each ranking, on a built index and on a million codes
(the index's model and 1,000,000 random codes, no texts), quiet and with one
CPU-bound process beside it (the ``busy`` rows).  Also the parts of the fused
path, to show where the time goes.

    python scripts/bench_latency.py --index runs/20ng-32
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from pathlib import Path

import numpy as np

from semhash import SemanticIndex
from semhash.codes import binarize, pack
from semhash.index.base import Hits
from semhash.index.popcount import kernel
from semhash.options import DEPTH
from semhash.threads import cpu_name

QUERIES = [
    "nasa space shuttle launch orbit", "windows driver crash", "gun control law",
    "jesus bible faith", "hockey playoffs goalie", "oil price opec", "car engine oil change",
    "encryption clipper chip", "motorcycle helmet", "graphics card vga", "israel arab peace",
    "wheat export tonnes", "bank interest rates", "doctor medicine pain", "mac hard disk",
]  # fmt: skip


def busy() -> None:
    while True:
        pass


def latencies(index: SemanticIndex, rank: str, n: int) -> np.ndarray:
    for query in QUERIES:  # warm: compiled kernels, lazily built structures
        index.search([query], k=10, rank=rank)
    times = np.empty(n)
    for i in range(n):
        started = time.perf_counter()
        index.search([QUERIES[i % len(QUERIES)]], k=10, rank=rank)
        times[i] = time.perf_counter() - started
    return times * 1e3


def parts(index: SemanticIndex, n: int) -> dict[str, float]:
    """Median ms of each step of one fused query."""
    hasher, vectorizer = index.hasher, index.hasher.vectorizer
    bags = [vectorizer.bags([q]) for q in QUERIES]
    units = [hasher.activations_from_counts(b) for b in bags]
    codes = [pack(binarize(u)) for u in units]
    found = [index.buckets.search(c, DEPTH).positions[0] for c in codes]
    hits = [index.buckets.search(c, 10) for c in codes]
    steps = {
        "count words": lambda i: vectorizer.bags([QUERIES[i]]),
        "weight and encode": lambda i: hasher.activations_from_counts(bags[i]),
        f"{DEPTH:,} Hamming candidates": lambda i: index.buckets.search(codes[i], DEPTH),
        "BM25 of the candidates": lambda i: index.terms.bm25(bags[i].row(0), found[i]),
        "re-rank (BM25 and fused scores)": lambda i: index._rerank(
            units[i], [bags[i].row(0)], Hits(found[i][None, :], found[i][None, :]), 10
        ),
        "10 results (ids, summaries)": lambda i: index._results(hits[i]),
    }
    out = {}
    for name, step in steps.items():
        times = []
        for i in range(n):
            started = time.perf_counter()
            step(i % len(QUERIES))
            times.append(time.perf_counter() - started)
        out[name] = float(np.median(times) * 1e3)
    return out


def million(index: SemanticIndex) -> SemanticIndex:
    rng = np.random.default_rng(0)
    n = 1_000_000
    codes = rng.integers(0, 2**64, (n, index.codes.shape[1]), dtype=np.uint64)
    if index.n_bits % 64:
        codes[:, -1] &= np.uint64((1 << (index.n_bits % 64)) - 1)
    return SemanticIndex.from_codes(index.hasher, [f"doc-{i}" for i in range(n)], codes, [()] * n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", default="runs/20ng-32")
    parser.add_argument("-n", type=int, default=300, help="queries timed per row")
    parser.add_argument("--no-million", dest="million", action="store_false")
    parser.add_argument("--out", type=Path, help="also write the table (markdown) here")
    args = parser.parse_args()
    index = SemanticIndex.load(args.index)
    lines = [
        f"{cpu_name()}, kernel {kernel()}; one query, k = 10, ms",
        "",
        "| index | ranking | p50 | p99 | busy p50 | busy p99 |",
        "|---|---|---|---|---|---|",
    ]
    targets = [(f"{Path(args.index).name} ({len(index):,})", index)]
    if args.million:
        targets.append(("1M random codes", million(index)))
    for name, target in targets:
        for rank in ("fused", "hamming"):
            quiet = latencies(target, rank, args.n)
            process = multiprocessing.Process(target=busy, daemon=True)
            process.start()
            try:
                loaded = latencies(target, rank, args.n)
            finally:
                process.terminate()
            q50, q99 = np.percentile(quiet, [50, 99])
            b50, b99 = np.percentile(loaded, [50, 99])
            lines.append(f"| {name} | {rank} | {q50:.3f} | {q99:.3f} | {b50:.3f} | {b99:.3f} |")
            print(lines[-1], flush=True)
    lines += ["", "| step of a fused query | ms |", "|---|---|"]
    lines += [f"| {step} | {ms:.3f} |" for step, ms in parts(index, args.n).items()]
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
