"""The public index: search modes agree with their oracles."""

import numpy as np
import pytest

from semhash import QueryError


def ids(results):
    return [r.id for r in results]


def test_hamming_search_matches_brute_force_over_stored_codes(trained_index) -> None:
    from semhash.codes import hamming

    results = trained_index.search(["nasa orbit shuttle launch"], k=25)[0]
    query = trained_index.hasher.encode(["nasa orbit shuttle launch"])
    distances = hamming(query, trained_index.codes)[0]
    order = np.lexsort((np.arange(len(distances)), distances))[:25]
    assert ids(results) == [trained_index.ids[p] for p in order]
    assert [r.score for r in results] == distances[order].tolist()


def test_rerank_over_everything_equals_dense_search(trained_index) -> None:
    text = ["windows driver for my graphics card"]
    everything = trained_index.search(text, k=10, rerank=len(trained_index))[0]
    dense = trained_index.search(text, k=10, dense=True)[0]
    assert ids(everything) == ids(dense)
    assert np.allclose([r.score for r in everything], [r.score for r in dense], atol=1e-5)


def test_rerank_reorders_the_hamming_candidates_by_cosine(trained_index) -> None:
    text = ["hockey playoffs goalie"]
    candidates = set(ids(trained_index.search(text, k=50)[0]))
    reranked = trained_index.search(text, k=10, rerank=50)[0]
    assert set(ids(reranked)) <= candidates
    scores = [r.score for r in reranked]
    assert scores == sorted(scores, reverse=True)


def test_similar_excludes_the_document_itself(trained_index) -> None:
    doc_id = trained_index.ids[5]
    for kwargs in ({}, {"dense": True}, {"rerank": 30}):
        results = trained_index.similar(doc_id, k=7, **kwargs)
        assert len(results) == 7 and doc_id not in ids(results)
        assert [r.rank for r in results] == list(range(1, 8))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dense": True, "radius": 2}, "neither a radius nor a rerank"),
        ({"rerank": -1}, "rerank must be non-negative"),
        ({"radius": 33}, "radius must be between 0 and 32"),
        ({"k": 0}, "k must be at least 1"),
    ],
)
def test_bad_search_arguments(trained_index, kwargs, message) -> None:
    with pytest.raises(QueryError, match=message):
        trained_index.search(["space"], **{"k": 5, **kwargs})


def test_every_engine_gives_the_same_results_and_two_stage_finds_close_ones(trained_index) -> None:
    queries = trained_index.texts[:5]
    exact = trained_index.search(queries, k=20, engine="scan")
    for engine in ("auto", "buckets", "mih"):
        assert trained_index.search(queries, k=20, engine=engine) == exact, engine
    two_stage = trained_index.search(queries, k=20, engine="two-stage")
    for found, best in zip(two_stage, exact, strict=True):
        assert len(found) == 20 and found[0].score == best[0].score == 0  # each finds itself
        assert [r.score for r in found] == sorted(r.score for r in found)


def test_unknown_engine_and_two_stage_with_a_radius_are_refused(trained_index) -> None:
    with pytest.raises(QueryError, match="engine must be one of"):
        trained_index.search(["space"], engine="fast")
    with pytest.raises(QueryError, match="two-stage search takes no radius"):
        trained_index.search(["space"], radius=2, engine="two-stage")
