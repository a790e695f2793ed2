import json

import numpy as np
import pytest

from semhash import IndexFormatError, SemanticIndex


def results(index):
    return [
        [(r.id, r.score) for r in rs]
        for rs in index.search(["space shuttle orbit", "windows driver"], k=20)
    ]


def test_round_trip_gives_identical_search_results(trained_index, saved_index) -> None:
    loaded = SemanticIndex.load(saved_index)
    assert np.array_equal(loaded.codes, trained_index.codes)
    assert results(loaded) == results(trained_index)
    assert loaded.similar(trained_index.ids[0], k=5) == trained_index.similar(
        trained_index.ids[0], k=5
    )
    manifest = json.loads((saved_index / "manifest.json").read_text())
    assert manifest["n_docs"] == len(trained_index) and manifest["n_bits"] == 32
    assert set(manifest["files"]) == {
        "model.safetensors",
        "vocab.json",
        "codes.npy",
        "activations.npy",
        "docs.jsonl.gz",
    }


@pytest.mark.parametrize("name", ["codes.npy", "model.safetensors", "docs.jsonl.gz", "vocab.json"])
def test_a_corrupted_file_is_detected_and_named(saved_index, tmp_path, name) -> None:
    copy = tmp_path / "copy"
    SemanticIndex.load(saved_index).save(copy)
    data = bytearray((copy / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / name).write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match=f"{name}: checksum mismatch"):
        SemanticIndex.load(copy)


def test_truncated_manifest_and_other_versions_are_refused(saved_index, tmp_path) -> None:
    copy = tmp_path / "copy"
    SemanticIndex.load(saved_index).save(copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(IndexFormatError, match="format version 99; this semhash reads version 1"):
        SemanticIndex.load(copy)
    (copy / "manifest.json").write_text(json.dumps(manifest)[:40])
    with pytest.raises(IndexFormatError, match="manifest.json: corrupted"):
        SemanticIndex.load(copy)
    (copy / "manifest.json").write_text(json.dumps({"magic": "something else"}))
    with pytest.raises(IndexFormatError, match="not a semhash index manifest"):
        SemanticIndex.load(copy)


def test_missing_folder_file_instead_of_folder(tmp_path) -> None:
    with pytest.raises(IndexFormatError, match="no such index folder"):
        SemanticIndex.load(tmp_path / "nothing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(IndexFormatError, match="is a file, not an index folder"):
        SemanticIndex.load(tmp_path / "file")
    with pytest.raises(IndexFormatError, match="not a semhash index"):
        SemanticIndex.load(tmp_path)


def test_save_never_overwrites_unasked_and_leaves_no_temporary_folders(
    trained_index, tmp_path
) -> None:
    target = tmp_path / "idx"
    trained_index.save(target)
    before = (target / "codes.npy").read_bytes()
    with pytest.raises(IndexFormatError, match="an index already exists"):
        trained_index.save(target)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "mine.txt").write_text("keep me")
    with pytest.raises(IndexFormatError, match="not a semhash index; not touching it"):
        trained_index.save(tmp_path / "other")
    assert (tmp_path / "other" / "mine.txt").read_text() == "keep me"
    trained_index.save(target, overwrite=True)
    assert (target / "codes.npy").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx", "other"]


def test_a_failing_save_leaves_the_old_index_intact(trained_index, tmp_path, monkeypatch) -> None:
    target = tmp_path / "idx"
    trained_index.save(target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("semhash.store.np.save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        trained_index.save(target, overwrite=True)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]
    SemanticIndex.load(target)
