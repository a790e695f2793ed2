"""The indexed documents' ids, labels, splits and texts, by position.

Ids live in a fixed-width UTF-8 array (``ids.npy``, memory-mapped) beside their
sort order (``id_order.npy``), so finding a document by id is a binary search
and opening a large index reads nothing up front.  Each document's id, labels,
split and text are one JSON line of ``docs.jsonl``; ``doc_offsets.npy`` says
where each line starts.  A search result needs only a document's labels, title and
snippet: those are made once, at indexing, as a short JSON line of
``summaries.jsonl`` (offsets in ``summary_offsets.npy``), so showing a result reads
neither the text nor its headers.  Indexes saved before summaries make them from
the text when asked, and write them with their next save.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson

from semhash.corpus import Corpus
from semhash.store import versions
from semhash.text import heading


class Record(NamedTuple):
    """One document's metadata and text, as stored."""

    id: str
    labels: tuple[str, ...]
    split: str
    text: str


class Summary(NamedTuple):
    """What a search result shows of a document."""

    labels: tuple[str, ...]
    title: str
    snippet: str


class _Lines(NamedTuple):
    """JSON lines in one buffer: line i is ``data[offsets[i]:offsets[i + 1]]``."""

    data: np.ndarray  # (bytes,) uint8, in memory or memory-mapped
    offsets: np.ndarray  # (lines + 1,) int64


