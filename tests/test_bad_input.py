"""Inputs a real corpus will contain sooner or later: empty documents, one huge document."""

import json
import logging
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from semhash import Corpus, SemanticIndex
from semhash.cli import main

TINY = Path(__file__).parent / "data" / "index-v2"


def test_empty_and_blank_documents_are_indexed_with_a_counted_warning(caplog) -> None:
    index = SemanticIndex.load(TINY)
    blank = Corpus(["empty", "spaces", "ok"], ["", "  \n\t ", "space shuttle"], [()] * 3, [""] * 3)
    with caplog.at_level(logging.WARNING):
        index.add(blank)
    assert "2 documents have no word of the vocabulary: they share one code" in caplog.text
    assert {"empty", "spaces", "ok"} <= set(index.ids)
    same = index.similar("empty", k=len(index), radius=0, rank="hamming")
    assert "spaces" in {r.id for r in same}


@pytest.mark.slow
def test_a_50_megabyte_document_is_indexed(tmp_path) -> None:
    path = tmp_path / "idx"
    shutil.copytree(TINY, path)
    words = "space shuttle orbit launch people think government believe "
    big = {"id": "huge", "text": words * (50_000_000 // len(words)), "labels": ["big"]}
    corpus = tmp_path / "big.jsonl"
    corpus.write_text(json.dumps(big) + "\n")
    assert corpus.stat().st_size > 50_000_000
    result = CliRunner().invoke(main, ["add", str(path), str(corpus)])
    assert result.exit_code == 0, result.output
    assert "added 1 documents" in result.output
    found = CliRunner().invoke(main, ["query", str(path), "--like", "huge", "--json", "-k", "2"])
    assert len(json.loads(found.output)["results"]) == 2
    assert SemanticIndex.check(path) == []
