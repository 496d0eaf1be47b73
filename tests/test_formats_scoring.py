"""Output encodings round-trip and decode the way Jina's clients decode them; MaxSim kernels agree."""

from __future__ import annotations

import numpy as np
import pytest

from polycolbert.formats import convert_vectors, decode_vectors, to_json_vectors
from polycolbert.scoring import explain_matches, maxsim, maxsim_many


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


def test_maxsim_by_hand():
    q = np.array([[1, 0], [0, 1]], np.float32)
    d = np.array([[0.6, 0.8], [1, 0]], np.float32)
    assert maxsim(q, d) == pytest.approx(1.0 + 0.8)
    assert explain_matches(q, d) == [(0, 1, pytest.approx(1.0)), (1, 0, pytest.approx(0.8))]


def test_packed_maxsim_matches_loop_with_empty_docs_and_chunks():
    rng = np.random.default_rng(1)
    q = rng.standard_normal((32, 16)).astype(np.float32)
    docs = [rng.standard_normal((n, 16)).astype(np.float32) for n in (5, 0, 40, 1, 17, 0, 3)]
    expected = np.array([maxsim(q, d) for d in docs], np.float32)
    for chunk in (1, 8, 1 << 20):
        assert np.allclose(maxsim_many(q, docs, chunk_tokens=chunk), expected, atol=1e-4)
