"""Small BEIR folders written on the fly, so every test sees real files and can break them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def write_beir(
    root: Path,
    corpus: dict[str, str],
    queries: dict[str, str],
    qrels: list[tuple[str, str, int]],
    language: str | None = "en",
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with (root / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for doc_id, text in corpus.items():
            f.write(json.dumps({"_id": doc_id, "title": "", "text": text}, ensure_ascii=False) + "\n")
    with (root / "queries.jsonl").open("w", encoding="utf-8") as f:
        for qid, text in queries.items():
            f.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")
    (root / "qrels").mkdir(exist_ok=True)
    lines = ["query-id\tcorpus-id\tscore", *(f"{q}\t{d}\t{s}" for q, d, s in qrels)]
    (root / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if language:
        (root / "SOURCES.md").write_text(f"# toy\n\n- Language(s): {language}\n", encoding="utf-8")
    return root


TOY_CORPUS = {
    "d1": "The cat sat on the warm mat in the kitchen.",
    "d2": "Stock markets fell sharply after the bank raised interest rates.",
    "d3": "Volcanoes erupt when magma rises through the crust.",
    "d4": "A recipe for bread needs flour, water, salt and yeast.",
}
TOY_QUERIES = {
    "q1": "where did the cat sit",
    "q2": "why did stock markets fall",
    "q3": "how do volcanoes erupt",
    "q4": "an unjudged query",
}
TOY_QRELS = [("q1", "d1", 1), ("q2", "d2", 1), ("q3", "d3", 1)]


def tiny_e5_parts(seed: int = 0):
    """A 2-layer random XLM-R with a word-level tokenizer: the shape of e5 at a test's cost."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import XLMRobertaConfig, XLMRobertaModel

    words = sorted(
        {
            w.strip(".,?!").lower()
            for text in [*TOY_CORPUS.values(), *TOY_QUERIES.values()]
            for w in text.split()
        }
    )
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "query:": 4, "passage:": 5}
    for w in words:
        vocab.setdefault(w, len(vocab))
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    config = XLMRobertaConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=600,
        pad_token_id=1,
        type_vocab_size=1,
    )
    torch.manual_seed(seed)
    hf = XLMRobertaModel(config, add_pooling_layer=False).eval()

    class Backbone(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hf = hf

        def forward(self, input_ids, attention_mask):
            return self.hf(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    return Backbone().eval(), tokenizer


class ToyColBERT:
    """What the harness uses of ``polycolbert.ColBERT``, over the tiny e5: one random head per size."""

    name = "toy-colbert"
    dims = (128, 96, 64)
    compute_dtype = torch.float32

    def __init__(self) -> None:
        self.backbone, self.tokenizer = tiny_e5_parts(seed=1)
        torch.manual_seed(3)
        self.heads = torch.nn.ModuleDict({str(d): torch.nn.Linear(16, d) for d in self.dims})
        self.calls = 0

    def info(self) -> dict:
        return {"name": self.name}

    def encode_multi(self, texts, input_type, dims, batch_size=32, progress=False):
        self.calls += 1
        out: dict[int, list[np.ndarray]] = {d: [] for d in dims}
        for text in texts:
            ids = [0, *self.tokenizer.encode(text, add_special_tokens=False).ids, 2]
            with torch.no_grad():
                states = self.backbone(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))[0]
                for d in dims:
                    out[d].append(F.normalize(self.heads[str(d)](states), dim=-1).numpy())
        return out

    def encode_queries(self, texts, dimensions):
        return self.encode_multi(texts, "query", (dimensions,))[dimensions]

    def encode_documents(self, texts, dimensions):
        return self.encode_multi(texts, "document", (dimensions,))[dimensions]
