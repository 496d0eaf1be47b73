"""Write tiny random checkpoints with PyLate and with colbert-ai themselves, plus each library's own vectors.

Why: a checkpoint reader tested only against fixtures we wrote ourselves confirms our own assumptions
(PyLate's ``"[Q] "`` prefix token and its ``LayerNorm.gamma`` weight names were both missed that way).
Here the libraries write the checkpoints and encode the texts; ``tests/models/test_golden_checkpoints.py``
then loads each folder with polycolbert and compares row for row. CI never installs these libraries: the
folders and vectors are committed under ``tests/fixtures/golden/`` (a few hundred KB, no hub, no download).

Library versions the committed fixtures were made with (``manifest.json`` records them per variant):

* pylate 1.6.0, sentence-transformers 5.3.0, transformers 5.3.0 (PyLate pins transformers <= 5.3),
  torch 2.13.0 (CPU). PyLate 1.6.0 also requires ``fast-plaid``, and every fast-plaid release pins one
  exact torch (at most 2.11.0, which PyPI has only as CUDA builds), so PyLate goes in with ``--no-deps``
  and its other requirements at the versions it asks for, without fast-plaid: that is PyLate's index,
  which neither ``save`` nor ``encode()`` touches.
* colbert-ai 0.2.22 (Stanford ColBERT), transformers 4.57.6, torch 2.13.0 (CPU), in a second venv:
  colbert-ai does not run on transformers 5 (its ``HF_ColBERT`` calls ``init_weights`` where
  transformers 5 needs ``post_init``: "'HF_ColBERT' object has no attribute 'all_tied_weights_keys'").
  colbert-ai 0.2.22 also cannot encode documents with ``mask_punctuation`` off (``ColBERT.doc`` reads a
  skiplist it builds only when the setting is on); for that variant the skiplist is set to ``{}`` and
  the rest is colbert-ai's own code.

Recreate (in separate venvs; never polycolbert's ``.venv``)::

    python3 -m venv /work/venv-golden
    /work/venv-golden/bin/pip install torch==2.13.0   # first: a bare torch pulls CUDA wheels
    /work/venv-golden/bin/pip install --no-deps pylate==1.6.0 sentence-transformers==5.3.0
    /work/venv-golden/bin/pip install -c <(echo torch==2.13.0) "transformers<=5.3.0,>=4.41.0" \\
        "datasets>=2.20.0" "accelerate>=0.31.0" "pandas>=2.2.1" ujson==5.12.0 ninja==1.11.1.4 \\
        fastkmeans==0.5.0
    /work/venv-golden/bin/python scripts/make_golden_checkpoints.py pylate

    python3 -m venv /work/venv-golden-stanford
    /work/venv-golden-stanford/bin/pip install torch==2.13.0
    /work/venv-golden-stanford/bin/pip install -c <(echo torch==2.13.0) colbert-ai==0.2.22 \\
        "transformers<5" faiss-cpu
    /work/venv-golden-stanford/bin/python scripts/make_golden_checkpoints.py colbert-ai

Everything is built locally, with the hub off: a WordPiece vocabulary written here, a random BERT
(hidden 16, 2 layers) saved by transformers, then turned into ColBERT checkpoints by each library's own
constructor and ``save``. The vectors come from the checkpoint as the library reloads it from disk
(``models.ColBERT(folder)``, ``Checkpoint(folder)``), so they are what a user of that library gets from
the committed files. Only prose and machine details are dropped: PyLate's model card, and the paths, host
and clock in colbert-ai's metadata.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import string
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch
from safetensors.numpy import save_file

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "golden"
# Versions recorded per variant: the library, what it builds on, and the shared stack.
STACKS = {
    "pylate": ("pylate", "sentence-transformers", "transformers", "tokenizers", "torch"),
    "colbert-ai": ("colbert-ai", "transformers", "tokenizers", "torch"),
}
QUERY_LENGTH = 32
DOC_LENGTH = 48  # short enough that the long document below is cut, within the 64 position rows
DIM = 16

WORDS = [
    *("the", "a", "of", "and", "to", "in", "is", "was", "for", "on", "that", "with", "as", "by"),
    *("it", "at", "from", "are", "which", "this", "be", "or", "has", "late", "interaction"),
    *("retrieval", "token", "tokens", "vector", "vectors", "document", "documents", "query"),
    *("queries", "search", "model", "index", "paris", "france", "capital", "city", "berlin"),
    *("germany", "river", "music", "science", "hello", "world", "keeps", "one", "per", "what"),
    *("where", "who", "how", "why", "when", "many", "large", "small", "language", "languages"),
    *("seine", "flows", "through"),
]

QUERIES = [
    "late interaction",  # short: query expansion fills the rest
    " ".join(["what is the capital city of france and which river flows through paris"] * 3),  # > 32 tokens
    "hello, world! (paris) - capital? [late]; interaction...",  # punctuation
    "paris ☃ 東京 qwxz ñandú",  # an unknown symbol, CJK and accented characters
]
DOCUMENTS = [
    "Paris is the capital of France.",
    " ".join(["late interaction keeps one vector per token, and search is MaxSim over tokens."] * 4),  # cut
    "Hello, world! The river (Seine) flows through Paris; it is large... isn't it?",
    "berlin ☃ 東京 germany ñandú qwxz",
]


def vocabulary() -> list[str]:
    """BERT's layout in miniature: [PAD] 0, [unusedN], [UNK], [CLS], [SEP], [MASK], symbols, words, pieces."""
    specials = ["[PAD]", *(f"[unused{i}]" for i in range(4)), "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    pieces = [*string.punctuation, *string.digits, *WORDS, *string.ascii_lowercase]
    pieces += [f"##{c}" for c in string.ascii_lowercase + string.digits]
    return list(dict.fromkeys([*specials, *pieces]))


def write_base(folder: Path, seed: int = 0) -> None:
    """A random BERT and its tokenizer saved by transformers: the "pretrained model" of each library."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = vocabulary()
    folder.mkdir(parents=True, exist_ok=True)
    if int(version("transformers").split(".")[0]) >= 5:
        tokenizer = BertTokenizerFast(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=True)
    else:  # transformers 4 builds the tokenizer from a vocab.txt
        (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", "utf-8")
        tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        initializer_range=1.0,  # large weights: attention that is far from uniform, so masks matter
    )
    torch.manual_seed(seed)
    model = BertModel(config, add_pooling_layer=False)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "LayerNorm" in name:  # LayerNorms that are not the identity, so their names matter
                param.add_(torch.randn_like(param) * 0.3)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _trim(folder: Path) -> None:
    """Drop the model card: prose that no reader uses, and most of a tiny folder's size."""
    (folder / "README.md").unlink(missing_ok=True)


def _as_numpy(rows: object) -> np.ndarray:
    array = rows.float().cpu().numpy() if isinstance(rows, torch.Tensor) else np.asarray(rows)
    return np.ascontiguousarray(array, dtype=np.float32)


def _save_vectors(name: str, queries: list, documents: list) -> None:
    tensors = {f"query.{i}": _as_numpy(q) for i, q in enumerate(queries)}
    tensors |= {f"document.{i}": _as_numpy(d) for i, d in enumerate(documents)}
    save_file(tensors, str(OUT / f"{name}.safetensors"))


# -- PyLate ------------------------------------------------------------------------------------------------
PYLATE_VARIANTS: dict[str, dict] = {
    "pylate-default": {},
    "pylate-attend-expansion": {"attend_to_expansion_tokens": True},
    "pylate-no-expansion": {"do_query_expansion": False},
    # Two Dense modules (bias, tanh, a residual projection) and a skiplist with a word the vocabulary lacks
    # ("tokyo": PyLate looks it up as [UNK], so unknown tokens leave documents).
    "pylate-dense-chain": {
        "embedding_size": 12,
        "bias": True,
        "skiplist_words": ["!", ",", ".", "seine", "tokyo"],
    },
}


def make_pylate(base: Path, name: str, settings: dict) -> dict:
    from pylate import models
    from torch import nn

    settings = dict(settings)
    embedding_size = settings.pop("embedding_size", DIM)
    torch.manual_seed(1)
    model = models.ColBERT(
        model_name_or_path=str(base),
        device="cpu",
        embedding_size=embedding_size,
        query_length=QUERY_LENGTH,
        document_length=DOC_LENGTH,
        **settings,
    )
    if name == "pylate-dense-chain":
        model.append(
            models.Dense(embedding_size, DIM, bias=True, activation_function=nn.Tanh(), use_residual=True)
        )
    folder = OUT / name
    shutil.rmtree(folder, ignore_errors=True)
    model.save(str(folder))
    _trim(folder)
    # The vectors of the checkpoint as PyLate reads it back, which is what its users get.
    loaded = models.ColBERT(model_name_or_path=str(folder), device="cpu")
    queries = loaded.encode(QUERIES, is_query=True, batch_size=2)
    documents = loaded.encode(DOCUMENTS, is_query=False, batch_size=2)
    fresh = model.encode(QUERIES, is_query=True, batch_size=2)
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(queries, fresh, strict=True)), "save/load changed"
    _save_vectors(name, queries, documents)
    return {
        "library": "pylate",
        "settings": {k: v for k, v in settings.items()},
        "query_prefix": loaded.query_prefix,
        "document_prefix": loaded.document_prefix,
        "do_query_expansion": loaded.do_query_expansion,
        "attend_to_expansion_tokens": loaded.attend_to_expansion_tokens,
        "query_rows": [len(q) for q in queries],
        "document_rows": [len(d) for d in documents],
    }


