"""Encoding throughput on this CPU: polycolbert vs PyLate on the same weights, fp32 and bf16.

    .venv/bin/python benchmarks/encode.py [--docs 64] [--runs 5] [--skip-large]

Models (random or packaged weights, written to a temp folder in their real file layouts):
* ``e5-small``: the packaged default model's weights (12 layers, hidden 384) as a PyLate checkpoint, so
  PyLate (run in ``.venv-bench``, see benchmarks/README.md) and polycolbert load identical files;
* ``jina-v2-shape``: jina-colbert-v2's architecture (24 layers, hidden 1024, rotary, 560M parameters) with
  random weights in jina's layout; PyLate needs jina's remote code to load it, so only polycolbert runs it.
Inputs: documents of ~180 tokens (mixed languages) and 32-token queries, fixed seed; 2 torch threads;
median of ``--runs`` timed runs after one warm-up.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
PEER_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
SENTENCES = [
    "The committee approved the new railway line connecting the northern valleys to the coast.",
    "Die Stadtbibliothek verlängert ihre Öffnungszeiten während der Prüfungswochen.",
    "Le musée présente une exposition consacrée aux instruments scientifiques du XVIIIe siècle.",
    "El festival de cine independiente atrajo a miles de visitantes este verano.",
    "Исследователи измерили уровень воды в озере после сильных дождей.",
    "研究人员在山区发现了一种新的植物物种。",
    "新しい駅の建設は来年の春に始まる予定です。",
    "أعلنت الجامعة عن برنامج جديد لدراسة الذكاء الاصطناعي.",
    "नई नीति से छोटे किसानों को सिंचाई के लिए सहायता मिलेगी।",
]


def make_texts(n: int, sentences_per_text: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(SENTENCES) for _ in range(sentences_per_text)) for _ in range(n)]


def write_pylate_e5(folder: Path) -> None:
    """The default model's backbone + 128-d head as a PyLate / sentence-transformers checkpoint."""
    from safetensors.torch import save_file
    from tokenizers import Tokenizer

    from polycolbert.models.catalog import packaged_folder
    from polycolbert.models.files import read_weights
    from polycolbert.models.packaged import E5_CONFIG, load_e5_backbone, tokenizer_path

    folder.mkdir(parents=True)
    backbone = load_e5_backbone()
    save_file(
        {k: v.contiguous() for k, v in backbone.model.state_dict().items()}, str(folder / "model.safetensors")
    )
    config = {**E5_CONFIG, "model_type": "xlm-roberta", "architectures": ["XLMRobertaModel"]}
    (folder / "config.json").write_text(json.dumps(config))
    tokenizer = Tokenizer.from_file(str(tokenizer_path()))
    tokenizer.add_special_tokens(["[Q]", "[D]"])
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "XLMRobertaTokenizer",
                "bos_token": "<s>",
                "eos_token": "</s>",
                "unk_token": "<unk>",
                "sep_token": "</s>",
                "cls_token": "<s>",
                "pad_token": "<pad>",
                "mask_token": "<mask>",
                "model_max_length": 512,
            }
        )
    )
    (folder / "special_tokens_map.json").write_text(
        json.dumps(
            {
                "bos_token": "<s>",
                "eos_token": "</s>",
                "unk_token": "<unk>",
                "sep_token": "</s>",
                "cls_token": "<s>",
                "pad_token": "<pad>",
                "mask_token": "<mask>",
            }
        )
    )
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": 512, "do_lower_case": False})
    )
    (folder / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"},
            ]
        )
    )
    (folder / "config_sentence_transformers.json").write_text(
        json.dumps(
            {
                "query_prefix": "[Q] ",
                "document_prefix": "[D] ",
                "query_length": 32,
                "document_length": 512,
                "attend_to_expansion_tokens": False,
                "skiplist_words": list(string.punctuation),
                "do_query_expansion": True,
                "similarity_fn_name": "MaxSim",
            }
        )
    )
    dense = folder / "1_Dense"
    dense.mkdir()
    heads = read_weights(packaged_folder("polycolbert-e5-small"), ("heads.safetensors",))
    save_file({"linear.weight": heads["heads.128.weight"].contiguous()}, str(dense / "model.safetensors"))
    (dense / "config.json").write_text(
        json.dumps(
            {
                "in_features": 384,
                "out_features": 128,
                "bias": False,
                "activation_function": "torch.nn.modules.linear.Identity",
                "use_residual": False,
            }
        )
    )


