"""The Milvus collection of an index kept equal to its live version, through any crash.

A change to an index with a Milvus backend writes the collection first and the
local version after; a writer killed in between would leave the two apart.  So
before touching the collection, the writer appends the ids it is about to
change to ``milvus-intent.jsonl`` in the index folder (flushed to disk), and
deletes the file once the new local version is live.  Whoever finds the file
(the next writer, or ``semhash check --repair``) makes the collection agree with
the live version for exactly those ids: an id the version holds is written
with its code and labels, any other is deleted.  Whether the crash came before
or after the local save, the collection then holds what the live version holds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from semhash.engine import SemanticIndex

INTENT = "milvus-intent.jsonl"


def record(folder: Path, ids: Iterable[str]) -> None:
    """Note, durably, that the collection's entries for ``ids`` are about to change."""
    line = json.dumps({"ids": list(ids)}) + "\n"
    with open(Path(folder) / INTENT, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def pending(folder: Path) -> list[str]:
    """Ids of changes begun and not known to be finished (none when the file is absent).

    A torn last line was never followed by a write to Milvus: it is skipped.
    """
    try:
        lines = (Path(folder) / INTENT).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    ids: dict[str, None] = {}
    for line in lines:
        try:
            ids.update(dict.fromkeys(json.loads(line)["ids"]))
        except (ValueError, KeyError, TypeError):
            continue
    return list(ids)


def clear(folder: Path) -> None:
    """The change is live locally: forget it."""
    try:
        os.unlink(Path(folder) / INTENT)
    except FileNotFoundError:
        pass


def reconcile(index: SemanticIndex, ids: Iterable[str]) -> int:
    """Make the collection agree with ``index`` for ``ids``; returns how many were written."""
    ids = list(dict.fromkeys(ids))
    positions = index.docs.positions(ids)
    held = positions >= 0
    keep = positions[held]
    if len(keep):
        records = index.docs.records(keep)
        index.milvus.upsert(
            [r.id for r in records], np.asarray(index.codes)[keep], [r.labels for r in records]
        )
    gone = [i for i, h in zip(ids, held, strict=True) if not h]
    index.milvus.delete(gone)
    return len(ids)


class Comparison(NamedTuple):
    """How the collection differs from the index's live version."""

    n_milvus: int
    n_index: int
    extra: list[str]  # only in Milvus
    missing: list[str]  # only in the index
    wrong: list[str]  # in both, with another code in Milvus

    def ids(self) -> list[str]:
        return self.extra + self.missing + self.wrong

    def problems(self) -> list[str]:
        found = []
        if self.n_milvus != self.n_index:
            found.append(f"Milvus holds {self.n_milvus} documents, the index {self.n_index}")
        for name, which in (
            ("only in Milvus", self.extra),
            ("missing from Milvus", self.missing),
            ("with another code in Milvus", self.wrong),
        ):
            if which:
                shown = ", ".join(repr(i) for i in which[:5]) + (" ..." if len(which) > 5 else "")
                found.append(f"{len(which)} document(s) {name}: {shown}")
        return found


def compare(index: SemanticIndex, sample: int | None = None, seed: int = 0) -> Comparison:
    """Counts and ids of both sides, and the codes of every shared document (or a sample)."""
    mirror = index.milvus
    theirs = set(mirror.ids())
    ours = index.ids
    mine = set(ours)
    both = [i for i in ours if i in theirs]
    if sample is not None and sample < len(both):
        picked = np.random.default_rng(seed).choice(len(both), sample, replace=False)
        both = [both[i] for i in np.sort(picked)]
    stored = mirror.codes_of(both)
    codes = np.asarray(index.codes)[index.docs.positions(both)] if both else []
    wrong = [i for i, c in zip(both, codes, strict=True) if stored.get(i) != mirror.as_bytes(c)]
    return Comparison(
        len(theirs), len(ours), sorted(theirs - mine), [i for i in ours if i not in theirs], wrong
    )
