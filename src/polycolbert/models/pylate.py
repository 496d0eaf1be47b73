"""PyLate's checkpoint settings, read the way PyLate 1.6 reads them, or refused with the setting named.

A PyLate folder is a sentence-transformers model: ``modules.json`` lists a ``Transformer`` (the backbone)
and one or more ``Dense`` modules applied in order to every token state; ``config_sentence_transformers.json``
holds the ColBERT recipe. PyLate's loader decides what each setting means, so this module follows it:

* ``query_prefix`` / ``document_prefix`` are *tokens*, looked up exactly as stored (``"[Q] "`` with its space;
  PyLate adds them to the tokenizer that way); ``""`` means no marker token;
* ``do_query_expansion`` false: queries are neither padded nor cut to ``query_length`` rows, only their real
  tokens come back; it also turns ``attend_to_expansion_tokens`` off;
* ``skiplist_words`` are converted to ids one word each, a word the vocabulary lacks becoming ``[UNK]``;
* ``default_prompt_name``: its prompt is put before every text; texts are stripped of surrounding
  whitespace before tokenising (sentence-transformers' ``Transformer.tokenize``);
* modules PyLate drops when it loads (``Normalize``, ``Pooling``, ...) are dropped here too, and ``notes``
  say so.

Anything that would change vectors and that we do not reproduce (``do_lower_case``, an activation outside
``torch.nn``, a prefix the tokenizer lacks) raises :class:`CheckpointError` naming the file and setting,
so a checkpoint is never half-read.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer
from torch import nn

from polycolbert.models.files import CheckpointError, read_json, read_weights
from polycolbert.models.heads import ColBERTHeads, DenseLayer

TRANSFORMER_TYPES = ("sentence_transformers.models.Transformer",)
DENSE_TYPES = ("pylate.models.Dense", "sentence_transformers.models.Dense")
SETTINGS_FILE = "config_sentence_transformers.json"
# PyLate's defaults for settings the file leaves out (pylate/models/colbert.py).
DEFAULTS: dict[str, Any] = {
    "query_prefix": "[Q] ",
    "document_prefix": "[D] ",
    "query_length": 32,
    "document_length": 180,
    "do_query_expansion": True,
    "attend_to_expansion_tokens": False,
    "skiplist_words": list(string.punctuation),
}


@dataclass
class PyLateSettings:
    """What ``config_sentence_transformers.json`` and ``modules.json`` say, PyLate's defaults filled in."""

    backbone_dir: Path
    dense_dirs: list[Path]
    query_prefix: str
    document_prefix: str
    query_length: int
    document_length: int
    do_query_expansion: bool
    attend_to_expansion_tokens: bool
    skiplist_words: list[str]
    prompt: str  # text put before every query and document ("" when no default prompt)
    notes: list[str] = field(default_factory=list)


def _module_kind(entry: dict[str, Any]) -> str:
    kind = str(entry.get("type", ""))
    if kind.startswith(TRANSFORMER_TYPES):
        return "transformer"
    if kind.startswith(DENSE_TYPES):
        return "dense"
    return "other"


