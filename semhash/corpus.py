"""Corpora: documents with ids, optional labels and an optional train/test split.

Readers accept a bundled corpus name, a JSONL file (optionally gzipped) or a
folder of ``.txt`` files.  Every problem with the input is a ``CorpusError``
whose message names the file and, where there is one, the line.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

SPLITS = ("train", "test")
BUNDLED_DIR = Path(__file__).resolve().parent.parent / "corpora"


Document = tuple[str, str, tuple[str, ...], str]  # id, text, labels, split
_JSONL = (".jsonl", ".jsonl.gz", ".json", ".ndjson")
_CSV = (".csv", ".csv.gz")


class CorpusError(ValueError):
    """The input corpus cannot be read; the message names file and line."""


@dataclass(frozen=True)
class Corpus:
    """Parallel lists of documents.

    ``labels[i]`` is a tuple of label strings (empty when unlabelled);
    ``splits[i]`` is ``"train"``, ``"test"`` or ``""`` when the corpus has no split.
    """

    ids: list[str]
    texts: list[str]
    labels: list[tuple[str, ...]]
    splits: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def has_labels(self) -> bool:
        return any(self.labels)

    def subset(self, positions: Sequence[int]) -> Corpus:
        """The documents at ``positions``, in that order."""
        return Corpus(
            ids=[self.ids[i] for i in positions],
            texts=[self.texts[i] for i in positions],
            labels=[self.labels[i] for i in positions],
            splits=[self.splits[i] for i in positions],
        )

    def split(self, name: str) -> Corpus:
        """The documents of one split (``"train"`` or ``"test"``)."""
        return self.subset([i for i, s in enumerate(self.splits) if s == name])

    def held_out(self, fraction: float, seed: int) -> Corpus:
        """The corpus with ``fraction`` of its documents, drawn by ``seed``, as ``test``.

        The rest become ``train``.  Only for a corpus with no split at all (a folder
        of ``.txt`` files, a JSONL without the field): one that has a split keeps it.
        """
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"the held-out fraction must be in (0, 1), got {fraction}")
        if any(self.splits):
            return self
        n_test = max(1, round(fraction * len(self)))
        test = set(np.random.default_rng(seed).choice(len(self), n_test, replace=False).tolist())
        splits = ["test" if i in test else "train" for i in range(len(self))]
        return Corpus(self.ids, self.texts, self.labels, splits)


def bundled_corpora() -> list[str]:
    """Names of the corpora shipped in ``corpora/``."""
    return sorted(p.name.removesuffix(".jsonl.gz") for p in BUNDLED_DIR.glob("*.jsonl.gz"))


def load_corpus(source: str | Path, labels_from_folders: bool = False) -> Corpus:
    """Read a bundled corpus by name, a ``.jsonl``/``.csv`` file (maybe gzipped) or a folder.

    >>> load_corpus("20newsgroups").ids[0]
    'train/alt.atheism/49960'
    """
    path = corpus_path(source)
    corpus = _columns(list(documents(path, labels_from_folders)))
    if not corpus.ids:
        raise CorpusError(f"{path}: the corpus is empty")
    _check_unique(corpus.ids, path)
    return corpus


def iter_corpus(
    source: str | Path, chunk_size: int, labels_from_folders: bool = False
) -> Iterator[Corpus]:
    """The corpus in chunks of ``chunk_size`` documents, read as it goes, never whole.

    Ids are checked for duplicates across chunks (only the ids are kept in memory).
    """
    path = corpus_path(source)
    seen: set[str] = set()
    chunk: list[Document] = []
    for document in documents(path, labels_from_folders):
        if document[0] in seen:
            raise CorpusError(f"{path}: duplicate document id {document[0]!r}")
        seen.add(document[0])
        chunk.append(document)
        if len(chunk) == chunk_size:
            yield _columns(chunk)
            chunk = []
    if chunk:
        yield _columns(chunk)
    if not seen:
        raise CorpusError(f"{path}: the corpus is empty")


def corpus_path(source: str | Path) -> Path:
    """The file or folder ``source`` names: a path, or a bundled corpus's name."""
    path = Path(source)
    if not path.exists():
        bundled = BUNDLED_DIR / f"{source}.jsonl.gz"
        if bundled.exists():
            return bundled
        names = ", ".join(bundled_corpora()) or "none"
        raise CorpusError(f"{source}: no such file or folder, nor a bundled corpus ({names})")
    if path.is_dir() and (path / "manifest.json").exists():
        raise CorpusError(f"{path}: is a semhash index folder, not a corpus")
    if not path.is_dir() and not path.name.endswith(_JSONL + _CSV):
        raise CorpusError(f"{path}: unknown corpus format (expected .jsonl, .csv or a folder)")
    return path


