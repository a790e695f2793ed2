"""How long opening a large index takes, and how much memory it costs (issue 4).

Builds a synthetic index of N documents (the tiny model from tests/data, its
12-bit codes clustered like a trained model's, short texts), saves it, then in
the same process times:

- ``SemanticIndex.load`` (memory-mapped) and the first search and ``similar`` after it;
- the baseline: reading the same codes, ids and activations fully into RAM with np.load.

    python scripts/bench_open.py --n 10000000
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from semhash import Corpus, SemanticIndex
from semhash.codes import binarize, pack
from semhash.index.buckets import HammingBuckets
from semhash.store.documents import Documents

TINY = Path(__file__).resolve().parents[1] / "tests" / "data" / "index-v2"


def synthetic_index(n: int, seed: int = 0) -> SemanticIndex:
    """n documents whose codes sit around 1,000 random centres (like a trained model's)."""
    rng = np.random.default_rng(seed)
    model = SemanticIndex.load(TINY).hasher
    n_bits = model.n_bits
    centres = rng.random((1000, n_bits), dtype=np.float32)
    activations = np.clip(
        centres[rng.integers(0, 1000, n)] + rng.normal(0, 0.15, (n, n_bits)).astype(np.float32),
        0.001,
        0.999,
    )
    ids = [f"doc-{i}" for i in range(n)]
    corpus = Corpus(ids, [f"synthetic text {i}" for i in range(n)], [("x",)] * n, ["train"] * n)
    buckets = HammingBuckets(n_bits)
    buckets.add(pack(binarize(activations)))
    return SemanticIndex(model, buckets, activations, Documents.from_corpus(corpus))


def rss_mb() -> float:
    """Resident memory now (Linux): pages in /proc/self/statm times the page size."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="semhash-bench-open-"))
    try:
        started = time.perf_counter()
        synthetic_index(args.n).save(tmp / "idx")
        print(f"built and saved {args.n:,} documents in {time.perf_counter() - started:.0f} s")
        size = sum(f.stat().st_size for f in (tmp / "idx").rglob("*") if f.is_file())
        rows = measure(tmp / "idx")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nindex on disk: {size / 1e9:.2f} GB")
    print(f"{'step':<40} {'seconds':>9} {'vs baseline':>12}")
    baseline = rows["baseline: np.load codes+ids+activations"]
    for name, seconds in rows.items():
        print(f"{name:<40} {seconds:>9.4f} {seconds / baseline:>11.3f}x")


def measure(path: Path) -> dict[str, float]:
    rows = {}
    before = rss_mb()
    started = time.perf_counter()
    index = SemanticIndex.load(path)
    rows["SemanticIndex.load (memory-mapped)"] = time.perf_counter() - started
    grew = rss_mb() - before
    started = time.perf_counter()
    index.similar(f"doc-{len(index) // 2}", k=10)
    rows["first similar(id, k=10) after load"] = time.perf_counter() - started
    started = time.perf_counter()
    index.search(["space shuttle orbit"], k=10)
    rows["first search(text, k=10) after load"] = time.perf_counter() - started
    folder = next(p for p in path.iterdir() if p.name.startswith("v"))
    started = time.perf_counter()
    for name in ("codes.npy", "ids.npy", "activations.npy"):
        np.load(folder / name)
    rows["baseline: np.load codes+ids+activations"] = time.perf_counter() - started
    print(f"resident memory grew by {grew:.0f} MB while loading")
    return rows


if __name__ == "__main__":
    main()
