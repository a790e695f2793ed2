"""Distributed encoding with Dask: the same codes, byte for byte, as one process."""

from __future__ import annotations

import json

import numpy as np
import pytest

from semhash import SemanticIndex, load_corpus

from .conftest import write_jsonl

pytest.importorskip("dask.distributed", reason="semhash encode needs the scale extra (Dask)")
pytest.importorskip("pyarrow", reason="semhash encode needs the scale extra (pyarrow)")

from semhash.encode import encode_to_parquet, read_codes  # noqa: E402


def test_dask_codes_equal_single_process_codes(saved_index, newsgroups_sample, tmp_path) -> None:
    corpus = write_jsonl(tmp_path / "corpus.jsonl", newsgroups_sample)
    out = tmp_path / "codes.parquet"
    count = encode_to_parquet(saved_index, corpus, out, workers=2, chunk_size=300)
    ids, codes, labels = read_codes(out)
    single = SemanticIndex.load(saved_index).hasher.encode(newsgroups_sample.texts)
    assert count == len(newsgroups_sample) == len(ids)
    assert ids == newsgroups_sample.ids and labels == newsgroups_sample.labels
    assert codes.dtype == np.uint64 and codes.tobytes() == single.tobytes()
    assert {p.name for p in tmp_path.iterdir()} == {"corpus.jsonl", "codes.parquet"}  # no debris


def test_encode_command_and_a_bad_corpus(saved_index, tmp_path) -> None:
    from click.testing import CliRunner

    from semhash.cli import main

    good = tmp_path / "good.jsonl"
    good.write_text(
        "".join(json.dumps({"id": i, "text": f"space shuttle {i}"}) + "\n" for i in range(7))
    )
    out = tmp_path / "c.parquet"
    args = ["encode", str(good), "--index", str(saved_index), "--out", str(out), "--workers", "1"]
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["documents"] == 7 and len(read_codes(out)[0]) == 7
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\nnot json\n')
    result = CliRunner().invoke(
        main, ["encode", str(bad), *args[2:], "--out", str(tmp_path / "x.parquet")]
    )
    assert result.exit_code == 1 and "bad.jsonl, line 2: not valid JSON" in result.output
    assert not (tmp_path / "x.parquet").exists()
    assert load_corpus(good).ids == [str(i) for i in range(7)]


def test_an_index_from_encoded_codes_answers_like_the_original(
    saved_index, newsgroups_sample, tmp_path
) -> None:
    from click.testing import CliRunner

    from semhash.cli import main

    corpus = write_jsonl(tmp_path / "corpus.jsonl", newsgroups_sample)
    codes = tmp_path / "codes.parquet"
    encode_to_parquet(saved_index, corpus, codes, workers=1)
    out = tmp_path / "from-codes"
    args = ["index", str(codes), "--from-codes", "--model", str(saved_index), "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    original, rebuilt = SemanticIndex.load(saved_index), SemanticIndex.load(out)
    assert rebuilt.ids == original.ids and rebuilt.labels == original.labels
    assert np.array_equal(rebuilt.codes, original.codes)
    query = ["nasa space shuttle launch"]
    assert [(r.id, r.score) for r in rebuilt.search(query, k=10, rank="hamming")[0]] == [
        (r.id, r.score) for r in original.search(query, k=10, rank="hamming")[0]
    ]
    not_codes = ["index", str(corpus), "--from-codes", "--model", str(saved_index)]
    bad = CliRunner().invoke(main, [*not_codes, "-o", str(tmp_path / "x")])
    assert bad.exit_code == 1 and "not a codes file written by semhash encode" in bad.output
