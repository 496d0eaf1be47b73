"""Write an evaluation: Markdown tables, PNG plots, ``metrics.json`` and TREC run files, all or nothing.

Everything is built in a temporary folder beside ``--output`` and renamed into place at the end, so an
error (or Ctrl-C) never leaves a half-written report. An existing output folder is replaced only when it
is empty or is itself a polycolbert report; anything else is refused rather than deleted.
``polycolbert eval`` writes the report again as each dataset completes (``several=True`` from the
first), so a job that fails later keeps every dataset it finished.

Layout for one dataset (what ``polycolbert eval --output DIR`` promises)::

    DIR/report.md  DIR/metrics.json ({system: {metric: value}})  DIR/runs/<system>.trec  DIR/ndcg.png ...

For several datasets each gets ``DIR/<dataset>/`` with that layout, and ``DIR/report.md`` /
``DIR/summary.json`` ({dataset: {system: {metric: value}}}) hold the tables across them plus their average.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polycolbert.corpus import Run, write_trec
from polycolbert.eval.metrics import METRIC_NAMES

MARKER = ".polycolbert-eval"


@dataclass
class DatasetResult:
    """Everything measured on one dataset."""

    name: str
    metrics: dict[str, dict[str, float]]  # {system: {metric: value}}
    runs: dict[str, Run]
    timings: dict[str, dict[str, float]] = field(default_factory=dict)  # {system: {stage: seconds}}
    n_queries: int = 0
    n_documents: int = 0


def average(results: Sequence[DatasetResult]) -> dict[str, dict[str, float]]:
    """Mean of each metric over the datasets where the system ran."""
    systems = list(dict.fromkeys(s for r in results for s in r.metrics))
    out: dict[str, dict[str, float]] = {}
    for system in systems:
        rows = [r.metrics[system] for r in results if system in r.metrics]
        out[system] = {m: sum(row[m] for row in rows) / len(rows) for m in METRIC_NAMES}
    return out


def metrics_table(metrics: Mapping[str, Mapping[str, float]]) -> str:
    lines = ["| system | " + " | ".join(METRIC_NAMES) + " |", "| --- |" + " ---: |" * len(METRIC_NAMES)]
    for system, values in metrics.items():
        lines.append(f"| {system} | " + " | ".join(f"{values[m]:.4f}" for m in METRIC_NAMES) + " |")
    return "\n".join(lines)


def ndcg_table(results: Sequence[DatasetResult], metric: str = "nDCG@10") -> str:
    """Datasets as rows, systems as columns, plus the average row."""
    systems = list(dict.fromkeys(s for r in results for s in r.metrics))
    lines = ["| dataset | " + " | ".join(systems) + " |", "| --- |" + " ---: |" * len(systems)]
    for r in results:
        cells = [f"{r.metrics[s][metric]:.4f}" if s in r.metrics else "-" for s in systems]
        lines.append(f"| {r.name} | " + " | ".join(cells) + " |")
    if len(results) > 1:
        avg = average(results)
        lines.append("| **average** | " + " | ".join(f"**{avg[s][metric]:.4f}**" for s in systems) + " |")
    return "\n".join(lines)


def timings_table(result: DatasetResult) -> str:
    lines = ["| system | stage | seconds |", "| --- | --- | ---: |"]
    for system, stages in result.timings.items():
        for stage, seconds in stages.items():
            lines.append(f"| {system} | {stage} | {seconds:.1f} |")
    return "\n".join(lines)


def quality_bars(results: Sequence[DatasetResult], metric: str = "nDCG@10") -> list[tuple[str, bool, str]]:
    """The bars of ``docs/quality.md`` that these results can decide: ``(bar, met, numbers)``.

    Per dataset: colbert-128 >= bm25 and >= dense. On average: colbert-128 (and each fused system built on
    it) >= dense + 0.03 and >= colbert-raw; colbert-64 within 2% (relative) of colbert-128; colbert-96
    between the two.
    Only evaluation sets count (pools named ``DIR@xx`` are left out unless nothing else ran); a bar whose
    systems did not run is left out.
    """
    bars: list[tuple[str, bool, str]] = []
    main = "colbert-128"
    # The bars speak of evaluation sets; cross-lingual pools (``DIR@xx``) are reported, not averaged in.
    results = [r for r in results if "@" not in r.name] or list(results)
    for r in results:
        if main not in r.metrics:
            continue
        ours = r.metrics[main][metric]
        for other in ("bm25", "dense"):
            if other in r.metrics:
                theirs = r.metrics[other][metric]
                bars.append((f"{r.name}: {main} >= {other}", ours >= theirs, f"{ours:.4f} vs {theirs:.4f}"))
    avg = average(results)
    # The two average bars are also computed for each fused system built on colbert-128.
    for system in [s for s in avg if s == main or s.startswith(f"{main}+")]:
        ours = avg[system][metric]
        if "dense" in avg:
            theirs = avg["dense"][metric]
            bars.append(
                (
                    f"average: {system} >= dense + 0.03",
                    ours >= theirs + 0.03,
                    f"{ours:.4f} vs {theirs + 0.03:.4f} (dense {theirs:.4f})",
                )
            )
        if "colbert-raw" in avg:
            theirs = avg["colbert-raw"][metric]
            bars.append((f"average: {system} >= colbert-raw", ours >= theirs, f"{ours:.4f} vs {theirs:.4f}"))
    if main in avg:
        ours = avg[main][metric]
        if "colbert-64" in avg:
            small = avg["colbert-64"][metric]
            bars.append(
                (
                    "average: colbert-64 within 2% of colbert-128",
                    small >= 0.98 * ours,
                    f"{small:.4f} vs {ours:.4f}",
                )
            )
            if "colbert-96" in avg:
                mid = avg["colbert-96"][metric]
                between = min(small, ours) <= mid <= max(small, ours)
                bars.append(("average: colbert-96 between 64 and 128", between, f"{mid:.4f}"))
    return bars


def bars_table(results: Sequence[DatasetResult]) -> str:
    lines = ["| bar | met | numbers |", "| --- | --- | --- |"]
    for bar, met, numbers in quality_bars(results):
        lines.append(f"| {bar} | {'yes' if met else '**no**'} | {numbers} |")
    return "\n".join(lines)


def plot_ndcg(results: Sequence[DatasetResult], path: Path, metric: str = "nDCG@10") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = list(dict.fromkeys(s for r in results for s in r.metrics))
    width = 0.8 / max(len(systems), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(results) * len(systems) * 0.35 + 2), 4))
    for j, system in enumerate(systems):
        xs = [i + j * width for i in range(len(results))]
        ys = [r.metrics.get(system, {}).get(metric, 0.0) for r in results]
        ax.bar(xs, ys, width, label=system)
    ax.set_xticks([i + width * (len(systems) - 1) / 2 for i in range(len(results))])
    ax.set_xticklabels([r.name for r in results], rotation=30 if len(results) > 3 else 0, ha="right")
    ax.set_ylabel(metric)
    ax.set_ylim(0, 1)
    ax.legend(fontsize="small", ncol=min(len(systems), 3))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_matryoshka(results: Sequence[DatasetResult], path: Path, metric: str = "nDCG@10") -> bool:
    """nDCG@10 against ColBERT dims per dataset; False (no file) when fewer than two sizes ran."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = sorted(
        {int(s.split("-")[1]) for r in results for s in r.metrics if s.split("-")[-1].isdigit()},
    )
    if len(dims) < 2:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results:
        ys = [r.metrics.get(f"colbert-{d}", {}).get(metric, float("nan")) for d in dims]
        ax.plot(dims, ys, marker="o", label=r.name)
    ax.set_xticks(dims)
    ax.set_xlabel("ColBERT dims")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _write_dataset(folder: Path, result: DatasetResult, header: str, plots: bool) -> None:
    (folder / "runs").mkdir(parents=True, exist_ok=True)
    for system, run in result.runs.items():
        write_trec(folder / "runs" / f"{system}.trec", {qid: run[qid] for qid in sorted(run)}, system)
    (folder / "metrics.json").write_text(json.dumps(result.metrics, indent=2) + "\n", encoding="utf-8")
    parts = [
        f"# Evaluation: {result.name}",
        header,
        f"{result.n_queries} judged queries, {result.n_documents} documents.",
        "## Metrics",
        metrics_table(result.metrics),
    ]
    if plots:
        plot_ndcg([result], folder / "ndcg.png")
        parts.append("![nDCG@10 per system](ndcg.png)")
    if quality_bars([result]):
        parts += ["## Bars (issue 3)", bars_table([result])]
    if result.timings:
        parts += ["## Timings", timings_table(result)]
    (folder / "report.md").write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    (folder / MARKER).write_text("", encoding="utf-8")


