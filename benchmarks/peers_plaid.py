"""Benchmark the PLAID index peers, Stanford PLAID and FastPlaid, on token vectors given in files.

Why: polycolbert's index is compared with the reference late-interaction indexes on *identical* token
vectors, so that encoder differences cannot confound index size, latency or ranking quality. Both peers
are reached the way their users reach them, through PyLate's ``pylate.indexes.PLAID`` (``use_fast=False``
is Stanford PLAID, ``use_fast=True`` is FastPlaid), with PyLate's default search parameters.

This script runs in its own virtualenv (``.venv-plaid``, see benchmarks/README.md) and imports nothing from
polycolbert: fast-plaid's Rust extension is built against one exact torch release (2.11.0 for
fast-plaid 1.4.6.2110, the newest release PyLate 1.6.0 accepts) and crashes on any other, so it cannot
share the project's torch. Everything runs on the CPU (``CUDA_VISIBLE_DEVICES`` is emptied before torch
is imported); Stanford PLAID compiles its C++ CPU kernels with ninja on first use, which a warm-up on a
small throwaway index pays for outside the timed build.

Input folder (``--vectors``):
    doc_tokens.npy    float32 [T, d], every document's token vectors concatenated, L2-normalised rows
    doc_lengths.npy   int64 [n_docs], token count of each document (sums to T); document i has id "i"
    query_tokens.npy  float32 [n_queries, 32, d]

    .venv-plaid/bin/python benchmarks/peers_plaid.py --vectors DIR --system plaid|fastplaid \\
        [--nbits 2] [--k 10 100] [--threads 2] [--workdir DIR] --output results.json

The JSON written to ``--output`` is described by ``OUTPUT_SCHEMA`` below; a table goes to stdout and the
libraries' own log lines go to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

OUTPUT_SCHEMA = """
system            "plaid" | "fastplaid"
backend           how the peer was reached, e.g. "pylate.indexes.PLAID(use_fast=False) -> Stanford PLAID"
versions          {python, torch, pylate, fast_plaid, numpy}
machine           {platform, cpu_count, loadavg_start, loadavg_end} (1/5/15-min load: timings are only
                  meaningful when the machine was otherwise idle)
