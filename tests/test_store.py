import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from semhash import IndexFormatError, SemanticIndex

from .conftest import small_config, with_recipe

DATA = Path(__file__).parent / "data"
FILES = {
    "model.safetensors",
    "vocab.json",
    "codes.npy",
    "activations.npy",
    "bucket_keys.npy",
    "bucket_codes.npy",
    "bucket_offsets.npy",
    "bucket_members.npy",
    "terms_indptr.npy",
    "terms_ids.npy",
    "terms_counts.npy",
    "ids.npy",
    "id_order.npy",
    "docs.jsonl",
    "doc_offsets.npy",
    "summaries.jsonl",
    "summary_offsets.npy",
}


def results(index):
    return [
        [(r.id, r.score, r.labels, r.snippet) for r in rs]
        for rs in index.search(["space shuttle orbit", "windows driver"], k=20)
    ]


def live(path: Path) -> Path:
    return path / json.loads((path / "manifest.json").read_text())["data"]


@pytest.fixture
def copy(saved_index, tmp_path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(saved_index, target)
    return target


def mapped(array: np.ndarray) -> bool:
    """Whether ``array`` reads a memory-mapped file (opening read none of it)."""
    while array is not None and not isinstance(array, np.memmap):
        array = array.base
    return array is not None


def test_round_trip_gives_identical_search_results(trained_index, saved_index) -> None:
    loaded = SemanticIndex.load(saved_index)
    assert mapped(loaded.codes) and mapped(loaded.activations) and mapped(loaded.terms.ids)
    assert np.array_equal(loaded.codes, trained_index.codes)
    assert results(loaded) == results(trained_index)
    assert loaded.similar(trained_index.ids[0], k=5) == trained_index.similar(
        trained_index.ids[0], k=5
    )
    assert loaded.ids == trained_index.ids and loaded.labels == trained_index.labels
    manifest = json.loads((saved_index / "manifest.json").read_text())
    assert manifest["n_docs"] == len(trained_index) and manifest["n_bits"] == 32
    assert set(manifest["files"]) == FILES == {p.name for p in live(saved_index).iterdir()}
    assert SemanticIndex.check(saved_index) == []


@pytest.mark.parametrize("name", ["codes.npy", "model.safetensors", "docs.jsonl", "ids.npy"])
def test_a_corrupted_file_is_detected_and_named(copy, name) -> None:
    file = live(copy) / name
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    file.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match=f"{name}: checksum mismatch"):
        SemanticIndex.load(copy)
    assert any(f"{name}: checksum mismatch" in p for p in SemanticIndex.check(copy))


def test_truncated_and_missing_files_are_named(copy) -> None:
    codes = live(copy) / "codes.npy"
    codes.write_bytes(codes.read_bytes()[:100])
    with pytest.raises(IndexFormatError, match=r"codes.npy: 100 bytes, the manifest says \d+"):
        SemanticIndex.load(copy)
    (live(copy) / "vocab.json").unlink()
    with pytest.raises(IndexFormatError, match="vocab.json: missing from the index"):
        SemanticIndex.load(copy, verify=False)


def test_unverified_load_still_refuses_arrays_of_the_wrong_shape(copy) -> None:
    np.save(live(copy) / "codes.npy", np.zeros((3, 1), dtype=np.uint64))
    with pytest.raises(IndexFormatError, match=r"codes.npy: expected a uint64 array of shape"):
        SemanticIndex.load(copy, verify=False)


def test_truncated_manifest_and_other_versions_are_refused(copy) -> None:
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(IndexFormatError, match="version 99; this semhash reads versions 1, 2"):
        SemanticIndex.load(copy)
    (copy / "manifest.json").write_text(json.dumps(manifest)[:40])
    with pytest.raises(IndexFormatError, match="manifest.json: corrupted"):
        SemanticIndex.load(copy)
    (copy / "manifest.json").write_text(json.dumps({"magic": "something else"}))
    with pytest.raises(IndexFormatError, match="not a semhash index manifest"):
        SemanticIndex.load(copy)
    (copy / "manifest.json").write_text(json.dumps({**manifest, "data": "../elsewhere"}))
    with pytest.raises(IndexFormatError, match="names no version folder"):
        SemanticIndex.load(copy)


