"""Real-vector corpora for the index benchmarks beyond scifact, encoded once and cached on disk.

Why: search speed has to be measured at the sizes an embedded index is used at (millions of tokens) on
real token vectors (synthetic clouds cluster differently), and encoding 5M tokens takes the better part
of an hour on a 2-core CPU, so the vectors are cached under ``~/.cache/polycolbert/bench/<name>/``
(float16, the layout ``peers_plaid.py`` reads: ``doc_tokens.npy``, ``doc_lengths.npy``,
``query_tokens.npy``, plus ``ids.json`` with document and query ids and the qrels). Texts go through the
evaluation cache, so paragraphs another run already encoded (scifact, XQuAD, Belebele) are reused.

Corpora:
- ``mixed5m``: every document of scifact, XQuAD (11 languages), Belebele (en, de), the training sets'
  paragraphs (squad-it, cmrc2018-zh, jaquad-ja, arcd-ar) and udhr-raw cut into passages (>= 5M tokens);
  queries: 300 training-set questions (75 from each training set), judged against their paragraph.
- ``xquad-de@mixed``: the German XQuAD questions against the paragraphs of all 11 XQuAD languages
  (2,640 paragraphs; a question's paragraph is relevant in every language).

    .venv/bin/python benchmarks/corpora.py mixed5m  # fills the cache, in the background
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path("/work/shared/data")
CACHE = Path.home() / ".cache" / "polycolbert" / "bench"
XQUAD = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")
TRAINING = ("squad-it", "cmrc2018-zh", "jaquad-ja", "arcd-ar")
QUERY_LEN = 32
TARGET_TOKENS = 5_050_000  # mixed5m stops adding udhr passages here
# Evaluation caches of the default model under identities it had before (``ColBERT.info`` changed, the
# weights did not): the full evaluation's (scifact, XQuAD, Belebele), then the one mixed5m's first
# encoding run filled (the training sets' paragraphs, udhr). They are read by name, in this order, and
# only texts missing from all of them are encoded by the current model (every engine gets the same vectors).
ENCODED = (
    "polycolbert-e5-small-torch.bfloat16-5e070fbc34f565e81edcd95d",
    "polycolbert-e5-small-torch.bfloat16-b6891001dad9780cf9acf2ab",
)


def _read(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _corpus(name: str) -> list[tuple[str, str]]:
    root = DATA / name
    path = root / "corpus.jsonl"
    rows = _read(path if path.exists() else root / "corpus.jsonl.gz")
    return [(f"{name}/{r['_id']}", (r.get("title", "") + " " + r["text"]).strip()) for r in rows]


def _udhr(chars: int = 600) -> list[tuple[str, str]]:
    """udhr-raw's declarations cut into passages of about ``chars`` characters at line ends."""
    out = []
    for row in _read(DATA / "udhr-raw" / "udhr.jsonl.gz"):
        part: list[str] = []
        for line in row["text"].splitlines():
            part.append(line)
            if sum(map(len, part)) >= chars:
                out.append((f"udhr/{row['_id']}-{len(out)}", "\n".join(part)))
                part = []
        if part:
            out.append((f"udhr/{row['_id']}-{len(out)}", "\n".join(part)))
    return out


def _questions(name: str, n: int, seed: int = 0) -> tuple[list[tuple[str, str]], dict[str, dict[str, int]]]:
    root = DATA / name
    texts = {r["_id"]: r["text"] for r in _read(root / "queries.jsonl")}
    qrels: dict[str, dict[str, int]] = {}
    with open(root / "qrels" / "test.tsv", encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            q, d, s = line.rstrip("\n").split("\t")
            qrels.setdefault(f"{name}/{q}", {})[f"{name}/{d}"] = int(s)
    ids = sorted(qrels)
    chosen = sorted(np.random.default_rng(seed).choice(len(ids), size=min(n, len(ids)), replace=False))
    picked = [ids[i] for i in chosen]
    return [(q, texts[q.split("/", 1)[1]]) for q in picked], {q: qrels[q] for q in picked}


def spec(name: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]], dict[str, dict[str, int]]]:
    """(documents, queries, qrels) as (id, text) pairs."""
    if name == "mixed5m":
        docs = _corpus("scifact")
        for lang in XQUAD:
            docs += _corpus(f"xquad-{lang}")
        docs += _corpus("belebele-en") + _corpus("belebele-de")
        queries: list[tuple[str, str]] = []
        qrels: dict[str, dict[str, int]] = {}
        for name_ in TRAINING:
            docs += _corpus(name_)
            q, r = _questions(name_, 75)
            queries += q
            qrels.update(r)
        docs += _udhr()
        return docs, queries, qrels
    if name == "xquad-de@mixed":
        docs = [d for lang in XQUAD for d in _corpus(f"xquad-{lang}")]
        queries = [(f"q/{r['_id']}", r["text"]) for r in _read(DATA / "xquad-de" / "queries.jsonl")]
        by_lang = {f"xquad-{lang}/" for lang in XQUAD}
        qrels = {}
        with open(DATA / "xquad-de" / "qrels" / "test.tsv", encoding="utf-8") as handle:
            next(handle)
            for line in handle:
                q, d, s = line.rstrip("\n").split("\t")
                qrels.setdefault(f"q/{q}", {}).update({p + d: int(s) for p in by_lang})
        return docs, queries, qrels
    raise ValueError(f"unknown corpus {name!r}")


