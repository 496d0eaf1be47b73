"""Read a checkpoint folder, in any supported layout, into one :class:`LoadedCheckpoint`.

Layouts (detected from the files present):

* ``polycolbert``: ``polycolbert.json`` + ``heads.safetensors`` (several Matryoshka heads) and either
  backbone files or a reference to the packaged backbone;
* ``jina``: jina-colbert-v2 (``config.json`` with ``HF_ColBERT`` and rotary XLM-R, ``artifact.metadata``,
  ``model.safetensors`` with ``roberta.*`` and ``linear.weight``) and its -96 / -64 siblings;
* ``stanford``: Stanford ColBERT (``artifact.metadata``, BERT or XLM-R with ``linear.weight``);
* ``pylate``: PyLate / sentence-transformers (``modules.json``, ``Dense`` module folders; the settings are
  read by :mod:`polycolbert.models.pylate`).

Each reader takes the recipe's defaults from the checkpoint's own metadata, so a model encodes the way its
authors' reference code does; ``overrides`` (e.g. ``doc_maxlen=300``) change them on request.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, TypedDict, cast

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer
from torch import nn

from polycolbert.models.files import CheckpointError, read_json, read_tokenizer, read_weights, token_id
from polycolbert.models.heads import ColBERTHeads
from polycolbert.models.spec import BackboneKind, Layout, ModelSpec

POLYCOLBERT_FORMAT_VERSION = 1
# Jina's API truncates documents at 8192 tokens; artifact.metadata's doc_maxlen (300) is the Stanford
# training default, so the jina layout uses the API's value and says so in the model notes.
JINA_API_DOC_MAXLEN = 8192


@dataclass
class LoadedCheckpoint:
    spec: ModelSpec
    backbone: nn.Module
    heads: ColBERTHeads
    tokenizer: Tokenizer
    skiplist: frozenset[int] | None = None  # None: Stanford's recipe from the tokenizer
    extra: dict[str, Any] = field(default_factory=dict)


def detect_layout(folder: Path) -> Layout:
    if (folder / "polycolbert.json").exists():
        return "polycolbert"
    if (folder / "modules.json").exists():
        return "pylate"
    if (folder / "artifact.metadata").exists() or (folder / "config.json").exists():
        config = read_json(folder / "config.json")
        if config.get("position_embedding_type") == "rotary":
            return "jina"
        return "stanford"
    raise CheckpointError(
        f"{folder} is not a checkpoint we can read: expected polycolbert.json, modules.json (PyLate), "
        "or config.json + artifact.metadata (Stanford ColBERT / jina-colbert-v2)"
    )


def load_checkpoint(
    folder: str | os.PathLike[str], name: str | None = None, **overrides: Any
) -> LoadedCheckpoint:
    """Load ``folder`` whatever its layout; ``overrides`` replace :class:`ModelSpec` fields."""
    path = Path(folder)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint folder {path} does not exist")
    layout = detect_layout(path)
    readers = {
        "polycolbert": _load_polycolbert,
        "jina": _load_jina,
        "stanford": _load_stanford,
        "pylate": _load_pylate,
    }
    loaded = readers[layout](path)
    if name:
        loaded.spec.name = name
    valid = {f.name for f in fields(ModelSpec)}
    unknown = set(overrides) - valid
    if unknown:
        raise ValueError(f"unknown model options {sorted(unknown)}; valid ones are {sorted(valid)}")
    loaded.spec = replace(loaded.spec, **{k: v for k, v in overrides.items() if v is not None})
    loaded.spec.notes = [*loaded.spec.notes, *loaded.heads.notes()]
    return loaded


# -- shared pieces -----------------------------------------------------------------------------------
class SpecialIds(TypedDict):
    cls_id: int
    sep_id: int
    pad_id: int
    mask_id: int


def _xlmr_or_bert_specials(tokenizer: Tokenizer) -> SpecialIds:
    return {
        "cls_id": token_id(tokenizer, "<s>", "[CLS]"),
        "sep_id": token_id(tokenizer, "</s>", "[SEP]"),
        "pad_id": token_id(tokenizer, "<pad>", "[PAD]"),
        "mask_id": token_id(tokenizer, "<mask>", "[MASK]"),
    }


def _split_head(state: dict[str, torch.Tensor]) -> dict[int, torch.Tensor]:
    if "linear.weight" not in state:
        raise CheckpointError("the weights have no ColBERT head `linear.weight`")
    weight = state.pop("linear.weight")
    return {int(weight.shape[0]): weight}


def _metadata(folder: Path) -> dict[str, Any]:
    meta_path = folder / "artifact.metadata"
    return read_json(meta_path) if meta_path.exists() else {}


def _marker(tokenizer: Tokenizer, token: Any, default: str) -> int:
    if isinstance(token, int):
        return token
    return token_id(tokenizer, str(token or default))


def _max_positions(config: Mapping[str, Any]) -> int | None:
    rows = config.get("max_position_embeddings")
    if rows is None or config.get("position_embedding_type") == "rotary":
        return None
    # RoBERTa-family tables reserve the first pad_token_id + 1 rows.
    offset = int(config.get("pad_token_id", 0)) + 1 if config.get("model_type") == "xlm-roberta" else 0
    return int(rows) - offset


# -- layouts ---------------------------------------------------------------------------------------------
def _load_jina(folder: Path) -> LoadedCheckpoint:
    from polycolbert.models.backbones.jina_xlmr import load_jina_backbone

    config = read_json(folder / "config.json")
    meta = _metadata(folder)
    tokenizer = read_tokenizer(folder)
    state = read_weights(folder)
    heads = ColBERTHeads.from_weights(_split_head(state))
    backbone = load_jina_backbone(config, state)
    doc_note = (
        f"doc_maxlen {JINA_API_DOC_MAXLEN} as in Jina's API (artifact.metadata says "
        f"{meta.get('doc_maxlen', 'nothing')}, Stanford's training default; pass doc_maxlen to change it)"
    )
    spec = ModelSpec(
        name=folder.name,
        layout="jina",
        backbone="jina-xlm-roberta",
        hidden_size=int(config["hidden_size"]),
        head_dims=heads.trained_dims,
        query_maxlen=int(meta.get("query_maxlen", 32)),
        doc_maxlen=JINA_API_DOC_MAXLEN,
        query_marker_id=_marker(tokenizer, meta.get("query_token_id"), "[QueryMarker]"),
        doc_marker_id=_marker(tokenizer, meta.get("doc_token_id"), "[DocumentMarker]"),
        attend_to_mask_tokens=bool(meta.get("attend_to_mask_tokens", True)),
        mask_punctuation=bool(meta.get("mask_punctuation", True)),
        max_positions=None,
        license="CC-BY-NC-4.0",
        source=str(folder),
        notes=[doc_note],
        **_xlmr_or_bert_specials(tokenizer),
    )
    return LoadedCheckpoint(spec, backbone, heads, tokenizer, extra={"backbone_config": config})


def _load_stanford(folder: Path) -> LoadedCheckpoint:
    from polycolbert.models.backbones.hf import build_hf_backbone

    config = read_json(folder / "config.json")
    meta = _metadata(folder)
    kind = _hf_kind(config, folder)
    tokenizer = read_tokenizer(folder)
    state = read_weights(folder)
    heads = ColBERTHeads.from_weights(_split_head(state))
    backbone = build_hf_backbone(kind, config, state)
    spec = ModelSpec(
        name=folder.name,
        layout="stanford",
        backbone=kind,
        hidden_size=int(config["hidden_size"]),
        head_dims=heads.trained_dims,
        query_maxlen=int(meta.get("query_maxlen", 32)),
        doc_maxlen=int(meta.get("doc_maxlen", 180)),
        query_marker_id=_marker(tokenizer, meta.get("query_token_id"), "[unused0]"),
        doc_marker_id=_marker(tokenizer, meta.get("doc_token_id"), "[unused1]"),
        attend_to_mask_tokens=bool(meta.get("attend_to_mask_tokens", False)),
        mask_punctuation=bool(meta.get("mask_punctuation", True)),
        max_positions=_max_positions(config),
        source=str(folder),
        **_xlmr_or_bert_specials(tokenizer),
    )
    return LoadedCheckpoint(spec, backbone, heads, tokenizer, extra={"backbone_config": config})


def _load_pylate(folder: Path) -> LoadedCheckpoint:
    from polycolbert.models.backbones.hf import build_hf_backbone
    from polycolbert.models.pylate import marker_id, read_dense_chain, read_settings, skiplist_ids

    settings = read_settings(folder)
    config = read_json(settings.backbone_dir / "config.json")
    kind = _hf_kind(config, settings.backbone_dir)
    tokenizer = read_tokenizer(settings.backbone_dir)
    heads = read_dense_chain(settings.dense_dirs, int(config["hidden_size"]))
    backbone = build_hf_backbone(kind, config, read_weights(settings.backbone_dir))
    specials = _xlmr_or_bert_specials(tokenizer)
    unk = next((i for t in ("<unk>", "[UNK]") if (i := tokenizer.token_to_id(t)) is not None), None)
    spec = ModelSpec(
        name=folder.name,
        layout="pylate",
        backbone=kind,
        hidden_size=int(config["hidden_size"]),
        head_dims=heads.trained_dims,
        query_maxlen=settings.query_length,
        doc_maxlen=settings.document_length,
        query_marker_id=marker_id(tokenizer, settings.query_prefix, "query_prefix"),
        doc_marker_id=marker_id(tokenizer, settings.document_prefix, "document_prefix"),
        query_prefix=settings.prompt,
        doc_prefix=settings.prompt,
        attend_to_mask_tokens=settings.attend_to_expansion_tokens,
        query_padding="mask" if settings.do_query_expansion else "none",
        mask_punctuation=True,
        strip_text=True,
        max_positions=_max_positions(config),
        source=str(folder),
        notes=settings.notes,
        **specials,
    )
    skiplist = skiplist_ids(tokenizer, settings.skiplist_words, unk)
    return LoadedCheckpoint(spec, backbone, heads, tokenizer, skiplist, extra={"backbone_config": config})


def _hf_kind(config: Mapping[str, Any], folder: Path) -> Literal["bert", "xlm-roberta"]:
    """The transformers encoder a config.json describes, among those polycolbert builds."""
    model_type = config.get("model_type")
    if model_type in ("xlm-roberta", "roberta"):
        return "xlm-roberta"
    if model_type == "bert":
        return "bert"
    raise CheckpointError(
        f"{folder / 'config.json'}: model_type {model_type!r} is not supported (bert, roberta, xlm-roberta)"
    )


def _load_polycolbert(folder: Path) -> LoadedCheckpoint:
    manifest = read_json(folder / "polycolbert.json")
    if manifest.get("format") != "polycolbert":
        raise CheckpointError(f"{folder / 'polycolbert.json'} is not a polycolbert manifest")
    version = manifest.get("version")
    if version != POLYCOLBERT_FORMAT_VERSION:
        raise CheckpointError(
            f"{folder} has polycolbert format version {version}; "
            f"this release reads {POLYCOLBERT_FORMAT_VERSION}"
        )
    backbone_info = manifest.get("backbone", {})
    source = backbone_info.get("source")
    if source == "packaged:multilingual-e5-small":
        from polycolbert.models.packaged import E5_CONFIG, load_e5_backbone, load_e5_tokenizer

        tokenizer = load_e5_tokenizer()
        backbone: nn.Module = load_e5_backbone(tokenizer)
        kind, hidden = "xlm-roberta", int(E5_CONFIG["hidden_size"])
        extra_config = dict(E5_CONFIG)
        max_positions = _max_positions({**E5_CONFIG, "model_type": "xlm-roberta"})
    elif source == "files":
        kind, config = backbone_info["kind"], backbone_info["config"]
        state = read_weights(folder, ("backbone.safetensors",))
        if kind == "jina-xlm-roberta":
            from polycolbert.models.backbones.jina_xlmr import load_jina_backbone

            backbone = load_jina_backbone(config, state)
        else:
            from polycolbert.models.backbones.hf import build_hf_backbone

            backbone = build_hf_backbone(kind, config, state)
        tokenizer = read_tokenizer(folder)
        hidden = int(config["hidden_size"])
        extra_config = config
        max_positions = _max_positions({**config, "model_type": kind})
    else:
        raise CheckpointError(f"{folder / 'polycolbert.json'}: unknown backbone source {source!r}")
    update_path = folder / "backbone_update.safetensors"
    if update_path.exists():
        # Fine-tuned backbone tensors (e.g. top layers) stored on top of a shared base: small to ship.
        update = read_weights(folder, ("backbone_update.safetensors",))
        missing = set(update) - set(backbone.state_dict())
        if missing:
            raise CheckpointError(f"{update_path} names tensors the backbone lacks: {sorted(missing)[:5]}")
        backbone.load_state_dict(update, strict=False)
    head_state = read_weights(folder, ("heads.safetensors",))
    weights = {int(k.split(".")[1]): v for k, v in head_state.items() if k.endswith(".weight")}
    biases = {int(k.split(".")[1]): v for k, v in head_state.items() if k.endswith(".bias")}
    heads = ColBERTHeads.from_weights(weights, biases or None)
    if heads.hidden_size != hidden:
        raise CheckpointError(f"heads expect {heads.hidden_size} inputs but the backbone gives {hidden}")
    recipe = manifest.get("recipe", {})
    spec = ModelSpec(
        name=str(manifest.get("name", folder.name)),
        layout="polycolbert",
        backbone=cast(BackboneKind, kind),
        hidden_size=hidden,
        head_dims=heads.trained_dims,
        query_maxlen=int(recipe.get("query_maxlen", 32)),
        doc_maxlen=int(recipe.get("doc_maxlen", 8192)),
        query_marker_id=_recipe_marker(tokenizer, recipe, "query_marker", "[QueryMarker]"),
        doc_marker_id=_recipe_marker(tokenizer, recipe, "doc_marker", "[DocumentMarker]"),
        query_prefix=_recipe_prefix(recipe, "query_prefix"),
        doc_prefix=_recipe_prefix(recipe, "doc_prefix"),
        attend_to_mask_tokens=bool(recipe.get("attend_to_mask_tokens", True)),
        query_padding=_query_padding(recipe.get("query_padding", "mask")),
        mask_punctuation=bool(recipe.get("mask_punctuation", True)),
        max_positions=max_positions,
        license=str(manifest.get("license", "unknown")),
        source=str(folder),
        notes=list(manifest.get("notes", [])),
        **_xlmr_or_bert_specials(tokenizer),
    )
    extra = {"manifest": manifest, "backbone_config": extra_config}
    return LoadedCheckpoint(spec, backbone, heads, tokenizer, extra=extra)


def _recipe_marker(tokenizer: Tokenizer, recipe: dict[str, Any], key: str, default: str) -> int | None:
    """A marker token's id; an explicit ``null`` means no marker row (a text prefix may replace it)."""
    if key in recipe and recipe[key] is None:
        return None
    return token_id(tokenizer, str(recipe.get(key, default)))


