"""Reading the files a checkpoint folder is made of: weights, tokenizer, JSON.

Kept apart from layout detection so every layout reads weights the same way (safetensors memory-mapped
where possible, pickled ``.bin`` only through ``weights_only`` loading, never arbitrary code).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer


class CheckpointError(ValueError):
    """A checkpoint folder is missing a file or holds something we cannot use; the message says which."""


WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise CheckpointError(f"missing file {path}") from None
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object")
    return data


def read_weights(folder: Path, names: tuple[str, ...] = WEIGHT_FILES) -> dict[str, torch.Tensor]:
    """The first weight file found in ``folder`` among ``names``, as a state dict."""
    for name in names:
        path = folder / name
        if path.exists():
            if path.suffix == ".safetensors":
                return load_file(str(path))
            loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            return dict(loaded)
    raise CheckpointError(f"no weights in {folder}: expected one of {', '.join(names)}")


def read_tokenizer(folder: Path) -> Tokenizer:
    """``tokenizer.json`` if the folder has it; otherwise converted from the slow-tokenizer files."""
    path = folder / "tokenizer.json"
    if path.exists():
        return Tokenizer.from_file(str(path))
    try:
        from transformers import AutoTokenizer

        fast = AutoTokenizer.from_pretrained(str(folder), use_fast=True)
    except Exception as error:  # transformers raises many types here; all mean "no usable tokenizer"
        raise CheckpointError(
            f"no tokenizer in {folder}: add tokenizer.json (or vocab.txt / sentencepiece.bpe.model): {error}"
        ) from None
    return fast.backend_tokenizer


def token_id(tokenizer: Tokenizer, *candidates: str) -> int:
    """The id of the first candidate token the vocabulary has."""
    for token in candidates:
        found = tokenizer.token_to_id(token)
        if found is not None:
            return int(found)
    raise CheckpointError(f"the tokenizer has none of the tokens {candidates}")