def scifact() -> tuple[list[tuple[str, str]], list[tuple[str, str]], dict[str, dict[str, int]]]:
    from polycolbert.eval.datasets import load_beir

    ds = load_beir(DATA / "scifact")
    docs = [(f"scifact/{i}", t) for i, t in zip(ds.corpus_ids, ds.corpus_texts, strict=True)]
    queries = [(f"scifact/{i}", t) for i, t in zip(ds.query_ids, ds.query_texts, strict=True)]
    qrels = {f"scifact/{q}": {f"scifact/{d}": g for d, g in r.items()} for q, r in ds.qrels.items()}
    return docs, queries, qrels


def build(name: str, dims: int = 128) -> Path:
    """Encode what the caches lack and write the corpus's vectors; returns the folder."""
    folder = CACHE / name
    if (folder / "ids.json").exists():
        return folder
    from rich.console import Console

    from polycolbert import ColBERT
    from polycolbert.eval.cache import EncodingCache, default_cache_dir
    from polycolbert.eval.systems import ColBERTEncoder, _progress, encode_cached

    docs, queries, qrels = scifact() if name == "scifact" else spec(name)
    seen: set[str] = set()
    docs = [(i, t) for i, t in docs if t and not (t in seen or seen.add(t))]  # type: ignore[func-returns-value]
    encoder = ColBERTEncoder(ColBERT.load(), (dims,))
    wanted = [f"colbert-{dims}"]
    old = {
        side: [EncodingCache(default_cache_dir(), name, f"{side}-colbert-{dims}", dims) for name in ENCODED]
        for side in ("document", "query")
    }

    def vectors(texts: list[str], side: str, progress: object) -> list[np.ndarray]:
        have: dict[str, np.ndarray] = {}
        for cache in old[side]:
            wanted_here = [t for t in texts if t not in have]
            missing = set(cache.missing(wanted_here))
            found = [t for t in wanted_here if t not in missing]
            have.update(zip(found, cache.get(found), strict=True))
        todo = [t for t in texts if t not in have]
        if todo:
            fresh = encode_cached(encoder, todo, side, wanted, default_cache_dir(), progress)[wanted[0]]
            have.update(zip(todo, fresh, strict=True))
        return [np.asarray(have[t], np.float16) for t in texts]

    folder.mkdir(parents=True, exist_ok=True)
    lengths: list[int] = []
    parts: list[np.ndarray] = []
    kept: list[str] = []
    with _progress(Console(stderr=True)) as progress:
        for start in range(0, len(docs), 1024):  # each chunk lands in the cache before the next
            chunk = docs[start : start + 1024]
            if name == "mixed5m" and sum(lengths) >= TARGET_TOKENS:
                break
            parts += vectors([t for _, t in chunk], "document", progress)
            lengths += [len(v) for v in parts[len(lengths) :]]
            kept += [i for i, _ in chunk]
            print(f"{start + len(chunk)}/{len(docs)} documents, {sum(lengths)} tokens", file=sys.stderr)
        qv = vectors([t for _, t in queries], "query", progress)
    if any(len(v) != QUERY_LEN for v in qv):
        qv = [np.resize(v, (QUERY_LEN, dims)) for v in qv]
    np.save(folder / "doc_tokens.npy", np.concatenate(parts))
    np.save(folder / "doc_lengths.npy", np.array(lengths, np.int64))
    np.save(folder / "query_tokens.npy", np.stack(qv))
    ids = {"doc_ids": kept, "query_ids": [i for i, _ in queries], "qrels": qrels}
    (folder / "ids.json").write_text(json.dumps(ids))
    return folder


if __name__ == "__main__":
    for corpus in sys.argv[1:]:
        print(build(corpus))
