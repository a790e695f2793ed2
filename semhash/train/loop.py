"""Training: a plain, seeded loop with a validation split and early stopping.

The loss is the multinomial reconstruction loss: cross-entropy between a target
word distribution (the document's own words, or its neighbourhood's) and the
decoder's softmax.  A small penalty keeps every bit's mean near 0.5 so no bit
is wasted being constant.  Early stopping watches the reconstruction loss of
the *thresholded* codes on held-out documents: binary codes are what we keep.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from semhash.train.loss import reconstruction_loss
from semhash.train.model import SemanticHashingAutoencoder, csr_tensor

if TYPE_CHECKING:
    from semhash.train.targets import NeighbourhoodTargets

logger = logging.getLogger(__name__)
ENCODE_BLOCK = 2048  # documents encoded at a time


@dataclass(frozen=True)
class TrainConfig:
    """One training run's settings (a round of a block), made from the recipe.

    The noise on the code pre-activations ramps up linearly from 0 to ``noise_std``
    over the first ``noise_warmup`` epochs (at most ``epochs``), so the codes first
    learn what to say and then learn to say it in binary.  Early stopping only
    considers epochs at full noise.  ``ema_decay`` > 0 validates and keeps a moving
    average of the weights (each step moves it ``1 - ema_decay`` of the way), which
    settles where the weights hover; 0 keeps the last step's weights.
    """

    epochs: int = 90
    batch_size: int = 128
    lr: float = 3e-3
    noise_std: float = 8.0
    noise_warmup: int = 10
    balance_weight: float = 1.0
    val_fraction: float = 0.1
    patience: int = 10
    ema_decay: float = 0.995
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")

    def held_out(self, n_documents: int) -> int:
        """How many of ``n_documents`` are held out for early stopping (none of a few).

        At most 10,000: enough to compare epochs, however large the corpus.
        """
        share = int(round(self.val_fraction * n_documents))
        return min(share, 10_000) if n_documents >= 20 else 0


@dataclass
class History:
    """Per-epoch losses; ``best_epoch`` is the one whose weights were kept (1-based)."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0

    def extend(self, later: History) -> None:
        """Append a later training stage; its best epoch is the one kept."""
        self.best_epoch = len(self.train_loss) + later.best_epoch
        self.train_loss += later.train_loss
        self.val_loss += later.val_loss


def fit(
    model: SemanticHashingAutoencoder,
    inputs: sp.csr_matrix,
    targets: sp.csr_matrix | NeighbourhoodTargets,
    config: TrainConfig,
    progress: bool = True,
    device: str = "cpu",
    optimiser: torch.optim.Optimizer | None = None,
    desc: str = "training",
) -> History:
    """Train ``model`` in place to map ``inputs`` (n, V) to ``targets`` (n, V) word distributions.

    The trained model is returned to the CPU; ``device`` only speeds training up.
    Pass the ``optimiser`` of an earlier stage to go on with its moment estimates.
    """
    torch.manual_seed(config.seed)
    model.to(device)
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(inputs.shape[0])
    n_val = config.held_out(len(order))
    val, train = order[:n_val], order[n_val:]
    optimiser = optimiser or adam(model, config)
    history = History()
    shadow = copy.deepcopy(model) if config.ema_decay else model  # the weights validated
    averaging = _averaging(shadow, model)
    step_weight = _average_step(config, config.epochs * math.ceil(len(train) / config.batch_size))
    best_loss, best_state, stale = math.inf, _snapshot(model), 0
    val_inputs, val_targets = inputs[val], targets[val]  # sliced once, not every epoch
    warmup = max(1, min(config.noise_warmup, config.epochs))
    bar = tqdm(range(config.epochs), desc=desc, unit="epoch", disable=not progress)
    for epoch in bar:
        noise = config.noise_std * min(1.0, (epoch + 1) / warmup)
        rng.shuffle(train)
        loss = _train_epoch(
            model, optimiser, inputs, targets, train, noise, config, device, averaging, step_weight
        )
        history.train_loss.append(loss)
        val_loss = binary_code_loss(shadow, val_inputs, val_targets) if n_val else loss
        history.val_loss.append(val_loss)
        bar.set_postfix(loss=f"{loss:.3f}", val=f"{val_loss:.3f}", noise=f"{noise:.1f}")
        # Only epochs at full noise count: before that, codes are not yet binary.
        if epoch + 1 >= warmup and val_loss < best_loss:
            best_loss, best_state, stale = val_loss, _snapshot(shadow), 0
            history.best_epoch = epoch + 1
        elif epoch + 1 >= warmup:
            stale += 1
            if stale >= config.patience:
                logger.info("early stop after epoch %d (best %d)", epoch + 1, history.best_epoch)
                break
    model.load_state_dict(best_state)
    model.to("cpu").eval()
    return history


@torch.no_grad()
def recalibrate_norms(
    model: SemanticHashingAutoencoder, inputs: sp.csr_matrix, batch_size: int, seed: int
) -> None:
    """Recompute the encoder's batch-norm statistics from ``inputs`` with no word dropout.

    Training keeps running statistics of word-dropped inputs (and, with
    ``ema_decay``, averages them with the weights); queries and indexed documents
    come whole, so one pass in training-sized random batches with dropout off
    measures the statistics the codes are read under.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    if not norms or inputs.shape[0] < 2:
        return
    n_batches = max(1, inputs.shape[0] // max(2, batch_size))  # no batch of one
    model.eval()
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # an equal-weight average over the batches
        norm.train()
    order = np.random.default_rng(seed).permutation(inputs.shape[0])
    device = next(model.parameters()).device
    for rows in np.array_split(order, n_batches):
        model.encoder(sparse(inputs[np.sort(rows)], device))
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    model.eval()


def adam(model: SemanticHashingAutoencoder, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser for ``model``: Adam, fused into one pass over each weight tensor."""
    return torch.optim.Adam(model.parameters(), lr=config.lr, fused=True)


