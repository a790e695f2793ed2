"""The recipe's plan: code blocks, helper blocks, and rounds of neighbourhood targets.

A code longer than ``block_bits`` is made of blocks, each an autoencoder with its
own seed (``seed + 1000 * block``); their Hamming distances add up like an
ensemble's votes.  The first round trains every block towards its document's
words mixed with its nearest TF-IDF neighbours'; each refinement finds the
neighbours again by the codes of the first ``refine_blocks`` blocks (the
teachers; with ``helpers``, a shorter code trains the missing ones), chosen among the
TF-IDF candidates, and trains on towards both neighbourhoods.  The epochs are
shared evenly by the rounds, and each block's optimiser carries over.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from semhash.train import loss
from semhash.train.loop import History, TrainConfig, adam, encode_units, fit
from semhash.train.model import ModelConfig, SemanticHashingAutoencoder
from semhash.train.recipe import Recipe
from semhash.train.targets import (
    NeighbourhoodTargets,
    code_neighbours,
    neighbours_of,
    rerank_by_codes,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """What one training does: the code's blocks and the rounds they train in."""

    n_bits: int
    recipe: Recipe
    seed: int = 0
    epochs: int | None = None  # per block, exactly; None: the recipe's choice

    def block_sizes(self) -> list[int]:
        """Bits of each code block, in code order."""
        block = self.recipe.block_bits or self.n_bits
        whole, rest = divmod(self.n_bits, block)
        return [block] * whole + ([rest] if rest else [])

    def trainer_sizes(self) -> list[int]:
        """Bits of each block trained: the code's, then any helpers of a whole block's size."""
        sizes = self.block_sizes()
        helper = max(sizes[0], self.recipe.block_bits)
        return sizes + [helper] * max(0, self.n_teachers() - len(sizes))

    def n_stages(self) -> int:
        """The first round and each refinement, as far as the epochs go."""
        rounds = 1 + (self.recipe.refinements if self.recipe.n_neighbours else 0)
        return min(rounds, self.epochs or self.recipe.epochs)

    def n_teachers(self) -> int:
        """How many blocks find the refinement's code neighbours (0: no refinement).

        ``refine_blocks`` of them, or without helpers, as many of those as the code has
        (a code shorter than one block still trains a helper, with ``short_helper``: its
        own few bits find poor neighbours).
        """
        if self.n_stages() <= 1:
            return 0
        r = self.recipe
        short = r.short_helper and self.n_bits < r.block_bits
        return (
            r.refine_blocks if r.helpers or short else min(r.refine_blocks, len(self.block_sizes()))
        )

    def block_seed(self, block: int) -> int:
        """Block ``block``'s own seed: its initial weights and its batches."""
        return self.seed + 1000 * block

    def stages(
        self, block: int, n_documents: int, median_words: float | None = None
    ) -> list[TrainConfig]:
        """One block's training settings, round by round: the epochs split evenly.

        ``median_words``: distinct words of the corpus's median document.
        """
        r = self.recipe
        n_train = n_documents - TrainConfig(val_fraction=r.val_fraction).held_out(n_documents)
        short = self.n_bits < r.block_bits
        total = r.epochs_for(n_train, self.epochs, short, median_words)
        epochs = np.array_split(range(total), self.n_stages())
        return [
            TrainConfig(
                epochs=len(part),
                batch_size=r.batch_size,
                lr=r.lr,
                noise_std=r.noise_std,
                noise_warmup=0 if i else r.noise_warmup,
                balance_weight=r.balance_weight,
                val_fraction=r.val_fraction,
                patience=r.patience,
                ema_decay=r.ema_decay,
                seed=self.block_seed(block),
            )
            for i, part in enumerate(epochs)
        ]

    def model_config(self, vocab_size: int, n_bits: int, dropout: float) -> ModelConfig:
        """The shape of one block; ``dropout`` matters only while training."""
        r = self.recipe
        return ModelConfig(vocab_size, n_bits, r.hidden, dropout, r.code_scale)


