"""The index folder on disk: immutable versions, switched by one atomic manifest rename.

Layout (format version 2)::

    manifest.json     the commit record: magic, format version, configs, statistics,
                      which version folder is live, sha256 and size of each of its files
    v000007/          the live version's files (never modified once written)
    v000006/          the previous version, kept so that readers still opening it finish
    .lock             writers hold an exclusive lock on it (readers never lock)

A write builds a complete new version folder, fsyncs it, then replaces
``manifest.json`` with ``os.replace``: readers see the old version or the new one
whole, and a writer killed at any moment leaves the previous version readable.
A brand-new index is built in a hidden folder beside the target and renamed into
place.  No file is ever unpickled.  Format version 1 (every file at the top level)
is still read.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from safetensors.numpy import load_file, save_file

MAGIC = "semhash-index"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MANIFEST = "manifest.json"
LOCK = ".lock"
# Files up to this size are checksummed on every load; larger ones by ``semhash check``.
VERIFY_ON_LOAD_BYTES = 64 << 20
_VERSION_DIR = re.compile(r"v\d{6}")
_V1_FILES = ("model.safetensors", "vocab.json", "codes.npy", "activations.npy", "docs.jsonl.gz")
_held_locks: set[Path] = set()

Writer = Callable[[Path], object]


class IndexFormatError(ValueError):
    """The index folder is missing, corrupted, foreign or of another format version."""


class Version(NamedTuple):
    """One readable state of an index: its manifest and the folder holding its files."""

    manifest: dict[str, Any]
    folder: Path


def write_index(
    path: Path, manifest: dict[str, Any], writers: dict[str, Writer], overwrite: bool = False
) -> dict[str, Any]:
    """Write a new version of the index at ``path`` and make it live; returns its manifest."""
    path = Path(path)
    check_target(path, overwrite)
    if not path.exists():
        return _create(path, manifest, writers)
    with lock(path):
        live = read_version(path).manifest
        _remove_stale(path, keep={str(live.get("data")), _previous_data(live)})  # a crash's debris
        number = int(live.get("version", 0)) + 1
        data = f"v{number:06d}"
        staging = path / f"{data}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            files = _write_files(staging, writers)
            os.rename(staging, path / data)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        full = _commit(path, {**manifest, "version": number, "data": data, "files": files})
        _remove_stale(path, keep={data, _previous_data(full)})
        return full


def _create(path: Path, manifest: dict[str, Any], writers: dict[str, Writer]) -> dict[str, Any]:
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        files = _write_files(tmp / "v000001", writers)
        full = _commit(tmp, {**manifest, "version": 1, "data": "v000001", "files": files})
        (tmp / LOCK).touch()
        _fsync(tmp)
        os.rename(tmp, path)
        _fsync(path.parent)
        return full
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_files(folder: Path, writers: dict[str, Writer]) -> dict[str, dict[str, Any]]:
    folder.mkdir()
    files = {}
    for name, write in writers.items():
        write(folder / name)
        _fsync(folder / name)
        files[name] = {"sha256": sha256(folder / name), "bytes": (folder / name).stat().st_size}
    _fsync(folder)
    return files


def _commit(path: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Atomically replace ``path/manifest.json``: the moment the new version goes live."""
    previous = _previous_data_of(path)
    full = {"magic": MAGIC, "format_version": FORMAT_VERSION, **manifest, "previous": previous}
    tmp = path / f"{MANIFEST}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_text(json.dumps(full, indent=2, sort_keys=True))
        _fsync(tmp)
        os.replace(tmp, path / MANIFEST)
        _fsync(path)
    finally:
        tmp.unlink(missing_ok=True)
    return full


def _previous_data_of(path: Path) -> str | None:
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest.get("data") if isinstance(manifest, dict) else None


def _previous_data(manifest: dict[str, Any]) -> str:
    return str(manifest.get("previous") or "")


def _remove_stale(path: Path, keep: set[str]) -> None:
    """Delete version folders other than ``keep``, unfinished writes and format-1 files."""
    for entry in path.iterdir():
        stale_version = _VERSION_DIR.fullmatch(entry.name) and entry.name not in keep
        if stale_version or ".tmp-" in entry.name or entry.name in _V1_FILES:
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


