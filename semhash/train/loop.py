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
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from semhash.train.model import SemanticHashingAutoencoder, csr_tensor

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser and noise settings.

    The noise on the code pre-activations ramps up linearly from 0 to ``noise_std``
    over the first ``noise_warmup`` epochs (at most ``epochs``), so the codes first
    learn what to say and then learn to say it in binary.  Early stopping only
    considers epochs at full noise.

    ``epochs`` is a minimum: a small corpus trains as many more as it takes to make
    ``min_steps`` optimiser steps (:meth:`epochs_for`).  At 60 epochs a corpus of
    2,000 posts took 900 steps and its codes were undertrained (16-bit P@100 0.262;
    at the 200 epochs this gives it, 0.327, README, results); 20 Newsgroups and
    Reuters take more than 3,000 steps in their epochs and are unchanged.  90 epochs
    give each of the default's three rounds 30 (see ``HasherConfig``).

    ``ema_decay`` > 0 keeps a moving average of the weights (each step moves it
    ``1 - ema_decay`` of the way) and validates and keeps the average instead of the
    last step's weights: the constant step keeps the weights moving (a decaying step
    cost precision), the average settles where they hover.  0.995 (a memory of about
    200 steps) lifted 14 of 24 seed-cells of the bench (the 2,000-post sample 1.6
    points, stripped 20NG 0.4, 20NG with headers 0.5 at 32 bits) for Reuters' 0.3 at
    64 bits (3 seeds; README, results).  0 keeps the last step's weights.
    """

    epochs: int = 90
    min_steps: int = 3000
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.0
    noise_std: float = 8.0
    noise_warmup: int = 10
    balance_weight: float = 1.0
    decorrelation_weight: float = 0.0
    val_fraction: float = 0.1
    patience: int = 10
    ema_decay: float = 0.995
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.min_steps < 0:
            raise ValueError(f"min_steps must be at least 0, got {self.min_steps}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")

    def held_out(self, n_documents: int) -> int:
        """How many of ``n_documents`` are held out for early stopping (none of a few)."""
        return int(round(self.val_fraction * n_documents)) if n_documents >= 20 else 0

    def epochs_for(self, n_documents: int) -> int:
        """The epochs to train ``n_documents``: ``epochs``, or enough for ``min_steps``."""
        batches = math.ceil((n_documents - self.held_out(n_documents)) / self.batch_size)
        return max(self.epochs, math.ceil(self.min_steps / max(1, batches)))


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
    targets: sp.csr_matrix,
    config: TrainConfig,
    progress: bool = True,
    device: str = "cpu",
    optimiser: torch.optim.Optimizer | None = None,
    desc: str = "training",
) -> History:
    """Train ``model`` in place to map ``inputs`` (n, V) to ``targets`` (n, V) word distributions.

    The trained model is returned to the CPU; ``device`` only speeds training up.
    Pass the ``optimiser`` of an earlier stage to go on with its moment estimates
    (a fresh Adam after the refinement cost 2.5 points of precision).
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
    measures the statistics the codes are read under (20NG, 2,000-post sample,
    32 bits: 0.366 -> 0.380 P@100 from the same weights, 3 seeds; README, results).
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
    return torch.optim.Adam(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True
    )


def _train_epoch(
    model: SemanticHashingAutoencoder,
    optimiser: torch.optim.Optimizer,
    inputs: sp.csr_matrix,
    targets: sp.csr_matrix,
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
        x, p = sparse(inputs[batch], device), dense(targets[batch], device)
        units, log_q = model(x, noise_std=noise)
        reconstruction = -(p * log_q).sum(dim=1).mean()
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
    of the run's ``steps``: longer, it drags in the weights the run started from (a
    2,000-post test run of 225 steps a round fell from 0.25 to 0.19 P@100).  Every bench
    round has 990 steps or more, where 0.995 stands as it is.
    """
    return max(1.0 - config.ema_decay, 4.0 / max(1, steps))


def code_penalty(units: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """Keep each bit's mean near 0.5 (balance) and the bits uncorrelated (no wasted bits)."""
    balance = ((units.mean(dim=0) - 0.5) ** 2).sum()
    centred = units - units.mean(dim=0)
    covariance = centred.T @ centred / max(1, len(units) - 1)
    off_diagonal = covariance - torch.diag(torch.diagonal(covariance))
    decorrelation = (off_diagonal**2).sum() / units.shape[1]
    return config.balance_weight * balance + config.decorrelation_weight * decorrelation


@torch.no_grad()
def binary_code_loss(
    model: SemanticHashingAutoencoder, inputs: sp.csr_matrix, targets: sp.csr_matrix
) -> float:
    """Mean reconstruction loss when the decoder sees the thresholded 0/1 codes."""
    model.eval()
    total, device = 0.0, next(model.parameters()).device
    for start in range(0, inputs.shape[0], 1024):
        x = sparse(inputs[start : start + 1024], device)
        p = dense(targets[start : start + 1024], device)
        bits = (model.encode(x) > 0.5).float()
        total += -(p * torch.log_softmax(model.decoder(bits), dim=-1)).sum().item()
    return total / max(1, inputs.shape[0])


def dense(rows: sp.csr_matrix, device: str | torch.device = "cpu") -> torch.Tensor:
    """A CSR block as a dense float32 tensor on ``device``."""
    return torch.from_numpy(np.asarray(rows.toarray(), dtype=np.float32)).to(device)


def sparse(rows: sp.csr_matrix, device: str | torch.device = "cpu") -> torch.Tensor:
    """A CSR block as a sparse CSR float32 tensor on ``device``."""
    rows = rows.astype(np.float32)
    return csr_tensor(
        torch.from_numpy(rows.indptr.astype(np.int64)),
        torch.from_numpy(rows.indices.astype(np.int64)),
        torch.from_numpy(rows.data),
        rows.shape,
    ).to(device)