def read_settings(folder: Path) -> PyLateSettings:
    """Every PyLate setting that changes vectors, or :class:`CheckpointError` naming one we cannot honour."""
    modules_path = folder / "modules.json"
    try:
        modules = json.loads(modules_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{modules_path} is not valid JSON: {error}") from None
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise CheckpointError(f"{modules_path} must hold a list of modules")
    kinds = [_module_kind(m) for m in modules]
    if not kinds or kinds[0] != "transformer":
        raise CheckpointError(f"{modules_path}: the first module must be a sentence-transformers Transformer")
    dense = [folder / str(m.get("path", "")) for m, k in zip(modules, kinds, strict=True) if k == "dense"]
    if not dense:
        raise CheckpointError(f"{modules_path} lists no Dense module (the ColBERT projection)")
    notes = [
        f"modules.json lists {m.get('type')}, which PyLate drops when it loads; so does polycolbert"
        for m, k in zip(modules, kinds, strict=True)
        if k == "other"
    ]
    backbone_dir = folder / str(modules[0].get("path", ""))
    _check_transformer_config(backbone_dir)

    path = folder / SETTINGS_FILE
    raw = read_json(path) if path.exists() else {}
    values = {key: raw[key] if raw.get(key) is not None else default for key, default in DEFAULTS.items()}
    for key in ("query_prefix", "document_prefix"):
        if not isinstance(values[key], str):
            raise CheckpointError(f"{path}: {key} must be a string; got {values[key]!r}")
    words = values["skiplist_words"]
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise CheckpointError(f"{path}: skiplist_words must be a list of strings")
    expansion = bool(values["do_query_expansion"])
    return PyLateSettings(
        backbone_dir=backbone_dir,
        dense_dirs=dense,
        query_prefix=values["query_prefix"],
        document_prefix=values["document_prefix"],
        query_length=_positive_int(path, "query_length", values["query_length"]),
        document_length=_positive_int(path, "document_length", values["document_length"]),
        do_query_expansion=expansion,
        # PyLate: "If we do not do query expansion, we do not attend to the expansion tokens".
        attend_to_expansion_tokens=expansion and bool(values["attend_to_expansion_tokens"]),
        skiplist_words=words,
        prompt=_default_prompt(path, raw),
        notes=notes,
    )


def _positive_int(path: Path, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CheckpointError(f"{path}: {key} must be a positive integer; got {value!r}")
    return value


def _default_prompt(path: Path, raw: dict[str, Any]) -> str:
    name = raw.get("default_prompt_name")
    if not name:
        return ""
    prompts = raw.get("prompts") or {}
    if name not in prompts or not isinstance(prompts[name], str):
        raise CheckpointError(f"{path}: default_prompt_name {name!r} is not one of prompts {sorted(prompts)}")
    return str(prompts[name])


def _check_transformer_config(backbone_dir: Path) -> None:
    path = backbone_dir / "sentence_bert_config.json"
    if path.exists() and read_json(path).get("do_lower_case"):
        raise CheckpointError(
            f"{path}: do_lower_case true (sentence-transformers lower-cases every text before the tokenizer) "
            "is not supported"
        )


def marker_id(tokenizer: Tokenizer, prefix: str, key: str) -> int | None:
    """The id PyLate inserts after [CLS]: the prefix looked up as one token, exactly as stored."""
    if prefix == "":
        return None
    found = tokenizer.token_to_id(prefix)
    if found is None:
        raise CheckpointError(
            f"{SETTINGS_FILE}: {key} {prefix!r} is not a token of the tokenizer (PyLate would add it with an "
            "untrained embedding row)"
        )
    return int(found)


def skiplist_ids(tokenizer: Tokenizer, words: list[str], unk_id: int | None) -> frozenset[int]:
    """PyLate's ``convert_tokens_to_ids`` per word: words the vocabulary lacks become the unknown token."""
    found = [tokenizer.token_to_id(word) for word in words]
    return frozenset(i for i in (unk_id if f is None else f for f in found) if i is not None)


def read_dense_chain(dirs: list[Path], hidden_size: int) -> ColBERTHeads:
    """The Dense modules in order as one head; folded into one linear map when every activation is linear."""
    layers = [_read_dense(path) for path in dirs]
    width = hidden_size
    for path, layer in zip(dirs, layers, strict=True):
        if layer.linear.in_features != width:
            raise CheckpointError(
                f"{path / 'config.json'}: in_features {layer.linear.in_features}, but the module before "
                f"gives {width}"
            )
        width = layer.linear.out_features
    if all(layer.is_affine for layer in layers):
        weight, bias = _fold(layers, hidden_size)
        return ColBERTHeads.from_weights({width: weight}, {width: bias} if bias is not None else None)
    return ColBERTHeads.from_modules({width: nn.Sequential(*layers)}, hidden_size)


def _read_dense(folder: Path) -> DenseLayer:
    config_path = folder / "config.json"
    config = read_json(config_path)
    try:
        in_features, out_features = int(config["in_features"]), int(config["out_features"])
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{config_path}: in_features and out_features must be integers") from None
    bias = bool(config.get("bias", True))
    activation = _activation(config_path, str(config.get("activation_function", "torch.nn.Tanh")))
    residual = bool(config.get("use_residual", False))
    state = read_weights(folder)
    expected = {"linear.weight", *(["linear.bias"] if bias else [])}
    if residual and in_features != out_features:
        expected.add("residual.weight")
    if set(state) != expected:
        raise CheckpointError(
            f"{folder}: Dense weights {sorted(state)} do not match its config {sorted(expected)}"
        )
    linear = nn.Linear(in_features, out_features, bias=bias)
    projection = nn.Linear(in_features, out_features, bias=False) if "residual.weight" in state else None
    try:
        linear.load_state_dict(
            {k.removeprefix("linear."): v.float() for k, v in state.items() if "linear" in k}
        )
        if projection is not None:
            projection.load_state_dict({"weight": state["residual.weight"].float()})
    except RuntimeError as error:
        raise CheckpointError(f"{folder}: Dense weights do not fit its config: {error}") from None
    return DenseLayer(linear, activation, residual, projection)


def _activation(path: Path, name: str) -> nn.Module:
    """A ``torch.nn`` activation class by its import path, built without arguments as PyLate builds it."""
    module, _, cls_name = name.rpartition(".")
    cls = getattr(nn, cls_name, None)
    if not module.startswith("torch.nn") or not isinstance(cls, type) or not issubclass(cls, nn.Module):
        raise CheckpointError(f"{path}: activation_function {name} is not a torch.nn module we can build")
    try:
        return cls()
    except TypeError:
        raise CheckpointError(f"{path}: activation_function {name} needs arguments") from None


@torch.no_grad()
def _fold(layers: list[DenseLayer], hidden_size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One ``weight``, ``bias`` equal to a chain of affine Dense modules (computed in float64)."""
    weight = torch.eye(hidden_size, dtype=torch.float64)
    bias = torch.zeros(hidden_size, dtype=torch.float64)
    has_bias = False
    for layer in layers:
        w = layer.linear.weight.double()
        step = w.clone()
        if layer.residual:
            step += layer.projection.weight.double() if layer.projection is not None else torch.eye(len(w))
        weight, bias = step @ weight, step @ bias
        if layer.linear.bias is not None:
            bias += layer.linear.bias.double()
            has_bias = True
        has_bias = has_bias or bool(bias.abs().max() > 0)
    return weight.float(), bias.float() if has_bias else None