def _recipe_prefix(recipe: dict[str, Any], key: str) -> str:
    """Text put before every query or document, as the backbone was trained to see it (e5: ``query: ``)."""
    value = recipe.get(key, "")
    if not isinstance(value, str):
        raise CheckpointError(f"recipe.{key} must be a string; got {value!r}")
    return value


def _query_padding(value: Any) -> Literal["mask", "repeat", "zero", "none"]:
    if value not in ("mask", "repeat", "zero", "none"):
        raise CheckpointError(
            f"recipe.query_padding must be 'mask', 'repeat', 'zero' or 'none'; got {value!r}"
        )
    return value  # type: ignore[no-any-return]


def save_polycolbert_checkpoint(
    folder: str | os.PathLike[str],
    manifest: dict[str, Any],
    heads: ColBERTHeads,
    backbone_state: Mapping[str, torch.Tensor] | None = None,
    backbone_update: Mapping[str, torch.Tensor] | None = None,
    tokenizer: Tokenizer | None = None,
) -> Path:
    """Write a checkpoint in polycolbert's own layout, atomically (temp folder, then rename).

    ``manifest`` gives ``name``, ``backbone`` (``{"source": "packaged:..."}`` or ``{"source": "files", "kind",
    "config"}``), ``recipe``, ``license`` and ``notes``; format and version are filled in here.
    """
    target = Path(folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    full = {"format": "polycolbert", "version": POLYCOLBERT_FORMAT_VERSION, **manifest}
    (staging / "polycolbert.json").write_text(json.dumps(full, indent=2, ensure_ascii=False) + "\n", "utf-8")
    head_tensors = {f"heads.{name}": t.detach().float().contiguous() for name, t in _head_items(heads)}
    save_file(head_tensors, str(staging / "heads.safetensors"))
    if backbone_state is not None:
        tensors = {k: v.detach().contiguous() for k, v in backbone_state.items()}
        save_file(tensors, str(staging / "backbone.safetensors"))
    if backbone_update:
        tensors = {k: v.detach().float().contiguous() for k, v in backbone_update.items()}
        save_file(tensors, str(staging / "backbone_update.safetensors"))
    if tokenizer is not None:
        tokenizer.save(str(staging / "tokenizer.json"))
    for path in staging.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    if target.exists():
        backup = target.with_name(f".{target.name}.old")
        os.replace(target, backup)
        os.replace(staging, target)
        import shutil

        shutil.rmtree(backup, ignore_errors=True)
    else:
        os.replace(staging, target)
    return target


def _head_items(heads: ColBERTHeads) -> list[tuple[str, torch.Tensor]]:
    if not heads.is_linear:
        raise CheckpointError("polycolbert's layout stores linear heads; these heads have activations")
    items = []
    for dim, layer in heads.layers.items():
        linear = cast(nn.Linear, layer)
        items.append((f"{dim}.weight", linear.weight))
        if linear.bias is not None:
            items.append((f"{dim}.bias", linear.bias))
    return items