def check_output(output: str | Path) -> None:
    """Refuse, before any work, an ``--output`` that exists and is neither empty nor an earlier report."""
    output = Path(output)
    if output.exists():
        if not output.is_dir():
            raise ValueError(f"{output}: exists and is not a folder; choose another --output")
        if any(output.iterdir()) and not (output / MARKER).exists():
            raise ValueError(
                f"{output}: folder is not empty and is not a polycolbert eval report; "
                "choose an empty or new --output folder"
            )


def _replace(output: Path, built: Path) -> None:
    if output.exists():
        check_output(output)
        old = output.with_name(f".{output.name}.old-{os.getpid()}")
        os.rename(output, old)
        os.rename(built, output)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(built, output)


def write_report(
    output: str | Path,
    results: Sequence[DatasetResult],
    meta: Mapping[str, Any],
    several: bool | None = None,
) -> Path:
    """Write the report for ``results`` to ``output`` atomically; ``meta`` (model, command, ...) heads it.

    ``several`` picks the layout with one folder per dataset (default: when there is more than one result;
    a run over several datasets asks for it from its first finished one).
    """
    if not results:
        raise ValueError("no results to report")
    output = Path(output).absolute()
    output.parent.mkdir(parents=True, exist_ok=True)
    built = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
    header = "\n".join(f"- {key}: `{value}`" for key, value in meta.items())
    try:
        if not (len(results) > 1 if several is None else several):
            _write_dataset(built, results[0], header, plots=True)
            plot_matryoshka(results, built / "matryoshka.png")
        else:
            names = [r.name for r in results]
            if len(set(names)) != len(names):
                raise ValueError(f"dataset names must be distinct in one report: {names}")
            for r in results:
                _write_dataset(built / r.name, r, header, plots=False)
            summary = {r.name: r.metrics for r in results} | {"average": average(results)}
            (built / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
            plot_ndcg(results, built / "ndcg.png")
            parts = ["# Evaluation", header, "## nDCG@10", ndcg_table(results), "![nDCG@10](ndcg.png)"]
            if plot_matryoshka(results, built / "matryoshka.png"):
                parts.append("![nDCG@10 against dims](matryoshka.png)")
            if quality_bars(results):
                parts += ["## Bars (issue 3)", bars_table(results)]
            for metric in METRIC_NAMES[1:]:
                parts += [f"## {metric}", ndcg_table(results, metric)]
            parts += ["## Per dataset", "\n".join(f"- [{r.name}]({r.name}/report.md)" for r in results)]
            (built / "report.md").write_text("\n\n".join(parts) + "\n", encoding="utf-8")
            (built / MARKER).write_text("", encoding="utf-8")
        _replace(output, built)
    except BaseException:
        shutil.rmtree(built, ignore_errors=True)
        raise
    return output
