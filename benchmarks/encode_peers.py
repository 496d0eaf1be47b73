"""The encoding peers, run by ``benchmarks/encode.py`` in their own environment (``.venv-bench``).

    .venv-bench/bin/python benchmarks/encode_peers.py export-onnx --model DIR --out DIR
    .venv-bench/bin/python benchmarks/encode_peers.py time --engine pylate|onnx --precision P \
        --model DIR --texts FILE --runs N [--onnx DIR]
    .venv-bench/bin/python benchmarks/encode_peers.py gemm --hidden 384 --intermediate 1536 --rows 1024 4096

It imports nothing from polycolbert. ``export-onnx`` writes what fastembed runs: the PyLate checkpoint's
backbone and ColBERT head as one ONNX graph (``model.onnx``, float32, fused by ONNX Runtime's transformer
optimizer) and its dynamically quantised copy (``model_int8.onnx``, ``onnxruntime.quantization
.quantize_dynamic``, int8 weights). ``time`` encodes the texts in ``--texts`` as documents ``--runs`` times
after one warm-up and prints one JSON object: the timings, the tokens each text got vectors for, the
process's peak RSS, and the vectors of the first four texts (for the agreement check). Both peers cut a
document at PyLate's ``document_length`` (512 here: the backbone's positions), as their own code does.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

THREADS = 2
BATCH = 32
MAX_LENGTH = 512


def export_onnx(model_dir: Path, out: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model
    from safetensors.torch import load_file
    from transformers import XLMRobertaConfig, XLMRobertaModel

    out.mkdir(parents=True, exist_ok=True)
    config = XLMRobertaConfig.from_pretrained(model_dir)
    config._attn_implementation = "eager"  # the classic attention graph, which ORT's optimizer fuses
    backbone = XLMRobertaModel.from_pretrained(model_dir, config=config, add_pooling_layer=False).eval()
    head = load_file(str(model_dir / "1_Dense" / "model.safetensors"))

    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone
            self.head = torch.nn.Linear(head["linear.weight"].shape[1], head["linear.weight"].shape[0])
            self.head.weight.data = head["linear.weight"]
            self.head.bias.data = head.get("linear.bias", torch.zeros(self.head.out_features))

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            # The classic additive key mask, built here: transformers' own mask helpers trace to constants.
            hidden = self.backbone.embeddings(input_ids=input_ids)
            additive = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(
                hidden.dtype
            ).min
            for layer in self.backbone.encoder.layer:
                out = layer(hidden, attention_mask=additive)
                hidden = out[0] if isinstance(out, tuple) else out
            return torch.nn.functional.normalize(self.head(hidden), dim=-1)

    ids = torch.ones(2, 16, dtype=torch.long)
    raw = out / "model_raw.onnx"
    torch.onnx.export(
        Wrapped().eval(),
        (ids, torch.ones_like(ids)),
        str(raw),
        input_names=["input_ids", "attention_mask"],
        output_names=["vectors"],
        dynamic_axes={
            "input_ids": {0: "b", 1: "s"},
            "attention_mask": {0: "b", 1: "s"},
            "vectors": {0: "b", 1: "s"},
        },
        opset_version=17,
        dynamo=False,
    )
    optimized = optimize_model(
        str(raw), model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size
    )
    optimized.save_model_to_file(str(out / "model.onnx"))
    quantize_dynamic(
        str(out / "model.onnx"),
        str(out / "model_int8.onnx"),
        weight_type=QuantType.QInt8,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},  # the fused ops' outputs
    )
    raw.unlink()
    print(json.dumps({"fused_ops": optimized.get_fused_operator_statistics()}))


class OnnxColBERT:
    """What fastembed's late-interaction model does: marker after <s>, cut at 512, drop punctuation."""

    def __init__(self, model_dir: Path, onnx_file: Path):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = THREADS
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_LENGTH - 1)  # room for the marker
        settings = json.loads((model_dir / "config_sentence_transformers.json").read_text(encoding="utf-8"))
        self.marker = self.tokenizer.token_to_id(settings["document_prefix"])
        self.pad = self.tokenizer.token_to_id("<pad>")
        # PyLate's skiplist: each word looked up as a token
        self.skip = {
            i for w in settings["skiplist_words"] if (i := self.tokenizer.token_to_id(w)) is not None
        }

    def _ids(self, texts: list[str]) -> list[list[int]]:
        """``<s> marker pieces </s>``, as PyLate inserts its prefix token after ``<s>``."""
        return [
            [e.ids[0], self.marker, *e.ids[1:]]
            for e in self.tokenizer.encode_batch([t.strip() for t in texts])
        ]

    def encode(self, texts: list[str]) -> list[np.ndarray]:
        encodings = self._ids(texts)
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i]))
        out: list[np.ndarray] = [np.zeros(0)] * len(texts)
        for start in range(0, len(order), BATCH):
            chunk = order[start : start + BATCH]
            width = max(len(encodings[i]) for i in chunk)
            ids = np.full((len(chunk), width), self.pad, dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.int64)
            for row, i in enumerate(chunk):
                n = len(encodings[i])
                ids[row, :n] = encodings[i]
                mask[row, :n] = 1
            (vectors,) = self.session.run(None, {"input_ids": ids, "attention_mask": mask})
            for row, i in enumerate(chunk):
                keep = [j for j, t in enumerate(encodings[i]) if t not in self.skip]
                out[i] = vectors[row, keep]
        return out

    def covered(self, texts: list[str]) -> list[int]:
        return [len(ids) for ids in self._ids(texts)]


