from __future__ import annotations

import json
from pathlib import Path

import pytest

from polycolbert.eval import report
from polycolbert.eval.report import DatasetResult, average, write_report

METRICS = {"nDCG@10": 0.5, "Recall@100": 1.0, "MRR@10": 0.5}


def result(name: str, ndcg: float) -> DatasetResult:
    return DatasetResult(
        name=name,
        metrics={
            "bm25": dict(METRICS),
            "colbert-128": {**METRICS, "nDCG@10": ndcg},
            "colbert-64": dict(METRICS),
        },
        runs={"bm25": {"q1": {"d2": 1.5, "d1": 3.25}}, "colbert-128": {"q1": {"d1": 2.0}}, "colbert-64": {}},
        timings={"bm25": {"index": 0.1}},
        n_queries=1,
        n_documents=2,
    )


def test_single_dataset_layout(tmp_path: Path) -> None:
    out = write_report(tmp_path / "out", [result("toy", 0.75)], {"model": "m"})
    assert json.loads((out / "metrics.json").read_text())["colbert-128"] == {**METRICS, "nDCG@10": 0.75}
    assert (out / "runs" / "bm25.trec").read_text().splitlines() == [
        "q1 Q0 d1 1 3.250000 bm25",
        "q1 Q0 d2 2 1.500000 bm25",
    ]
    assert {p.name for p in (out / "runs").iterdir()} == {"bm25.trec", "colbert-128.trec", "colbert-64.trec"}
    text = (out / "report.md").read_text()
    assert "| colbert-128 | 0.7500 | 1.0000 | 0.5000 |" in text and "- model: `m`" in text
    assert (out / "ndcg.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "matryoshka.png").is_file()


def test_several_datasets_get_folders_and_an_average(tmp_path: Path) -> None:
    out = write_report(tmp_path / "out", [result("a", 0.25), result("b", 0.75)], {})
    summary = json.loads((out / "summary.json").read_text())
    assert summary["average"]["colbert-128"]["nDCG@10"] == 0.5
    assert json.loads((out / "b" / "metrics.json").read_text())["colbert-128"]["nDCG@10"] == 0.75
    assert "| **average** | **0.5000** | **0.5000** | **0.5000** |" in (out / "report.md").read_text()
    assert average([result("a", 0.25), result("b", 0.75)])["bm25"] == METRICS


def test_failure_leaves_nothing_and_keeps_the_previous_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = write_report(tmp_path / "out", [result("toy", 0.75)], {})
    before = (out / "metrics.json").read_text()

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(report, "plot_ndcg", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_report(tmp_path / "out", [result("toy", 0.1)], {})
    with pytest.raises(RuntimeError, match="disk full"):
        write_report(tmp_path / "fresh", [result("toy", 0.1)], {})
    assert (out / "metrics.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp folder, no 'fresh'


def test_refuses_to_replace_a_folder_that_is_not_a_report(tmp_path: Path) -> None:
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a polycolbert eval report"):
        write_report(precious, [result("toy", 0.5)], {})
    assert (precious / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_quality_bars() -> None:
    def res(name: str, **ndcg: float) -> DatasetResult:
        return DatasetResult(
            name, {s.replace("_", "-"): {**METRICS, "nDCG@10": v} for s, v in ndcg.items()}, {}
        )

    results = [
        res("a", bm25=0.5, dense=0.6, colbert_raw=0.7, colbert_128=0.70, colbert_96=0.69, colbert_64=0.69),
        res("b", bm25=0.9, dense=0.6, colbert_raw=0.7, colbert_128=0.80, colbert_96=0.80, colbert_64=0.78),
    ]
    bars = {bar: met for bar, met, _ in report.quality_bars(results)}
    assert bars == {
        "a: colbert-128 >= bm25": True,
        "a: colbert-128 >= dense": True,
        "b: colbert-128 >= bm25": False,  # 0.80 < 0.90
        "b: colbert-128 >= dense": True,
        "average: colbert-128 >= dense + 0.03": True,  # 0.75 vs 0.60
        "average: colbert-128 >= colbert-raw": True,  # 0.75 vs 0.70
        "average: colbert-64 within 2% of colbert-128": True,  # 0.735 >= 0.98 * 0.75
        "average: colbert-96 between 64 and 128": True,  # 0.745
    }
    assert report.quality_bars([res("c", bm25=0.5)]) == []  # nothing to decide without colbert-128
    # a cross-lingual pool is reported but does not enter the bars when evaluation sets ran
    pool = res("a@en", bm25=0.1, dense=0.9, colbert_128=0.1)
    assert {bar for bar, _, _ in report.quality_bars([*results, pool])} == set(bars)
