"""The C popcount kernel (semhash/_popcount.c)."""

import numpy as np

def top_k(
    queries: np.ndarray,
    codes: np.ndarray,
    words: int,
    n_bits: int,
    k: int,
    bound: int,
    offset: int,
    out_positions: np.ndarray,
    out_distances: np.ndarray,
    out_fills: np.ndarray,
) -> None: ...
def top_one_narrow(
    query: int,
    codes: np.ndarray,
    k: int,
    bound: int,
    out_positions: np.ndarray,
    out_distances: np.ndarray,
) -> int: ...
def use(name: str) -> None: ...
def available() -> list[str]: ...
def current() -> str: ...
