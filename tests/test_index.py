"""Every Hamming backend against brute force; faiss dense search against numpy."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from semhash.codes import hamming, pack
from semhash.index import DenseIndex, HammingBuckets, LinearScan, popcount
from semhash.index.base import Hits
from semhash.options import ENGINES

DATA = Path(__file__).parent / "data"

BITS = [8, 16, 24, 32, 64, 128]


def random_codes(n: int, n_bits: int, seed: int) -> np.ndarray:
    return pack(np.random.default_rng(seed).random((n, n_bits)) < 0.5)


def clustered_codes(n: int, n_bits: int, seed: int) -> np.ndarray:
    """Codes near 10 centres: many exact duplicates and small distances, as trained codes are."""
    rng = np.random.default_rng(seed)
    centres = rng.random((10, n_bits)) < 0.5
    noise = rng.random((n, n_bits)) < 0.03
    return pack(centres[rng.integers(0, 10, n)] ^ noise)


def brute_force(db: np.ndarray, queries: np.ndarray, k: int, radius: int | None = None):
    """Oracle: full distance matrix, stable sort by (distance, position)."""
    out = []
    for row in hamming(queries, db):
        order = np.lexsort((np.arange(len(row)), row))
        if radius is not None:
            order = order[row[order] <= radius]
        out.append((row[order[:k]].tolist(), order[:k].tolist()))
    return out


def as_lists(hits):
    return [
        (d[p >= 0].tolist(), p[p >= 0].tolist())
        for d, p in zip(hits.distances, hits.positions, strict=True)
    ]


@pytest.mark.parametrize("n_bits", BITS)
@pytest.mark.parametrize("make", [random_codes, clustered_codes])
def test_buckets_and_scan_equal_brute_force(n_bits, make) -> None:
    db = make(2000, n_bits, seed=1)
    queries = np.concatenate([make(20, n_bits, seed=2), db[:20]])  # unseen and indexed queries
    buckets, scan = HammingBuckets(n_bits), LinearScan(n_bits)
    buckets.add(db[:1200])
    buckets.add(db[1200:])  # adding in two steps changes nothing
    scan.add(db)
    for k in (1, 10, 100):
        expected = brute_force(db, queries, k)
        for engine in ENGINES:
            assert as_lists(buckets.search(queries, k, engine=engine)) == expected, engine
        assert as_lists(scan.search(queries, k)) == expected
        assert as_lists(buckets.search(queries[:1], k)) == expected[:1]  # one query alone


@pytest.mark.parametrize("n_bits", BITS)
def test_radius_search_returns_everything_within_radius(n_bits) -> None:
    db = clustered_codes(3000, n_bits, seed=3)
    index = HammingBuckets(n_bits)
    index.add(db)
    queries = db[:10]
    for radius in (0, 1, 2, 3):
        expected = brute_force(db, queries, 5000, radius)
        for engine in ENGINES:
            assert as_lists(index.search(queries, 5000, radius, engine)) == expected, engine


def test_buckets_probe_when_cheaper_than_a_scan() -> None:
    db = clustered_codes(200_000, 16, seed=4)
    index = HammingBuckets(16)
    index.add(db)
    assert as_lists(index.search(db[:5], 50)) == brute_force(db, db[:5], 50)


def test_fewer_documents_than_k_pads_with_minus_one() -> None:
    index = HammingBuckets(8)
    index.add(random_codes(3, 8, seed=5))
    hits = index.search(random_codes(1, 8, seed=6), k=5)
    assert hits.positions[0, 3:].tolist() == [-1, -1] and hits.distances[0, 3:].tolist() == [-1, -1]


@pytest.mark.parametrize("bad", [0, -1])
def test_k_below_one_is_refused(bad) -> None:
    index = LinearScan(8)
    index.add(random_codes(3, 8, seed=5))
    with pytest.raises(ValueError, match="k must be at least 1"):
        index.search(random_codes(1, 8, seed=6), k=bad)


def test_codes_of_the_wrong_width_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\(n, 2\) uint64"):
        HammingBuckets(128).add(random_codes(3, 64, seed=0))


def test_dense_index_matches_numpy_cosine() -> None:
    rng = np.random.default_rng(7)
    db, queries = rng.random((500, 32)).astype(np.float32), rng.random((8, 32)).astype(np.float32)
    index = DenseIndex(32)
    index.add(db)
    hits = index.search(queries, k=10)
    centred = lambda x: (x - 0.5) / np.linalg.norm(x - 0.5, axis=1, keepdims=True)  # noqa: E731
    sims = centred(queries) @ centred(db).T
    assert np.array_equal(hits.positions, np.argsort(-sims, axis=1, kind="stable")[:, :10])
    assert np.allclose(hits.distances, np.sort(sims, axis=1)[:, ::-1][:, :10], atol=1e-5)


@pytest.mark.parametrize("kernel", popcount.KERNELS)
@pytest.mark.parametrize("n_bits", BITS)
def test_every_scan_kernel_equals_brute_force(kernel, n_bits, monkeypatch) -> None:
    if kernel not in popcount.available_kernels():
        pytest.skip(f"this CPU or build has no {kernel} kernel: {popcount.available_kernels()}")
    before = popcount.kernel()
    monkeypatch.setattr(popcount, "_SPLIT_WORK", 0)  # batches split over the cores
    db = clustered_codes(9003, n_bits, seed=8)  # over two blocks, not whole vectors of codes
    queries = np.concatenate([random_codes(37, n_bits, seed=9), db[:3]])
    popcount.use_kernel(kernel)
    try:
        for batch in (queries, queries[:1], queries[:5]):
            # k >= 1/16 of the codes takes the distance-histogram selection
            for k, radius in ((1, None), (100, None), (250, 3), (600, None), (3000, 4)):
                expected = brute_force(db, batch, k, radius)
                positions, distances = popcount.top_k(batch, db, k, n_bits, radius)
                assert as_lists(Hits(positions, distances)) == expected, (len(batch), k, radius)
                if n_bits <= 32:  # a lone query reads the uint32 copy (AVX2)
                    narrow = db[:, 0].astype(np.uint32)
                    hits = Hits(*popcount.top_k(batch, db, k, n_bits, radius, narrow))
                    assert as_lists(hits) == expected, ("narrow", len(batch), k, radius)
    finally:
        popcount.use_kernel(before)


def test_an_unknown_kernel_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="kernel 'avx9' is not available here; this machine runs"):
        popcount.use_kernel("avx9")


def test_semhash_kernel_forces_a_path_and_names_the_choices_when_it_cannot(tmp_path) -> None:
    script = "from semhash.index.popcount import kernel; print(kernel())"
    for name in popcount.available_kernels():
        env = {**os.environ, "SEMHASH_KERNEL": name}
        run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True)
        assert run.stdout.decode().strip() == name, run.stderr.decode()
    env = {**os.environ, "SEMHASH_KERNEL": "avx9"}
    info = [sys.executable, "-m", "semhash", "info", str(DATA / "index-v2")]
    run = subprocess.run(info, env=env, capture_output=True, text=True)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        f"Error: SEMHASH_KERNEL: kernel 'avx9' is not available here; this machine runs "
        f"{', '.join(popcount.available_kernels())} (of {', '.join(popcount.KERNELS)})"
    ]


def test_the_planner_picks_the_engine_the_codes_call_for_and_it_answers() -> None:
    spread = HammingBuckets(32)
    spread.add(random_codes(100_000, 32, seed=3))  # the 100th neighbour lies far away
    rng = np.random.default_rng(4)
    centres = rng.random((50_000, 32)) < 0.5  # a million codes, twenty near each centre
    tight_codes = pack(
        centres[rng.integers(0, 50_000, 1_000_000)] ^ (rng.random((1_000_000, 32)) < 0.01)
    )
    tight = HammingBuckets(32)
    tight.add(tight_codes)  # the 10th neighbour a bit or two away: probing beats a scan
    queries = random_codes(64, 32, seed=5)
    assert spread.plan(len(queries), 100).engine == "scan"
    near = tight_codes[:64]
    assert tight.plan(len(near), 10).engine in ("buckets", "mih")
    for index, batch, k in ((spread, queries, 100), (tight, near, 10)):
        expected = brute_force(index.codes, batch, k)
        assert as_lists(index.search(batch, k)) == expected
