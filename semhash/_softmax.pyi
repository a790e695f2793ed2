"""The decoder's softmax cross-entropy in C (semhash/_softmax.c)."""

from typing import Any

def cross_entropy(
    logits: Any,
    bias: Any,
    bias_grad: Any,
    indptr: Any,
    cols: Any,
    values: Any,
    start: int,
    stop: int,
    scale: float,
    losses: Any,
) -> None: ...
def supported() -> bool: ...