def train_blocks(
    plan: Plan,
    counts: sp.csr_matrix,
    inputs: sp.csr_matrix,
    progress: bool = False,
    device: str = "cpu",
) -> tuple[list[SemanticHashingAutoencoder], list[History]]:
    """Train the code's blocks on ``counts`` (n, V) and weighted ``inputs`` (n, V).

    Returns the code blocks' models and histories (the helpers are dropped).
    """
    r, n = plan.recipe, counts.shape[0]
    sizes, n_stages, n_teachers = plan.block_sizes(), plan.n_stages(), plan.n_teachers()
    n_tfidf = r.neighbourhood(r.n_neighbours, n)
    n_found = r.neighbourhood(r.code_neighbours, n)
    pool = n_found * r.candidate_factor if n_stages > 1 else 0
    candidates = neighbours_of(inputs, max(n_tfidf, pool), progress=progress)
    tfidf = candidates[:, :n_tfidf]
    median_words = float(np.median(np.diff(inputs.indptr)))
    dropout = r.dropout_rate(median_words)
    logger.info("dropping words at rate %.2f while training", dropout)
    logger.info("the loss runs on the %s kernel (SEMHASH_LOSS to force one)", loss.current())
    trainers = [
        _Block(plan.model_config(counts.shape[1], bits, dropout), plan.stages(i, n, median_words))
        for i, bits in enumerate(plan.trainer_sizes())
    ]
    lists = [tfidf]
    for stage in range(n_stages):
        if stage:
            logger.info("finding the neighbours again by the codes (round %d)", stage)
            teachers = np.hstack([encode_units(t.model, inputs) for t in trainers[:n_teachers]])
            found = (
                rerank_by_codes(teachers, candidates[:, :pool], n_found)
                if pool
                else code_neighbours(teachers, n_found)
            )
            # The TF-IDF neighbours stay in the mix as an anchor: a neighbour both find
            # counts twice, and the codes' own mistakes are not all reinforced.
            lists = [tfidf, found]
        targets = NeighbourhoodTargets(counts, np.hstack(lists), r.self_weight)
        later = _later_targets(plan, counts, lists) or targets
        last = stage == n_stages - 1
        for i, trainer in enumerate(trainers):
            if i < len(sizes) or not last:  # a helper's last round would teach nothing
                role = f"block {i + 1}/{len(sizes)}" if i < len(sizes) else "helper block"
                desc = f"training {role}, round {stage + 1}/{n_stages}"
                own = later if i >= r.refine_blocks else targets  # helpers teach
                trainer.train(stage, inputs, own, progress, device, desc)
    code_blocks = trainers[: len(sizes)]
    return [t.model for t in code_blocks], [t.history for t in code_blocks]


def _later_targets(
    plan: Plan, counts: sp.csr_matrix, lists: list[np.ndarray]
) -> NeighbourhoodTargets | None:
    """The targets of the blocks past the teachers: the nearest share of each list.

    None when every block learns the same targets.
    """
    r = plan.recipe
    if r.later_neighbour_share >= 1.0 or len(plan.block_sizes()) <= r.refine_blocks:
        return None
    nearest = [ids[:, : max(1, round(r.later_neighbour_share * ids.shape[1]))] for ids in lists]
    return NeighbourhoodTargets(counts, np.hstack(nearest), r.self_weight)


class _Block:
    """One code block's autoencoder and optimiser, trained round by round."""

    def __init__(self, config: ModelConfig, stages: list[TrainConfig]) -> None:
        torch.manual_seed(stages[0].seed)  # the initial weights, too, come from the seed
        self.model = SemanticHashingAutoencoder(config)
        self.optimiser = adam(self.model, stages[0])
        self.stages = stages
        self.history = History()

    def train(
        self,
        stage: int,
        inputs: sp.csr_matrix,
        targets: NeighbourhoodTargets,
        progress: bool,
        device: str,
        desc: str,
    ) -> None:
        # The optimiser's moments carry over from one round to the next.
        config = self.stages[stage]
        self.history.extend(
            fit(self.model, inputs, targets, config, progress, device, self.optimiser, desc)
        )
