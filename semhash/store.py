"""The index directory on disk: a manifest that describes and checksums every file.

Layout::

    manifest.json      magic, format version, configs, shapes, sha256 of each file
    model.safetensors  autoencoder weights (safetensors: loading runs no code)
    vocab.json         vocabulary and idf
    codes.npy          (n, words) uint64 packed binary codes
    activations.npy    (n, b) float32 code units, for dense search
    docs.jsonl.gz      one {"id", "labels", "split", "text"} per document

A save writes a complete new directory beside the target, fsyncs it, then
renames it into place, so a crash leaves the previous index (or none), never a
half-written one.  No file is ever unpickled.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

MAGIC = "semhash-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


class IndexFormatError(ValueError):
    """The index directory is missing, corrupted, foreign or of another format version."""


def write_index(
    path: Path,
    manifest: dict[str, Any],
    writers: dict[str, Callable[[Path], object]],
    overwrite: bool = False,
) -> None:
    """Write each file with its writer into a fresh folder, checksum them, swap it into place."""
    path = Path(path)
    check_target(path, overwrite)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        checksums = {}
        for name, write in writers.items():
            write(tmp / name)
            checksums[name] = _sha256(tmp / name)
        full = {"magic": MAGIC, "format_version": FORMAT_VERSION, **manifest, "files": checksums}
        (tmp / MANIFEST).write_text(json.dumps(full, indent=2, sort_keys=True))
        for file in tmp.iterdir():
            _fsync(file)
        _fsync(tmp)
        _swap_into_place(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_target(path: Path, overwrite: bool) -> None:
    """Refuse to write over a file, a foreign folder, or (without ``overwrite``) an index."""
    if path.is_file():
        raise IndexFormatError(f"{path}: is a file, expected a folder for the index")
    if path.is_dir() and any(path.iterdir()):
        if not (path / MANIFEST).exists():
            raise IndexFormatError(
                f"{path}: folder exists and is not a semhash index; not touching it"
            )
        if not overwrite:
            raise IndexFormatError(
                f"{path}: an index already exists there (--force / overwrite=True replaces it)"
            )


def _swap_into_place(tmp: Path, path: Path) -> None:
    if path.exists():
        old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(path, old)
        os.rename(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, path)
    _fsync(path.parent)


def read_manifest(path: Path, verify: bool = True) -> dict[str, Any]:
    """The manifest, after checking magic, version and (``verify``) every file's sha256."""
    path = Path(path)
    if not path.is_dir():
        what = "is a file, not an index folder" if path.exists() else "no such index folder"
        raise IndexFormatError(f"{path}: {what}")
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise IndexFormatError(f"{path / MANIFEST}: missing; not a semhash index") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise IndexFormatError(f"{path / MANIFEST}: corrupted (not JSON)") from None
    if not isinstance(manifest, dict) or manifest.get("magic") != MAGIC:
        raise IndexFormatError(f"{path / MANIFEST}: not a semhash index manifest")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise IndexFormatError(
            f"{path}: index format version {version}; this semhash reads version {FORMAT_VERSION}"
        )
    if verify:
        for name, expected in manifest["files"].items():
            file = path / name
            if not file.exists():
                raise IndexFormatError(f"{file}: missing from the index")
            if _sha256(file) != expected:
                raise IndexFormatError(f"{file}: checksum mismatch (corrupted or modified)")
    return manifest


def save_array(array: np.ndarray) -> Callable[[Path], object]:
    return lambda file: np.save(file, array, allow_pickle=False)


def load_array(file: Path, mmap: bool = True) -> np.ndarray:
    try:
        return np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise IndexFormatError(f"{file}: not a readable array ({err})") from None


def save_json(obj: Any) -> Callable[[Path], object]:
    return lambda file: file.write_text(json.dumps(obj))


def load_json(file: Path) -> Any:
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError) as err:
        raise IndexFormatError(f"{file}: not readable JSON ({err})") from None


def save_tensors(tensors: dict[str, np.ndarray]) -> Callable[[Path], object]:
    return lambda file: save_file(tensors, str(file))


def load_tensors(file: Path) -> dict[str, np.ndarray]:
    try:
        return load_file(str(file))
    except Exception as err:  # safetensors raises its own error types
        raise IndexFormatError(f"{file}: not a readable safetensors file ({err})") from None


def save_jsonl_gz(rows: Iterable[dict[str, Any]]) -> Callable[[Path], object]:
    def write(file: Path) -> None:
        with gzip.open(file, "wt", encoding="utf-8", compresslevel=6) as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")

    return write


def load_jsonl_gz(file: Path) -> list[dict[str, Any]]:
    try:
        with gzip.open(file, "rt", encoding="utf-8") as handle:
            return [json.loads(line) for line in handle]
    except (OSError, EOFError, ValueError) as err:
        raise IndexFormatError(f"{file}: not readable JSON lines ({err})") from None


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
