"""Property-based tests (hypothesis): codes, bit flips, exact search, and loaders fed junk."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from semhash import CorpusError, HammingBuckets, IndexFormatError, LinearScan, SemanticIndex
from semhash.codes import flip_masks, hamming, n_words, pack, unpack
from semhash.corpus import load_corpus
from semhash.options import ENGINES

TINY = Path(__file__).parent / "data" / "index-v2"
bits = st.integers(1, 128)


@st.composite
def bit_matrices(draw, max_rows: int = 30):
    n_bits = draw(bits)
    n = draw(st.integers(0, max_rows))
    return draw(arrays(np.bool_, (n, n_bits)))


@given(bit_matrices())
def test_unpack_inverts_pack_and_padding_stays_zero(matrix) -> None:
    packed = pack(matrix)
    assert packed.dtype == np.uint64 and packed.shape == (len(matrix), n_words(matrix.shape[1]))
    assert np.array_equal(unpack(packed, matrix.shape[1]), matrix)
    assert not unpack(packed, packed.shape[1] * 64)[:, matrix.shape[1] :].any()


@given(bit_matrices(max_rows=10), st.data())
def test_hamming_counts_differing_bits(queries, data) -> None:
    database = data.draw(arrays(np.bool_, (data.draw(st.integers(0, 10)), queries.shape[1])))
    expected = (queries[:, None, :] != database[None, :, :]).sum(axis=2)
    assert np.array_equal(hamming(pack(queries), pack(database)), expected)


@given(st.integers(1, 128), st.integers(0, 3))
@settings(deadline=None)
def test_flip_masks_are_every_distinct_mask_of_r_bits(n_bits, radius) -> None:
    masks = unpack(flip_masks(n_bits, radius), n_bits)
    expected = math.comb(n_bits, radius) if radius <= n_bits else 0
    assert len(masks) == expected
    assert (masks.sum(axis=1) == radius).all()
    assert len({row.tobytes() for row in masks}) == expected


def brute_force(codes, queries, k, radius):
    """Reference: sort every code by (distance, position); keep distance <= radius."""
    rows = []
    for dist in hamming(queries, codes):
        order = np.lexsort((np.arange(len(dist)), dist))
        if radius is not None:
            order = order[dist[order] <= radius]
        rows.append((order[:k].tolist(), dist[order[:k]].tolist()))
    return rows


@st.composite
def search_cases(draw):
    """Codes drawn from a small pool (so ties and shared buckets are common), queries, k, r."""
    n_bits = draw(st.sampled_from([8, 16, 24, 32, 64, 100, 128]))
    pool = draw(arrays(np.bool_, (draw(st.integers(1, 8)), n_bits)))
    picks = draw(st.lists(st.integers(0, len(pool) - 1), min_size=0, max_size=60))
    rare = st.sampled_from([False] * 15 + [True])  # codes near, not only equal to, the pool's
    flips = draw(arrays(np.bool_, (len(picks), n_bits), elements=rare))
    codes = pack(pool[picks] ^ flips) if picks else np.zeros((0, n_words(n_bits)), np.uint64)
    queries = pack(draw(arrays(np.bool_, (draw(st.integers(1, 4)), n_bits))))
    k = draw(st.integers(1, 70))
    radius = draw(st.none() | st.integers(0, n_bits))
    return n_bits, codes, queries, k, radius


@given(search_cases())
@settings(deadline=None, max_examples=150)
def test_every_exact_backend_equals_brute_force(case) -> None:
    n_bits, codes, queries, k, radius = case
    expected = brute_force(codes, queries, k, radius)
    buckets, scan = HammingBuckets(n_bits), LinearScan(n_bits)
    buckets.add(codes)
    scan.add(codes)
    for engine in (*ENGINES, "LinearScan"):
        if engine == "LinearScan":
            hits = scan.search(queries, k, radius)
        else:
            hits = buckets.search(queries, k, radius, engine)
        found = [
            (p[p >= 0].tolist(), d[p >= 0].tolist())
            for p, d in zip(hits.positions, hits.distances, strict=True)
        ]
        assert found == expected, engine


@given(search_cases(), st.data())
@settings(deadline=None, max_examples=60)
def test_buckets_after_removals_equal_buckets_built_fresh(case, data) -> None:
    n_bits, codes, queries, k, radius = case
    index = HammingBuckets(n_bits)
    index.add(codes)
    gone = data.draw(st.sets(st.integers(0, max(0, len(codes) - 1)), max_size=len(codes)))
    gone_positions = np.array(sorted(gone & set(range(len(codes)))), dtype=np.int64)
    index.remove(gone_positions)
    kept = np.delete(codes, gone_positions, axis=0)
    assert index.problems() == []
    hits = index.search(queries, k, radius)
    expected = brute_force(kept, queries, k, radius)
    assert [p[p >= 0].tolist() for p in hits.positions] == [e[0] for e in expected]


@given(st.binary(max_size=400), st.sampled_from([".jsonl", ".csv", ".jsonl.gz"]))
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_corpus_loader_gives_a_corpus_or_one_corpus_error(junk, suffix) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / f"junk{suffix}"
        file.write_bytes(junk)
        try:
            corpus = load_corpus(file)
        except CorpusError as err:
            assert str(err).startswith(str(file)) and "\n" not in str(err)
        else:
            assert len(corpus.ids) == len(corpus.texts) == len(set(corpus.ids)) > 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)


@given(st.data())
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=80)
def test_index_loader_refuses_damaged_files_with_one_clear_error(data) -> None:
    """Any file altered, cut short or replaced, or any manifest field set to junk."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "idx"
        shutil.copytree(TINY, path)
        manifest = json.loads((path / "manifest.json").read_text())
        name = data.draw(st.sampled_from(["manifest.json", *manifest["files"]]))
        if name == "manifest.json":
            field = data.draw(st.sampled_from(sorted(manifest)))
            manifest[field] = data.draw(json_values)
            (path / name).write_text(json.dumps(manifest))
        else:
            file = path / manifest["data"] / name
            original = file.read_bytes()
            cut = data.draw(st.integers(0, len(original)))
            junk = data.draw(st.binary(max_size=64))
            file.write_bytes(original[:cut] + junk + original[cut + len(junk) :])
        try:
            index = SemanticIndex.load(path)
        except IndexFormatError as err:
            assert "\n" not in str(err)
        else:  # only an edit that changed nothing that matters may load
            assert SemanticIndex.check(path) == [] or name == "manifest.json"
            assert len(index.search(["space shuttle"], k=3)[0]) <= 3