def write_jina_shape(folder: Path) -> None:
    """jina-colbert-v2's architecture with random bf16 weights under jina's tensor names."""
    from safetensors.torch import save_file

    from polycolbert.models.packaged import load_e5_tokenizer

    folder.mkdir(parents=True)
    h, f, layers, vocab = 1024, 4096, 24, 250004
    g = torch.Generator().manual_seed(0)

    def r(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape, generator=g) * 0.02).to(torch.bfloat16)

    state = {
        "roberta.embeddings.word_embeddings.weight": r(vocab, h),
        "roberta.embeddings.token_type_embeddings.weight": r(1, h),
        "roberta.emb_ln.weight": torch.ones(h, dtype=torch.bfloat16),
        "roberta.emb_ln.bias": r(h),
        "linear.weight": r(128, h),
    }
    for i in range(layers):
        p = f"roberta.encoder.layers.{i}."
        state.update(
            {
                p + "mixer.Wqkv.weight": r(3 * h, h),
                p + "mixer.Wqkv.bias": r(3 * h),
                p + "mixer.out_proj.weight": r(h, h),
                p + "mixer.out_proj.bias": r(h),
                p + "norm1.weight": torch.ones(h, dtype=torch.bfloat16),
                p + "norm1.bias": r(h),
                p + "norm2.weight": torch.ones(h, dtype=torch.bfloat16),
                p + "norm2.bias": r(h),
                p + "mlp.fc1.weight": r(f, h),
                p + "mlp.fc1.bias": r(f),
                p + "mlp.fc2.weight": r(h, f),
                p + "mlp.fc2.bias": r(h),
            }
        )
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["HF_ColBERT"],
                "position_embedding_type": "rotary",
                "rotary_emb_base": 10000.0,
                "vocab_size": vocab,
                "hidden_size": h,
                "num_hidden_layers": layers,
                "num_attention_heads": 16,
                "intermediate_size": f,
                "layer_norm_eps": 1e-5,
                "type_vocab_size": 1,
                "pad_token_id": 1,
                "hidden_act": "gelu",
                "max_position_embeddings": 8194,
            }
        )
    )
    (folder / "artifact.metadata").write_text(
        json.dumps(
            {
                "query_token_id": "[QueryMarker]",
                "doc_token_id": "[DocumentMarker]",
                "query_maxlen": 32,
                "doc_maxlen": 300,
                "attend_to_mask_tokens": True,
                "mask_punctuation": True,
            }
        )
    )
    load_e5_tokenizer().save(str(folder / "tokenizer.json"))


def time_ours(path: Path, dtype: str, docs: list[str], queries: list[str], runs: int) -> dict[str, float]:
    from polycolbert import ColBERT

    model = ColBERT.load(path, dtype=dtype)  # type: ignore[arg-type]
    dim = model.spec.default_dim
    tokens = sum(t.n_tokens for t in model.tokenize(docs, "document"))
    model.encode_documents(docs[:8], dimensions=dim)
    doc_times, query_times = [], []
    for _ in range(runs):
        started = time.perf_counter()
        model.encode_documents(docs, dimensions=dim)
        doc_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        model.encode_queries(queries, dimensions=dim)
        query_times.append(time.perf_counter() - started)
    return summarise(doc_times, query_times, len(docs), tokens, len(queries))


def summarise(doc_times, query_times, n_docs, tokens, n_queries) -> dict[str, float]:
    doc, query = statistics.median(doc_times), statistics.median(query_times)
    return {
        "docs_per_s": n_docs / doc,
        "tokens_per_s": tokens / doc,
        "queries_per_s": n_queries / query,
        "doc_spread": (max(doc_times) - min(doc_times)) / doc,
    }


