"""Output encodings of token vectors, shared by the Python API, the HTTP API and storage.

Jina's clients decode ``binary`` as ``np.unpackbits((x + 128).astype(uint8))`` and ``ubinary`` as plain
``np.unpackbits(x)``, so both are sign bits packed eight per byte (big-endian bit order, numpy's default);
``base64`` is one string per token vector holding its little-endian float32 bytes.

>>> import numpy as np
>>> v = np.array([[0.6, -0.8]], dtype=np.float32)
>>> convert_vectors(v, "ubinary")
array([[128]], dtype=uint8)
>>> decode_vectors(to_json_vectors(v, "base64"), "base64", dim=2).tolist()
[[0.6000000238418579, -0.800000011920929]]
"""

from __future__ import annotations

import base64
from typing import Any, Literal, get_args

import numpy as np

EmbeddingType = Literal["float", "float16", "base64", "binary", "ubinary", "int8"]
EMBEDDING_TYPES: tuple[str, ...] = get_args(EmbeddingType)


def check_embedding_type(kind: str) -> EmbeddingType:
    if kind not in EMBEDDING_TYPES:
        raise ValueError(f"embedding_type must be one of {', '.join(EMBEDDING_TYPES)}; got {kind!r}")
    return kind  # type: ignore[return-value]


def convert_vectors(vectors: np.ndarray, kind: str) -> np.ndarray:
    """Convert float32 ``[n, d]`` unit vectors to the array form of ``kind``.

    int8 scales by 127 because unit-vector components lie in [-1, 1]; binary keeps only signs
    (a 32x smaller index, scored with Hamming distance by peers such as Qdrant's binary quantisation).
    """
    kind = check_embedding_type(kind)
    vectors = np.asarray(vectors, dtype=np.float32)
    if kind in ("float", "base64"):
        return vectors
    if kind == "float16":
        return vectors.astype(np.float16)
    if kind == "int8":
        return np.clip(np.rint(vectors * 127.0), -127, 127).astype(np.int8)
    packed = np.packbits(vectors > 0, axis=-1)
    if kind == "ubinary":
        return packed
    return (packed.astype(np.int16) - 128).astype(np.int8)


# JSON bytes per value, a little above what random unit vectors measure (float32 values written as Python
# writes a double, e.g. "-0.012345678918063641,"; float16 likewise; int8 up to "-127,").
JSON_BYTES_PER_VALUE = {"float": 22, "float16": 18, "int8": 5}


def json_row_bytes(dim: int, kind: str) -> int:
    """About how many bytes one ``dim``-sized vector takes as ``kind`` in a JSON body (an upper estimate).

    >>> json_row_bytes(128, "float"), json_row_bytes(128, "base64"), json_row_bytes(128, "binary")
    (2818, 687, 82)
    """
    kind = check_embedding_type(kind)
    if kind == "base64":
        return 4 * -(-4 * dim // 3) + 3  # quotes and comma around the base64 of dim float32 values
    if kind in ("binary", "ubinary"):
        return 5 * -(-dim // 8) + 2  # ceil(dim / 8) packed bytes, each at most "-128,"
    return JSON_BYTES_PER_VALUE[kind] * dim + 2


def to_json_vectors(vectors: np.ndarray, kind: str) -> list[Any]:
    """The JSON value Jina's API returns for one input: a list with one entry per token vector."""
    converted = convert_vectors(vectors, kind)
    if kind == "base64":
        little = converted.astype("<f4", copy=False)
        return [base64.b64encode(row.tobytes()).decode("ascii") for row in little]
    return converted.tolist()


def decode_vectors(value: list[Any], kind: str, dim: int) -> np.ndarray:
    """Inverse of :func:`to_json_vectors` (binary kinds give back ±1 signs, int8 the scaled values)."""
    kind = check_embedding_type(kind)
    if kind == "base64":
        rows = [np.frombuffer(base64.b64decode(s), dtype="<f4") for s in value]
        return np.stack(rows).astype(np.float32) if rows else np.zeros((0, dim), np.float32)
    array = np.asarray(value)
    if kind in ("float", "float16"):
        return array.astype(np.float32).reshape(-1, dim)
    if kind == "int8":
        return (array.astype(np.float32) / 127.0).reshape(-1, dim)
    raw = (array.astype(np.int16) + 128).astype(np.uint8) if kind == "binary" else array.astype(np.uint8)
    bits = np.unpackbits(raw.reshape(len(value), -1), axis=-1)[:, :dim]
    return np.where(bits > 0, 1.0, -1.0).astype(np.float32)
