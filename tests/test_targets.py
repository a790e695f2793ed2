import numpy as np
import scipy.sparse as sp

from semhash.targets import nearest_neighbours, neighbourhood_targets, word_distributions


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
    found = nearest_neighbours(x, 5, block=64)  # several blocks
    assert np.array_equal(np.take_along_axis(sims, found, 1), np.take_along_axis(sims, expected, 1))
    assert not np.any(found == np.arange(300)[:, None])  # never itself


def test_targets_are_distributions_mixing_self_and_neighbours() -> None:
    counts = sp.csr_matrix(np.array([[2, 0, 0], [0, 1, 1], [0, 0, 3], [0, 0, 0]], dtype=np.float32))
    tfidf = unit_rows(4, 3, seed=3)
    own = word_distributions(counts).toarray()
    assert np.allclose(own.sum(axis=1), [1, 1, 1, 0])
    assert np.allclose(neighbourhood_targets(counts, tfidf, 0, 0.5).toarray(), own)
    mixed = neighbourhood_targets(counts, tfidf, 2, 0.5).toarray()
    assert np.allclose(mixed[:3].sum(axis=1), 1.0)
    neighbours = nearest_neighbours(tfidf, 2)
    assert np.allclose(mixed[0], 0.5 * own[0] + 0.25 * own[neighbours[0]].sum(axis=0))
