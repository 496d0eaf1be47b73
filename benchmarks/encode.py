"""Encoding throughput on this CPU: polycolbert's precisions against PyLate and ONNX Runtime, same weights.

    .venv/bin/python benchmarks/encode.py prepare --workdir /tmp/encode-bench      # once, not timed
    .venv/bin/python benchmarks/encode.py race --workdir /tmp/encode-bench --profile sentences [--runs 3]
    .venv/bin/python benchmarks/encode.py roofline --workdir /tmp/encode-bench --races RACE.json ...

``prepare`` writes the packaged default model (e5-small backbone + 128-d head) as a PyLate checkpoint, so
every engine loads identical weights; exports it to ONNX in float32 and int8 (``encode_peers.py``, run in
``.venv-bench``, see benchmarks/README.md); and picks real texts from ``../shared/data`` for three length
profiles: ``sentences`` (~40 tokens, XQuAD sentences in six languages), ``paragraphs`` (~180 tokens, XQuAD
paragraphs) and ``documents`` (~2,000 tokens, consecutive XQuAD paragraphs of one article joined).

``race`` encodes one profile's texts as documents with every engine, each in its own process (so each has
its own peak RSS and thread pools, 2 torch / ONNX Runtime threads): polycolbert float32, bfloat16, int8 and
``auto``; ``auto`` again with the bf16 units hidden (``POLYCOLBERT_CPU_FLAGS`` without them, and oneDNN
capped at AVX512-VNNI: what a CPU without bf16 units gets); PyLate float32 and bfloat16; ONNX Runtime
float32 and int8. One warm-up, then the median of ``--runs``. Tokens/s counts the tokens of each text that
got a vector: PyLate and ONNX Runtime cut a document at 512 tokens, polycolbert encodes all of it in
overlapping windows. ``agreement`` is the per-token cosine to polycolbert float32 on the first four texts
(min / mean; ``-`` where the rows differ). ``--experiments`` adds rows measured but not shipped
(``torch.compile`` of the backbone, compiled for every batch shape before the timed runs).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import string
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from encode_roofline import roofline

ROOT = Path(__file__).resolve().parents[1]
PEER_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
PEER_SCRIPT = ROOT / "benchmarks" / "encode_peers.py"
DATA = ROOT.parent / "shared" / "data"  # the main checkout's neighbour; --data elsewhere
LANGUAGES = ("en", "de", "zh", "ar", "hi", "ru")
# profile -> (number of texts, smallest and largest token count)
PROFILES = {"sentences": (256, 30, 50), "paragraphs": (64, 150, 210), "documents": (6, 1900, 2100)}
THREADS = 2
# A CPU with AVX-512 and VNNI but no bf16 units (Cascade Lake, Ice Lake): what the picker and oneDNN see.
NO_BF16 = {"POLYCOLBERT_CPU_FLAGS": "avx512f avx512bw avx512_vnni", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"}
# (label, engine, precision, extra environment)
ENGINES: list[tuple[str, str, str, dict[str, str]]] = [
    ("polycolbert float32", "polycolbert", "float32", {}),
    ("polycolbert bfloat16", "polycolbert", "bfloat16", {}),
    ("polycolbert int8", "polycolbert", "int8", {}),
    ("polycolbert auto", "polycolbert", "auto", {}),
    ("polycolbert auto, no bf16 units", "polycolbert", "auto", NO_BF16),
    ("PyLate float32", "pylate", "float32", {}),
    ("PyLate bfloat16", "pylate", "bfloat16", {}),
    ("ONNX Runtime float32", "onnx", "float32", {}),
    ("ONNX Runtime int8", "onnx", "int8", {}),
]
# Measured on request (``race --experiments``), not shipped: torch.compile (inductor) of the backbone.
COMPILE = {"POLYCOLBERT_BENCH_COMPILE": "1"}
EXPERIMENTS: list[tuple[str, str, str, dict[str, str]]] = [
    ("polycolbert float32 + torch.compile", "polycolbert", "float32", COMPILE),
    ("polycolbert bfloat16 + torch.compile", "polycolbert", "bfloat16", COMPILE),
]


def write_pylate_e5(folder: Path) -> None:
    """The packaged default model (its backbone with the trained top layers, its 128-d head with bias and
    its marker tokens) as a PyLate / sentence-transformers checkpoint."""
    from safetensors.torch import save_file

    from polycolbert import ColBERT
    from polycolbert.models.packaged import E5_CONFIG

    folder.mkdir(parents=True)
    model = ColBERT.load(dtype="float32")
    state = model.backbone.model.state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    config = {**E5_CONFIG, "model_type": "xlm-roberta", "architectures": ["XLMRobertaModel"]}
    (folder / "config.json").write_text(json.dumps(config))
    model.tokenizer.save(str(folder / "tokenizer.json"))
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
                "query_prefix": "[QueryMarker]",
                "document_prefix": "[DocumentMarker]",
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
    head = model.heads.layers["128"]
    weights = {"linear.weight": head.weight.detach().contiguous()}
    if head.bias is not None:
        weights["linear.bias"] = head.bias.detach().contiguous()
    save_file(weights, str(dense / "model.safetensors"))
    (dense / "config.json").write_text(
        json.dumps(
            {
                "in_features": model.spec.hidden_size,
                "out_features": 128,
                "bias": head.bias is not None,
                "activation_function": "torch.nn.modules.linear.Identity",
                "use_residual": False,
            }
        )
    )


# -- inputs -------------------------------------------------------------------------------------------
def _corpus(data: Path, language: str) -> list[str]:
    path = data / f"xquad-{language}" / "corpus.jsonl"
    return [
        json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?।。！？])\s*", text) if s.strip()]


def profile_texts(profile: str, data: Path, count_tokens) -> list[str]:
    """Real texts of the profile's length, taken in turn from each language (deterministic)."""
    wanted, low, high = PROFILES[profile]
    pools: list[list[str]] = []
    for language in LANGUAGES:
        paragraphs = _corpus(data, language)
        if profile == "sentences":
            # pairs of consecutive sentences, so that most candidates land near 40 tokens
            units = [
                " ".join(p)
                for para in paragraphs
                for p in zip(_sentences(para), _sentences(para)[1:], strict=False)
            ]
        elif profile == "paragraphs":
            units = paragraphs
        else:
            units, current = [], ""
            for para in paragraphs:
                current = f"{current}\n\n{para}" if current else para
                if count_tokens([current])[0] >= low:
                    units.append(current)
                    current = ""
        lengths = count_tokens(units)
        pools.append([u for u, n in zip(units, lengths, strict=True) if low <= n <= high])
    texts: list[str] = []
    for i in range(wanted):
        pool = pools[i % len(pools)]
        if i // len(pools) < len(pool):
            texts.append(pool[i // len(pools)])
    return texts


def prepare(workdir: Path, data: Path) -> None:
    from polycolbert.models.packaged import load_e5_tokenizer

    tokenizer = load_e5_tokenizer()

    def count_tokens(texts: list[str]) -> list[int]:
        return [len(e.ids) for e in tokenizer.encode_batch(texts)]

    workdir.mkdir(parents=True, exist_ok=True)
    model = workdir / "e5-pylate"
    if not model.exists():
        write_pylate_e5(model)
    for profile in PROFILES:
        texts = profile_texts(profile, data, count_tokens)
        (workdir / f"{profile}.json").write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
        lengths = count_tokens(texts)
        print(f"{profile}: {len(texts)} texts, {sum(lengths)} tokens, median {statistics.median(lengths)}")
    if PEER_PYTHON.exists() and not (workdir / "onnx" / "model_int8.onnx").exists():
        subprocess.run(
            [
                str(PEER_PYTHON),
                str(PEER_SCRIPT),
                "export-onnx",
                "--model",
                str(model),
                "--out",
                str(workdir / "onnx"),
            ],
            check=True,
        )


# -- timing -------------------------------------------------------------------------------------------
def worker(args: argparse.Namespace) -> None:
    """One polycolbert precision, in its own process: prints the same JSON as ``encode_peers.py time``."""
    import torch

    torch.set_num_threads(THREADS)
    from polycolbert import ColBERT

    texts = json.loads(Path(args.texts).read_text(encoding="utf-8"))
    model = ColBERT.load(args.model, dtype=args.precision, doc_maxlen=8192)
    dim = model.spec.default_dim
    if os.environ.get("POLYCOLBERT_BENCH_COMPILE"):
        import torch._inductor.config

        from polycolbert.encoding.precision import OneDnnLinear

        for module in model.backbone.modules():  # inductor picks its own GEMMs; dynamo cannot trace ours
            if isinstance(module, OneDnnLinear):
                module.__class__ = torch.nn.Linear
        torch._inductor.config.freezing = True  # weights as constants: oneDNN prepacking, CPU inference mode
        model.backbone = torch.compile(model.backbone, dynamic=True)
        started = time.perf_counter()
        model.encode_documents(texts, dimensions=dim)  # compile every shape before the timed runs
        compile_s = time.perf_counter() - started
    model.encode_documents(texts[:32], dimensions=dim)
    times = []
    for _ in range(args.runs):
        started = time.perf_counter()
        model.encode_documents(texts, dimensions=dim)
        times.append(time.perf_counter() - started)
    result = {
        "times": times,
        "tokens": sum(t.n_tokens for t in model.tokenize(texts, "document")),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "vectors": [v.astype(float).tolist() for v in model.encode_documents(texts[:4], dimensions=dim)],
        "precision": model.precision,
    }
    if os.environ.get("POLYCOLBERT_BENCH_COMPILE"):
        result["compile_s"] = compile_s
    json.dump(result, sys.stdout)


def run_engine(
    engine: str, precision: str, env: dict[str, str], workdir: Path, texts: Path, runs: int
) -> dict:
    if engine == "polycolbert":
        command = [sys.executable, __file__, "worker", "--precision", precision]
    else:
        command = [str(PEER_PYTHON), str(PEER_SCRIPT), "time", "--engine", engine, "--precision", precision]
        command += ["--onnx", str(workdir / "onnx")]
    command += ["--model", str(workdir / "e5-pylate"), "--texts", str(texts), "--runs", str(runs)]
    threads = {"OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS)}
    result = subprocess.run(
        command, capture_output=True, text=True, check=False, env={**os.environ, **threads, **env}
    )
    if result.returncode != 0:
        raise RuntimeError(f"{engine} {precision} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout)


def agreement(vectors: list, reference: list) -> str:
    cosines = []
    for mine, ref in zip(vectors, reference, strict=True):
        a, b = np.asarray(mine), np.asarray(ref)
        if a.shape != b.shape:
            return "-"
        cosines.append((a * b).sum(axis=1))
    joined = np.concatenate(cosines)
    return f"{joined.min():.4f} / {joined.mean():.4f}"


def race(args: argparse.Namespace) -> None:
    texts = args.workdir / f"{args.profile}.json"
    n_texts = len(json.loads(texts.read_text(encoding="utf-8")))
    print(f"profile {args.profile}: {n_texts} texts; load average before {os.getloadavg()}", flush=True)
    print("| engine | tokens/s | vs PyLate, same precision | peak RSS MB | spread | agreement min / mean |")
    print("| --- | ---: | ---: | ---: | ---: | --- |", flush=True)
    rows: dict[str, dict] = {}
    reference = None
    for label, engine, precision, env in ENGINES + (EXPERIMENTS if args.experiments else []):
        if engine != "polycolbert" and not PEER_PYTHON.exists():
            print(f"({label} skipped: {PEER_PYTHON} missing; see benchmarks/README.md)")
            continue
        if args.only and not any(word in label for word in args.only):
            continue
        data = run_engine(engine, precision, env, args.workdir, texts, args.runs)
        median = statistics.median(data["times"])
        row = {
            "tokens_per_s": data["tokens"] / median,
            "tokens": data["tokens"],
            "peak_rss_mb": data["peak_rss_mb"],
            "spread": (max(data["times"]) - min(data["times"])) / median,
            "precision": data.get("precision", precision),
        }
        if reference is None and label == "polycolbert float32":
            reference = data["vectors"]
        row["agreement"] = agreement(data["vectors"], reference) if reference is not None else "-"
        rows[label] = row
        peer = rows.get("PyLate bfloat16" if row["precision"] == "bfloat16" else "PyLate float32")
        ratio = f"{row['tokens_per_s'] / peer['tokens_per_s']:.2f}x" if peer and engine != "pylate" else ""
        shown = label if precision != "auto" else f"{label} (= {row['precision']})"
        if "compile_s" in data:
            shown += f" (first pass, compiling: {data['compile_s']:.0f} s)"
        print(
            f"| {shown} | {row['tokens_per_s']:,.0f} | {ratio} | {row['peak_rss_mb']:,.0f} | "
            f"{row['spread']:.0%} | {row['agreement']} |",
            flush=True,
        )
    print(f"median of {args.runs} runs after a warm-up; load average after {os.getloadavg()}")
    ratios(rows)
    if args.output:
        args.output.write_text(
            json.dumps({"profile": args.profile, "runs": args.runs, "rows": rows}, indent=2)
        )


def ratios(rows: dict[str, dict]) -> None:
    """The ratios the targets are stated in (PyLate rows come after ours, so they are printed here)."""
    pairs = [
        ("polycolbert float32", "PyLate float32"),
        ("polycolbert bfloat16", "PyLate bfloat16"),
        ("polycolbert auto", "PyLate float32"),
        ("polycolbert auto, no bf16 units", "PyLate float32"),
        ("polycolbert float32", "ONNX Runtime float32"),
        ("polycolbert int8", "ONNX Runtime int8"),
        ("polycolbert bfloat16", "ONNX Runtime float32"),
    ]
    for mine, theirs in pairs:
        if mine in rows and theirs in rows:
            print(f"{mine} / {theirs}: {rows[mine]['tokens_per_s'] / rows[theirs]['tokens_per_s']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare")
    prep.add_argument("--workdir", type=Path, required=True)
    prep.add_argument("--data", type=Path, default=DATA, help="the shared data folder (xquad-*)")
    timed = sub.add_parser("race")
    timed.add_argument("--workdir", type=Path, required=True)
    timed.add_argument("--profile", choices=tuple(PROFILES), required=True)
    timed.add_argument("--runs", type=int, default=3)
    timed.add_argument("--only", nargs="*", help="engines whose label contains one of these words")
    timed.add_argument("--output", type=Path)
    timed.add_argument("--experiments", action="store_true", help="also the torch.compile rows (EXPERIMENTS)")
    roof = sub.add_parser("roofline", help="GEMM peaks per precision and each engine's achieved FLOP/s")
    roof.add_argument("--workdir", type=Path, required=True)
    roof.add_argument("--races", type=Path, nargs="*", default=[], help="race JSONs (race --output)")
    roof.add_argument("--calls", type=int, default=10)
    work = sub.add_parser("worker")
    work.add_argument("--precision", required=True)
    work.add_argument("--model", required=True)
    work.add_argument("--texts", required=True)
    work.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    {
        "prepare": lambda: prepare(args.workdir, args.data),
        "race": lambda: race(args),
        "roofline": lambda: roofline(args.workdir, args.races, args.calls),
        "worker": lambda: worker(args),
    }[args.command]()


if __name__ == "__main__":
    main()
