"""The public index: every ranking agrees with its oracle."""

import numpy as np
import pytest
import scipy.sparse as sp

from semhash import QueryError
from semhash.codes import centred_unit_rows, hamming
from semhash.lexical import TermCounts


def ids(results):
    return [r.id for r in results]


def test_hamming_search_matches_brute_force_over_stored_codes(trained_index) -> None:
    results = trained_index.search(["nasa orbit shuttle launch"], k=25, rank="hamming")[0]
    query = trained_index.hasher.encode(["nasa orbit shuttle launch"])
    distances = hamming(query, trained_index.codes)[0]
    order = np.lexsort((np.arange(len(distances)), distances))[:25]
    assert ids(results) == [trained_index.ids[p] for p in order]
    assert [r.score for r in results] == distances[order].tolist()


def test_cosine_over_everything_equals_dense_search(trained_index) -> None:
    text = ["windows driver for my graphics card"]
    everything = trained_index.search(text, k=10, rank="cosine", depth=len(trained_index))[0]
    dense = trained_index.search(text, k=10, rank="dense")[0]
    assert ids(everything) == ids(dense)
    assert np.allclose([r.score for r in everything], [r.score for r in dense], atol=1e-5)


def test_cosine_reorders_the_hamming_candidates(trained_index) -> None:
    text = ["hockey playoffs goalie"]
    candidates = set(ids(trained_index.search(text, k=50, rank="hamming")[0]))
    reranked = trained_index.search(text, k=10, rank="cosine", depth=50)[0]
    assert set(ids(reranked)) <= candidates
    scores = [r.score for r in reranked]
    assert scores == sorted(scores, reverse=True)


def test_fused_ranking_scores_candidates_by_codes_and_bm25(trained_index) -> None:
    """The default: Hamming candidates, ordered by the fused score computed here by hand."""
    from semhash.rank import FEEDBACK, FEEDBACK_WEIGHT, LEXICAL_WEIGHT

    text = "nasa shuttle launch orbit"
    found = trained_index.search([text], k=10, depth=200)[0]
    nearest = trained_index.search([text], k=200, rank="hamming")[0]
    candidates = np.array([trained_index.position(r.id) for r in nearest])
    counts = trained_index.hasher.vectorizer.counts([text])
    terms = TermCounts(trained_index.hasher.vectorizer.counts(trained_index.texts))
    bm25 = terms.bm25(counts.indices, candidates)
    units = centred_unit_rows(trained_index.activations[candidates])
    query = centred_unit_rows(trained_index.hasher.activations([text]))[0]
    words = LEXICAL_WEIGHT * bm25 / bm25.max()
    first = units @ query + words
    refined = query + FEEDBACK_WEIGHT * units[np.argsort(-first, kind="stable")[:FEEDBACK]].mean(0)
    score = units @ (refined / np.linalg.norm(refined)) + words
    order = np.lexsort((candidates, -score))[:10]
    assert ids(found) == [trained_index.ids[p] for p in candidates[order]]
    assert np.allclose([r.score for r in found], score[order], atol=1e-5)


@pytest.mark.parametrize("share", [0.0, 0.002, 0.4, 1.0])
def test_fused_scores_equal_the_formula_whichever_rows_it_skips(share) -> None:
    """Candidates without a query word are skipped only when they cannot enter the top."""
    from semhash.codes import centred_norms
    from semhash.rank import FEEDBACK, FEEDBACK_WEIGHT, LEXICAL_WEIGHT, rerank

    rng = np.random.default_rng(3)
    units = rng.random((5000, 32), dtype=np.float32)
    candidates = rng.choice(5000, 1500, replace=False)
    lexical = (rng.random(1500) * (rng.random(1500) < share)).astype(np.float32)
    query_units = rng.random(32, dtype=np.float32)
    centred = centred_unit_rows(units[candidates])
    query = centred_unit_rows(query_units[None, :])[0]
    words = LEXICAL_WEIGHT * lexical / max(lexical.max(), 1e-30)
    first = centred @ query + words
    feedback = centred[np.argsort(-first, kind="stable")[:FEEDBACK]].mean(0)
    refined = query + FEEDBACK_WEIGHT * feedback
    score = centred @ (refined / np.linalg.norm(refined)) + words
    order = np.lexsort((candidates, -score))[:10]
    best, scores = rerank(query_units, units, centred_norms(units), candidates, lexical, 10)
    assert best.tolist() == candidates[order].tolist()
    assert np.allclose(scores, score[order], atol=1e-5)


def test_bm25_matches_the_formula_on_counted_documents() -> None:
    from semhash.lexical import K1, B

    def formula(counts):
        lengths = counts.sum(axis=1).A.ravel()
        df = (counts.toarray() > 0).sum(axis=0)
        idf = np.log1p((counts.shape[0] - df + 0.5) / (df + 0.5))
        dense = counts.toarray()
        norm = K1 * (1 - B + B * lengths / lengths.mean())
        return idf * dense * (K1 + 1) / (dense + norm[:, None])

    counts = sp.csr_matrix(np.array([[2, 0, 1], [0, 3, 0], [1, 1, 1], [0, 0, 0]], np.float32))
    terms = TermCounts(counts)
    expected = formula(counts)[:, [0, 2]].sum(axis=1)
    got = terms.bm25(np.array([2, 0, 2]), np.arange(4))  # a repeated word counts once
    assert np.allclose(got, expected, atol=1e-6)
    assert terms.bm25(np.array([1]), np.array([3, 1]))[0] == 0.0
    # Many documents: a common word's postings are searched, a rarer one's walked.
    rng = np.random.default_rng(0)
    counts = sp.random(500, 40, density=0.3, format="csr", random_state=1, dtype=np.float32)
    counts.data = np.ceil(counts.data * 4)
    terms, per_word = TermCounts(counts), formula(counts)
    for candidates in (np.array([7]), np.array([-1, 3]), rng.permutation(500)[:120]):
        words = rng.choice(40, 4, replace=False)
        got = terms.bm25(words, candidates)
        expected = np.where(candidates >= 0, per_word[candidates][:, words].sum(axis=1), 0.0)
        assert np.allclose(got, expected, atol=1e-5)


