import math

import numpy as np
import pytest

from semhash.codes import binarize, flip_masks, hamming, n_probes, n_words, pack, unpack


@pytest.mark.parametrize("n_bits", [1, 7, 8, 31, 64, 65, 100, 128])
def test_pack_unpack_round_trip(n_bits: int) -> None:
    bits = np.random.default_rng(n_bits).random((50, n_bits)) < 0.5
    packed = pack(bits)
    assert packed.shape == (50, n_words(n_bits)) and packed.dtype == np.uint64
    assert np.array_equal(unpack(packed, n_bits), bits)


def test_bit_j_lives_in_word_j_div_64() -> None:
    bits = np.zeros((1, 128), dtype=bool)
    bits[0, 3] = bits[0, 70] = True
    assert pack(bits).tolist() == [[1 << 3, 1 << 6]]


def test_binarize_thresholds_at_half() -> None:
    assert binarize(np.array([[0.2, 0.5, 0.51, 0.99]])).tolist() == [[False, False, True, True]]


@pytest.mark.parametrize("n_bits", [8, 16, 64, 128])
def test_hamming_matches_counting_differing_bits(n_bits: int) -> None:
    rng = np.random.default_rng(1)
    a, b = rng.random((20, n_bits)) < 0.5, rng.random((30, n_bits)) < 0.5
    expected = (a[:, None, :] != b[None, :, :]).sum(axis=2)
    assert np.array_equal(hamming(pack(a), pack(b)), expected)


@pytest.mark.parametrize(
    ("n_bits", "radius"), [(8, 0), (8, 1), (8, 3), (16, 2), (64, 2), (128, 2), (5, 5)]
)
def test_flip_masks_enumerate_each_code_at_radius_once(n_bits: int, radius: int) -> None:
    masks = flip_masks(n_bits, radius)
    assert len(masks) == math.comb(n_bits, radius)
    assert len({tuple(m) for m in masks.tolist()}) == len(masks)  # no duplicates
    assert np.all(np.bitwise_count(masks).sum(axis=1) == radius)
    assert np.all(unpack(masks, n_bits).sum(axis=1) == radius)  # no bits beyond n_bits


def test_n_probes_sums_binomials() -> None:
    assert n_probes(32, 2) == 1 + 32 + 496
    assert flip_masks(8, 9).shape == (0, 1)


@pytest.mark.parametrize("n_bits", [0, 129, -3])
def test_bit_count_outside_1_to_128_is_refused(n_bits: int) -> None:
    with pytest.raises(ValueError, match="between 1 and 128"):
        n_words(n_bits)
