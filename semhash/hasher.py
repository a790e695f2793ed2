"""``SemanticHasher``: texts in, binary codes out (vectoriser + autoencoder + training)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from semhash import codes as codes_
from semhash.text import Vectorizer, VectorizerConfig
from semhash.train.loop import History, TrainConfig, adam, fit, recalibrate_norms, sparse
from semhash.train.model import ModelConfig, SemanticHashingAutoencoder
from semhash.train.targets import (
    code_neighbours,
    nearest_neighbours,
    neighbourhood_targets,
    rerank_by_codes,
)

logger = logging.getLogger(__name__)
_ENCODE_BLOCK = 2048
_LARGE_TRAINING = 200_000  # documents: ~6 GB of targets and hours of exact neighbour search
_TARGET_BYTES = 30_000  # per training document, measured on 20NG (314 MB for 11,314 posts)


@dataclass(frozen=True)
class HasherConfig:
    """Everything that decides a hasher's codes; saved in the index manifest.

    ``n_neighbors`` > 0 trains the decoder to reconstruct a mix of the document's
    words (weight ``self_weight``) and its nearest TF-IDF neighbours' words; in a
    corpus of fewer than ``n_neighbors / neighbor_fraction`` documents, the nearest
    ``neighbor_fraction`` of it (1 %: 20 neighbours of 2,000 posts lifted P@100 from
    0.264 to 0.323; a neighbourhood should stay well inside a topic).

    Codes longer than ``block_bits`` are built from blocks of at most that many
    bits, each learnt by its own autoencoder from its own seed (``seed + 1000 *
    block``); Hamming distances then add up over blocks like an ensemble's votes
    (two 32-bit blocks: 0.578 P@100 on 20NG with headers, one 64-bit model 0.553).
    ``0`` trains one model for all bits (as indexes saved before blocks did).

    Training drops each input word at rate ``dropout``; ``dropout_keep_words`` > 0
    raises the rate for a corpus of long documents, so that its median document
    keeps about that many distinct words (20NG with headers, median 64, drops 0.70:
    0.623 P@100 at 64 bits against 0.601 at 0.5, 3 seeds; Reuters, median 39, drops
    0.51; stripped posts, median 29, which lost at 0.6, keep 0.5).  A rate per
    document did worse.  ``0`` keeps the one rate.

    ``refinements`` rounds then find ``code_neighbors`` neighbours again by the
    concatenated codes of the first ``refine_blocks`` blocks and train on towards
    the words of both neighbourhoods (the epochs are shared evenly between the
    rounds; a code with fewer blocks trains the missing ones, of ``block_bits``
    each, as helpers for the rounds before the last).  The codes choose among the
    document's ``candidate_factor`` x as many nearest TF-IDF neighbours (0: among all
    documents): free to roam, they pulled small topics into big clusters and cost
    Reuters and small corpora points; kept near the text, one round lifts 32-bit
    codes in every bench setting (20NG with headers 0.546 -> 0.574, README, results).
    Two rounds, with 30 epochs for each of the three (``TrainConfig.epochs``), beat
    one round in 60 in every 20NG cell of the bench run side by side (64 bits:
    stripped 0.495 -> 0.504, with headers 0.597 -> 0.599) for 1.5x the training time;
    sharing 60 epochs, they had cost every setting but 20NG with headers.  The TF-IDF
    neighbours stay in the mix as an anchor.

    ``train_sample`` > 0 trains on that many documents drawn from the seed when given
    more: the exact neighbour search grows with the square of the training documents
    and the targets with their number (about 30 KB a document), so a large corpus
    trains on a sample and indexes everything.  0 trains on every document.

    ``recalibrate_norms`` recomputes the batch-norm statistics on the whole training
    documents once training ends (:func:`~semhash.train.loop.recalibrate_norms`): within
    0.1 points or up in every 32- and 64-bit bench cell, the 2,000-post sample +1.4
    at 32 bits (3 seeds, the same trainings read both ways).

    ``later_neighbor_share`` < 1 trains the blocks after the ``refine_blocks``
    teachers (the third and fourth of a 128-bit code) towards a tighter neighbourhood:
    the nearest share of each neighbour list, TF-IDF and code; the teachers keep the
    wide one, which their codes need to choose the next round's neighbours (cut on the
    second block, 64 bits lost 0.4).  Shorter codes are unchanged.  At 0.5, 128-bit
    codes over 3 seeds: 20NG with headers 0.640 -> 0.644 P@100, stripped 0.524 ->
    0.527, the 2,000-post sample 0.416 -> 0.421, Reuters 0.786 -> 0.784 (ROUNDS.md).
    1 gives every block the same targets (indexes saved before the option).
    """

    n_bits: int = 32
    block_bits: int = 32
    hidden: int = 500
    deep_decoder: bool = False
    dropout: float = 0.5
    dropout_keep_words: float = 19.0
    n_neighbors: int = 100
    self_weight: float = 0.1
    refinements: int = 2
    refine_blocks: int = 2
    code_neighbors: int = 100
    neighbor_fraction: float = 0.01
    candidate_factor: int = 3
    code_scale: float = 8.0
    train_sample: int = 0
    recalibrate_norms: bool = True
    later_neighbor_share: float = 0.5
    vectorizer: VectorizerConfig = field(default_factory=VectorizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        codes_.check_n_bits(self.n_bits)
        if self.n_neighbors < 0:
            raise ValueError(f"n_neighbors must be non-negative, got {self.n_neighbors}")
        if not 0.0 < self.later_neighbor_share <= 1.0:
            raise ValueError(
                f"later_neighbor_share must be in (0, 1], got {self.later_neighbor_share}"
            )
        for name in (
            "refinements",
            "code_neighbors",
            "block_bits",
            "candidate_factor",
            "train_sample",
            "dropout_keep_words",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}")
        if self.refine_blocks < 1:
            raise ValueError(f"refine_blocks must be at least 1, got {self.refine_blocks}")
        if not 0.0 <= self.neighbor_fraction <= 1.0:
            raise ValueError(f"neighbor_fraction must be in [0, 1], got {self.neighbor_fraction}")
        if not 0.0 <= self.self_weight <= 1.0:
            raise ValueError(f"self_weight must be in [0, 1], got {self.self_weight}")

    def dropout_rate(self, median_words: float) -> float:
        """The word dropout rate for a corpus whose median document has ``median_words``."""
        if self.dropout_keep_words == 0 or median_words == 0:
            return self.dropout
        return max(self.dropout, 1.0 - self.dropout_keep_words / median_words)

    def neighbourhood(self, most: int, n_documents: int) -> int:
        """How many neighbours to mix in: ``most``, or fewer in a small corpus."""
        if self.neighbor_fraction == 0:
            return most
        return min(most, max(1, round(self.neighbor_fraction * n_documents)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> HasherConfig:
        state = dict(state)
        state.setdefault("block_bits", 0)  # saved before blocks: one model for all bits
        state.setdefault("refinements", 0)  # saved before refinement: trained once
        state.setdefault("refine_blocks", 1)  # saved before: a model refined by its own codes
        state.setdefault("neighbor_fraction", 0.0)  # saved before: as many neighbours in any corpus
        state.setdefault("candidate_factor", 0)  # saved before: code neighbours from everywhere
        state.setdefault("dropout_keep_words", 0.0)  # saved before: one dropout rate for all
        state.setdefault("recalibrate_norms", False)  # saved before: norms as trained
        state.setdefault("later_neighbor_share", 1.0)  # saved before: every block's targets alike
        vectorizer = VectorizerConfig(**state.pop("vectorizer"))
        # saved before: as many epochs as asked, however small the corpus; last weights kept
        train = TrainConfig(**{"min_steps": 0, "ema_decay": 0.0, **state.pop("train")})
        return cls(vectorizer=vectorizer, train=train, **state)


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
        """Fit the vocabulary and train the autoencoder on ``texts`` (on ``device``)."""
        if len(texts) == 0:
            raise ValueError("cannot fit on an empty list of documents")
        cfg = self.config
        texts = self._training_texts(texts)
        logger.info("fitting the vocabulary on %d documents", len(texts))
        self.vectorizer.fit(texts)
        counts = self.vectorizer.counts(texts, progress=progress)
        inputs = self.vectorizer.weight(counts)
        sizes, n_stages, n_teachers = self.block_sizes(), self._n_stages(), self._n_teachers()
        n_neighbours = cfg.neighbourhood(cfg.n_neighbors, len(texts))
        n_found = cfg.neighbourhood(cfg.code_neighbors, len(texts))
        pool = n_found * cfg.candidate_factor if n_stages > 1 else 0
        logger.info("finding %d TF-IDF neighbours per document", max(n_neighbours, pool))
        candidates = nearest_neighbours(inputs, max(n_neighbours, pool), progress=progress)
        tfidf_neighbours = candidates[:, :n_neighbours]
        dropout = cfg.dropout_rate(float(np.median(np.diff(inputs.indptr))))
        logger.info("dropping words at rate %.2f while training", dropout)
        trainers = [
            _Block(
                self._model_config(n_bits, dropout),
                self._stages(self._block_seed(i), len(texts)),
            )
            for i, n_bits in enumerate(self._trainer_sizes())
        ]
        lists = [tfidf_neighbours]
        for stage in range(n_stages):
            if stage:
                logger.info("finding the neighbours again by the codes (round %d)", stage)
                teachers = np.hstack([_encode(t.model, inputs) for t in trainers[:n_teachers]])
                found = (
                    rerank_by_codes(teachers, candidates[:, :pool], n_found)
                    if pool
                    else code_neighbours(teachers, n_found)
                )
                # The TF-IDF neighbours stay in the mix as an anchor: a neighbour both
                # find counts twice, and the codes' own mistakes are not all reinforced.
                lists = [tfidf_neighbours, found]
            targets = neighbourhood_targets(counts, np.hstack(lists), cfg.self_weight)
            later_targets = self._later_targets(counts, lists, targets)
            last = stage == n_stages - 1
            for i, trainer in enumerate(trainers):
                if i < len(sizes) or not last:  # a helper's last stage would teach nothing
                    role = f"block {i + 1}/{len(sizes)}" if i < len(sizes) else "helper block"
                    desc = f"training {role}, round {stage + 1}/{n_stages}"
                    own = later_targets if i >= cfg.refine_blocks else targets  # helpers teach
                    trainer.train(stage, inputs, own, progress, device, desc)
        self.models = [t.model for t in trainers[: len(sizes)]]
        self.block_histories = [t.history for t in trainers[: len(sizes)]]
        self.history = _joined(self.block_histories)
        if cfg.recalibrate_norms:
            self._recalibrate(inputs)
        return self

    def _later_targets(
        self, counts: sp.csr_matrix, lists: list[np.ndarray], targets: sp.csr_matrix
    ) -> sp.csr_matrix:
        """The targets of the blocks after the teachers (``targets`` when none or share 1).

        Each neighbour list is cut to its nearest ``later_neighbor_share``.
        """
        cfg = self.config
        if cfg.later_neighbor_share >= 1.0 or len(self.block_sizes()) <= cfg.refine_blocks:
            return targets
        share = cfg.later_neighbor_share
        nearest = [ids[:, : max(1, round(share * ids.shape[1]))] for ids in lists]
        return neighbourhood_targets(counts, np.hstack(nearest), cfg.self_weight)

    def recalibrate_norms(self, texts: Sequence[str]) -> SemanticHasher:
        """Recompute the models' batch-norm statistics on ``texts``, whole (no word dropout).

        ``fit`` does this on its training documents when ``config.recalibrate_norms``.
        """
        self._require_models()
        self._recalibrate(self.vectorizer.weight(self.vectorizer.counts(texts)))
        return self

    def _recalibrate(self, inputs: sp.csr_matrix) -> None:
        logger.info("recalibrating the batch norms on %d documents", inputs.shape[0])
        batch_size = self.config.train.batch_size
        for i, model in enumerate(self._require_models()):
            recalibrate_norms(model, inputs, batch_size, self._block_seed(i))

    def _block_seed(self, block: int) -> int:
        """Block ``block``'s own seed (``seed + 1000 * block``): its weights and its batches."""
        return self.config.train.seed + 1000 * block

    def _training_texts(self, texts: Sequence[str]) -> Sequence[str]:
        """``train_sample`` of ``texts`` drawn from the seed, in corpus order (all when fewer).

        Training on more than ``_LARGE_TRAINING`` documents warns, naming the option.
        """
        size = self.config.train_sample
        if size and len(texts) > size:
            logger.info("training on %d of %d documents drawn at random", size, len(texts))
            rng = np.random.default_rng(self.config.train.seed)
            texts = [texts[i] for i in np.sort(rng.choice(len(texts), size, replace=False))]
        if len(texts) > _LARGE_TRAINING:
            logger.warning(
                "training on all %d documents needs about %.0f GB for the targets and an "
                "exact neighbour search that grows with their square; --train-sample N "
                "(HasherConfig.train_sample) trains on a sample and indexes all",
                len(texts),
                len(texts) * _TARGET_BYTES / 1e9,
            )
        return texts

    def first_blocks(self, n_bits: int) -> SemanticHasher:
        """The hasher made of the first blocks that add up to ``n_bits``.

        Each block has its own seed and the refinement's teachers are the same blocks
        (real or helpers) whatever the code length, so this is exactly what a hasher
        of ``n_bits`` with this configuration learns: one training serves every
        shorter whole-block length.
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
        trained = SemanticHasher(replace(self.config, n_bits=n_bits))._trainer_sizes()
        return self._trainer_sizes()[: len(trained)] == trained

    def block_sizes(self) -> list[int]:
        """Bits of each code block, in code order."""
        n, block = self.n_bits, self.config.block_bits or self.n_bits
        return [block] * (n // block) + ([n % block] if n % block else [])

    def _n_teachers(self) -> int:
        """How many blocks find the refinement's code neighbours (0: no refinement)."""
        return self.config.refine_blocks if self._n_stages() > 1 else 0

    def _trainer_sizes(self) -> list[int]:
        """Bits of each block trained, helpers included.

        A code with fewer blocks than the teachers trains the missing ones as helpers
        of a whole block's size, even when the code is shorter: a 32-bit helper lifted
        16-bit codes on every bench setting (20NG with headers 0.538 -> 0.544, README,
        results) over a 16-bit one.
        """
        sizes = self.block_sizes()
        helper = max(sizes[0], self.config.block_bits)
        return sizes + [helper] * max(0, self._n_teachers() - len(sizes))

    def _n_stages(self) -> int:
        """The first round and each refinement, as far as the epochs go."""
        cfg = self.config
        return min(1 + (cfg.refinements if cfg.n_neighbors else 0), cfg.train.epochs)

    def _stages(self, seed: int, n_documents: int) -> list[TrainConfig]:
        """The epochs split evenly over the rounds; only the first ramps the noise."""
        train = self.config.train
        epochs = np.array_split(range(train.epochs_for(n_documents)), self._n_stages())
        return [
            replace(train, seed=seed, epochs=len(part), noise_warmup=0 if i else train.noise_warmup)
            for i, part in enumerate(epochs)
        ]

    def activations(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Real-valued code units in (0, 1): ``(n, b)`` float32."""
        out = np.empty((len(texts), self.n_bits), dtype=np.float32)
        n_empty = 0
        starts = range(0, len(texts), _ENCODE_BLOCK)
        for start in tqdm(starts, desc="encoding", unit="block", disable=not progress):
            counts = self.vectorizer.counts(texts[start : start + _ENCODE_BLOCK])
            n_empty += int(np.sum(counts.getnnz(axis=1) == 0))
            out[start : start + _ENCODE_BLOCK] = self.activations_from_counts(counts)
        if n_empty:
            logger.warning(
                "%d documents have no word of the vocabulary: they share one code", n_empty
            )
        return out

    def activations_from_counts(self, counts: sp.csr_matrix) -> np.ndarray:
        """Code units for word counts already made by ``self.vectorizer``: ``(n, b)`` float32."""
        return self._encode_inputs(self.vectorizer.weight(counts))

    def _encode_inputs(self, inputs: sp.csr_matrix) -> np.ndarray:
        """Code units for weighted bag-of-words rows, block after block: ``(n, b)`` float32."""
        return np.hstack([_encode(model, inputs) for model in self._require_models()])

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Packed binary codes: ``(n, words)`` uint64."""
        return codes_.pack(codes_.binarize(self.activations(texts, progress)))

    def weights(self) -> dict[str, np.ndarray]:
        """The models' parameters as numpy arrays (for safetensors); block i's as ``blocks.i.*``."""
        models = self._require_models()
        return {
            _weight_prefix(i, len(models)) + name: value.detach().cpu().numpy()
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
            model = SemanticHashingAutoencoder(self._model_config(n_bits, self.config.dropout))
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

    def _model_config(self, n_bits: int, dropout: float) -> ModelConfig:
        """The shape of one block; ``dropout`` matters only while training."""
        cfg = self.config
        return ModelConfig(
            vocab_size=self.vectorizer.vocab_size,
            n_bits=n_bits,
            hidden=cfg.hidden,
            deep_decoder=cfg.deep_decoder,
            dropout=dropout,
            code_scale=cfg.code_scale,
        )

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


class _Block:
    """One code block's autoencoder and optimiser, trained stage by stage."""

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
        targets: sp.csr_matrix,
        progress: bool,
        device: str,
        desc: str,
    ) -> None:
        # The optimiser's moments carry over from one stage to the next.
        config = self.stages[stage]
        self.history.extend(
            fit(self.model, inputs, targets, config, progress, device, self.optimiser, desc)
        )


def _joined(histories: list[History]) -> History:
    joined = History()
    for history in histories:
        joined.extend(history)
    return joined


def _weight_prefix(block: int, n_blocks: int) -> str:
    """Block ``block``'s weight names start with this; one block keeps the plain names."""
    return f"blocks.{block}." if n_blocks > 1 else ""


def _encode(model: SemanticHashingAutoencoder, inputs: sp.csr_matrix) -> np.ndarray:
    """One model's code units for weighted bag-of-words rows, in blocks of rows."""
    parts = [
        model.encode(sparse(inputs[start : start + _ENCODE_BLOCK])).numpy()
        for start in range(0, inputs.shape[0], _ENCODE_BLOCK)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, model.config.n_bits), np.float32)
