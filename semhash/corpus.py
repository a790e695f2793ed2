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

logger = logging.getLogger(__name__)

SPLITS = ("train", "test")
BUNDLED_DIR = Path(__file__).resolve().parent.parent / "corpora"


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


def bundled_corpora() -> list[str]:
    """Names of the corpora shipped in ``corpora/``."""
    return sorted(p.name.removesuffix(".jsonl.gz") for p in BUNDLED_DIR.glob("*.jsonl.gz"))


def load_corpus(source: str | Path, labels_from_folders: bool = False) -> Corpus:
    """Read a bundled corpus by name, a ``.jsonl``/``.csv`` file (maybe gzipped) or a folder.

    >>> load_corpus("20newsgroups").ids[0]
    'train/alt.atheism/49960'
    """
    path = Path(source)
    if not path.exists():
        bundled = BUNDLED_DIR / f"{source}.jsonl.gz"
        if bundled.exists():
            path = bundled
        else:
            names = ", ".join(bundled_corpora()) or "none"
            raise CorpusError(f"{source}: no such file or folder, nor a bundled corpus ({names})")
    if path.is_dir() and (path / "manifest.json").exists():
        raise CorpusError(f"{path}: is a semhash index folder, not a corpus")
    if path.is_dir():
        corpus = _read_folder(path, labels_from_folders)
    elif path.name.endswith((".jsonl", ".jsonl.gz", ".json", ".ndjson")):
        corpus = _read_jsonl(path)
    elif path.name.endswith((".csv", ".csv.gz")):
        corpus = _read_csv(path)
    else:
        raise CorpusError(f"{path}: unknown corpus format (expected .jsonl, .csv or a folder)")
    if not corpus.ids:
        raise CorpusError(f"{path}: the corpus is empty")
    _check_unique(corpus.ids, path)
    return corpus


def _read_jsonl(path: Path) -> Corpus:
    ids, texts, labels, splits = [], [], [], []
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
        ids.append(_field_id(row, where, default=str(line_no)))
        texts.append(_field_text(row, where))
        labels.append(_field_labels(row, where))
        splits.append(_field_split(row, where))
    return Corpus(ids, texts, labels, splits)


def _read_csv(path: Path) -> Corpus:
    """A header row naming ``text`` (and optionally ``id``, ``labels``, ``split``).

    Several labels in one cell are separated by ``;``.
    """
    reader = csv.DictReader(line for _, line in _lines(path))
    try:
        return _csv_rows(reader, path)
    except csv.Error as err:
        raise CorpusError(f"{path}, line {reader.line_num}: not valid CSV ({err})") from None


def _csv_rows(reader: csv.DictReader, path: Path) -> Corpus:
    if reader.fieldnames is None or "text" not in reader.fieldnames:
        raise CorpusError(f"{path}, line 1: the header has no 'text' column")
    ids, texts, labels, splits = [], [], [], []
    for row in reader:
        where = f"{path}, line {reader.line_num}"
        if row["text"] is None:
            raise CorpusError(f"{where}: fewer cells than the header names")
        ids.append(row.get("id") or str(reader.line_num))
        texts.append(row["text"])
        cell = row.get("labels") or ""
        labels.append(tuple(label.strip() for label in cell.split(";") if label.strip()))
        splits.append(_field_split({"split": row.get("split") or ""}, where))
    return Corpus(ids, texts, labels, splits)


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


def _read_folder(root: Path, labels_from_folders: bool) -> Corpus:
    files = sorted(p for p in root.rglob("*.txt") if p.is_file())
    ids = [p.relative_to(root).as_posix() for p in files]
    texts = []
    for p in files:
        raw = p.read_bytes()
        text = raw.decode("utf-8", errors="replace")
        if "\ufffd" in text and b"\xef\xbf\xbd" not in raw:
            logger.warning("%s: replaced bytes that were not UTF-8", p)
        texts.append(text)
    labels: list[tuple[str, ...]] = [
        (p.parent.name,) if labels_from_folders and p.parent != root else () for p in files
    ]
    return Corpus(ids, texts, labels, [""] * len(files))


def _check_unique(ids: list[str], path: Path) -> None:
    seen: set[str] = set()
    for doc_id in ids:
        if doc_id in seen:
            raise CorpusError(f"{path}: duplicate document id {doc_id!r}")
        seen.add(doc_id)
