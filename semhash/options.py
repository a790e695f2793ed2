"""What a search asks for, checked once, whichever door it came through (Python, CLI, HTTP)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

ENGINES = ("auto", "scan", "buckets", "mih")  # the exact Hamming searches
TWO_STAGE = "two-stage"
SEARCH_ENGINES = (*ENGINES, TWO_STAGE)
RANKS = ("fused", "hamming", "cosine", "dense")
DEPTH = 3000  # Hamming candidates a re-ranking reads by default (see semhash.rank)
MAX_PENDING = 64  # HTTP searches running or waiting in one server process; more get 503


class QueryError(ValueError):
    """A request cannot be served: unknown or duplicate id, no known words, bad k or radius."""


@dataclass(frozen=True)
class SearchOptions:
    """How to search and rank.

    ``rank``:
      - ``fused`` (the default): the ``depth`` nearest codes by Hamming distance,
        ordered by the cosine of the real-valued codes (the query's refined by its
        best candidates') plus the BM25 score of the query's words on them, scaled by
        the best among them (:mod:`semhash.rank`); scores are the fused values.
      - ``hamming``: exact Hamming order, ties by position, as the literature's protocol
        measures; scores are distances.
      - ``cosine``: the ``depth`` nearest codes by Hamming distance, ordered by cosine.
      - ``dense``: the cosine of the real-valued codes over the whole index (faiss).

    ``radius`` keeps only candidates within that Hamming distance (not with ``dense``).

    ``engine`` picks the Hamming search: "auto" (the planner's choice), "scan",
    "buckets", "mih" (all exact) or "two-stage" (approximate).  With a Milvus backend,
    "auto" searches the collection, where ``filter`` (a Milvus boolean expression over
    ``id`` and ``labels``) restricts the documents.
    """

    k: int = 10
    rank: str = "fused"
    depth: int = 0  # candidates for fused and cosine ranking (0: DEPTH, at least k)
    radius: int | None = None
    engine: str = "auto"
    filter: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.k, int) or self.k < 1:
            raise QueryError(f"k must be at least 1, got {self.k}")
        if self.rank not in RANKS:
            raise QueryError(f"rank must be one of {', '.join(RANKS)}, got {self.rank!r}")
        if not isinstance(self.depth, int) or self.depth < 0:
            raise QueryError(f"depth must be non-negative, got {self.depth}")
        if self.radius is not None and (not isinstance(self.radius, int) or self.radius < 0):
            raise QueryError(f"radius must be non-negative, got {self.radius}")
        if self.engine not in SEARCH_ENGINES:
            raise QueryError(f"engine must be one of {', '.join(SEARCH_ENGINES)}")
        if self.rank == "dense" and (self.radius is not None or self.depth):
            raise QueryError("dense ranking takes neither a radius nor a depth")
        if self.engine == TWO_STAGE and self.radius is not None:
            raise QueryError("two-stage search takes no radius")

    @classmethod
    def of(cls, options: SearchOptions | None = None, **changes: Any) -> SearchOptions:
        """``options`` (or the defaults) with ``changes``; an unknown name is a QueryError."""
        if not changes:  # already checked when made
            return options or cls()
        if unknown := sorted(set(changes) - _NAMES):
            raise QueryError(f"unknown search option {unknown[0]!r}")
        return cls(**changes) if options is None else replace(options, **changes)

    @property
    def candidates(self) -> int:
        """How many Hamming neighbours the search reads before ranking."""
        if self.rank in ("fused", "cosine"):
            return max(self.k, self.depth or DEPTH)
        return self.k

    def for_similar(self) -> SearchOptions:
        """One more result and candidate: the document itself comes back and is dropped."""
        return replace(self, k=self.k + 1, depth=self.depth + 1 if self.depth else 0)


_NAMES = frozenset(f.name for f in fields(SearchOptions))
