"""Scale-out throughput (issue 7): Dask encoding, and Milvus Lite against the local index.

In one process:
- encodes a synthetic corpus (``--docs``, default 200,000 documents of ~150 words drawn
  from the model's vocabulary, Zipf-weighted) with one process (the baseline), then
  with ``semhash encode`` on 1 and 2 local Dask workers: documents/s;
- inserts ``--codes`` (default 1,000,000) random codes into a Milvus Lite collection and
  into the local index, then answers 200 queries (top 100) with each: inserts/s and
  µs/query.

    python scripts/bench_scale.py runs/20ng-64
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from semhash import SemanticIndex
from semhash.encode import encode_to_parquet, read_codes
from semhash.index import HammingBuckets
from semhash.index.milvus import MilvusCodes


def synthetic_corpus(index: SemanticIndex, n: int, path: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    vocabulary = np.array(index.hasher.vectorizer.vocabulary_)
    weights = 1 / np.arange(1, len(vocabulary) + 1)
    weights /= weights.sum()
    with gzip.open(path, "wt", encoding="utf-8") as out:
        for i in range(n):
            words = rng.choice(vocabulary, size=int(rng.integers(50, 250)), p=weights)
            out.write(json.dumps({"id": f"doc-{i}", "text": " ".join(words)}) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("index", type=Path)
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--codes", type=int, default=1_000_000)
    args = parser.parse_args()
    index = SemanticIndex.load(args.index)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.jsonl.gz"
        synthetic_corpus(index, args.docs, corpus)
        from semhash.corpus import iter_corpus

        start = time.perf_counter()
        single = [index.hasher.encode(chunk.texts) for chunk in iter_corpus(corpus, 5000)]
        seconds = time.perf_counter() - start
        rows.append(["encode, one process (no Dask)", args.docs / seconds, 1.0])
        base = args.docs / seconds
        for workers in (1, 2):
            out = Path(tmp) / f"codes-{workers}.parquet"
            start = time.perf_counter()
            encode_to_parquet(args.index, corpus, out, workers=workers)
            seconds = time.perf_counter() - start
            same = read_codes(out)[1].tobytes() == np.concatenate(single).tobytes()
            name = f"semhash encode, {workers} Dask worker{'s' if workers > 1 else ''}"
            rows.append([f"{name} (codes identical: {same})", args.docs / seconds,
                         args.docs / seconds / base])  # fmt: skip

        rng = np.random.default_rng(1)
        n_bits = index.n_bits
        codes = rng.integers(0, 2**64, (args.codes, (n_bits + 63) // 64), dtype=np.uint64)
        ids = [f"c{i}" for i in range(args.codes)]
        queries = codes[rng.choice(args.codes, 200, replace=False)]
        start = time.perf_counter()
        local = HammingBuckets(n_bits)
        local.add(codes)
        local_insert = args.codes / (time.perf_counter() - start)
        local.search(queries[:2], 100)
        start = time.perf_counter()
        local.search(queries, 100)
        local_query = (time.perf_counter() - start) / len(queries)
        milvus = MilvusCodes(str(Path(tmp) / "bench.db"), "bench", n_bits)
        start = time.perf_counter()
        milvus.upsert(ids, codes, [()] * args.codes)
        milvus_insert = args.codes / (time.perf_counter() - start)
        milvus.search(queries[:2], 100)
        start = time.perf_counter()
        milvus.search(queries, 100)
        milvus_query = (time.perf_counter() - start) / len(queries)
    print("| encoding | documents/s | × one process |\n|---|---|---|")
    for name, rate, ratio in rows:
        print(f"| {name} | {rate:,.0f} | {ratio:.2f} |")
    print(f"\n| {args.codes:,} {n_bits}-bit codes | inserts/s | µs/query (top 100, batch of 200) |")
    print("|---|---|---|")
    print(f"| local index (auto engine) | {local_insert:,.0f} | {local_query * 1e6:,.0f} |")
    print(f"| Milvus Lite (BIN_FLAT) | {milvus_insert:,.0f} | {milvus_query * 1e6:,.0f} |")


if __name__ == "__main__":
    main()
