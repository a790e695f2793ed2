"""Add, replace and remove documents: the index stays equal to one built from scratch."""

import json
import shutil

import numpy as np
import pytest

from semhash import Corpus, QueryError, SemanticIndex
from semhash.codes import hamming


@pytest.fixture
def index(saved_index) -> SemanticIndex:
    return SemanticIndex.load(saved_index)


def fresh_posts(n: int = 5) -> Corpus:
    texts = [f"nasa launched the space shuttle into orbit, mission {i}" for i in range(n)]
    return Corpus([f"new/{i}" for i in range(n)], texts, [("sci.space",)] * n, ["test"] * n)


def assert_consistent(index: SemanticIndex) -> None:
    """Codes, buckets, word counts and documents agree, and search equals brute force."""
    assert index.buckets.problems() == [] and index.docs.problems() == []
    assert len(index.codes) == len(index.activations) == len(index.ids) == len(index)
    counted = index.hasher.vectorizer.counts(index.texts)
    assert (index.terms.matrix() != counted).nnz == 0
    query = index.hasher.encode(["space shuttle orbit"])
    distances = hamming(query, index.codes)[0]
    order = np.lexsort((np.arange(len(distances)), distances))[:30]
    found = index.search(["space shuttle orbit"], k=30, rank="hamming")[0]
    assert [r.id for r in found] == [index.ids[p] for p in order]


def test_added_documents_get_the_models_codes_and_are_found(index) -> None:
    before = len(index)
    assert index.add(fresh_posts()) == 0
    assert len(index) == before + 5
    assert np.array_equal(index.codes[-5:], index.hasher.encode(fresh_posts().texts))
    assert_consistent(index)
    assert (index.codes[-5:] == index.codes[-1]).all()  # same words, same code
    within = index.similar("new/0", k=len(index), radius=0, rank="hamming")
    assert {"new/1", "new/2", "new/3", "new/4"} <= {r.id for r in within}
    assert index.docs.record(index.position("new/3")).labels == ("sci.space",)


def test_re_adding_an_id_replaces_it_and_no_replace_refuses(index) -> None:
    doc_id = index.ids[7]
    before = len(index)
    changed = Corpus([doc_id], ["hockey goalie playoffs"], [("rec.sport.hockey",)], ["train"])
    with pytest.raises(QueryError, match=f"document id '{doc_id}' is already in the index"):
        index.add(changed, replace=False)
    assert len(index) == before and index.ids[7] == doc_id
    assert index.add(changed) == 1
    assert len(index) == before and index.ids.count(doc_id) == 1
    assert index.docs.record(index.position(doc_id)).text == "hockey goalie playoffs"
    assert_consistent(index)


def test_duplicate_ids_in_one_addition_are_refused(index) -> None:
    twice = Corpus(["a", "a"], ["space", "orbit"], [(), ()], ["", ""])
    with pytest.raises(QueryError, match="document id 'a' appears twice"):
        index.add(twice)


def test_removed_documents_are_gone_everywhere(index) -> None:
    gone = index.ids[:3] + [index.ids[-1]]
    kept = [i for i in index.ids if i not in gone]
    index.remove(gone)
    assert index.ids == kept
    assert_consistent(index)
    with pytest.raises(QueryError, match="no document with id"):
        index.similar(gone[0])
    dense = index.search(["space shuttle orbit"], k=len(index), rank="dense")[0]
    assert not {r.id for r in dense} & set(gone)


def test_removing_an_unknown_id_removes_nothing(index) -> None:
    before = index.ids
    with pytest.raises(QueryError, match="no document with id 'nope'"):
        index.remove([index.ids[0], "nope"])
    assert index.ids == before


def test_changes_survive_save_and_load(index, tmp_path) -> None:
    index.remove(index.ids[10:20])
    index.add(fresh_posts())
    index.save(tmp_path / "idx")
    loaded = SemanticIndex.load(tmp_path / "idx")
    assert loaded.ids == index.ids and loaded.texts == index.texts
    assert np.array_equal(loaded.codes, index.codes)
    assert SemanticIndex.check(tmp_path / "idx") == []
    assert_consistent(loaded)


def test_update_writes_one_new_version_and_keeps_the_creation_time(saved_index, tmp_path) -> None:
    path = tmp_path / "idx"
    shutil.copytree(saved_index, path)
    first = json.loads((path / "manifest.json").read_text())
    with SemanticIndex.update(path) as index:
        index.add(fresh_posts(2))
        index.remove([index.ids[0]])
    second = json.loads((path / "manifest.json").read_text())
    assert second["version"] == first["version"] + 1
    assert second["created"] == first["created"] and second["n_docs"] == first["n_docs"] + 1
    assert "new/1" in SemanticIndex.load(path).ids


def test_an_emptied_index_still_loads_and_answers(index, tmp_path) -> None:
    index.remove(index.ids)
    index.save(tmp_path / "empty")
    loaded = SemanticIndex.load(tmp_path / "empty")
    assert len(loaded) == 0 and loaded.search(["space"], k=3) == [[]]
    loaded.add(fresh_posts(2))
    assert [r.id for r in loaded.search(["space shuttle"], k=3)[0]] == ["new/0", "new/1"]