class Documents:
    """Per-position document metadata; appends and removals never rewrite old lines.

    >>> docs = Documents.from_corpus(Corpus(["a", "b"], ["x", "y"], [("l",), ()], ["", ""]))
    >>> docs.position("b"), docs.record(0).labels
    (1, ('l',))
    """

    def __init__(
        self,
        ids: np.ndarray,
        chunks: list[_Lines],
        rows: np.ndarray,
        summaries: list[_Lines | None] | None = None,
    ) -> None:
        self._ids = ids  # (n,) S<width>: UTF-8 ids by position
        self._chunks = chunks
        # Each chunk's summary lines, line for line; None where saved without them.
        self._summaries: list[_Lines | None] = summaries or [None] * len(chunks)
        self._starts = np.cumsum([0] + [len(c.offsets) - 1 for c in chunks])
        self._rows = rows  # (n,) int64: line number (over all chunks) of each position
        self._order: np.ndarray | None = None  # (n,) int64: positions sorted by id

    @classmethod
    def from_corpus(cls, corpus: Corpus) -> Documents:
        lines = [
            _line(Record(i, lab, s, t))
            for i, lab, s, t in zip(
                corpus.ids, corpus.labels, corpus.splits, corpus.texts, strict=True
            )
        ]
        summaries = [
            _summary_line(_summarise(lab, t))
            for lab, t in zip(corpus.labels, corpus.texts, strict=True)
        ]
        return cls(
            _encode_ids(corpus.ids), [_joined(lines)], np.arange(len(lines)), [_joined(summaries)]
        )

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def ids(self) -> list[str]:
        return [_decode(raw) for raw in self._ids.tolist()]

    def id(self, position: int) -> str:
        return _decode(bytes(self._ids[position]))

    def record(self, position: int) -> Record:
        raw = self._line(self._chunks, position)
        assert raw is not None  # every chunk has its document lines
        return _record(raw, f"document {position + 1}")

    def records(self, positions: np.ndarray | None = None) -> list[Record]:
        """The documents at ``positions`` (all of them by default), their lines read at once."""
        positions = np.arange(len(self)) if positions is None else np.asarray(positions)
        raws = self._lines(self._chunks, positions)
        assert all(raw is not None for raw in raws)  # every chunk has its document lines
        return [
            _record(raw, f"document {p + 1}")  # type: ignore[arg-type]
            for p, raw in zip(positions.tolist(), raws, strict=True)
        ]

    def summary(self, position: int) -> Summary:
        """The document's labels, title and snippet, read from its short summary line."""
        raw = self._line(self._summaries, position)
        if raw is None:  # saved before summaries
            record = self.record(position)
            return _summarise(record.labels, record.text)
        try:
            labels, title, snippet = json.loads(raw.decode("utf-8"))
            return Summary(tuple(labels), title, snippet)
        except (ValueError, TypeError):
            raise versions.IndexFormatError(
                f"summaries.jsonl, document {position + 1}: not a summary (corrupted?)"
            ) from None

    def summaries(self, positions: np.ndarray) -> list[tuple[str, Summary]]:
        """Each position's id and summary: what the results of one query show.

        One JSON parse (orjson) for all the lines: a query's ten results cost one call, not
        ten; a line that will not parse is read again alone, to name it.
        """
        ids = [_decode(raw) for raw in self._ids[positions].tolist()]
        lines = self._lines(self._summaries, positions)
        if any(line is None for line in lines):  # saved before summaries
            return [(i, self.summary(int(p))) for i, p in zip(ids, positions, strict=True)]
        try:
            parsed = orjson.loads(b"[" + b",".join(lines) + b"]")  # type: ignore[arg-type]
            found = [Summary(tuple(labels), title, snippet) for labels, title, snippet in parsed]
        except (ValueError, TypeError):
            found = [self.summary(int(p)) for p in positions]  # names the corrupted line
        return list(zip(ids, found, strict=True))

    def _line(self, chunks: Sequence[_Lines | None], position: int) -> bytes | None:
        """Line ``position`` of ``chunks`` (the documents' or the summaries'), None if absent."""
        return self._lines(chunks, np.array([position]))[0]

    def _lines(self, chunks: Sequence[_Lines | None], positions: np.ndarray) -> list[bytes | None]:
        """:meth:`_line` of each position, their chunks found in one search."""
        rows = self._rows[positions]
        found = np.searchsorted(self._starts, rows, "right") - 1
        out: list[bytes | None] = []
        for line, chunk in zip((rows - self._starts[found]).tolist(), found.tolist(), strict=True):
            part = chunks[chunk]  # None: a chunk saved without these lines
            span = None if part is None else part.offsets[line : line + 2].tolist()
            out.append(None if span is None else part.data[span[0] : span[1]].tobytes())
        return out

    def positions(self, doc_ids: Sequence[str]) -> np.ndarray:
        """Position of each id, -1 where it is not indexed: ``(len(doc_ids),)`` int64."""
        if len(self) == 0 or len(doc_ids) == 0:
            return np.full(len(doc_ids), -1, dtype=np.int64)
        order = self.order()
        wanted = _encode_ids(doc_ids)
        found = np.minimum(np.searchsorted(self._ids[order], wanted), len(order) - 1)
        hit = self._ids[order[found]] == wanted
        return np.where(hit, order[found], -1)

    def position(self, doc_id: str) -> int:
        """Position of one id, -1 when absent (a binary search: nothing is loaded)."""
        order, wanted = self.order(), doc_id.encode("utf-8")
        lo, hi = 0, len(order)
        while lo < hi:
            mid = (lo + hi) // 2
            if bytes(self._ids[order[mid]]) < wanted:
                lo = mid + 1
            else:
                hi = mid
        return int(order[lo]) if lo < len(order) and bytes(self._ids[order[lo]]) == wanted else -1

    def order(self) -> np.ndarray:
        if self._order is None:
            self._order = np.argsort(self._ids, kind="stable")
        return self._order

    def append(self, other: Documents) -> None:
        self._ids = np.concatenate([self._ids, other._ids])
        self._rows = np.concatenate([self._rows, other._rows + self._starts[-1]])
        self._chunks = self._chunks + other._chunks
        self._summaries = self._summaries + other._summaries
        self._starts = np.cumsum([0] + [len(c.offsets) - 1 for c in self._chunks])
        self._order = None

    def keep(self, mask: np.ndarray) -> None:
        """Drop the positions where ``mask`` is False; later positions move down."""
        self._ids = self._ids[mask]
        self._rows = self._rows[mask]
        self._order = None

    def writers(self) -> dict[str, versions.Writer]:
        self._make_summaries()
        return {
            "ids.npy": versions.save_array(self._ids),
            "id_order.npy": versions.save_array(self.order()),
            "docs.jsonl": lambda file: self._write_lines(self._chunks, file),
            "doc_offsets.npy": versions.save_array(self._offsets(self._chunks)),
            "summaries.jsonl": lambda file: self._write_lines(self._summaries, file),
            "summary_offsets.npy": versions.save_array(self._offsets(self._summaries)),
        }

    def _make_summaries(self) -> None:
        """Summary lines for the chunks saved without them (an index from before them)."""
        for i, lines in enumerate(self._summaries):
            if lines is None:
                data, offsets = self._chunks[i]
                records = (
                    _record(data[start:end].tobytes(), f"line {line + 1}")
                    for line, (start, end) in enumerate(zip(offsets[:-1], offsets[1:], strict=True))
                )
                self._summaries[i] = _joined(
                    [_summary_line(_summarise(r.labels, r.text)) for r in records]
                )

    def _offsets(self, chunks: Sequence[_Lines | None]) -> np.ndarray:
        """Where each position's line will start in the written file, and its end."""
        lengths = np.concatenate([np.diff(c.offsets) for c in chunks if c is not None])
        return np.concatenate([[0], np.cumsum(lengths[self._rows])]).astype(np.int64)

    def _write_lines(self, chunks: Sequence[_Lines | None], file: Path) -> None:
        """Copy each position's line in order, one slice per run of consecutive lines."""
        rows = self._rows
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        chunk_of = np.searchsorted(self._starts, rows, side="right") - 1
        breaks = np.union1d(breaks, np.flatnonzero(np.diff(chunk_of) != 0) + 1)
        with open(file, "wb") as handle:
            for run in np.split(np.arange(len(rows)), breaks) if len(rows) else []:
                chunk = int(chunk_of[run[0]])
                lines = chunks[chunk]
                assert lines is not None  # summaries are made before writing
                first = int(rows[run[0]] - self._starts[chunk])
                last = int(rows[run[-1]] - self._starts[chunk])
                handle.write(lines.data[lines.offsets[first] : lines.offsets[last + 1]].tobytes())

    @classmethod
    def open(cls, folder: Path, n_docs: int) -> Documents:
        """Memory-map the files of a saved version (``versions.IndexFormatError`` if wrong)."""
        ids = versions.load_array(folder / "ids.npy", "S", (n_docs,))
        order = versions.load_array(folder / "id_order.npy", np.int64, (n_docs,))
        lines = _open_lines(folder / "docs.jsonl", folder / "doc_offsets.npy", n_docs)
        summaries = None
        if (folder / "summaries.jsonl").exists():  # indexes saved before them have none
            summaries = _open_lines(
                folder / "summaries.jsonl", folder / "summary_offsets.npy", n_docs
            )
        docs = cls(ids, [lines], np.arange(n_docs), [summaries])
        docs._order = order
        return docs

    def problems(self) -> list[str]:
        """Internal inconsistencies (for ``semhash check``): ids, order and lines disagree."""
        found = []
        if not np.array_equal(np.sort(self.order()), np.arange(len(self))):
            found.append("id_order.npy is not a permutation of the positions")
        elif len(self) and np.any(self._ids[self.order()][1:] <= self._ids[self.order()][:-1]):
            found.append("ids.npy has duplicate ids or id_order.npy does not sort them")
        for position in range(len(self)):
            try:
                record, doc_id = self.record(position), self.id(position)
            except versions.IndexFormatError as err:
                return [*found, str(err)]
            if record.id != doc_id:
                found.append(f"docs.jsonl, line {position + 1}: id {record.id!r} is not ids.npy's")
                break
            try:
                summary = self.summary(position)
            except versions.IndexFormatError as err:
                return [*found, str(err)]
            if summary.labels != record.labels:
                found.append(f"summaries.jsonl, line {position + 1}: labels are not docs.jsonl's")
                break
        return found


