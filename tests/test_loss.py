"""The fused C loss gives the torch formula's loss and gradients."""

import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from semhash.text import Vectorizer, VectorizerConfig
from semhash.train import loss
from semhash.train.targets import NeighbourhoodTargets, nearest_neighbours

fused = pytest.mark.skipif(
    "avx2" not in loss.available(), reason="this CPU or build lacks the AVX2 loss kernel"
)


def loss_and_gradients(kernel, units, decoder, targets):
    loss.use(kernel)
    try:
        decoder.zero_grad()
        units = units.clone().requires_grad_()
        value = loss.reconstruction_loss(units, decoder, targets)
        (3.0 * value).backward()  # an upstream gradient other than one
        return [value.detach(), units.grad, decoder.weight.grad, decoder.bias.grad]
    finally:
        loss.use(loss.available()[0])


@fused
@pytest.mark.parametrize("n_rows", [5, 300])  # one thread; several
def test_fused_loss_equals_the_torch_formula_on_real_targets(newsgroups_sample, n_rows) -> None:
    texts = newsgroups_sample.texts[:n_rows]
    vectorizer = Vectorizer(VectorizerConfig(max_features=3001)).fit(newsgroups_sample.texts)
    counts = vectorizer.counts(texts)
    neighbours = nearest_neighbours(vectorizer.weight(counts), 3)
    targets = NeighbourhoodTargets(counts, neighbours, 0.1)[np.arange(n_rows)]
    empty = sp.csr_matrix((1, targets.shape[1]), dtype=np.float32)
    targets = sp.vstack([targets, empty]).tocsr()  # a document with no words
    assert targets.shape[1] % 8  # the kernel's tail is exercised
    torch.manual_seed(0)
    decoder = torch.nn.Linear(16, targets.shape[1])
    units = torch.rand(targets.shape[0], 16) * 40 - 20  # logits far from zero, both ways
    expected = loss_and_gradients("torch", units, decoder, targets)
    got = loss_and_gradients("avx2", units, decoder, targets)
    for want, have in zip(expected, got, strict=True):
        scale = float(want.abs().max())
        assert float((want - have).abs().max()) <= 1e-5 * scale + 1e-9


def test_a_bad_loss_kernel_name_is_one_clear_error() -> None:
    code = "from semhash.train import loss; loss.current()"
    env = {**os.environ, "SEMHASH_LOSS": "sse9"}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert run.returncode != 0
    assert "SEMHASH_LOSS: loss kernel 'sse9' is not available" in run.stderr
    with pytest.raises(ValueError, match="not available"):
        loss.use("sse9")
