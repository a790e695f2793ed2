"""``semhash encode``: codes for a corpus too large for one process, with Dask, into Parquet.

The driver streams the corpus in chunks (never whole) and hands each chunk's
texts to a Dask worker; a worker loads the index's model once (cached in the
worker process) and returns the chunk's packed codes.  Chunks come back in
order and are appended to one Parquet file with columns ``id`` (string),
``code`` (the packed little-endian uint64 words as bytes) and ``labels`` (list
of strings), written beside the target and renamed into place when complete.
A local cluster of ``workers`` processes by default, or a running scheduler.
"""

from __future__ import annotations

import functools
import os
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from semhash.codes import n_words
from semhash.corpus import Corpus, CorpusError, iter_corpus
from semhash.engine import SemanticIndex
from semhash.hasher import SemanticHasher

CHUNK = 5000  # documents per task
IN_FLIGHT = 2  # tasks queued per worker: enough to keep it busy, little memory


def encode_to_parquet(
    index_dir: str | Path,
    corpus: str | Path,
    out: str | Path,
    workers: int = 1,
    scheduler: str | None = None,
    chunk_size: int = CHUNK,
) -> int:
    """Encode every document of ``corpus`` with the model of ``index_dir``; returns the count."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from dask.distributed import Client, LocalCluster

    index_dir, out = Path(index_dir).resolve(), Path(out)
    n_bits = SemanticIndex.load(index_dir).n_bits  # a clear error before starting a cluster
    schema = pa.schema(
        [("id", pa.string()), ("code", pa.binary(8 * n_words(n_bits))),
         ("labels", pa.list_(pa.string()))]
    )  # fmt: skip
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
    client = Client(cluster if cluster is not None else scheduler)
    partial = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    count = 0
    try:
        limit = IN_FLIGHT * max(1, len(client.scheduler_info()["workers"]))
        with pq.ParquetWriter(partial, schema) as writer:
            pending: deque[tuple[Corpus, Any]] = deque()

            def write_oldest() -> None:
                chunk, future = pending.popleft()
                codes = future.result()
                table = pa.table(
                    {"id": chunk.ids, "code": [row.tobytes() for row in codes],
                     "labels": [list(labels) for labels in chunk.labels]},
                    schema=schema,
                )  # fmt: skip
                writer.write_table(table)

            for chunk in iter_corpus(corpus, chunk_size):
                pending.append((chunk, client.submit(encode_texts, str(index_dir), chunk.texts)))
                count += len(chunk)
                while len(pending) > limit:
                    write_oldest()
            while pending:
                write_oldest()
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
        client.close()
        if cluster is not None:
            cluster.close()
    return count


def encode_texts(index_dir: str, texts: list[str]) -> np.ndarray:
    """Packed codes of ``texts`` (runs on a worker; the model loads once per process)."""
    return _hasher(index_dir).encode(texts)


@functools.cache
def _hasher(index_dir: str) -> SemanticHasher:
    return SemanticIndex.load(index_dir).hasher


def read_codes(path: str | Path) -> tuple[list[str], np.ndarray, list[tuple[str, ...]]]:
    """Ids, ``(n, words)`` uint64 codes and labels from a file :func:`encode_to_parquet` wrote."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
        codes = b"".join(table.column("code").to_pylist())
        width = table.schema.field("code").type.byte_width // 8
        return (
            table.column("id").to_pylist(),
            np.frombuffer(codes, dtype="<u8").reshape(-1, width).astype(np.uint64),
            [tuple(labels) for labels in table.column("labels").to_pylist()],
        )
    except (OSError, KeyError, ValueError, AttributeError, pa.ArrowException) as err:
        raise CorpusError(f"{path}: not a codes file written by semhash encode ({err})") from None