class PyLateColBERT:
    def __init__(self, model_dir: Path, precision: str):
        from pylate import models

        kwargs = {"torch_dtype": torch.bfloat16} if precision == "bfloat16" else {}
        self.model = models.ColBERT(model_name_or_path=str(model_dir), device="cpu", model_kwargs=kwargs)
        if precision == "bfloat16":
            self.model.to(torch.bfloat16)  # the Dense head too: PyLate loads it in float32

    def encode(self, texts: list[str]) -> list[np.ndarray]:
        return [
            np.asarray(v, dtype=np.float32)
            for v in self.model.encode(texts, is_query=False, batch_size=BATCH)
        ]

    def covered(self, texts: list[str]) -> list[int]:
        tokenizer = self.model.tokenizer
        return [min(len(tokenizer(t.strip())["input_ids"]) + 1, MAX_LENGTH) for t in texts]


def time_engine(args: argparse.Namespace) -> None:
    torch.set_num_threads(THREADS)
    texts: list[str] = json.loads(Path(args.texts).read_text(encoding="utf-8"))
    if args.engine == "pylate":
        engine: PyLateColBERT | OnnxColBERT = PyLateColBERT(Path(args.model), args.precision)
    else:
        name = "model.onnx" if args.precision == "float32" else "model_int8.onnx"
        engine = OnnxColBERT(Path(args.model), Path(args.onnx) / name)
    engine.encode(texts[: min(len(texts), BATCH)])
    times = []
    for _ in range(args.runs):
        started = time.perf_counter()
        engine.encode(texts)
        times.append(time.perf_counter() - started)
    sample = [v.astype(float).tolist() for v in engine.encode(texts[:4])]
    result = {
        "times": times,
        "tokens": sum(engine.covered(texts)),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "vectors": sample,
    }
    json.dump(result, sys.stdout)


def gemm(args: argparse.Namespace) -> None:
    """ONNX Runtime's float32 MatMul and its dynamically quantised int8 one (what ``quantize_dynamic`` makes
    of a model's MatMuls) on the encoder's GEMM shapes: GFLOP/s per shape and the layer ``mix``, as JSON."""
    import tempfile

    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    h, i = args.hidden, args.intermediate
    shapes = [("QKV/out h x h", h, h, 4), ("FFN up", h, i, 1), ("FFN down", i, h, 1)]
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    rng = np.random.default_rng(0)
    results: dict[str, dict[str, float]] = {"ORT fp32 MatMul": {}, "ORT int8 dynamic MatMul": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for m in args.rows:
            seconds = dict.fromkeys(results, 0.0)
            for name, k, n, count in shapes:
                weight = numpy_helper.from_array(
                    (rng.standard_normal((k, n)) / k**0.5).astype(np.float32), "w"
                )
                bias = numpy_helper.from_array(rng.standard_normal(n).astype(np.float32), "b")
                graph = helper.make_graph(
                    [
                        helper.make_node("MatMul", ["x", "w"], ["y0"]),
                        helper.make_node("Add", ["y0", "b"], ["y"]),
                    ],
                    "gemm",
                    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["m", k])],
                    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["m", n])],
                    [weight, bias],
                )
                plain = f"{tmp}/f{k}x{n}.onnx"
                model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
                onnx.save(model, plain)
                quantised = f"{tmp}/q{k}x{n}.onnx"
                quantize_dynamic(plain, quantised, weight_type=QuantType.QInt8, per_channel=True)
                x = rng.standard_normal((m, k)).astype(np.float32)
                for label, path in (("ORT fp32 MatMul", plain), ("ORT int8 dynamic MatMul", quantised)):
                    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
                    session.run(None, {"x": x})
                    times = []
                    for _ in range(args.calls):
                        started = time.perf_counter()
                        session.run(None, {"x": x})
                        times.append(time.perf_counter() - started)
                    t = float(np.median(times))
                    results[label][f"{name} M={m}"] = 2 * m * k * n / t / 1e9
                    seconds[label] += count * t
            flops = sum(2 * m * k * n * count for _, k, n, count in shapes)
            for label, total in seconds.items():
                results[label][f"mix M={m}"] = flops / total / 1e9
    json.dump(results, sys.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export-onnx")
    export.add_argument("--model", type=Path, required=True)
    export.add_argument("--out", type=Path, required=True)
    timed = sub.add_parser("time")
    timed.add_argument("--engine", choices=("pylate", "onnx"), required=True)
    timed.add_argument("--precision", choices=("float32", "bfloat16", "int8"), required=True)
    timed.add_argument("--model", required=True)
    timed.add_argument("--onnx")
    timed.add_argument("--texts", required=True)
    timed.add_argument("--runs", type=int, default=3)
    kernels = sub.add_parser("gemm")
    kernels.add_argument("--hidden", type=int, required=True)
    kernels.add_argument("--intermediate", type=int, required=True)
    kernels.add_argument("--rows", type=int, nargs="+", required=True)
    kernels.add_argument("--calls", type=int, default=10)
    args = parser.parse_args()
    if args.command == "export-onnx":
        export_onnx(args.model, args.out)
    elif args.command == "gemm":
        gemm(args)
    else:
        time_engine(args)


if __name__ == "__main__":
    main()
