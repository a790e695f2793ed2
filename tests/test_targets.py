import numpy as np
import pytest
import scipy.sparse as sp

from semhash import HasherConfig
from semhash.text import Vectorizer, VectorizerConfig
from semhash.train.approximate import approximate_neighbours
from semhash.train.recipe import Recipe
from semhash.train.targets import (
    NeighbourhoodTargets,
    code_neighbours,
    nearest_neighbours,
    rerank_by_codes,
    word_distributions,
)

from .conftest import saved_before_recipe


def unit_rows(n: int, v: int, seed: int) -> sp.csr_matrix:
    dense = np.random.default_rng(seed).random((n, v)) * (
        np.random.default_rng(seed + 1).random((n, v)) < 0.2
    )
    dense /= np.maximum(np.linalg.norm(dense, axis=1, keepdims=True), 1e-12)
    return sp.csr_matrix(dense.astype(np.float32))


def test_nearest_neighbours_match_brute_force_cosine() -> None:
    x = unit_rows(300, 40, seed=0)
    sims = (x @ x.T).toarray()
    np.fill_diagonal(sims, -np.inf)
    expected = np.argsort(-sims, axis=1, kind="stable")[:, :5]
    found = nearest_neighbours(x, 5)
    want, got = np.take_along_axis(sims, expected, 1), np.take_along_axis(sims, found, 1)
    assert np.allclose(got, want, rtol=0, atol=1e-6)  # the same, up to float rounding of ties
    assert not np.any(found == np.arange(300)[:, None])  # never itself


def test_targets_are_distributions_mixing_self_and_neighbours() -> None:
    counts = sp.csr_matrix(np.array([[2, 0, 0], [0, 1, 1], [0, 0, 3], [0, 0, 0]], dtype=np.float32))
    own = word_distributions(counts).toarray()
    assert np.allclose(own.sum(axis=1), [1, 1, 1, 0])
    none = np.zeros((4, 0), dtype=np.int64)
    assert np.allclose(NeighbourhoodTargets(counts, none, 0.5)[:].toarray(), own)
    neighbours = np.array([[1, 2], [0, 2], [0, 1], [0, 1]])
    mixed = NeighbourhoodTargets(counts, neighbours, 0.5)[:].toarray()
    assert np.allclose(mixed[:3].sum(axis=1), 1.0)
    assert np.allclose(mixed[0], 0.5 * own[0] + 0.25 * (own[1] + own[2]))


def test_targets_made_per_batch_equal_the_targets_made_at_once() -> None:
    counts = sp.random(300, 50, density=0.1, format="csr", random_state=0) * 10
    neighbours = np.random.default_rng(0).integers(0, 300, (300, 7))
    at_once = NeighbourhoodTargets(counts, neighbours, 0.1)
    per_batch = NeighbourhoodTargets(counts, neighbours, 0.1, materialise_bytes=0)
    assert at_once._all is not None and per_batch._all is None  # noqa: SLF001
    rows = np.array([5, 299, 0, 17])
    assert np.array_equal(per_batch[rows].toarray(), at_once[rows].toarray())
    assert np.array_equal(per_batch[10:20].toarray(), at_once[10:20].toarray())


def test_approximate_neighbours_recall_the_exact_ones(newsgroups_sample) -> None:
    vectorizer = Vectorizer(VectorizerConfig())
    texts = newsgroups_sample.texts
    vectorizer.fit(texts)
    tfidf = vectorizer.weight(vectorizer.counts(texts))
    exact = nearest_neighbours(tfidf, 20)
    found = approximate_neighbours(tfidf, 20)
    assert found.shape == exact.shape
    assert not (found == np.arange(len(texts))[:, None]).any()  # never itself
    recall = np.mean([len(set(a) & set(b)) / 20 for a, b in zip(found, exact, strict=True)])
    assert recall > 0.85
    # The candidates are ranked by the exact cosine: the order within the found is exact.
    sims = (tfidf @ tfidf.T).toarray()
    found_sims = np.take_along_axis(sims, found, axis=1)
    assert np.all(np.diff(found_sims, axis=1) <= 1e-6)


def test_code_neighbours_are_nearest_by_centred_cosine_never_itself() -> None:
    rng = np.random.default_rng(0)
    activations = rng.random((200, 16)).astype(np.float32)
    activations[7] = activations[3]  # a duplicate: each must still find the other, not itself
    centred = activations - 0.5
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    sims = centred @ centred.T
    np.fill_diagonal(sims, -np.inf)
    found = code_neighbours(activations, 4)
    assert found.shape == (200, 4)
    assert not np.any(found == np.arange(200)[:, None])
    best = np.sort(sims, axis=1)[:, ::-1][:, :4]
    assert np.allclose(
        np.sort(np.take_along_axis(sims, found, 1), axis=1)[:, ::-1], best, atol=1e-5
    )
    assert found[3, 0] == 7 and found[7, 0] == 3


def test_a_small_corpus_mixes_in_one_percent_of_its_documents() -> None:
    recipe = Recipe()
    assert recipe.neighbourhood(100, 2_000) == 20
    assert recipe.neighbourhood(100, 50_000) == 100  # at most the configured number
    assert recipe.neighbourhood(100, 30) == 1
    assert Recipe(neighbour_fraction=0).neighbourhood(100, 2_000) == 100
    saved_before = HasherConfig.from_dict(saved_before_recipe()).recipe
    assert saved_before.neighbour_fraction == 0  # retrains as it did
    with pytest.raises(ValueError, match="neighbour_fraction"):
        Recipe(neighbour_fraction=2)


def test_refinement_neighbours_are_the_candidates_nearest_by_the_codes() -> None:
    units = np.array([[0.9, 0.9], [0.1, 0.1], [0.8, 0.7], [0.2, 0.9], [0.9, 0.8]], np.float32)
    candidates = np.array([[1, 2, 3], [0, 2, 3], [1, 3, 0], [0, 1, 2], [1, 3, 2]])
    found = rerank_by_codes(units, candidates, 2)
    # Row 0 agrees most with 4, but 4 is no candidate of it: 2 first, then 3; row 1 (the
    # opposite code) disagrees least with 3.
    assert found.tolist() == [[2, 3], [3, 2], [0, 3], [0, 2], [2, 3]]
    assert rerank_by_codes(units, candidates, 5).shape == (5, 3)  # never more than offered
    assert HasherConfig.from_dict(saved_before_recipe()).recipe.candidate_factor == 0
    with pytest.raises(ValueError, match="candidate_factor"):
        Recipe(candidate_factor=-1)
