"""The Milvus backend (Milvus Lite) against brute force: add, replace, remove, filter, radius."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("pymilvus", reason="the Milvus backend needs: pip install 'semhash[milvus]'")
pytest.importorskip("milvus_lite", reason="local Milvus tests need Milvus Lite (semhash[milvus])")

from semhash.codes import hamming, pack  # noqa: E402
from semhash.index.milvus import MilvusCodes, MilvusError  # noqa: E402


def clustered(n: int, n_bits: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.random((6, n_bits)) < 0.5
    return pack(centres[rng.integers(0, 6, n)] ^ (rng.random((n, n_bits)) < 0.05))


def expected(ids, codes, labels, queries, k, radius=None, label=None):
    """Brute force, ties by id."""
    out = []
    for row in hamming(queries, codes):
        pairs = sorted(
            (int(d), i)
            for d, i, ls in zip(row, ids, labels, strict=True)
            if (radius is None or d <= radius) and (label is None or label in ls)
        )
        out.append([(i, d) for d, i in pairs[:k]])
    return out


@pytest.fixture
def collection(tmp_path):
    return MilvusCodes(str(tmp_path / "milvus.db"), "docs", 64)


def test_search_add_replace_remove_filter_radius_equal_brute_force(collection) -> None:
    codes = clustered(600, 64, seed=1)  # many ties: exercises the cut at the k-th distance
    ids = [f"doc-{i}" for i in range(600)]
    labels = [("even",) if i % 2 == 0 else ("odd", "x") for i in range(600)]
    collection.upsert(ids, codes, labels)
    queries = np.concatenate([codes[:3], clustered(3, 64, seed=2)])
    assert len(collection) == 600
    assert collection.search(queries, 25) == expected(ids, codes, labels, queries, 25)
    assert collection.search(queries, 1000, radius=4) == expected(
        ids, codes, labels, queries, 1000, radius=4
    )
    assert collection.search(queries, 10, filter='labels like "%odd%"') == expected(
        ids, codes, labels, queries, 10, label="odd"
    )

    collection.upsert(ids[:5], codes[100:105], labels[:5])  # re-adding replaces
    codes = codes.copy()
    codes[:5] = codes[100:105]
    collection.delete(ids[-50:])
    ids, codes, labels = ids[:-50], codes[:-50], labels[:-50]
    assert len(collection) == 550
    assert collection.search(queries, 30) == expected(ids, codes, labels, queries, 30)


def test_wrong_dimension_unreachable_and_odd_bits_are_one_clear_error(tmp_path) -> None:
    uri = str(tmp_path / "m.db")
    MilvusCodes(uri, "docs", 64).upsert(["a"], clustered(1, 64, seed=3), [()])
    with pytest.raises(MilvusError, match="holds 64-bit codes, not 32-bit"):
        MilvusCodes(uri, "docs", 32)
    with pytest.raises(MilvusError, match="cannot reach Milvus"):
        MilvusCodes("http://127.0.0.1:9", "docs", 64)
    with pytest.raises(MilvusError, match="whole bytes"):
        MilvusCodes(uri, "other", 12)


def test_an_index_with_a_milvus_backend_answers_like_brute_force(saved_index, tmp_path) -> None:
    from click.testing import CliRunner

    from semhash import Corpus, QueryError, SemanticIndex
    from semhash.cli import main

    local = SemanticIndex.load(saved_index)
    index = SemanticIndex.load(saved_index)
    index.use_milvus(str(tmp_path / "m.db"), "docs")
    index.save(tmp_path / "with-milvus")
    reopened = SemanticIndex.load(tmp_path / "with-milvus")
    assert reopened.backend == {
        "kind": "milvus",
        "uri": str(tmp_path / "m.db"),
        "collection": "docs",
    }

    queries = ["space shuttle launch", "gun control", "windows drivers"]
    codes = reopened.hasher.encode(queries)
    for found, row in zip(
        reopened.search(queries, k=15, rank="hamming"), hamming(codes, reopened.codes), strict=True
    ):
        best = sorted(zip(row.tolist(), reopened.ids, strict=True))[:15]  # ties by id
        assert [(r.score, r.id) for r in found] == [(float(d), i) for d, i in best]

    label = local.labels[0][0]
    hits = reopened.search(["space"], k=10, filter=f'labels like "%{label}%"')[0]
    assert len(hits) == 10 and all(label in r.labels for r in hits)
    reopened.add(Corpus(["new-1"], ["nasa space shuttle orbit launch"], [("new",)], ["test"]))
    assert ("new-1", 0) in reopened.milvus.search(reopened.codes[-1:], 100, radius=0)[0]
    reopened.remove(["new-1"])
    assert len(reopened.milvus) == len(reopened) == len(local)

    result = CliRunner().invoke(
        main, ["query", str(tmp_path / "with-milvus"), "space", "--label", label, "--json"]
    )
    assert result.exit_code == 0, result.output
    assert all(label in r["labels"] for r in json.loads(result.output)["results"])
    with pytest.raises(QueryError, match="filters need the Milvus backend"):
        local.search(["space"], filter='labels like "%x%"')


def test_a_filter_is_never_ignored(saved_index) -> None:
    from semhash import QueryError, SemanticIndex

    local = SemanticIndex.load(saved_index)
    for options in ({"rank": "dense"}, {"engine": "scan"}, {}):
        with pytest.raises(QueryError, match="filters need the Milvus backend"):
            local.search(["space"], filter='labels like "%x%"', **options)


def _mirrored(saved_index, folder, uri):
    from semhash import SemanticIndex

    index = SemanticIndex.load(saved_index)
    index.use_milvus(uri, "docs")
    index.save(folder)
    index.close()
    return folder


def _equal_to_brute_force(folder) -> None:
    from semhash import SemanticIndex

    index = SemanticIndex.load(folder)
    queries = ["space shuttle launch", "gun control", "windows drivers"]
    for found, row in zip(
        index.search(queries, k=15, rank="hamming"),
        hamming(index.hasher.encode(queries), index.codes),
        strict=True,
    ):
        best = sorted(zip(row.tolist(), index.ids, strict=True))[:15]  # ties by id
        assert [(r.score, r.id) for r in found] == [(float(d), i) for d, i in best]
    index.close()


def test_check_compares_milvus_and_a_crashed_change_is_completed(saved_index, tmp_path) -> None:
    from click.testing import CliRunner

    from semhash import Corpus, SemanticIndex
    from semhash.cli import main
    from semhash.store import mirror

    folder = _mirrored(saved_index, tmp_path / "idx", str(tmp_path / "m.db"))
    assert SemanticIndex.check(folder) == []
    crashed = SemanticIndex.load(folder)  # a writer that dies before saving
    crashed.add(Corpus(["new-1", "new-2"], ["nasa orbit", "gun law"], [(), ()], ["", ""]))
    crashed.remove([crashed.ids[0]])
    crashed.close()
    found = SemanticIndex.check(folder)
    assert any(mirror.INTENT in p for p in found)
    assert any("2 document(s) only in Milvus: 'new-1', 'new-2'" in p for p in found)
    assert any("1 document(s) missing from Milvus" in p for p in found)
    with SemanticIndex.update(folder):  # the next writer completes it first
        pass
    assert SemanticIndex.check(folder) == []
    _equal_to_brute_force(folder)

    live = SemanticIndex.load(folder)  # a code changed behind the index's back, no intent
    live.milvus.upsert([live.ids[3]], np.asarray(live.codes[4:5]) ^ np.uint64(1), [()])
    live.close()
    assert "1 document(s) with another code in Milvus" in SemanticIndex.check(folder)[0]
    assert SemanticIndex.check(folder, sample=2) in ([], SemanticIndex.check(folder))
    result = CliRunner().invoke(main, ["check", str(folder), "--repair"])
    assert result.exit_code == 0, result.output
    assert SemanticIndex.check(folder) == []


WRITER = """
import sys, time
from semhash import Corpus, SemanticIndex
folder = sys.argv[1]
SemanticIndex.load(folder).milvus  # connected: killing may start
print("ready", flush=True)
for i in range(10**6):
    ids = [f"k{i}-{j}" for j in range(3)]
    with SemanticIndex.update(folder) as index:
        texts = ["nasa orbit launch", "gun law", "windows driver"]
        index.add(Corpus(ids, texts, [()] * 3, [""] * 3))
    with SemanticIndex.update(folder) as index:
        index.remove(ids[:2])
"""


def test_fifty_kills_of_a_writer_leave_milvus_and_the_index_agreeing(saved_index, tmp_path) -> None:
    import os
    import random
    import signal
    import subprocess
    import sys
    import time

    from semhash import SemanticIndex

    folder = _mirrored(saved_index, tmp_path / "idx", str(tmp_path / "m.db"))
    rng = random.Random(0)
    for kill in range(50):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(folder)], stdout=subprocess.PIPE, text=True
        )
        assert writer.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 1.5))
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        if kill % 2:
            SemanticIndex.repair(folder)
        else:
            with SemanticIndex.update(folder):  # the next writer
                pass
        assert SemanticIndex.check(folder) == [], kill
    _equal_to_brute_force(folder)