def test_manifest_bit_length_out_of_range_or_not_the_models_is_a_format_error(tmp_path) -> None:
    """Found by the property above: ``"n_bits": false`` escaped as a bare ValueError."""
    for junk in (False, 0, 999, 7):
        path = tmp_path / f"idx-{junk}"
        shutil.copytree(TINY, path)
        manifest = json.loads((path / "manifest.json").read_text())
        manifest["n_bits"] = junk
        (path / "manifest.json").write_text(json.dumps(manifest))
        try:
            SemanticIndex.load(path)
        except IndexFormatError as err:
            assert "n_bits" in str(err) or "bits" in str(err)
        else:
            raise AssertionError(f"n_bits={junk!r} loaded")


def test_manifest_config_that_is_not_an_object_is_a_format_error(tmp_path) -> None:
    """Found by the property above: ``"config": []`` escaped as an AttributeError."""
    for junk in ([], ["version"], "recipe", 3):
        for field in ("config", "recipe"):
            path = tmp_path / f"idx-{field}-{junk}"
            shutil.copytree(TINY, path)
            manifest = json.loads((path / "manifest.json").read_text())
            if field == "config":
                manifest["config"] = junk
            else:
                manifest["config"]["recipe"] = junk
            (path / "manifest.json").write_text(json.dumps(manifest))
            with pytest.raises(IndexFormatError, match="JSON object"):
                SemanticIndex.load(path)