def test_similar_excludes_the_document_itself(trained_index) -> None:
    doc_id = trained_index.ids[5]
    for options in ({}, {"rank": "hamming"}, {"rank": "dense"}, {"rank": "cosine", "depth": 30}):
        results = trained_index.similar(doc_id, k=7, **options)
        assert len(results) == 7 and doc_id not in ids(results), options
        assert [r.rank for r in results] == list(range(1, 8))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rank": "dense", "radius": 2}, "neither a radius nor a depth"),
        ({"depth": -1}, "depth must be non-negative"),
        ({"radius": 33}, "radius must be between 0 and 32"),
        ({"k": 0}, "k must be at least 1"),
        ({"rank": "best"}, "rank must be one of"),
        ({"rerank": 5}, "unknown search option 'rerank'"),
    ],
)
def test_bad_search_arguments(trained_index, kwargs, message) -> None:
    with pytest.raises(QueryError, match=message):
        trained_index.search(["space"], **{"k": 5, **kwargs})


def test_every_engine_gives_the_same_results_and_two_stage_finds_close_ones(trained_index) -> None:
    queries = trained_index.texts[:5]
    for rank in ("hamming", "fused"):
        exact = trained_index.search(queries, k=20, engine="scan", rank=rank)
        for engine in ("auto", "buckets", "mih"):
            assert trained_index.search(queries, k=20, engine=engine, rank=rank) == exact, engine
    two_stage = trained_index.search(queries, k=20, engine="two-stage", rank="hamming")
    exact = trained_index.search(queries, k=20, engine="scan", rank="hamming")
    for found, best in zip(two_stage, exact, strict=True):
        assert len(found) == 20 and found[0].score == best[0].score == 0  # each finds itself
        assert [r.score for r in found] == sorted(r.score for r in found)


def test_unknown_engine_and_two_stage_with_a_radius_are_refused(trained_index) -> None:
    with pytest.raises(QueryError, match="engine must be one of"):
        trained_index.search(["space"], engine="fast")
    with pytest.raises(QueryError, match="two-stage search takes no radius"):
        trained_index.search(["space"], radius=2, engine="two-stage")


def test_weights_are_sublinear_tf_idf_rows_of_unit_norm(trained_index) -> None:
    """log(1 + count) * idf, each row scaled to unit length; a row without words stays 0."""
    vectorizer = trained_index.hasher.vectorizer
    texts = [*trained_index.texts[:30], "zzzz qqqq", "nasa nasa orbit"]
    counts = vectorizer.counts(texts)
    expected = counts.copy()
    expected.data = np.log1p(expected.data) * vectorizer.idf_[expected.indices]
    norms = np.sqrt(expected.multiply(expected).sum(axis=1)).A.ravel()
    expected = sp.diags(np.where(norms > 0, 1 / np.maximum(norms, 1e-30), 0)) @ expected
    weighted = vectorizer.weight(counts)
    assert np.allclose(weighted.toarray(), expected.toarray(), atol=1e-6)
    one = vectorizer.weights(vectorizer.bags(texts[-1:]))  # a query: the same numbers
    assert np.array_equal(one, weighted[len(texts) - 1].data)


def test_a_few_rows_encode_through_the_folded_layers_as_torch_does(trained_index) -> None:
    """Queries take the compiled folded path; documents in bulk the torch one: same units."""
    from semhash.train.loop import sparse

    vectorizer = trained_index.hasher.vectorizer
    rows = vectorizer.weight(vectorizer.counts(trained_index.texts[:40] + ["nasa orbit"]))
    for model in trained_index.hasher.models:
        bulk = model.encode(sparse(rows)).numpy()
        few = np.vstack(
            [
                model.encode_few(r.indptr, r.indices, r.data)
                for r in (rows[i : i + 1] for i in range(41))
            ]
        )
        assert np.allclose(few, bulk, atol=1e-5)


def test_queries_as_arrays_encode_and_rank_as_a_matrix_does(trained_index) -> None:
    """The query path skips scipy (``Bags``); its units and results are the matrix path's."""
    hasher, vectorizer = trained_index.hasher, trained_index.hasher.vectorizer
    texts = ["nasa orbit launch", *trained_index.texts[:20]]
    for n in (1, 3, 20):  # one query, a few, more than the compiled path takes
        bags = vectorizer.bags(texts[:n])
        matrix = vectorizer.counts(texts[:n])
        assert np.array_equal(
            hasher.activations_from_counts(bags), hasher.activations_from_counts(matrix)
        )
    assert trained_index.search(texts[:3], k=5) == trained_index.search_counts(
        vectorizer.counts(texts[:3]), k=5
    )