def test_missing_folder_file_instead_of_folder(tmp_path) -> None:
    with pytest.raises(IndexFormatError, match="no such index folder"):
        SemanticIndex.load(tmp_path / "nothing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(IndexFormatError, match="is a file, not an index folder"):
        SemanticIndex.load(tmp_path / "file")
    with pytest.raises(IndexFormatError, match="not a semhash index"):
        SemanticIndex.load(tmp_path)


def test_weights_never_go_through_pickle(copy, tmp_path) -> None:
    class Payload:
        def __reduce__(self):
            return (Path.write_text, (tmp_path / "pwned", "code ran"))

    model = live(copy) / "model.safetensors"
    model.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(IndexFormatError, match="model.safetensors: not a readable safetensors"):
        SemanticIndex.load(copy, verify=False)
    assert not (tmp_path / "pwned").exists()


def test_save_never_overwrites_unasked_and_leaves_no_temporary_folders(
    trained_index, tmp_path
) -> None:
    target = tmp_path / "idx"
    trained_index.save(target)
    before = (live(target) / "codes.npy").read_bytes()
    with pytest.raises(IndexFormatError, match="an index already exists"):
        trained_index.save(target)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "mine.txt").write_text("keep me")
    with pytest.raises(IndexFormatError, match="not a semhash index; not touching it"):
        trained_index.save(tmp_path / "other")
    assert (tmp_path / "other" / "mine.txt").read_text() == "keep me"
    for _ in range(3):
        trained_index.save(target, overwrite=True)
    assert (live(target) / "codes.npy").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx", "other"]
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["version"] == 4 and manifest["data"] == "v000004"
    assert sorted(p.name for p in target.iterdir()) == [
        ".lock",
        "manifest.json",
        "v000003",
        "v000004",
    ]


@pytest.mark.parametrize("existing", [True, False])
def test_a_disk_full_during_save_leaves_the_old_index_intact(
    trained_index, tmp_path, monkeypatch, existing
) -> None:
    target = tmp_path / "idx"
    if existing:
        trained_index.save(target)
    before = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("semhash.store.versions.np.save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        trained_index.save(target, overwrite=True)
    after = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before
    if existing:
        assert results(SemanticIndex.load(target)) == results(trained_index)


@pytest.mark.parametrize("name", ["index-v1", "index-v2"])
def test_every_released_format_loads_with_its_recorded_results(name, tmp_path) -> None:
    """tests/data holds a tiny index of each format; results recorded when format 1 wrote it."""
    expected = json.loads((DATA / "index-v1.expected.json").read_text())
    old = SemanticIndex.load(DATA / name)
    answers = old.search(expected["queries"], k=5, rank="hamming")
    found = [[[r.id, r.score] for r in rs] for rs in answers]
    assert found == expected["results"]
    similar = expected["similar"]
    like = {"doc_id": similar["id"], "k": 5, "rank": "hamming"}
    assert [[r.id, r.score] for r in old.similar(**like)] == similar["results"]
    shutil.copytree(DATA / name, tmp_path / name)
    old.save(tmp_path / name, overwrite=True)
    upgraded = SemanticIndex.load(tmp_path / name)
    assert json.loads((tmp_path / name / "manifest.json").read_text())["format_version"] == 2
    assert [[r.id, r.score] for r in upgraded.similar(**like)] == similar["results"]
    # Titles and snippets made from the texts when asked, then saved as summaries.
    assert upgraded.search(expected["queries"], k=5, rank="hamming") == answers
    assert (live(tmp_path / name) / "summaries.jsonl").exists()
    assert SemanticIndex.check(tmp_path / name) == []
    assert not [p for p in (tmp_path / name).iterdir() if p.suffix in (".npy", ".gz")]


def test_a_code_of_several_blocks_round_trips(newsgroups_sample, tmp_path) -> None:
    corpus = newsgroups_sample.subset(list(range(600)))
    config = with_recipe(small_config(n_bits=16, epochs=2), block_bits=8)
    index = SemanticIndex.build(corpus, config)
    index.save(tmp_path / "idx")
    loaded = SemanticIndex.load(tmp_path / "idx")
    assert loaded.hasher.block_sizes() == [8, 8]
    texts = ["the space shuttle launch was delayed", "windows drivers for my graphics card"]
    assert np.array_equal(loaded.hasher.activations(texts), index.hasher.activations(texts))
    assert loaded.search(texts, k=5) == index.search(texts, k=5)