# -- Stanford ColBERT (colbert-ai) ------------------------------------------------------------------------
STANFORD_VARIANTS: dict[str, dict] = {
    "stanford-default": {"mask_punctuation": True, "attend_to_mask_tokens": False},
    "stanford-nomask-attend": {"mask_punctuation": False, "attend_to_mask_tokens": True},
}


def _scrub_machine_details(path: Path) -> None:
    """Blank what only describes the machine that ran this (paths, host, git, clock); no reader uses it."""
    meta = json.loads(path.read_text("utf-8"))
    meta.pop("meta", None)
    meta.update({key: None for key in ("checkpoint", "root", "name") if key in meta})
    path.write_text(json.dumps(meta, indent=4) + "\n", "utf-8")


def make_stanford(base: Path, name: str, settings: dict) -> dict:
    from colbert.infra import ColBERTConfig
    from colbert.modeling.checkpoint import Checkpoint

    config = ColBERTConfig(
        checkpoint=str(base), query_maxlen=QUERY_LENGTH, doc_maxlen=DOC_LENGTH, dim=DIM, **settings
    )
    torch.manual_seed(2)
    model = Checkpoint(str(base), colbert_config=config, verbose=0)
    folder = OUT / name
    shutil.rmtree(folder, ignore_errors=True)
    model.save(str(folder))
    _scrub_machine_details(folder / "artifact.metadata")
    # How colbert-ai's Searcher opens a checkpoint: its own artifact.metadata, the folder as `checkpoint`.
    loaded_config = ColBERTConfig.load_from_checkpoint(str(folder))
    loaded = Checkpoint(str(folder), colbert_config=loaded_config, verbose=0)
    notes = []
    if not loaded_config.mask_punctuation:
        # colbert-ai 0.2.22 only defines its skiplist when mask_punctuation is on, so ColBERT.doc() raises
        # AttributeError without it; an empty skiplist is what the setting means, doc() is otherwise its own.
        loaded.skiplist = {}
        notes.append(
            "colbert-ai 0.2.22 cannot encode documents with mask_punctuation off; skiplist set to {}"
        )
    queries = loaded.queryFromText(QUERIES, bsize=2)
    documents = loaded.docFromText(DOCUMENTS, bsize=2, keep_dims=False)[0]
    _save_vectors(name, list(queries), documents)
    return {
        "library": "colbert-ai",
        "settings": settings,
        "notes": notes,
        "query_rows": [len(q) for q in queries],
        "document_rows": [len(d) for d in documents],
    }


def main(library: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    manifest_path = OUT / "manifest.json"
    manifest = json.loads(manifest_path.read_text("utf-8")) if manifest_path.exists() else {}
    variants: dict[str, dict] = manifest.get("variants", {})
    if manifest and (manifest["queries"], manifest["documents"]) != (QUERIES, DOCUMENTS):
        variants = {}  # the texts changed: vectors of the other library are stale, rerun it too
    makers = {"pylate": (make_pylate, PYLATE_VARIANTS), "colbert-ai": (make_stanford, STANFORD_VARIANTS)}
    make, table = makers[library]
    versions = {lib: version(lib) for lib in STACKS[library]}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        write_base(base)
        for name, settings in table.items():
            variants[name] = {**make(base, name, settings), "versions": versions}
    manifest = {
        "made_by": "scripts/make_golden_checkpoints.py",
        "python": sys.version.split()[0],
        "queries": QUERIES,
        "documents": DOCUMENTS,
        "variants": dict(sorted(variants.items())),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", "utf-8")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(
        f"wrote {len(table)} {library} checkpoints and their vectors to {OUT} (folder: {total / 1024:.0f} KB)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library", choices=["pylate", "colbert-ai"], help="whose checkpoints to (re)write")
    main(parser.parse_args().library)
