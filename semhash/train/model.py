"""The semantic hashing autoencoder (Salakhutdinov & Hinton, 2009).

Encoder: bag of words -> hidden -> hidden -> ``n_bits`` sigmoid code units.
While training, Gaussian noise is added to the code units' pre-activations,
*before* the sigmoid: to carry information through the noise the encoder must
push pre-activations far from zero, so the sigmoid saturates and codes become
binary.  Decoder: code -> softmax over the vocabulary,
trained with a multinomial (word-count) reconstruction loss.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numba import njit
from torch import nn

from semhash.codes import check_n_bits


def csr_tensor(
    crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, shape: tuple[int, ...]
) -> torch.Tensor:
    """A sparse CSR tensor, without torch's "beta" warning on every batch."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


class BagOfWordsLinear(nn.Module):
    """``x W^T + b`` for bags of words, with one row of ``W`` per word, kept ``(V, hidden)``.

    A sparse CSR batch sums the rows of its words (``embedding_bag``): the work and
    the gradient follow the batch's non-zeros, not the vocabulary.  The weights are
    saved as ``nn.Linear``'s ``(hidden, V)``, so indexes read the same either way.
    """

    def __init__(self, vocab_size: int, hidden: int) -> None:
        super().__init__()
        linear = nn.Linear(vocab_size, hidden)  # the same initial values as a Linear layer
        self.weight = nn.Parameter(linear.weight.detach().t().contiguous())  # (V, hidden)
        self.bias = nn.Parameter(linear.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.layout == torch.sparse_csr:
            summed = F.embedding_bag(
                x.col_indices(),
                self.weight,
                x.crow_indices(),
                mode="sum",
                per_sample_weights=x.values(),
                include_last_offset=True,
            )
            return summed + self.bias
        return torch.addmm(self.bias, x, self.weight)

    def _save_to_state_dict(self, destination: Any, prefix: str, keep_vars: bool) -> None:
        weight = self.weight.t() if keep_vars else self.weight.detach().t().contiguous()
        destination[prefix + "weight"] = weight
        destination[prefix + "bias"] = self.bias if keep_vars else self.bias.detach()

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any) -> None:
        key = prefix + "weight"
        if key in state_dict and state_dict[key].dim() == 2:
            state_dict = {**state_dict, key: state_dict[key].t()}
        super()._load_from_state_dict(state_dict, prefix, *args)


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the autoencoder.

    The decoder is one linear layer b -> V: a deeper one could decode sloppy codes,
    so the codes would stay sloppy.  ``code_scale`` > 0 batch-normalises the code
    pre-activations and starts their scale there, so from the first step the signal
    is as large as the noise it must beat; the scale stays learnable.  ``0`` leaves
    the code layer plain.
    """

    vocab_size: int
    n_bits: int = 32
    hidden: int = 500
    dropout: float = 0.5
    code_scale: float = 8.0

    def __post_init__(self) -> None:
        check_n_bits(self.n_bits)
        if self.vocab_size < 1 or self.hidden < 1:
            raise ValueError("vocab_size and hidden must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class SemanticHashingAutoencoder(nn.Module):
    """Bag of words in, code units in the middle, word distribution out."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        v, h, b = config.vocab_size, config.hidden, config.n_bits
        # Batch norm keeps the tiny unit-norm TF-IDF inputs from stalling the first layers.
        self.encoder = nn.Sequential(
            nn.Dropout(config.dropout),  # word dropout: a denoising input corruption
            BagOfWordsLinear(v, h),
            nn.BatchNorm1d(h),
            nn.ReLU(),
            nn.Linear(h, h),
            nn.BatchNorm1d(h),
            nn.ReLU(),
            nn.Linear(h, b),
        )
        if config.code_scale > 0:
            norm = nn.BatchNorm1d(b)
            nn.init.constant_(norm.weight, config.code_scale)
            self.encoder.append(norm)
        self.decoder = nn.Linear(b, v)

    def forward(self, x: torch.Tensor, noise_std: float = 0.0) -> torch.Tensor:
        """Code units ``(n, b)``; ``self.decoder(units)`` are the word logits (see ``loss``).

        ``x`` may be a sparse CSR batch: word dropout then touches only its non-zeros
        (dropout over the dense ``(n, V)`` batch cost more than the first layer).
        ``noise_std`` > 0 adds N(0, noise_std^2) to the pre-activations before the sigmoid.
        """
        if x.layout == torch.sparse_csr:
            values = self.encoder[0](x.values())
            dropped = csr_tensor(x.crow_indices(), x.col_indices(), values, x.shape)
            logits = self.encoder[1:](dropped)
        else:
            logits = self.encoder(x)
        if noise_std > 0:
            logits = logits + noise_std * torch.randn_like(logits)
        return torch.sigmoid(logits)

    _folded: list[tuple[np.ndarray, np.ndarray]] | None = None

    def train(self, mode: bool = True) -> SemanticHashingAutoencoder:
        self._folded = None  # weights may change: fold again when next asked
        return super().train(mode)

    def folded(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The encoder's layers with their batch norms folded in, as float32 numpy arrays.

        ``[(W1 (V, h), b1), (W2 (h, h), b2), (W3 (h, b), b3)]``: ``relu(x W1 + b1)``,
        then ``relu(. W2 + b2)``, then ``. W3 + b3`` are the code pre-activations, as
        :meth:`encode` computes them (to float rounding).  Made once after training.
        """
        if self._folded is None:
            with torch.no_grad():  # entered only to fold: it costs a query microseconds
                self._folded = self._fold()
        return self._folded

    def _fold(self) -> list[tuple[np.ndarray, np.ndarray]]:
        layers: list[Any] = list(self.encoder)
        pairs = [(layers[1].weight, layers[1].bias, layers[2])]  # (V, h) already
        pairs.append((layers[4].weight.t(), layers[4].bias, layers[5]))
        norm = layers[8] if len(layers) > 8 else None
        pairs.append((layers[7].weight.t(), layers[7].bias, norm))
        folded = []
        for weight, bias, batch_norm in pairs:
            if batch_norm is not None:
                scale = batch_norm.weight / torch.sqrt(batch_norm.running_var + batch_norm.eps)
                shift = batch_norm.bias - batch_norm.running_mean * scale
                weight, bias = weight * scale, bias * scale + shift
            folded.append((weight.float().numpy().copy(), bias.float().numpy().copy()))
        return folded

    def encode_few(self, offsets: np.ndarray, words: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """:meth:`encode_bags` for a few CSR rows, compiled: a query costs tens of microseconds."""
        (first, b1), (second, b2), (third, b3) = self.folded()
        return _encode_rows(offsets, words, weights, first, b1, second, b2, third, b3)

    @torch.no_grad()
    def encode_bags(
        self, offsets: torch.Tensor, words: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        """:meth:`encode` of CSR rows given as their arrays (int64, int64, float32).

        The same operations as for a sparse CSR batch, without making one: for a
        query or two, building the tensor and switching modes cost more than the model.
        """
        if self.training:
            return self.encode(
                csr_tensor(offsets, words, weights, (len(offsets) - 1, self.config.vocab_size))
            )
        first: BagOfWordsLinear = self.encoder[1]  # type: ignore[assignment]
        hidden = F.embedding_bag(
            words, first.weight, offsets, mode="sum", per_sample_weights=weights,
            include_last_offset=True,
        ) + first.bias  # fmt: skip
        for layer in list(self.encoder)[2:]:
            hidden = layer(hidden)
        return torch.sigmoid(hidden)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic code units in (0, 1): no noise, no dropout.  Threshold at 0.5 for bits.

        ``x`` is a dense ``(n, V)`` batch or a sparse CSR one (the same units, faster).
        """
        was_training = self.training
        self.eval()
        try:
            return torch.sigmoid(self.encoder(x))
        finally:
            self.train(was_training)


@njit(cache=True, nogil=True, fastmath=True)
def _encode_rows(
    offsets, words, weights, first, b1, second, b2, third, b3
):  # pragma: no cover - compiled
    """Code units of a few CSR rows through the folded layers: ``(n, b)`` float32.

    Row by row, each layer adds up the weight rows of its input's non-zero units: the
    first layer's rows of the row's words, the next ones' rows of the units the ReLU
    left on (about half), so a query reads about half of the 500 x 500 layer.
    """
    out = np.empty((len(offsets) - 1, len(b3)), dtype=np.float32)
    for r in range(len(offsets) - 1):
        hidden = b1.copy()
        for i in range(offsets[r], offsets[r + 1]):
            row, weight = first[words[i]], weights[i]
            for j in range(len(hidden)):
                hidden[j] += weight * row[j]
        logits = _dense_relu_layer(_dense_relu_layer(hidden, second, b2), third, b3)
        for j in range(len(logits)):
            out[r, j] = 1.0 / (1.0 + np.exp(-logits[j]))
    return out


@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _dense_relu_layer(x, weight, bias):  # pragma: no cover - compiled
    """``relu(x) @ weight + bias``, reading only the rows of ``weight`` where x > 0."""
    out = bias.copy()
    for i in range(len(x)):
        if x[i] > 0:
            row, value = weight[i], x[i]
            for j in range(len(out)):
                out[j] += value * row[j]
    return out
