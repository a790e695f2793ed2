"""Baseline hashers over TF-IDF vectors, with the model's ``fit``/``encode`` shape.

Each takes unit-norm TF-IDF rows ``(n, V)`` and returns packed codes
``(n, words)`` uint64.  Exact TF-IDF cosine is not a hasher: evaluation ranks
by cosine directly as the upper reference.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD

from semhash.codes import check_n_bits, pack


class RandomHyperplaneLSH:
    """Charikar's SimHash: bit i = sign of the projection on a random Gaussian direction."""

    def __init__(self, n_bits: int, seed: int = 0) -> None:
        check_n_bits(n_bits)
        self.n_bits, self.seed = n_bits, seed

    def fit(self, tfidf: sp.csr_matrix) -> RandomHyperplaneLSH:
        rng = np.random.default_rng(self.seed)
        self.planes_ = rng.standard_normal((tfidf.shape[1], self.n_bits)).astype(np.float32)
        return self

    def encode(self, tfidf: sp.csr_matrix) -> np.ndarray:
        return pack(np.asarray(tfidf @ self.planes_) > 0)


class ITQ:
    """Iterative quantisation (Gong & Lazebnik, 2011) on LSA of TF-IDF.

    Project to ``n_bits`` centred LSA dimensions, then learn the rotation that
    best aligns them with the corners of the hypercube.  ``iterations=0`` is
    plain PCA-then-threshold.
    """

    def __init__(self, n_bits: int, iterations: int = 50, seed: int = 0) -> None:
        check_n_bits(n_bits)
        self.n_bits, self.iterations, self.seed = n_bits, iterations, seed

    def fit(self, tfidf: sp.csr_matrix) -> ITQ:
        n_components = min(self.n_bits, min(tfidf.shape) - 1)
        self.svd_ = TruncatedSVD(n_components, random_state=self.seed).fit(tfidf)
        projected = self.svd_.transform(tfidf)
        self.mean_ = projected.mean(axis=0)
        v = projected - self.mean_
        rng = np.random.default_rng(self.seed)
        rotation, _ = np.linalg.qr(rng.standard_normal((n_components, n_components)))
        for _ in range(self.iterations):
            b = np.sign(v @ rotation)
            u, _, wt = np.linalg.svd(b.T @ v)
            rotation = (u @ wt).T
        self.rotation_ = rotation
        return self

    def encode(self, tfidf: sp.csr_matrix) -> np.ndarray:
        v = (self.svd_.transform(tfidf) - self.mean_) @ self.rotation_
        bits = np.zeros((v.shape[0], self.n_bits), dtype=bool)
        bits[:, : v.shape[1]] = v > 0
        return pack(bits)
