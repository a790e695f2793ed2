"""``SemanticHasher``: texts in, binary codes out (a vectoriser and trained code blocks).

Training itself is :mod:`semhash.train`; this keeps what a trained hasher is made
of and how it encodes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from semhash.codes import binarize, check_n_bits, pack
from semhash.text import Bags, Vectorizer, VectorizerConfig
from semhash.threads import use_free_cores
from semhash.train.loop import (
    ENCODE_BLOCK,
    FEW_ROWS,
    History,
    encode_units,
    recalibrate_norms,
    resolve_device,
    row_blocks,
)
from semhash.train.model import SemanticHashingAutoencoder
from semhash.train.recipe import Recipe, migrate
from semhash.train.rounds import Plan, train_blocks

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HasherConfig:
    """What a user chooses about a hasher, and the recipe it trains by; saved in the manifest.

    ``epochs`` None lets the recipe choose (:meth:`Recipe.epochs_for`); a number is
    the epochs each block trains, exactly.  ``train_sample`` > 0 trains on that many
    documents drawn from the seed, in corpus order, and indexes all of them.
    """

    n_bits: int = 32
    seed: int = 0
    epochs: int | None = None
    train_sample: int = 0
    vectorizer: VectorizerConfig = field(default_factory=VectorizerConfig)
    recipe: Recipe = field(default_factory=Recipe)

    def __post_init__(self) -> None:
        check_n_bits(self.n_bits)
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.train_sample < 0:
            raise ValueError(f"train_sample must be non-negative, got {self.train_sample}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> HasherConfig:
        """Read a saved configuration; one saved before the recipe is migrated."""
        if not isinstance(state, dict):
            raise ValueError(f"a configuration is a JSON object, not {type(state).__name__}")
        state = dict(state) if "recipe" in state else migrate(state)
        vectorizer = VectorizerConfig(**state.pop("vectorizer"))
        recipe = Recipe.from_dict(state.pop("recipe"), "the index's recipe")
        return cls(vectorizer=vectorizer, recipe=recipe, **state)


class SemanticHasher:
    """Learns binary codes for documents.

    >>> hasher = SemanticHasher(HasherConfig(n_bits=16)).fit(texts)  # doctest: +SKIP
    >>> hasher.encode(["a query"]).shape  # doctest: +SKIP
    (1, 1)
    """

    def __init__(self, config: HasherConfig | None = None) -> None:
        self.config = config or HasherConfig()
        self.vectorizer = Vectorizer(self.config.vectorizer)
        self.models: list[SemanticHashingAutoencoder] = []  # one per code block
        self.history = History()  # the blocks' histories one after another
        self.block_histories: list[History] = []  # kept by fit, not saved

    @property
    def n_bits(self) -> int:
        return self.config.n_bits

    def fit(
        self, texts: Sequence[str], progress: bool = True, device: str = "cpu"
    ) -> SemanticHasher:
        """Fit the vocabulary and train the code blocks on ``texts`` (on ``device``)."""
        if len(texts) == 0:
            raise ValueError("cannot fit on an empty list of documents")
        use_free_cores()
        texts = self._training_texts(texts)
        logger.info("fitting the vocabulary on %d documents", len(texts))
        self.vectorizer.fit(texts)
        counts = self.vectorizer.counts(texts, progress=progress)
        inputs = self.vectorizer.weight(counts)
        self.models, self.block_histories = train_blocks(
            self.plan(), counts, inputs, progress, resolve_device(device)
        )
        self.history = _joined(self.block_histories)
        if self.config.recipe.recalibrate_norms:
            self._recalibrate(inputs)
        return self

    def plan(self) -> Plan:
        """The blocks and rounds this hasher's configuration trains."""
        cfg = self.config
        return Plan(cfg.n_bits, cfg.recipe, cfg.seed, cfg.epochs)

    def recalibrate_norms(self, texts: Sequence[str]) -> SemanticHasher:
        """Recompute the models' batch-norm statistics on ``texts``, whole (no word dropout).

        ``fit`` does this on its training documents when the recipe says so.
        """
        self._require_models()
        self._recalibrate(self.vectorizer.weight(self.vectorizer.counts(texts)))
        return self

    def _recalibrate(self, inputs: sp.csr_matrix) -> None:
        logger.info("recalibrating the batch norms on %d documents", inputs.shape[0])
        plan = self.plan()
        for i, model in enumerate(self._require_models()):
            recalibrate_norms(model, inputs, plan.recipe.batch_size, plan.block_seed(i))

    def _training_texts(self, texts: Sequence[str]) -> Sequence[str]:
        """``train_sample`` of ``texts`` drawn from the seed, in corpus order (all when fewer)."""
        size = self.config.train_sample
        if size and len(texts) > size:
            logger.info("training on %d of %d documents drawn at random", size, len(texts))
            rng = np.random.default_rng(self.config.seed)
            texts = [texts[i] for i in np.sort(rng.choice(len(texts), size, replace=False))]
        return texts

    def first_blocks(self, n_bits: int) -> SemanticHasher:
        """The hasher made of the first blocks that add up to ``n_bits``.

        Each block has its own seed, so where the refinement's teachers are the same
        blocks (real or helpers) this is exactly what a hasher of ``n_bits`` with this
        configuration learns: one training serves every such shorter length.
        """
        if not self.covers(n_bits):
            raise ValueError(f"{n_bits} bits are not the first blocks of {self.block_sizes()}")
        shorter = SemanticHasher(replace(self.config, n_bits=n_bits))
        n_blocks = len(shorter.block_sizes())
        shorter.vectorizer = self.vectorizer
        shorter.models = self._require_models()[:n_blocks]
        shorter.block_histories = self.block_histories[:n_blocks]
        shorter.history = _joined(shorter.block_histories)
        return shorter

    def covers(self, n_bits: int) -> bool:
        """Whether :meth:`first_blocks` can give ``n_bits`` (known before training)."""
        if n_bits > self.n_bits:
            return False
        shorter, plan = replace(self.plan(), n_bits=n_bits), self.plan()
        same_teachers = shorter.n_teachers() == plan.n_teachers()
        trained = shorter.trainer_sizes()
        return same_teachers and plan.trainer_sizes()[: len(trained)] == trained

    def block_sizes(self) -> list[int]:
        """Bits of each code block, in code order."""
        return self.plan().block_sizes()

    def activations(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Real-valued code units in (0, 1): ``(n, b)`` float32.

        All the words are counted first (in parallel threads), then encoded block by block.
        """
        return self.activations_from_counts(self.vectorizer.counts(texts, progress), progress)

    def activations_from_counts(
        self, counts: sp.csr_matrix | Bags, progress: bool = False
    ) -> np.ndarray:
        """Code units for word counts already made by ``self.vectorizer``: ``(n, b)`` float32.

        A few rows (typed queries) are encoded from their arrays in one compiled call, with
        no scipy matrix or torch call in the way; many rows go block by block through torch.
        """
        indptr = counts.indptr
        _warn_empty(int(np.count_nonzero(indptr[1:] == indptr[:-1])))
        if isinstance(counts, Bags):
            models = self._require_models()
            if len(counts) <= FEW_ROWS and not any(model.training for model in models):
                weights = self.vectorizer.weights(counts)
                units = [model.encode_few(indptr, counts.indices, weights) for model in models]
                joined = units[0] if len(units) == 1 else np.hstack(units)
                return joined.astype(np.float32, copy=False)
            counts = counts.matrix(self.vectorizer.vocab_size)
        out = np.empty((counts.shape[0], self.n_bits), dtype=np.float32)
        blocks: Iterable[tuple[int, sp.csr_matrix]] = row_blocks(counts)
        if progress and counts.shape[0] > ENCODE_BLOCK:  # a bar costs more than one query
            total = -(-counts.shape[0] // ENCODE_BLOCK)
            blocks = tqdm(blocks, desc="encoding", unit="block", total=total)
        for start, rows in blocks:
            block = self.vectorizer.weight(rows)
            out[start : start + ENCODE_BLOCK] = self._encode_inputs(block)
        return out

    def _encode_inputs(self, inputs: sp.csr_matrix) -> np.ndarray:
        """Code units for weighted bag-of-words rows, block after block: ``(n, b)`` float32."""
        return np.hstack([encode_units(model, inputs) for model in self._require_models()])

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Packed binary codes: ``(n, words)`` uint64."""
        return pack(binarize(self.activations(texts, progress)))

    def weights(self) -> dict[str, np.ndarray]:
        """The models' parameters as numpy arrays (for safetensors); block i's as ``blocks.i.*``."""
        models = self._require_models()
        return {
            _weight_prefix(i, len(models)) + name: np.ascontiguousarray(
                value.detach().cpu().numpy()
            )
            for i, model in enumerate(models)
            for name, value in model.state_dict().items()
        }

    def load_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Rebuild the models from :meth:`weights`; raises ``ValueError`` on a shape mismatch."""
        sizes = self.block_sizes()
        models: list[SemanticHashingAutoencoder] = []
        used: set[str] = set()
        for i, n_bits in enumerate(sizes):
            prefix = _weight_prefix(i, len(sizes))
            state = {
                name[len(prefix) :]: torch.from_numpy(np.array(value))
                for name, value in weights.items()
                if name.startswith(prefix)
            }
            config = self.plan().model_config(self.vectorizer.vocab_size, n_bits, 0.0)
            model = SemanticHashingAutoencoder(config)
            try:
                model.load_state_dict(state)
            except RuntimeError as err:
                first = str(err).splitlines()[0]
                raise ValueError(f"weights do not fit the model: {first}") from None
            models.append(model.eval())
            used.update(prefix + name for name in state)
        if unused := sorted(set(weights) - used):
            raise ValueError(f"weights do not fit the model: unexpected {unused[0]!r}")
        self.models = models

    def word_scores(self, codes: np.ndarray) -> np.ndarray:
        """The decoders' log-probability of every word for each ``(n, b)`` code in [0, 1].

        Each block's decoder reads its own bits; their word distributions multiply
        (a product of experts), so every bit counts as it does for one model.
        """
        codes_in = torch.as_tensor(codes, dtype=torch.float32)
        parts, start = [], 0
        with torch.no_grad():
            for model in self._require_models():
                stop = start + model.config.n_bits
                parts.append(torch.log_softmax(model.decoder(codes_in[:, start:stop]), dim=-1))
                start = stop
            return torch.log_softmax(torch.stack(parts).sum(dim=0), dim=-1).numpy()

    def _require_models(self) -> list[SemanticHashingAutoencoder]:
        if not self.models:
            raise RuntimeError("the hasher is not trained: call fit() first")
        return self.models


def _warn_empty(n_empty: int) -> None:
    if n_empty:
        logger.warning("%d documents have no word of the vocabulary: they share one code", n_empty)


def _joined(histories: list[History]) -> History:
    joined = History()
    for history in histories:
        joined.extend(history)
    return joined


def _weight_prefix(block: int, n_blocks: int) -> str:
    """Block ``block``'s weight names start with this; one block keeps the plain names."""
    return f"blocks.{block}." if n_blocks > 1 else ""
