"""The recipe: every tuned setting of training in one frozen, versioned dataclass.

What a user chooses (code length, vocabulary, seed, epochs, a training sample) is
``HasherConfig``; how the codes are learnt is the recipe, chosen on the benchmarks
and saved with each index.  A different recipe is a JSON file of the fields to
change (``semhash index --recipe FILE.json``).  Why each default was chosen is in
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

RECIPE_VERSION = 7


@dataclass(frozen=True)
class Recipe:
    """How a hasher learns its codes; saved in the index manifest."""

    version: int = RECIPE_VERSION
    # The autoencoder.
    hidden: int = 500  # units in each of the encoder's two hidden layers
    code_scale: float = 8.0  # the code layer's batch-norm scale at the start (0: no norm)
    dropout: float = 0.5  # word dropout while training, at least
    dropout_keep_words: float = 19.0  # raise the dropout so the median document keeps this many
    # What the decoder reconstructs: a document's words mixed with its neighbours'.
    n_neighbours: int = 100  # nearest TF-IDF neighbours mixed into each target
    self_weight: float = 0.1  # the document's own share of its target
    neighbour_fraction: float = 0.01  # a small corpus mixes in at most this share of itself
    # Long codes as blocks; rounds that find the neighbours again by the codes.
    block_bits: int = 32  # bits per separately trained block (0: one model for all bits)
    refinements: int = 2  # rounds after the first, each with neighbours found by codes
    refine_blocks: int = 2  # blocks whose codes find those neighbours (of those there are)
    helpers: bool = False  # a shorter code trains extra blocks to have refine_blocks
    short_helper: bool = True  # ... at least a code shorter than one block does
    code_neighbours: int = 100  # neighbours found by the codes in each refinement
    candidate_factor: int = 3  # ... among this many times as many TF-IDF neighbours
    later_neighbour_share: float = 0.5  # blocks past the teachers: nearest share of each list
    recalibrate_norms: bool = True  # measure the batch norms again on whole documents
    # The optimiser.
    epochs: int = 60  # per block, shared by the rounds
    short_epochs: int = 90  # ... for a code shorter than one block, and its helper (0: epochs)
    brief_epochs: int = 80  # ... at least, for a corpus of brief documents (0: epochs)
    brief_words: float = 32.0  # brief: the median document has fewer distinct words than this
    min_steps: int = 750  # a small corpus trains more epochs to make this many steps
    large_min_steps: int = 1200  # ... and a corpus of at least large_corpus documents this many
    large_corpus: int = 5000  # training documents from which large_min_steps applies (0: never)
    max_steps: int = 5000  # a large corpus trains fewer epochs to stay within this many
    batch_size: int = 512
    lr: float = 9e-3
    noise_std: float = 8.0  # Gaussian noise added to the code units before the sigmoid
    noise_warmup: int = 10  # epochs over which the noise ramps up from 0
    balance_weight: float = 1.0  # penalty keeping each bit's mean near 0.5
    val_fraction: float = 0.1  # held out for early stopping on the thresholded codes
    patience: int = 10  # epochs without improvement before stopping
    ema_decay: float = 0.995  # keep a moving average of the weights (0: last step's)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, bool) and value < 0:
                raise ValueError(f"recipe: {f.name} must be non-negative, got {value}")
        for name in ("hidden", "epochs", "batch_size", "refine_blocks"):
            if getattr(self, name) < 1:
                raise ValueError(f"recipe: {name} must be at least 1, got {getattr(self, name)}")
        for name in ("self_weight", "neighbour_fraction"):
            if getattr(self, name) > 1:
                raise ValueError(f"recipe: {name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 < self.later_neighbour_share <= 1.0:
            raise ValueError(
                f"recipe: later_neighbour_share must be in (0, 1], got {self.later_neighbour_share}"
            )
        if not 0.0 <= self.dropout < 1.0 or not 0.0 <= self.ema_decay < 1.0:
            raise ValueError("recipe: dropout and ema_decay must be in [0, 1)")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"recipe: val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.max_steps and self.max_steps < max(self.min_steps, self.large_min_steps):
            raise ValueError(
                "recipe: max_steps must be 0 (no cap) or at least min_steps and large_min_steps"
            )

    def dropout_rate(self, median_words: float) -> float:
        """The word dropout rate for a corpus whose median document has ``median_words``."""
        if self.dropout_keep_words == 0 or median_words == 0:
            return self.dropout
        return max(self.dropout, 1.0 - self.dropout_keep_words / median_words)

    def neighbourhood(self, most: int, n_documents: int) -> int:
        """How many neighbours to mix in: ``most``, or fewer in a small corpus."""
        if self.neighbour_fraction == 0:
            return most
        return min(most, max(1, round(self.neighbour_fraction * n_documents)))

    def epochs_for(
        self,
        n_train: int,
        epochs: int | None = None,
        short: bool = False,
        median_words: float | None = None,
    ) -> int:
        """Epochs for ``n_train`` training documents: ``epochs`` exactly when given.

        Otherwise the recipe's ``epochs`` (``short_epochs`` for a ``short`` code, one
        shorter than a block; at least ``brief_epochs`` when the median document has
        fewer than ``brief_words`` distinct words), raised to make at least
        ``min_steps`` optimiser steps (``large_min_steps`` from ``large_corpus``
        documents on) and lowered for a large corpus to stay within ``max_steps``.
        """
        if epochs is not None:
            return epochs
        batches = max(1, math.ceil(n_train / self.batch_size))
        chosen = self.short_epochs if short and self.short_epochs else self.epochs
        if self.brief_epochs and median_words is not None and median_words < self.brief_words:
            chosen = max(chosen, self.brief_epochs)
        floor = self.min_steps
        if self.large_corpus and n_train >= self.large_corpus:
            floor = max(floor, self.large_min_steps)
        chosen = max(chosen, math.ceil(floor / batches))
        if self.max_steps:
            chosen = min(chosen, max(1, self.max_steps // batches))
        return chosen

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, state: dict[str, Any], source: str = "recipe") -> Recipe:
        """A recipe from saved or hand-written fields; an unknown field is an error."""
        if not isinstance(state, dict):
            raise ValueError(f"{source}: a recipe is a JSON object, not {type(state).__name__}")
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(state) - known):
            raise ValueError(f"{source}: unknown recipe field {unknown[0]!r}")
        version = state.get("version", RECIPE_VERSION)
        if version > RECIPE_VERSION:
            raise ValueError(f"{source}: recipe version {state['version']} is newer than this")
        for since, fields_then in _ADDED.items():  # what older recipes trained with
            if version < since:
                state = {**fields_then, **state}
        return cls(**state)

    @classmethod
    def load(cls, path: str | Path) -> Recipe:
        """The default recipe with the fields of a JSON file changed."""
        try:
            state = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ValueError(f"{path}: not a readable JSON recipe ({err})") from None
        if not isinstance(state, dict):
            raise ValueError(f"{path}: a recipe is a JSON object of fields to change")
        return cls.from_dict({**asdict(cls()), **state, "version": RECIPE_VERSION}, str(path))


# How the fields of indexes saved before the recipe (formats 1 and 2, one flat
# ``HasherConfig`` with a ``train`` part) read: renamed fields, and the value a field
# missing from an older save had when that index was trained.
_RENAMED = {
    "n_neighbors": "n_neighbours",
    "code_neighbors": "code_neighbours",
    "neighbor_fraction": "neighbour_fraction",
    "later_neighbor_share": "later_neighbour_share",
}
_BEFORE = {
    "block_bits": 0,
    "refinements": 0,
    "refine_blocks": 1,
    "helpers": True,
    "neighbour_fraction": 0.0,
    "candidate_factor": 0,
    "dropout_keep_words": 0.0,
    "recalibrate_norms": False,
    "later_neighbour_share": 1.0,
    "min_steps": 0,
    "large_min_steps": 0,
    "large_corpus": 0,
    "short_epochs": 0,
    "brief_epochs": 0,
    "ema_decay": 0.0,
    "max_steps": 0,
}
# Fields added by a recipe version, with the value every earlier recipe trained with.
_ADDED: dict[int, dict[str, Any]] = {
    4: {"helpers": True},
    5: {"short_helper": False},
    6: {"short_epochs": 0, "large_min_steps": 0, "large_corpus": 0},
    7: {"brief_epochs": 0},
}
_RETIRED = {"deep_decoder": False, "weight_decay": 0.0, "decorrelation_weight": 0.0}


def migrate(state: dict[str, Any]) -> dict[str, Any]:
    """A saved ``HasherConfig`` of an index from before the recipe, in today's fields."""
    flat = {k: v for k, v in state.items() if k not in ("vectorizer", "train")}
    flat.update(state.get("train", {}))
    for name, off in _RETIRED.items():
        if flat.pop(name, off) != off:
            raise ValueError(f"the index was trained with {name}, which semhash no longer has")
    flat = {_RENAMED.get(k, k): v for k, v in flat.items()}
    user: dict[str, Any] = {k: flat.pop(k) for k in ("n_bits", "train_sample", "seed") if k in flat}
    recipe = {**asdict(Recipe()), **_BEFORE, **flat, "version": 2}
    return {**user, "epochs": None, "vectorizer": state["vectorizer"], "recipe": recipe}
