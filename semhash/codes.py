"""Binary codes: threshold, pack into uint64 words, Hamming distance, bit-flip masks.

Bit ``j`` of a code lives in word ``j // 64`` at position ``j % 64``; unused
high bits of the last word are always zero, so XOR + popcount is the distance.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

MAX_BITS = 128


def n_words(n_bits: int) -> int:
    """uint64 words needed for ``n_bits`` bits."""
    check_n_bits(n_bits)
    return (n_bits + 63) // 64


def check_n_bits(n_bits: int) -> None:
    if not 1 <= n_bits <= MAX_BITS:
        raise ValueError(f"the number of bits must be between 1 and {MAX_BITS}, got {n_bits}")


def binarize(activations: np.ndarray) -> np.ndarray:
    """Code units above 0.5 are 1: ``(n, b)`` float -> ``(n, b)`` bool."""
    return np.asarray(activations) > 0.5


def pack(bits: np.ndarray) -> np.ndarray:
    """``(n, b)`` bool -> ``(n, words)`` uint64."""
    bits = np.asarray(bits, dtype=bool)
    n, n_bits = bits.shape
    packed = np.packbits(bits, axis=1, bitorder="little")
    as_bytes = np.zeros((n, n_words(n_bits) * 8), dtype=np.uint8)
    as_bytes[:, : packed.shape[1]] = packed
    return as_bytes.view("<u8").astype(np.uint64, copy=False)


def unpack(codes: np.ndarray, n_bits: int) -> np.ndarray:
    """``(n, words)`` uint64 -> ``(n, b)`` bool."""
    codes = np.ascontiguousarray(codes, dtype="<u8")
    as_bytes = codes.view(np.uint8).reshape(len(codes), codes.shape[1] * 8)
    return np.unpackbits(as_bytes, axis=1, bitorder="little", count=n_bits).astype(bool)


def hamming(queries: np.ndarray, database: np.ndarray) -> np.ndarray:
    """All pairwise Hamming distances: ``(nq, words)``, ``(n, words)`` -> ``(nq, n)`` int32."""
    distances = np.zeros((len(queries), len(database)), dtype=np.int32)
    for w in range(queries.shape[1]):
        xor = np.bitwise_xor(queries[:, w, None], database[None, :, w])
        distances += np.bitwise_count(xor)
    return distances


def n_probes(n_bits: int, radius: int) -> int:
    """Codes within ``radius`` bit flips of one code: sum of C(b, i) for i <= radius."""
    return sum(math.comb(n_bits, i) for i in range(min(radius, n_bits) + 1))


def flip_masks(n_bits: int, radius: int) -> np.ndarray:
    """Every mask with exactly ``radius`` of ``n_bits`` bits set: ``(C(b, r), words)`` uint64.

    XOR-ing a code with each mask enumerates the codes at distance ``radius``.
    """
    if radius < 0:
        raise ValueError(f"radius must be non-negative, got {radius}")
    words = n_words(n_bits)
    if radius > n_bits:
        return np.zeros((0, words), dtype=np.uint64)
    if radius == 0:
        return np.zeros((1, words), dtype=np.uint64)
    combos = np.array(list(itertools.combinations(range(n_bits), radius)), dtype=np.int64)
    combos = combos.reshape(-1, radius)
    masks = np.zeros((len(combos), words), dtype=np.uint64)
    rows = np.repeat(np.arange(len(combos)), radius)
    flat = combos.ravel()
    np.bitwise_or.at(
        masks,
        (rows, flat // 64),
        np.left_shift(np.uint64(1), (flat % 64).astype(np.uint64)),
    )
    return masks


def centred_unit_rows(activations: np.ndarray) -> np.ndarray:
    """Activations minus 0.5, scaled to unit L2 norm: ``(n, b)`` float32."""
    centred = np.asarray(activations, dtype=np.float32) - np.float32(0.5)
    centred /= _row_norms(centred)[:, None]
    return centred


def centred_norms(activations: np.ndarray) -> np.ndarray:
    """The L2 norm of each row of activations minus 0.5 (at least 1e-12): ``(n,)`` float32.

    An index computes its documents' once; a query's candidates then cost a gather.
    """
    return _row_norms(np.asarray(activations, dtype=np.float32) - np.float32(0.5))


def _row_norms(rows: np.ndarray) -> np.ndarray:
    """Row norms, at least 1e-12 so that they divide.

    By ``einsum``: a reduction along rows of a few dozen units costs numpy several
    times more.
    """
    return np.maximum(np.sqrt(np.einsum("ij,ij->i", rows, rows)), np.float32(1e-12))