def documents(path: Path, labels_from_folders: bool = False) -> Iterator[Document]:
    """Each document of a corpus file or folder as (id, text, labels, split), in order."""
    if path.is_dir():
        return _read_folder(path, labels_from_folders)
    if path.name.endswith(_JSONL):
        return _read_jsonl(path)
    return _read_csv(path)


def _columns(rows: Sequence[Document]) -> Corpus:
    return Corpus(
        [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows]
    )


def _read_jsonl(path: Path) -> Iterator[Document]:
    for line_no, line in _lines(path):
        if not line.strip():
            continue
        where = f"{path}, line {line_no}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise CorpusError(f"{where}: not valid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise CorpusError(f"{where}: expected a JSON object, got {type(row).__name__}")
        yield (
            _field_id(row, where, default=str(line_no)),
            _field_text(row, where),
            _field_labels(row, where),
            _field_split(row, where),
        )


def _read_csv(path: Path) -> Iterator[Document]:
    """A header row naming ``text`` (and optionally ``id``, ``labels``, ``split``).

    Several labels in one cell are separated by ``;``.
    """
    reader = csv.DictReader(line for _, line in _lines(path))
    try:
        yield from _csv_rows(reader, path)
    except csv.Error as err:
        raise CorpusError(f"{path}, line {reader.line_num}: not valid CSV ({err})") from None


def _csv_rows(reader: csv.DictReader, path: Path) -> Iterator[Document]:
    if reader.fieldnames is None or "text" not in reader.fieldnames:
        raise CorpusError(f"{path}, line 1: the header has no 'text' column")
    for row in reader:
        where = f"{path}, line {reader.line_num}"
        if row["text"] is None:
            raise CorpusError(f"{where}: fewer cells than the header names")
        cell = row.get("labels") or ""
        yield (
            row.get("id") or str(reader.line_num),
            row["text"],
            tuple(label.strip() for label in cell.split(";") if label.strip()),
            _field_split({"split": row.get("split") or ""}, where),
        )


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Numbered lines, decoded as UTF-8 with bad bytes replaced (and counted)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    replaced = 0
    try:
        with opener(path, "rb") as handle:
            for line_no, raw in enumerate(handle, start=1):
                line = raw.decode("utf-8", errors="replace")
                replaced += line.count("\ufffd") - raw.count(b"\xef\xbf\xbd")
                yield line_no, line
    except (OSError, EOFError) as err:
        raise CorpusError(f"{path}: cannot read ({err})") from None
    if replaced:
        logger.warning("%s: replaced %d bytes that were not UTF-8", path, replaced)


def _field_id(row: dict, where: str, default: str) -> str:
    value = row.get("id", default)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise CorpusError(f"{where}: field 'id' must be a string or an integer")
    return str(value)


def _field_text(row: dict, where: str) -> str:
    if "text" not in row:
        raise CorpusError(f"{where}: missing field 'text'")
    if not isinstance(row["text"], str):
        raise CorpusError(f"{where}: field 'text' must be a string")
    return row["text"]


def _field_labels(row: dict, where: str) -> tuple[str, ...]:
    value = row.get("labels", row.get("label", []))
    if isinstance(value, str | int):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        raise CorpusError(f"{where}: field 'labels' must be a list of strings")
    return tuple(str(v) for v in value)


def _field_split(row: dict, where: str) -> str:
    value = row.get("split", "")
    if value not in ("", *SPLITS):
        raise CorpusError(f"{where}: field 'split' must be 'train' or 'test', got {value!r}")
    return str(value)


def _read_folder(root: Path, labels_from_folders: bool) -> Iterator[Document]:
    for p in sorted(p for p in root.rglob("*.txt") if p.is_file()):
        raw = p.read_bytes()
        text = raw.decode("utf-8", errors="replace")
        if "\ufffd" in text and b"\xef\xbf\xbd" not in raw:
            logger.warning("%s: replaced bytes that were not UTF-8", p)
        label = (p.parent.name,) if labels_from_folders and p.parent != root else ()
        yield p.relative_to(root).as_posix(), text, label, ""


def _check_unique(ids: list[str], path: Path) -> None:
    seen: set[str] = set()
    for doc_id in ids:
        if doc_id in seen:
            raise CorpusError(f"{path}: duplicate document id {doc_id!r}")
        seen.add(doc_id)