def _train_epoch(
    model: SemanticHashingAutoencoder,
    optimiser: torch.optim.Optimizer,
    inputs: sp.csr_matrix,
    targets: sp.csr_matrix | NeighbourhoodTargets,
    rows: np.ndarray,
    noise: float,
    config: TrainConfig,
    device: str,
    averaging: list[list[torch.Tensor]],
    step_weight: float,
) -> float:
    model.train()
    total, count = 0.0, 0
    for start in range(0, len(rows), config.batch_size):
        batch = rows[start : start + config.batch_size]
        units = model(sparse(inputs[batch], device), noise_std=noise)
        reconstruction = reconstruction_loss(units, model.decoder, targets[batch])
        loss = reconstruction + code_penalty(units, config)
        optimiser.zero_grad(set_to_none=False)  # refill, not reallocate, the gradients
        loss.backward()
        optimiser.step()
        if averaging:
            with torch.no_grad():
                torch._foreach_lerp_(averaging[0], averaging[1], step_weight)
        total += reconstruction.item() * len(batch)
        count += len(batch)
    return total / max(1, count)


def _snapshot(model: SemanticHashingAutoencoder) -> dict[str, torch.Tensor]:
    """A copy of the weights and statistics (a tiny corpus improves nearly every epoch)."""
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def _averaging(
    shadow: SemanticHashingAutoencoder, model: SemanticHashingAutoencoder
) -> list[list[torch.Tensor]]:
    """[averages, live] float weights and statistics, in pairs; none if the model is its own."""
    if shadow is model:
        return []
    pairs = [
        (average, live)
        for average, live in zip(_tensors(shadow), _tensors(model), strict=True)
        if average.is_floating_point()
    ]
    return [[average for average, _ in pairs], [live for _, live in pairs]]


def _tensors(model: SemanticHashingAutoencoder) -> list[torch.Tensor]:
    """The parameters and buffers themselves, in a fixed order (not the saved views)."""
    return [*model.parameters(), *model.buffers()]


def _average_step(config: TrainConfig, steps: int) -> float:
    """How far each step moves the average: ``1 - ema_decay``, or more in a short run.

    The average's memory (about ``1 / (1 - ema_decay)`` steps) is kept within a quarter
    of the run's ``steps``: longer, it would drag in the weights the run started from.
    """
    return max(1.0 - config.ema_decay, 4.0 / max(1, steps))


def code_penalty(units: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """Keep each bit's mean near 0.5, so that no bit is wasted being constant."""
    return config.balance_weight * ((units.mean(dim=0) - 0.5) ** 2).sum()


@torch.no_grad()
def binary_code_loss(
    model: SemanticHashingAutoencoder, inputs: sp.csr_matrix, targets: sp.csr_matrix
) -> float:
    """Mean reconstruction loss when the decoder sees the thresholded 0/1 codes."""
    model.eval()
    total, device = 0.0, next(model.parameters()).device
    for start in range(0, inputs.shape[0], 1024):
        x = sparse(inputs[start : start + 1024], device)
        bits = (model.encode(x) > 0.5).float()
        loss = reconstruction_loss(bits, model.decoder, targets[start : start + 1024])
        total += loss.item() * x.shape[0]
    return total / max(1, inputs.shape[0])


def sparse(rows: sp.csr_matrix, device: str | torch.device = "cpu") -> torch.Tensor:
    """A CSR block as a sparse CSR float32 tensor on ``device``."""
    rows = rows.astype(np.float32)
    return csr_tensor(
        torch.from_numpy(rows.indptr.astype(np.int64)),
        torch.from_numpy(rows.indices.astype(np.int64)),
        torch.from_numpy(rows.data),
        rows.shape,
    ).to(device)


def encode_units(model: SemanticHashingAutoencoder, inputs: sp.csr_matrix) -> np.ndarray:
    """One model's code units for weighted bag-of-words rows ``(n, V)``: ``(n, b)`` float32."""
    parts = [_encode_rows(model, block) for _, block in row_blocks(inputs)]
    return np.concatenate(parts) if parts else np.zeros((0, model.config.n_bits), np.float32)


def row_blocks(rows: sp.csr_matrix) -> Iterator[tuple[int, sp.csr_matrix]]:
    """``(start, rows[start : start + ENCODE_BLOCK])`` in order, none for no rows.

    Rows that fit in one block come whole: a slice would copy them, which costs more
    than encoding one query.
    """
    if 0 < rows.shape[0] <= ENCODE_BLOCK:
        yield 0, rows
        return
    for start in range(0, rows.shape[0], ENCODE_BLOCK):
        yield start, rows[start : start + ENCODE_BLOCK]


FEW_ROWS = 16  # rows encoded by the compiled folded layers, not through torch


def _encode_rows(model: SemanticHashingAutoencoder, rows: sp.csr_matrix) -> np.ndarray:
    if rows.shape[0] <= FEW_ROWS and not model.training:
        return model.encode_few(rows.indptr, rows.indices, rows.data.astype(np.float32))
    return model.encode_bags(
        torch.from_numpy(rows.indptr.astype(np.int64)),
        torch.from_numpy(rows.indices.astype(np.int64)),
        torch.from_numpy(rows.data.astype(np.float32)),
    ).numpy()


def resolve_device(device: str) -> str:
    """``auto``: CUDA when torch sees a GPU, else the CPU; any other name as given."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