PEER_SCRIPT = r"""
import json, statistics, sys, time, torch
torch.set_num_threads(2)
from pylate import models
path, runs, texts = sys.argv[1], int(sys.argv[2]), json.load(open(sys.argv[3]))
model = models.ColBERT(model_name_or_path=path, device="cpu")
docs, queries = texts["docs"], texts["queries"]
model.encode(docs[:8], is_query=False, batch_size=32)
dt, qt = [], []
for _ in range(runs):
    s = time.perf_counter()
    model.encode(docs, is_query=False, batch_size=32)
    dt.append(time.perf_counter() - s)
    s = time.perf_counter()
    model.encode(queries, is_query=True, batch_size=32)
    qt.append(time.perf_counter() - s)
vectors = [o.tolist() for o in model.encode(docs[:4], is_query=False, batch_size=32)]
json.dump({"doc_times": dt, "query_times": qt, "vectors": vectors}, sys.stdout)
"""


def time_pylate(path: Path, docs: list[str], queries: list[str], runs: int, tokens: int) -> dict | None:
    if not PEER_PYTHON.exists():
        print(f"(PyLate skipped: {PEER_PYTHON} missing; see benchmarks/README.md)")
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"docs": docs, "queries": queries}, handle)
    result = subprocess.run(
        [str(PEER_PYTHON), "-c", PEER_SCRIPT, str(path), str(runs), handle.name],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        print("(PyLate failed)\n" + result.stderr[-2000:])
        return None
    data = json.loads(result.stdout)
    row = summarise(data["doc_times"], data["query_times"], len(docs), tokens, len(queries))
    row["vectors"] = data["vectors"]
    return row


def report(model: str, engine: str, row: dict[str, float]) -> None:
    print(
        f"| {model} | {engine} | {row['docs_per_s']:.1f} | {row['tokens_per_s']:.0f} | "
        f"{row['queries_per_s']:.1f} | {row['doc_spread']:.0%} |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=64)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-large", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    docs, queries = make_texts(args.docs, 6), make_texts(args.docs, 1, seed=1)
    rows: list[tuple[str, str, dict[str, float]]] = []

    def add(model: str, engine: str, row: dict[str, float]) -> None:
        rows.append((model, engine, row))
        report(model, engine, row)  # printed at once: a run cut short still leaves its rows

    print("| model | engine | docs/s | tokens/s | queries/s | spread |", flush=True)
    print("| --- | --- | ---: | ---: | ---: | ---: |", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        e5 = Path(tmp) / "e5-pylate"
        write_pylate_e5(e5)
        from polycolbert import ColBERT

        reference = ColBERT.load(e5, dtype="float32")
        tokens = sum(t.n_tokens for t in reference.tokenize(docs, "document"))
        for dtype in ("float32", "bfloat16"):
            add("e5-small", f"polycolbert {dtype}", time_ours(e5, dtype, docs, queries, args.runs))
        peer = time_pylate(e5, docs, queries, args.runs, tokens)
        if peer is not None:
            ours = reference.encode_documents(docs[:4], dimensions=128)
            cosines = [
                float((np.asarray(p) * o).sum(axis=1).min())
                if np.asarray(p).shape == o.shape
                else float("nan")
                for p, o in zip(peer.pop("vectors"), ours, strict=True)
            ]
            print(
                f"agreement with PyLate (min cosine per token, 4 docs): {[round(c, 5) for c in cosines]}",
                flush=True,
            )
            add("e5-small", "PyLate float32", peer)
        del reference
        if not args.skip_large:
            jina = Path(tmp) / "jina-shape"
            write_jina_shape(jina)
            for dtype in ("float32", "bfloat16"):
                add(
                    "jina-v2-shape",
                    f"polycolbert {dtype}",
                    time_ours(jina, dtype, docs, queries, max(2, args.runs // 2)),
                )
    print(f"\n{args.docs} documents ({tokens} tokens), {args.docs} queries; median of {args.runs} runs")
    baseline = next((r for m, e, r in rows if e.startswith("PyLate")), None)
    if baseline:
        for model, engine, row in rows:
            if model == "e5-small" and engine.startswith("polycolbert"):
                ratio = row["tokens_per_s"] / baseline["tokens_per_s"]
                print(f"{engine}: {ratio:.2f}x PyLate's document throughput")


if __name__ == "__main__":
    sys.exit(main())
