from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from polycolbert.eval.cache import EncodingCache, fingerprint_modules


class CountingEncoder:
    def __init__(self, dims: int) -> None:
        self.dims = dims
        self.seen: list[str] = []

    def __call__(self, texts: Sequence[str]) -> list[np.ndarray]:
        self.seen.extend(texts)
        rng = np.random.default_rng(len(self.seen))
        return [rng.standard_normal((len(t), self.dims)).astype(np.float32) for t in texts]


def test_round_trip_and_reuse_across_instances(tmp_path: Path) -> None:
    encoder = CountingEncoder(4)
    first = EncodingCache(tmp_path, "enc", "document", 4).get_or_encode(["aa", "bbb", "aa"], encoder)
    assert encoder.seen == ["aa", "bbb"]  # duplicates are encoded once
    assert [v.shape for v in first] == [(2, 4), (3, 4), (2, 4)]
    again = EncodingCache(tmp_path, "enc", "document", 4).get_or_encode(["bbb", "c", "aa"], encoder)
    assert encoder.seen == ["aa", "bbb", "c"]  # only the new text reached the encoder
    np.testing.assert_array_equal(again[0], first[1])
    np.testing.assert_array_equal(again[2], first[0])


def test_values_are_stored_as_float16(tmp_path: Path) -> None:
    vectors = [np.array([[0.1, 1 / 3]], np.float32)]
    cache = EncodingCache(tmp_path, "enc", "query", 2)
    cache.put(["t"], vectors)
    got = EncodingCache(tmp_path, "enc", "query", 2).get(["t"])[0]
    np.testing.assert_array_equal(got, vectors[0].astype(np.float16).astype(np.float32))


def test_keys_separate_encoders_sides_and_dims(tmp_path: Path) -> None:
    EncodingCache(tmp_path, "enc", "query", 2).put(["t"], [np.ones((1, 2), np.float32)])
    assert EncodingCache(tmp_path, "enc", "query", 2).missing(["t"]) == []
    assert EncodingCache(tmp_path, "enc", "document", 2).missing(["t"]) == ["t"]
    assert EncodingCache(tmp_path, "enc", "query", 3).missing(["t"]) == ["t"]
    assert EncodingCache(tmp_path, "other", "query", 2).missing(["t"]) == ["t"]


def test_wrong_shapes_are_refused_and_leave_nothing(tmp_path: Path) -> None:
    cache = EncodingCache(tmp_path, "enc", "query", 2)
    with pytest.raises(RuntimeError, match=r"expected \[n, 2\]"):
        cache.put(["t"], [np.ones((1, 3), np.float32)])
    with pytest.raises(RuntimeError, match="2 results for 1 texts"):
        cache.put(["t"], [np.ones((1, 2), np.float32)] * 2)
    assert not cache.folder.exists() or not any(cache.folder.iterdir())


def test_fingerprint_follows_the_weights() -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    before = fingerprint_modules([layer])
    assert fingerprint_modules([layer]) == before
    with torch.no_grad():
        layer.weight[0, 0] += 1e-3
    assert fingerprint_modules([layer]) != before
    assert fingerprint_modules([layer], "x") != fingerprint_modules([layer], "y")
