"""Many queries at once: read them from a file, write results as JSON lines or a TREC run.

A query file is plain text (one query per line, numbered from 1; blank lines
skipped) or JSON lines (``.jsonl``) of objects with ``text`` (or ``query``) and
an optional ``id`` (or ``qid``).  A TREC run has one line per hit,
``qid Q0 docid rank score tag``, higher scores first, so trec_eval and
ir_measures can score it: Hamming hits score ``bits - distance``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from tqdm.auto import tqdm

from semhash.engine import Result, SemanticIndex
from semhash.options import SearchOptions

logger = logging.getLogger(__name__)
FORMATS = ("jsonl", "trec")
CHUNK = 1024  # queries encoded and searched together


class QueryFileError(ValueError):
    """A query file that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class Query:
    """One query of a file: its id (the line number unless given) and text."""

    qid: str
    text: str


def read_queries(path: Path) -> list[Query]:
    """Every query in the file, in order; errors name the file and the line."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as err:
        raise QueryFileError(f"{path}: cannot read queries ({err.strerror or err})") from None
    if path.suffix == ".jsonl":
        queries = [_json_query(path, n, line) for n, line in enumerate(lines, 1) if line.strip()]
    else:
        queries = [Query(str(n), line.strip()) for n, line in enumerate(lines, 1) if line.strip()]
    if not queries:
        raise QueryFileError(f"{path}: no queries")
    seen: set[str] = set()
    for query in queries:
        if query.qid in seen:
            raise QueryFileError(f"{path}: query id {query.qid!r} appears twice")
        seen.add(query.qid)
    return queries


def _json_query(path: Path, n: int, line: str) -> Query:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise QueryFileError(f"{path}:{n}: not JSON ({err.msg})") from None
    if not isinstance(row, dict):
        raise QueryFileError(f"{path}:{n}: expected a JSON object")
    text = row.get("text", row.get("query"))
    if not isinstance(text, str) or not text.strip():
        raise QueryFileError(f"{path}:{n}: missing 'text' (or 'query')")
    return Query(str(row.get("id", row.get("qid", n))), text)


def search_all(
    index: SemanticIndex,
    queries: Sequence[Query],
    options: SearchOptions | None = None,
    progress: bool = False,
) -> Iterator[tuple[Query, list[Result]]]:
    """Each query with its results; a query with no known word gets none, with a warning."""
    counts = index.hasher.vectorizer.counts([q.text for q in queries])
    known = np.asarray(counts.sum(axis=1)).ravel() > 0
    if not known.all():
        logger.warning("%d queries have no word in the index's vocabulary", int((~known).sum()))
    starts = range(0, len(queries), CHUNK)
    for start in tqdm(starts, desc="queries", unit="block", disable=not progress):
        chunk = range(start, min(start + CHUNK, len(queries)))
        searchable = [i for i in chunk if known[i]]
        found = index.search_counts(counts[searchable], options) if searchable else []
        results = dict(zip(searchable, found, strict=True))
        for i in chunk:
            yield queries[i], results.get(i, [])


def write(
    out: IO[str],
    hits: Iterator[tuple[Query, list[Result]]],
    fmt: str,
    tag: str,
    hamming_bits: int | None,
) -> int:
    """Write results in ``fmt``; returns the number of queries written.

    ``hamming_bits``: the code length when scores are Hamming distances (TREC
    scores must grow with relevance), None when they are cosines.
    """
    count = 0
    for query, results in hits:
        count += 1
        if fmt == "jsonl":
            rows = [r.to_dict() for r in results]
            out.write(json.dumps({"qid": query.qid, "query": query.text, "results": rows}) + "\n")
            continue
        for r in results:
            score = r.score if hamming_bits is None else hamming_bits - r.score
            out.write(f"{query.qid} Q0 {r.id} {r.rank} {score:g} {tag}\n")
    return count