@contextlib.contextmanager
def lock(path: Path) -> Iterator[None]:
    """Hold the index's writer lock (re-entrant within this process)."""
    key = Path(path).resolve()
    if key in _held_locks:
        yield
        return
    with open(key / LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        _held_locks.add(key)
        try:
            yield
        finally:
            _held_locks.discard(key)
            fcntl.flock(handle, fcntl.LOCK_UN)


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


def read_version(path: Path) -> Version:
    """The live version's manifest (magic and format version checked) and folder."""
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
    if version not in READABLE_VERSIONS:
        raise IndexFormatError(
            f"{path}: index format version {version}; this semhash reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))} (a newer semhash wrote it?)"
        )
    if not isinstance(manifest.get("files"), dict):
        raise IndexFormatError(f"{path / MANIFEST}: lists no files")
    data = manifest.get("data", "")
    if version >= 2 and not (isinstance(data, str) and _VERSION_DIR.fullmatch(data)):
        raise IndexFormatError(f"{path / MANIFEST}: names no version folder")
    folder = path / data if version >= 2 else path
    return Version(manifest, folder)


def verify_files(version: Version, limit: int | None = VERIFY_ON_LOAD_BYTES) -> None:
    """Raise on the first file that is missing, of the wrong size or (up to ``limit``) altered."""
    found = file_problems(version, limit)
    if found:
        raise IndexFormatError(found[0])


def file_problems(version: Version, limit: int | None = VERIFY_ON_LOAD_BYTES) -> list[str]:
    """Each file missing, of another size than recorded, or (up to ``limit`` bytes) altered."""
    found = []
    for name, expected in version.manifest["files"].items():
        file = version.folder / name
        if isinstance(expected, str):  # format 1 recorded only the checksum
            expected = {"sha256": expected, "bytes": None}
        well_formed = isinstance(expected, dict) and {"sha256", "bytes"} <= expected.keys()
        if not well_formed or "/" in name or name.startswith("."):
            raise IndexFormatError(f"{MANIFEST}: bad file entry {name!r}")
        try:
            size = file.stat().st_size
        except FileNotFoundError:
            found.append(f"{file}: missing from the index")
            continue
        if expected["bytes"] is not None and size != expected["bytes"]:
            recorded = expected["bytes"]
            found.append(f"{file}: {size} bytes, the manifest says {recorded} (truncated?)")
        elif (limit is None or size <= limit) and sha256(file) != expected["sha256"]:
            found.append(f"{file}: checksum mismatch (corrupted or modified)")
    return found


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def save_array(array: np.ndarray) -> Writer:
    return lambda file: np.save(file, array, allow_pickle=False)


def load_array(
    file: Path, dtype: np.dtype | type | str, shape: tuple[int | None, ...], mmap: bool = True
) -> np.ndarray:
    """A ``.npy`` array of ``dtype`` and ``shape`` (None: any length), memory-mapped."""
    try:
        array = np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError) as err:
        raise IndexFormatError(f"{file}: not a readable array ({err})") from None
    kind_ok = array.dtype == np.dtype(dtype) or (np.dtype(dtype).kind == "S" == array.dtype.kind)
    shape_ok = array.ndim == len(shape) and all(
        want is None or got == want for got, want in zip(array.shape, shape, strict=True)
    )
    if not (kind_ok and shape_ok):
        raise IndexFormatError(
            f"{file}: expected a {np.dtype(dtype)} array of shape {shape}, "
            f"got {array.dtype} {array.shape}"
        )
    return np.asarray(array)  # the same mapped memory, without np.memmap's per-index cost


def save_json(obj: Any) -> Writer:
    return lambda file: file.write_text(json.dumps(obj))


def load_json(file: Path) -> Any:
    try:
        return json.loads(file.read_text())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as err:
        raise IndexFormatError(f"{file}: not readable JSON ({err})") from None


def save_tensors(tensors: dict[str, np.ndarray]) -> Writer:
    return lambda file: save_file(tensors, str(file))


def load_tensors(file: Path) -> dict[str, np.ndarray]:
    """Weights from a safetensors file: a header and raw numbers, never code."""
    if not file.exists():
        raise FileNotFoundError(file)
    try:
        return load_file(str(file))
    except Exception as err:  # safetensors raises its own error types
        raise IndexFormatError(f"{file}: not a readable safetensors file ({err})") from None


def sha256(file: Path) -> str:
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
