"""The reconstruction loss: softmax cross-entropy against sparse target distributions.

A target (a document's words mixed with its neighbours') has a few thousand
non-zeros in a vocabulary of ten thousand, and the decoder's ``(batch, V)`` logits
are the largest tensor of a training step.  On a CPU with AVX2 the C kernel
(``semhash/_softmax.c``) computes each row's loss and gradient in one pass over its
logits, whose buffer becomes the gradient, so neither a dense target nor a
log-softmax is ever made; elsewhere (a GPU, another CPU, no C compiler) the loss is
the plain dense formula in torch.  Both give the same values to float rounding;
``SEMHASH_LOSS=torch`` (or :func:`use`) forces the torch path, to compare them.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

try:
    import semhash._softmax as _softmax

    _FUSED = _softmax.supported()
except ImportError:  # built without a C compiler
    _FUSED = False

MIN_ROWS_A_THREAD = 64  # fewer rows are not worth waking a second core


def reconstruction_loss(
    units: torch.Tensor, decoder: torch.nn.Linear, targets: sp.csr_matrix
) -> torch.Tensor:
    """The mean over rows of ``-sum_w p_w log softmax(decoder(units))_w`` for CSR ``targets``."""
    if _forced_error:
        raise ValueError(_forced_error)
    if _kernel == "avx2" and units.device.type == "cpu" and units.dtype == torch.float32:
        logits = units @ decoder.weight.t()  # the bias is added by the kernel, row by row
        return _FusedCrossEntropy.apply(logits, decoder.bias, targets)
    p = dense(targets, units.device)
    return -(p * torch.log_softmax(decoder(units), dim=-1)).sum(dim=1).mean()


def dense(rows: sp.csr_matrix, device: str | torch.device = "cpu") -> torch.Tensor:
    """A CSR block as a dense float32 tensor on ``device``."""
    return torch.from_numpy(np.asarray(rows.toarray(), dtype=np.float32)).to(device)


def available() -> list[str]:
    """The loss kernels this machine runs, fastest first."""
    return ["avx2", "torch"] if _FUSED else ["torch"]


def current() -> str:
    """The loss kernel a CPU training step uses."""
    if _forced_error:
        raise ValueError(_forced_error)
    return _kernel


def use(kernel: str) -> None:
    """Compute the loss with ``kernel`` (``avx2`` or ``torch``) from now on."""
    global _kernel
    if kernel not in available():
        raise ValueError(f"loss kernel {kernel!r} is not available here; try {available()}")
    _kernel = kernel


_kernel = available()[0]
_forced_error = ""  # why SEMHASH_LOSS could not be honoured, said when training starts
if os.environ.get("SEMHASH_LOSS"):
    try:
        use(os.environ["SEMHASH_LOSS"])
    except ValueError as err:
        _forced_error = f"SEMHASH_LOSS: {err}"


class _FusedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, logits: torch.Tensor, bias: torch.Tensor, targets: sp.csr_matrix
    ) -> torch.Tensor:
        n, v = logits.shape
        # Nothing else reads the logits (the product keeps its inputs, not its output):
        # their buffer is written over with their gradient.
        grad = logits.detach().contiguous()
        threads = max(1, min(torch.get_num_threads(), n // MIN_ROWS_A_THREAD))
        bias_grads = np.zeros((threads, v), dtype=np.float32)  # one row per thread, summed
        losses = np.empty(n, dtype=np.float32)
        buffers = (
            targets.indptr.astype(np.int64, copy=False),
            targets.indices.astype(np.int32, copy=False),
            targets.data.astype(np.float32, copy=False),
        )
        bounds = np.linspace(0, n, threads + 1).astype(int)
        z, b = grad.numpy(), bias.detach().numpy()

        def rows(part: int) -> None:
            start, stop = int(bounds[part]), int(bounds[part + 1])
            _softmax.cross_entropy(z, b, bias_grads[part], *buffers, start, stop, 1.0 / n, losses)

        if threads > 1:
            list(_pool().map(rows, range(threads)))
        else:
            rows(0)
        ctx.save_for_backward(grad, torch.from_numpy(bias_grads.sum(axis=0)))
        return torch.tensor(float(losses.mean(dtype=np.float64)))

    @staticmethod
    def backward(ctx: Any, upstream: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        grad, bias_grad = ctx.saved_tensors
        if float(upstream) != 1.0:
            grad, bias_grad = grad * upstream, bias_grad * upstream
        return grad, bias_grad, None


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(thread_name_prefix="semhash-loss")
