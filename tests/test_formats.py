"""Output encodings round-trip and decode the way Jina's clients decode them."""

from __future__ import annotations

import numpy as np
import pytest

from polycolbert.formats import convert_vectors, decode_vectors, to_json_vectors


@pytest.fixture
def vectors():
    rng = np.random.default_rng(0)
    v = rng.standard_normal((7, 96)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_float_and_base64_round_trip_exactly(vectors):
    for kind in ("float", "base64"):
        back = decode_vectors(to_json_vectors(vectors, kind), kind, dim=96)
        assert np.array_equal(back, vectors)


def test_binary_decodes_like_llamaindex_and_ubinary_like_numpy(vectors):
    binary = to_json_vectors(vectors, "binary")
    assert all(-128 <= x <= 127 for row in binary for x in row) and len(binary[0]) == 12
    bits = np.unpackbits((np.array(binary) + 128).astype("uint8"), axis=-1)
    assert np.array_equal(bits.astype(bool), vectors > 0)
    ubits = np.unpackbits(np.array(to_json_vectors(vectors, "ubinary"), dtype=np.uint8), axis=-1)
    assert np.array_equal(ubits.astype(bool), vectors > 0)
    assert np.array_equal(decode_vectors(binary, "binary", 96), np.where(vectors > 0, 1.0, -1.0))


def test_int8_and_float16_are_close(vectors):
    assert (
        np.abs(decode_vectors(to_json_vectors(vectors, "int8"), "int8", 96) - vectors).max()
        <= 0.5 / 127 + 1e-6
    )
    assert convert_vectors(vectors, "float16").dtype == np.float16
    with pytest.raises(ValueError, match="embedding_type must be one of"):
        convert_vectors(vectors, "float64")
