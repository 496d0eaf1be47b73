"""Per-token cosine of each encoding precision to float32 on real multilingual text (the exactness gate).

    .venv/bin/python benchmarks/encode_exactness.py [--data ../shared/data] [--precisions bfloat16 int8]

24 XQuAD paragraphs (as documents) and 24 questions (as queries) in each of en, zh, de, ar, hi, th, encoded
by the packaged default model in float32 and in each precision; prints min, 1st percentile and mean of the
per-token cosine over every kept document row and every real query row (zero padding rows excluded). The
gate of issue 18 is a 1st percentile >= 0.99 here and nDCG@10 within 0.002 of float32
(``polycolbert eval --dtype``). Not a timing: run it under ``heavy``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LANGUAGES = ("en", "zh", "de", "ar", "hi", "th")
PER_LANGUAGE = 24


def _every_nth(path: Path) -> list[str]:
    texts = [
        json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    return texts[:: max(1, len(texts) // PER_LANGUAGE)][:PER_LANGUAGE]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--precisions", nargs="+", default=["bfloat16", "int8"])
    args = parser.parse_args()
    import torch

    from polycolbert import ColBERT

    torch.set_num_threads(2)
    documents = [t for lang in LANGUAGES for t in _every_nth(args.data / f"xquad-{lang}" / "corpus.jsonl")]
    queries = [t for lang in LANGUAGES for t in _every_nth(args.data / f"xquad-{lang}" / "queries.jsonl")]
    reference = ColBERT.load(dtype="float32")
    ref_docs, ref_queries = reference.encode_documents(documents), reference.encode_queries(queries)
    print(f"{len(documents)} documents, {len(queries)} queries in {', '.join(LANGUAGES)}")
    print("| precision | min | 1st percentile | mean |\n| --- | ---: | ---: | ---: |")
    for precision in args.precisions:
        model = ColBERT.load(dtype=precision)
        docs, qs = model.encode_documents(documents), model.encode_queries(queries)
        cosines = [(a * b).sum(axis=1) for a, b in zip(docs, ref_docs, strict=True)]
        cosines += [
            (a * b).sum(axis=1)[np.abs(b).sum(axis=1) > 0] for a, b in zip(qs, ref_queries, strict=True)
        ]
        joined = np.concatenate(cosines)
        print(f"| {precision} | {joined.min():.4f} | {np.percentile(joined, 1):.4f} | {joined.mean():.5f} |")


if __name__ == "__main__":
    main()
