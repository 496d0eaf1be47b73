"""Residual codec: reconstruction quality ordered by bits, compact codes, product quantisation beating
per-dimension buckets at the same bytes, the rotated search frame, save/load, and old indexes' codecs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from index_helpers import clustered_docs

from polycolbert.index.codec import Codec, choose_n_centroids
from polycolbert.index.store import write_arrays


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_codecs_written_before_product_quantisation_decode_as_before(nbits: int) -> None:
    """Old codecs stored per-dimension bucket values; their bytes packed bucket numbers low bits first."""
    rng = np.random.default_rng(nbits)
    dims, levels = 16, 2**nbits
    centroids = rng.normal(size=(3, dims)).astype(np.float16)
    weights = np.sort(rng.normal(scale=0.1, size=(dims, levels)), axis=1).astype(np.float32)
    buckets = rng.integers(0, levels, size=(20, dims))
    codes = rng.integers(0, 3, size=20).astype(np.uint16)
    per_byte = 8 // nbits
    packed = np.zeros((20, dims // per_byte), np.uint8)
    for j in range(dims):  # packed by hand, the old layout
        packed[:, j // per_byte] |= (buckets[:, j] << (nbits * (j % per_byte))).astype(np.uint8)
    old = {"centroids": centroids, "cutoffs": np.zeros((dims, levels - 1), np.float32), "weights": weights}
    codec = Codec.from_arrays({**old, "nbits": np.array(nbits), "residual_mse": np.array(0.1)})
    expected = centroids.astype(np.float32)[codes] + weights[np.arange(dims)[None, :], buckets]
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(codec.decode(codes, packed), expected, atol=1e-6)


def _scalar_bucket_mse(x: np.ndarray, centroids: np.ndarray, nbits: int) -> float:
    """The previous codec as a reference: per-dimension quantile buckets decoding to their mean."""
    residual = x - centroids[(x @ centroids.T).argmax(axis=1)]
    levels = 2**nbits
    cutoffs = np.quantile(residual, np.arange(1, levels) / levels, axis=0)  # [levels-1, d]
    buckets = (residual[None, :, :] > cutoffs[:, None, :]).sum(axis=0)
    decoded = np.zeros_like(residual)
    for b in range(levels):
        mask = buckets == b
        means = np.where(mask, residual, 0).sum(axis=0) / np.maximum(mask.sum(axis=0), 1)
        decoded += np.where(mask, means[None, :], 0)
    return float(((residual - decoded) ** 2).sum(axis=1).mean())


@pytest.mark.parametrize("nbits", [1, 2])
def test_product_quantisation_beats_per_dimension_buckets_at_the_same_bytes(nbits: int) -> None:
    rng = np.random.default_rng(7)
    mixing = rng.normal(size=(64, 64)).astype(np.float32)  # correlated dimensions, as real heads give
    x = np.concatenate(clustered_docs(300, dims=64)) @ mixing
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    codec = Codec.train(x, nbits)
    codes, packed, _ = codec.encode(x)
    assert packed.shape == (len(x), 64 * nbits // 8) and packed.dtype == np.uint8
    residual = x - codec.centroids[codes]
    # The residual the bytes stand for, read straight from the codebooks and rotated back.
    groups, width = packed.shape[1], 8 // nbits
    picked = codec.codebooks[np.arange(groups)[None, :], packed.astype(np.intp)]  # [T, groups, width]
    quantised = picked.reshape(len(x), groups * width) @ codec.rotation.T
    pq_mse = float(((residual - quantised) ** 2).sum(axis=1).mean())
    assert pq_mse < 0.9 * _scalar_bucket_mse(x, codec.centroids, nbits)


def test_search_frame_keeps_every_dot_product(tmp_path: Path) -> None:
    x = np.concatenate(clustered_docs(200, dims=32))
    codec = Codec.train(x, 2)
    np.testing.assert_allclose(codec.rotation @ codec.rotation.T, np.eye(32), atol=1e-5)
    codes, packed, _ = codec.encode(x[:50])
    q = x[100:132]
    plain = q @ codec.decode(codes, packed).T
    rotated = codec.to_search_frame(q) @ codec.decode_for_search(codes, packed).T
    np.testing.assert_allclose(plain, rotated, atol=1e-5)
    np.testing.assert_allclose(
        q @ codec.centroids.T, codec.to_search_frame(q) @ codec.search_centroids.T, atol=1e-5
    )
    write_arrays(tmp_path, "c", codec.arrays())
    loaded = Codec.load(tmp_path, "c")
    np.testing.assert_array_equal(loaded.encode(x[:50])[1], packed)
    np.testing.assert_allclose(loaded.decode(codes, packed), codec.decode(codes, packed), atol=1e-3)


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
