"""Shared fixtures: a small real sample of 20 Newsgroups and one small trained index."""

from __future__ import annotations

import inspect
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from semhash import Corpus, HasherConfig, SemanticIndex, load_corpus
from semhash.train.recipe import Recipe

SHARED_CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"


@pytest.fixture(scope="session")
def newsgroups() -> Corpus:
    return load_corpus("20newsgroups")


@pytest.fixture(scope="session")
def newsgroups_sample(newsgroups: Corpus) -> Corpus:
    """2,000 train and 300 test documents of the bundled corpus, drawn at random."""
    rng = np.random.default_rng(0)
    train = [i for i, s in enumerate(newsgroups.splits) if s == "train"]
    test = [i for i, s in enumerate(newsgroups.splits) if s == "test"]
    picked = list(rng.choice(train, 2000, replace=False)) + list(
        rng.choice(test, 300, replace=False)
    )
    return newsgroups.subset([int(i) for i in picked])


def small_config(n_bits: int = 16, epochs: int = 8, seed: int = 0) -> HasherConfig:
    """A configuration that trains in seconds on a couple of thousand documents."""
    recipe = Recipe(n_neighbours=20, code_neighbours=60, batch_size=64, lr=3e-3, noise_warmup=5)
    return HasherConfig(n_bits=n_bits, seed=seed, epochs=epochs, recipe=recipe)


def with_recipe(config: HasherConfig, **changes: object) -> HasherConfig:
    """``config`` with some of its recipe's fields changed."""
    return replace(config, recipe=replace(config.recipe, **changes))


def saved_before_recipe() -> dict:
    """The configuration of an index saved before the recipe (the committed format-2 one)."""
    manifest = Path(__file__).parent / "data" / "index-v2" / "manifest.json"
    return json.loads(manifest.read_text())["config"]


@pytest.fixture(scope="session")
def trained_index(newsgroups_sample: Corpus) -> SemanticIndex:
    return SemanticIndex.build(newsgroups_sample, small_config(n_bits=32, epochs=25))


@pytest.fixture(scope="session")
def saved_index(trained_index: SemanticIndex, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("index") / "idx"
    trained_index.save(path)
    return path


def write_jsonl(path: Path, corpus: Corpus) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for i, text, labels, split in zip(
            corpus.ids, corpus.texts, corpus.labels, corpus.splits, strict=True
        ):
            handle.write(
                json.dumps({"id": i, "text": text, "labels": list(labels), "split": split})
            )
            handle.write("\n")
    return path


TRAINING_FIXTURES = {"trained_index", "saved_index", "cli_index", "copy"}
TRAINING_CALLS = ("SemanticIndex.build(", ".fit(", "evaluate_corpus(", '"index",', '"eval",')


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that trains a model ``slow``: by its fixtures or its training calls."""
    for item in items:
        function = getattr(item, "function", None)
        source = inspect.getsource(function) if function else ""
        uses = set(getattr(item, "fixturenames", ()))
        if uses & TRAINING_FIXTURES or any(call in source for call in TRAINING_CALLS):
            item.add_marker(pytest.mark.slow)
