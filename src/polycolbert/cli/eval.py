"""``polycolbert eval``: retrieval quality of a model against BM25 and the backbone's own embeddings.

Long runs are kept safe from their data: a blank text (empty, or only punctuation and symbols, such as
XQuAD-R Hindi's sentence ``13_0_11``, a lone ``"``) is encoded as its special rows and reported by id
in a warning, never an error; with ``--output`` the report is written again as each dataset completes,
so a run that fails later keeps what it finished. The terminal table never cuts a dataset or system
name (``cli/tables.py``).
"""

from __future__ import annotations

import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from polycolbert.cli.errors import friendly_errors
from polycolbert.models.catalog import DEFAULT_MODEL

if TYPE_CHECKING:
    from polycolbert.encoding.encoder import ColBERT

app = typer.Typer()


def _load_e5(colbert: ColBERT | None, bf16: bool) -> Any:
    """The untouched packaged e5 backbone (the reference for dense / colbert-raw)."""
    from polycolbert.eval.systems import E5Encoder

    try:
        from polycolbert.models.packaged import load_e5_backbone, load_e5_tokenizer
    except ImportError:
        if colbert is None:
            raise ValueError(
                "dense / colbert-raw need polycolbert.models.packaged (the e5 backbone)"
            ) from None
        return E5Encoder(colbert.backbone, colbert.tokenizer, bf16=bf16, name=f"{colbert.name}-backbone")
    return E5Encoder(load_e5_backbone(), load_e5_tokenizer(), bf16=bf16, name="multilingual-e5-small")


def _print_table(console: Console, results: list[Any]) -> None:
    from polycolbert.cli.tables import print_columns
    from polycolbert.eval.report import average

    systems = list(dict.fromkeys(s for r in results for s in r.metrics))
    rows = [
        (r.name, [f"{r.metrics[s]['nDCG@10']:.4f}" if s in r.metrics else "-" for s in systems])
        for r in results
    ]
    if len(results) > 1:
        avg = average(results)
        rows.append(("average", [f"{avg[s]['nDCG@10']:.4f}" for s in systems]))
    print_columns(console, "nDCG@10", "dataset", rows, systems, bold_last=len(results) > 1)


def warn_blank(console: Console, dataset: Any, shown: int = 10) -> None:
    """Name (by id) the texts with nothing to match; they are encoded as their special rows only."""
    from polycolbert.encoding.recipe import blank_positions

    for what, ids, texts in (
        ("document", dataset.corpus_ids, dataset.corpus_texts),
        ("query", dataset.query_ids, dataset.query_texts),
    ):
        blank = [ids[i] for i in blank_positions(texts)]
        if blank:
            listed = ", ".join(blank[:shown]) + (
                f" and {len(blank) - shown} more" if len(blank) > shown else ""
            )
            console.print(
                f"[yellow]warning[/]: {dataset.name}: {len(blank)} {what}(s) empty or only punctuation and "
                f"symbols, encoded as their special rows only: {listed}",
                highlight=False,
            )


@app.command("eval")
@friendly_errors
def eval_command(
    dataset: Annotated[
        list[str],
        typer.Option(
            help="BEIR folder (corpus.jsonl[.gz], queries.jsonl, qrels/<split>.tsv); "
            "DIR@en pairs DIR's queries with its -en sibling's corpus, DIR@mixed with every sibling's "
            "corpus. Repeat for several.",
        ),
    ],
    model: Annotated[str, typer.Option(help="Catalogue name, hub id or checkpoint folder.")] = DEFAULT_MODEL,
    output: Annotated[
        Path | None, typer.Option(help="Write report.md, metrics.json, runs/ and plots here.")
    ] = None,
    systems: Annotated[
        str,
        typer.Option(
            help="Comma-separated: bm25, dense, colbert-raw, colbert-128, colbert-96, colbert-64, and the "
            "fused colbert-<dims>+dense, +bm25, +dense+bm25."
        ),
    ] = "all",
    split: Annotated[str, typer.Option(help="Which qrels/<split>.tsv to score.")] = "test",
    k: Annotated[int, typer.Option(help="Documents kept per query (Recall@100 needs 100).")] = 100,
    dtype: Annotated[str, typer.Option(help="auto, float32, bfloat16 or int8 (encoding).")] = "auto",
    cache_dir: Annotated[
        Path | None, typer.Option(help="Encoding cache (default: user cache folder).")
    ] = None,
) -> None:
    """Score systems side by side (nDCG@10, Recall@100, MRR@10) on BEIR-layout datasets."""
    from polycolbert.eval.cache import default_cache_dir
    from polycolbert.eval.crosslingual import load_spec
    from polycolbert.eval.harness import colbert_dims, evaluate, needs_e5, parse_systems
    from polycolbert.eval.report import check_output, write_report

    chosen = parse_systems(systems)
    if k < 100:
        raise ValueError("--k must be at least 100 (Recall@100 is reported)")
    if output is not None:
        check_output(output)
    console = Console(stderr=True)
    # Read every dataset before any encoding: a broken file should fail in a second, not after minutes.
    datasets = [load_spec(spec, split=split) for spec in dataset]
    started = time.perf_counter()
    need_colbert = bool(colbert_dims(chosen))
    need_e5 = needs_e5(chosen)
    colbert = None
    e5 = None
    if need_colbert or need_e5:
        from polycolbert.encoding.encoder import ColBERT
        from polycolbert.encoding.precision import cpu_supports_bf16

        bf16 = dtype == "bfloat16" or (dtype == "auto" and cpu_supports_bf16())
        if need_colbert:
            colbert = ColBERT.load(model, dtype=dtype)  # type: ignore[arg-type]
        if need_e5:
            e5 = _load_e5(colbert, bf16)
    results: list[Any] = []
    meta = {
        "model": colbert.name if colbert is not None else model,
        "command": "polycolbert " + shlex.join(sys.argv[1:]),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    try:
        for done, one in enumerate(datasets, start=1):
            warn_blank(console, one)
            cache = cache_dir or default_cache_dir()
            results += evaluate([one], chosen, cache_root=cache, colbert=colbert, e5=e5, k=k, console=console)
            if output is not None:
                progress = {"datasets": f"{done} of {len(datasets)} done"} if done < len(datasets) else {}
                wall = {"wall time": f"{time.perf_counter() - started:.0f} s"}
                write_report(output, results, meta | progress | wall, several=len(datasets) > 1)
    except BaseException:
        if output is not None and results:
            console.print(f"the {len(results)} finished dataset(s) are in {output}")
        raise
    _print_table(Console(), results)
    if output is not None:
        console.print(f"report written to {output.absolute()}")