threads           torch intra-op threads (also OMP/MKL/RAYON threads and PyLate's num_threads)
input             {vectors, n_docs, n_tokens, dim, n_queries, query_tokens}
index_params      what the index was built with (nbits, kmeans_niters, ..., num_partitions read back)
search_params     PyLate's defaults as read from the live index object
pylate_id_maps_cached  true: PyLate's id-map pickles were read once, not on every call (see --reload-id-maps)
build             {seconds, index_bytes (all files under the index folder), bytes_per_token (index_bytes / T),
                   id_map_bytes (PyLate's two id-map pickles, part of index_bytes), files: {relpath: bytes},
                   rss_before_bytes (input already loaded), peak_rss_bytes (peak since just before the build,
                   input included, when peak_rss_is_build_only; else the process's lifetime peak)}
search            {"<k>": {single: {n, p50_ms, p99_ms, mean_ms, qps}, batched: {n, seconds, qps},
                           batched_same_ranking: share of queries whose batched top-k equals the single one}}
ranked_ids        {"<k>": [[doc id, ...] per query]} from the one-query-per-call runs, best first
"""

SYSTEMS = ("plaid", "fastplaid")
WARMUP_DOCS = 256


@dataclass
class Vectors:
    docs: list[np.ndarray]
    queries: np.ndarray
    n_tokens: int
    dim: int


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vectors", type=Path, required=True, help="folder with the three .npy files")
    parser.add_argument("--system", choices=SYSTEMS, required=True, help="plaid = Stanford PLAID")
    parser.add_argument("--nbits", type=int, default=2, help="residual bits per dimension")
    parser.add_argument("--k", type=int, nargs="+", default=[10, 100], help="cut-offs to search at")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, required=True, help="JSON results file")
    parser.add_argument("--workdir", type=Path, help="index folder (default: a temporary one, removed)")
    parser.add_argument(
        "--reload-id-maps",
        action="store_true",
        help="keep PyLate's per-call reading of its id-map pickles (default: read them once)",
    )
    return parser.parse_args(argv)


def prepare_environment(threads: int) -> None:
    """Pin the peers' thread pools (torch's OpenMP, fast-plaid's rayon) and hide CUDA.

    Must run before torch or fast-plaid load; numpy, already loaded, only reads files and takes percentiles.

    Also puts this interpreter's bin/ first on PATH, so torch's C++ extension builder finds the venv's
    ninja without the venv being activated.
    """
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def load_vectors(folder: Path) -> Vectors:
    tokens = np.ascontiguousarray(np.load(folder / "doc_tokens.npy"), dtype=np.float32)
    lengths = np.load(folder / "doc_lengths.npy").astype(np.int64)
    queries = np.ascontiguousarray(np.load(folder / "query_tokens.npy"), dtype=np.float32)
    if tokens.ndim != 2 or queries.ndim != 3 or queries.shape[2] != tokens.shape[1]:
        raise SystemExit(f"bad shapes: doc_tokens {tokens.shape}, query_tokens {queries.shape}")
    if int(lengths.sum()) != tokens.shape[0] or (lengths <= 0).any():
        raise SystemExit(f"doc_lengths sum {int(lengths.sum())} != {tokens.shape[0]} rows, or a length <= 0")
    docs = np.split(tokens, np.cumsum(lengths)[:-1])
    return Vectors(docs=docs, queries=queries, n_tokens=int(tokens.shape[0]), dim=int(tokens.shape[1]))


def rss_bytes() -> tuple[int, int]:
    """(current, peak) resident set size of this process, from /proc/self/status."""
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, kib, _ = line.split()
                values[key] = int(kib) * 1024
    return values.get("VmRSS:", 0), values.get("VmHWM:", 0)


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so a later peak belongs to what ran since."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def folder_bytes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}


@contextlib.contextmanager
def library_output_to_stderr() -> Iterator[None]:
    """Send the peers' progress prints to stderr so stdout carries only this script's table."""
    sys.stdout.flush()
    with contextlib.redirect_stdout(sys.stderr):
        yield
    sys.stderr.flush()


def make_index(system: str, folder: Path, nbits: int, threads: int) -> Any:
    from pylate import indexes

    return indexes.PLAID(
        index_folder=str(folder),
        index_name="index",
        override=True,
        use_fast=system == "fastplaid",
        nbits=nbits,
        num_threads=threads,
        show_progress=False,
        device="cpu",
    )


def build(system: str, folder: Path, docs: list[np.ndarray], nbits: int, threads: int) -> Any:
    index = make_index(system, folder, nbits, threads)
    index.add_documents(documents_ids=[str(i) for i in range(len(docs))], documents_embeddings=docs)
    return index


def cache_id_maps(index: Any) -> None:
    """PyLate unpickles both id maps on every search call; read them once instead.

    The maps are the identity here ("i" <-> i), so this removes only wrapper I/O, not engine work.
    """
    inner = index._index
    for name in ("_load_plaid_ids_to_documents_ids", "_load_documents_ids_to_plaid_ids"):
        if hasattr(inner, name):
            loaded = getattr(inner, name)()
            setattr(inner, name, lambda loaded=loaded: loaded)


def index_params(system: str, index: Any, folder: Path) -> dict[str, Any]:
    inner = index._index
    if system == "fastplaid":
        params = {
            name: getattr(inner, name)
            for name in ("nbits", "kmeans_niters", "max_points_per_centroid", "n_samples_kmeans", "seed")
        }
        meta_path = folder / "index" / "fast_plaid_index" / "metadata.json"
    else:
        config = inner.config
        params = {"nbits": config.nbits, "kmeans_niters": config.kmeans_niters, "dim": config.dim}
        meta_path = folder / "index" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    params["num_partitions"] = meta.get("num_partitions")
    params["num_embeddings"] = meta.get("num_embeddings")
    return params


def search_params(system: str, index: Any) -> dict[str, Any]:
    inner = index._index
    if system == "fastplaid":
        return {
            "n_ivf_probe": inner.n_ivf_probe,
            "n_full_scores": inner.n_full_scores,
            "batch_size": inner.batch_size,
            "num_threads": inner.num_threads,
            "note": "PyLate passes the same values for every k; num_threads is fast-plaid's n_processes "
            "(joblib worker threads, used only when a call holds more than one query)",
        }
    config = inner.searcher.config
    return {
        "ncells": config.ncells,
        "centroid_score_threshold": config.centroid_score_threshold,
        "ndocs": config.ndocs,
        "note": "PyLate sets these for every k, which overrides ColBERT's k-dependent defaults; "
        "queries are searched one at a time even in a batched call",
    }


def ranked_ids(results: list[list[dict[str, Any]]]) -> list[list[int]]:
    return [[int(hit["id"]) for hit in hits] for hits in results]


def time_search(index: Any, queries: np.ndarray, k: int) -> dict[str, Any]:
    """One query per call over all queries, then all queries in one call."""
    with library_output_to_stderr():
        index(queries[:1], k=k)  # untimed: first call at this k
        latencies = []
        single: list[list[int]] = []
        for i in range(len(queries)):
            start = time.perf_counter()
            hits = index(queries[i : i + 1], k=k)
            latencies.append(time.perf_counter() - start)
            single.extend(ranked_ids(hits))
        start = time.perf_counter()
        batched = ranked_ids(index(queries, k=k))
        batched_seconds = time.perf_counter() - start
    ms = np.asarray(latencies) * 1e3
    same = sum(a == b for a, b in zip(single, batched, strict=True)) / len(queries)
    return {
        "single": {
            "n": len(queries),
            "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()),
            "qps": float(len(queries) / (ms.sum() / 1e3)),
        },
        "batched": {
            "n": len(queries),
            "seconds": batched_seconds,
            "qps": float(len(queries) / batched_seconds),
        },
        "batched_same_ranking": same,
        "_ranked_ids": single,
    }


def versions() -> dict[str, str]:
    import torch

    found = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    for dist in ("pylate", "fast-plaid"):
        try:
            found[dist.replace("-", "_")] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist.replace("-", "_")] = "not installed"
    return found


def print_table(result: dict[str, Any]) -> None:
    b = result["build"]
    inp = result["input"]
    print(
        f"{result['system']}: {inp['n_docs']:,} docs, {inp['n_tokens']:,} tokens x {inp['dim']}, "
        f"{inp['n_queries']} queries, {result['threads']} threads, nbits {result['index_params']['nbits']}"
    )
    print(
        f"build {b['seconds']:.1f} s, index {b['index_bytes'] / 2**20:.1f} MiB "
        f"({b['bytes_per_token']:.1f} B/token), peak RSS {b['peak_rss_bytes'] / 2**30:.2f} GiB"
    )
    print(f"{'k':>5} {'p50 ms':>9} {'p99 ms':>9} {'QPS 1/call':>11} {'QPS batch':>10} {'same':>5}")
    for k, row in result["search"].items():
        s, bt = row["single"], row["batched"]
        print(
            f"{k:>5} {s['p50_ms']:9.2f} {s['p99_ms']:9.2f} {s['qps']:11.1f} {bt['qps']:10.1f} "
            f"{row['batched_same_ranking']:5.2f}"
        )


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    vectors = load_vectors(args.vectors)
    own_workdir = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="peers_plaid_")) if own_workdir else args.workdir
    folder = workdir / args.system
    try:
        # Untimed warm-up on a small throwaway index: Stanford PLAID compiles its C++ kernels here
        # (cached under ~/.cache/torch_extensions), and both peers load their native code.
        warm_docs = vectors.docs[: min(WARMUP_DOCS, len(vectors.docs))]
        with library_output_to_stderr():
            warm = build(args.system, workdir / f"{args.system}-warmup", warm_docs, args.nbits, args.threads)
            for k in args.k:
                warm(vectors.queries[:2], k=k)
        del warm
        shutil.rmtree(workdir / f"{args.system}-warmup", ignore_errors=True)

        rss_before, _ = rss_bytes()
        peak_is_build_only = reset_peak_rss()
        start = time.perf_counter()
        with library_output_to_stderr():
            index = build(args.system, folder, vectors.docs, args.nbits, args.threads)
        build_seconds = time.perf_counter() - start
        _, peak_rss = rss_bytes()

        files = folder_bytes(folder)
        total = sum(files.values())
        id_maps = sum(size for name, size in files.items() if name.endswith("_ids.pkl"))
        if not args.reload_id_maps:
            cache_id_maps(index)

        result: dict[str, Any] = {
            "system": args.system,
            "backend": f"pylate.indexes.PLAID(use_fast={args.system == 'fastplaid'}) -> "
            + ("FastPlaid" if args.system == "fastplaid" else "Stanford PLAID"),
            "versions": versions(),
            "machine": {
                "platform": platform.platform(),
                "cpu_count": os.cpu_count(),
                "loadavg_start": load_start,
            },
            "threads": args.threads,
            "input": {
                "vectors": str(args.vectors),
                "n_docs": len(vectors.docs),
                "n_tokens": vectors.n_tokens,
                "dim": vectors.dim,
                "n_queries": int(vectors.queries.shape[0]),
                "query_tokens": int(vectors.queries.shape[1]),
            },
            "index_params": index_params(args.system, index, folder),
            "search_params": search_params(args.system, index),
            "pylate_id_maps_cached": not args.reload_id_maps,
            "build": {
                "seconds": build_seconds,
                "index_bytes": total,
                "bytes_per_token": total / vectors.n_tokens,
                "id_map_bytes": id_maps,
                "files": files,
                "rss_before_bytes": rss_before,
                "peak_rss_bytes": peak_rss,
                "peak_rss_is_build_only": peak_is_build_only,
            },
            "search": {},
            "ranked_ids": {},
        }
        for k in args.k:
            row = time_search(index, vectors.queries, k)
            result["ranked_ids"][str(k)] = row.pop("_ranked_ids")
            result["search"][str(k)] = row
        result["machine"]["loadavg_end"] = os.getloadavg()
        return result
    finally:
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    prepare_environment(args.threads)
    result = run(args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    print_table(result)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