def _record(raw: bytes, where: str) -> Record:
    try:
        obj = json.loads(raw.decode("utf-8"))  # str: json need not detect the encoding
        return Record(str(obj["id"]), tuple(obj["labels"]), obj["split"], obj["text"])
    except (ValueError, KeyError, TypeError):
        raise versions.IndexFormatError(
            f"docs.jsonl, {where}: not a document record (corrupted?)"
        ) from None


def _open_lines(file: Path, offsets_file: Path, n_lines: int) -> _Lines:
    offsets = versions.load_array(offsets_file, np.int64, (n_lines + 1,))
    size = file.stat().st_size
    if int(offsets[-1]) != size:
        raise versions.IndexFormatError(
            f"{file}: {size} bytes, {offsets_file.name} says {int(offsets[-1])}"
        )
    data = np.asarray(np.memmap(file, dtype=np.uint8, mode="r")) if size else np.zeros(0, np.uint8)
    return _Lines(data, offsets)


def _joined(lines: list[bytes]) -> _Lines:
    offsets = np.cumsum([0] + [len(line) for line in lines], dtype=np.int64)
    return _Lines(np.frombuffer(b"".join(lines), dtype=np.uint8), offsets)


def _summarise(labels: tuple[str, ...], text: str) -> Summary:
    return Summary(labels, *heading(text))


def _summary_line(summary: Summary) -> bytes:
    return (
        json.dumps([list(summary.labels), summary.title, summary.snippet], ensure_ascii=False)
        + "\n"
    ).encode("utf-8")


def _line(record: Record) -> bytes:
    obj: dict[str, Any] = record._asdict()
    obj["labels"] = list(record.labels)
    return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")


def _encode_ids(ids: Sequence[str]) -> np.ndarray:
    encoded = [doc_id.encode("utf-8") for doc_id in ids]
    width = max([len(e) for e in encoded] + [1])
    return np.array(encoded, dtype=f"S{width}")


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise versions.IndexFormatError(f"ids.npy: id {raw!r} is not UTF-8 (corrupted?)") from None
