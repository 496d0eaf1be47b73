"""Residual codec: reconstruction quality ordered by bits, compact codes, exact bit packing."""

from __future__ import annotations

import numpy as np
import pytest
from index_helpers import clustered_docs

from polycolbert.index.codec import Codec, _pack, _unpack, choose_n_centroids


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_pack_round_trip(nbits: int) -> None:
    rng = np.random.default_rng(nbits)
    buckets = rng.integers(0, 2**nbits, size=(50, 64)).astype(np.uint8)
    packed = _pack(buckets, nbits)
    assert packed.shape == (50, 64 * nbits // 8) and packed.dtype == np.uint8
    np.testing.assert_array_equal(_unpack(packed, nbits, 64), buckets)


def test_more_bits_reconstruct_better_and_codes_are_small() -> None:
    x = np.concatenate(clustered_docs(300, dims=64))
    cos = {}
    for nbits in (1, 2, 4):
        codec = Codec.train(x, nbits)
        codes, packed, _ = codec.encode(x)
        assert codes.dtype == np.uint16
        assert codec.bytes_per_token == 64 * nbits // 8 + 2
        cos[nbits] = float((codec.decode(codes, packed) * x).sum(axis=1).mean())
    assert cos[1] < cos[2] < cos[4]
    assert cos[2] > 0.9 and cos[4] > 0.97


def test_bad_settings_are_rejected() -> None:
    x = np.ones((10, 12), np.float32)
    with pytest.raises(ValueError, match="nbits"):
        Codec.train(x, 3)
    with pytest.raises(ValueError, match="multiple of 8"):
        Codec.train(np.ones((10, 6), np.float32), 1)
    with pytest.raises(ValueError):
        choose_n_centroids(0)
    assert choose_n_centroids(5) == 5 and choose_n_centroids(1_000_000) == 2048
