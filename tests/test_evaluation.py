import itertools
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from semhash.codes import pack
from semhash.eval import protocol
from semhash.eval.baselines import ITQ, RandomHyperplaneLSH
from semhash.eval.precision import hamming_precision, label_matrix, precision_at_k
from semhash.eval.protocol import (
    ProtocolError,
    evaluate_corpus,
    evaluate_index,
    make_split,
    training_plan,
)
from semhash.hasher import HasherConfig, SemanticHasher

from .conftest import small_config, with_recipe


def test_tie_aware_precision_is_the_expectation_over_tied_orders() -> None:
    distances = np.array([[0, 1, 1, 1, 1, 2]])
    relevant = np.array([[True, True, False, False, False, True]])
    # k=3: the first is sure (relevant); 2 of the 4 tied at distance 1 are taken, 1 in 4 relevant.
    _, tie_aware = precision_at_k(distances, relevant, 3, np.random.default_rng(0))
    assert tie_aware[0] == pytest.approx((1 + 2 * 0.25) / 3)
    draws = [
        precision_at_k(distances, relevant, 3, np.random.default_rng(s))[0][0] for s in range(2000)
    ]
    assert np.mean(draws) == pytest.approx(tie_aware[0], abs=0.02)


def test_label_matrix_and_multi_label_hits() -> None:
    vocabulary = {"a": 0, "b": 1, "c": 2}
    queries = label_matrix([("a",), ("b", "c")], vocabulary)
    db_labels = label_matrix([("a",), ("c",), ("b",), ()], vocabulary)
    db = pack(np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=bool))
    q = pack(np.array([[0, 0], [1, 1]], dtype=bool))
    # query 0 ranks doc 0 first (relevant); query 1 ranks doc 3 (unlabelled, a miss) first.
    p = hamming_precision(q, db, queries, db_labels, k=1)
    assert p.tie_aware == pytest.approx(0.5) and p.random == pytest.approx(0.5)


def test_baselines_produce_codes_of_the_asked_length(trained_index) -> None:
    vectorizer = trained_index.hasher.vectorizer
    tfidf = vectorizer.weight(vectorizer.counts(trained_index.texts[:300]))
    for hasher in (RandomHyperplaneLSH(24), ITQ(24)):
        codes = hasher.fit(tfidf).encode(tfidf)
        assert codes.shape == (300, 1) and codes.dtype == np.uint64
        assert np.bitwise_count(codes).max() <= 24


def test_protocol_rows_rank_exact_tfidf_above_lsh(trained_index) -> None:
    rows = {r.method: r for r in evaluate_index(trained_index)}
    assert set(rows) == {"semhash", "semhash-dense (cosine)", "tfidf-cosine (exact)", "lsh", "itq"}
    assert rows["tfidf-cosine (exact)"].tie_aware > rows["lsh"].tie_aware
    assert rows["itq"].tie_aware > 0.2


def test_protocol_needs_labels_and_both_splits(newsgroups_sample) -> None:
    train = newsgroups_sample.split("train")
    with pytest.raises(
        ProtocolError, match=f"split 'train' and split 'test'.*{len(train)} train and 0 test"
    ):
        make_split(train)


def test_the_plan_reads_shorter_whole_block_codes_off_the_longest() -> None:
    plain = with_recipe(HasherConfig(), refinements=0)  # blocks of 32 bits, each on its own
    assert training_plan(plain, [128, 16, 64, 32]) == {16: [16], 128: [32, 64, 128]}
    assert training_plan(plain, [32, 40]) == {40: [32, 40]}
    assert training_plan(with_recipe(plain, block_bits=0), [32, 64]) == {32: [32], 64: [64]}
    # With helpers, a refined 32-bit code trains a 32-bit helper, but a 40-bit code's second
    # block is 8; a 16-bit code's helper is a whole 32-bit block, so 32 bits do not give 16.
    refined = with_recipe(plain, refinements=1, helpers=True)
    assert training_plan(refined, [32, 40, 64]) == {64: [32, 64], 40: [40]}
    assert training_plan(refined, [16, 32]) == {16: [16], 32: [32]}
    assert SemanticHasher(replace(refined, n_bits=16)).plan().trainer_sizes() == [16, 32]
    # Without helpers a 32-bit code is its own teacher, unlike the 64-bit code's first block.
    alone = with_recipe(refined, helpers=False)
    assert training_plan(alone, [32, 64, 128]) == {32: [32], 128: [64, 128]}
    # A code shorter than one block still trains a whole block beside it to teach.
    assert SemanticHasher(replace(alone, n_bits=16)).plan().trainer_sizes() == [16, 32]
    no_short = with_recipe(alone, short_helper=False)
    assert SemanticHasher(replace(no_short, n_bits=16)).plan().trainer_sizes() == [16]


def test_evaluating_two_lengths_trains_once_and_scores_as_trained_alone(
    newsgroups_sample, monkeypatch
) -> None:
    # A clock on which training takes 100 s a bit and each reading 1 s: each row's seconds
    # follow from the training it counts, not from how busy the machine is.
    clock = itertools.count()
    fit = SemanticHasher.fit

    def timed_fit(self, *args, **kwargs):
        for _ in range(100 * self.config.n_bits):
            next(clock)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(SemanticHasher, "fit", timed_fit)
    monkeypatch.setattr(protocol, "time", SimpleNamespace(perf_counter=lambda: float(next(clock))))
    corpus = newsgroups_sample.subset(list(range(0, 2300, 2)))
    config = with_recipe(small_config(n_bits=8, epochs=3), block_bits=8)
    both = evaluate_corpus(corpus, [16, 8], config, baselines=False)
    alone = evaluate_corpus(corpus, [8], config, baselines=False)
    assert [(r.method, r.n_bits) for r in both] == [("semhash", 8), ("semhash", 16)]
    assert both[0].tie_aware == alone[0].tie_aware
    assert both[1].seconds > both[0].seconds  # each row counts its own blocks' training
