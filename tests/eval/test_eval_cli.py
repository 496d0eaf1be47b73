from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from polycolbert.cli import eval as eval_cli


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    app.registered_commands += eval_cli.app.registered_commands

    @app.callback()
    def main() -> None:  # a group, so the command is invoked as `eval`, as under `polycolbert`
        pass

    return app


def test_bm25_report(cli: typer.Typer, toy_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    args = ["eval", "--dataset", str(toy_dataset), "--systems", "bm25", "--output", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "nDCG@10" in result.stdout and "toy-en" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == ["bm25"] and metrics["bm25"]["MRR@10"] == 1.0
    assert (out / "runs" / "bm25.trec").is_file()


def test_malformed_dataset_is_a_clear_error_and_writes_nothing(
    cli: typer.Typer, toy_dataset: Path, tmp_path: Path
) -> None:
    path = toy_dataset / "corpus.jsonl"
    path.write_text(path.read_text() + "{not json\n")
    out = tmp_path / "report"
    result = CliRunner().invoke(
        cli, ["eval", "--dataset", str(toy_dataset), "--systems", "bm25", "--output", str(out)]
    )
    assert result.exit_code == 2
    assert f"{path}:5: not valid JSON" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_bad_options(cli: typer.Typer, toy_dataset: Path) -> None:
    result = CliRunner().invoke(cli, ["eval", "--dataset", str(toy_dataset), "--systems", "tfidf"])
    assert result.exit_code == 2 and "unknown system" in result.output
    result = CliRunner().invoke(
        cli, ["eval", "--dataset", str(toy_dataset), "--systems", "bm25", "--k", "10"]
    )
    assert result.exit_code == 2 and "--k must be at least 100" in result.output


def test_all_systems_through_the_cli(
    cli: typer.Typer, toy_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eval_fixtures import ToyColBERT, tiny_e5_parts

    from polycolbert.encoding import encoder as model_module
    from polycolbert.eval.systems import ALL_SYSTEMS, E5Encoder

    monkeypatch.setattr(model_module.ColBERT, "load", classmethod(lambda cls, name, **kw: ToyColBERT()))
    monkeypatch.setattr(eval_cli, "_load_e5", lambda colbert, bf16: E5Encoder(*tiny_e5_parts()))
    out = tmp_path / "report"
    args = ["eval", "--dataset", str(toy_dataset), "--output", str(out), "--cache-dir", str(tmp_path / "c")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert list(json.loads((out / "metrics.json").read_text())) == list(ALL_SYSTEMS)
    assert sorted(p.stem for p in (out / "runs").iterdir()) == sorted(ALL_SYSTEMS)
    assert "- model: `toy-colbert`" in (out / "report.md").read_text()


def test_fused_systems_through_the_cli(
    cli: typer.Typer, toy_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eval_fixtures import ToyColBERT, tiny_e5_parts

    from polycolbert.encoding import encoder as model_module
    from polycolbert.eval.systems import E5Encoder

    loaded: list[str] = []
    monkeypatch.setattr(model_module.ColBERT, "load", classmethod(lambda cls, name, **kw: ToyColBERT()))
    monkeypatch.setattr(
        eval_cli, "_load_e5", lambda colbert, bf16: loaded.append("e5") or E5Encoder(*tiny_e5_parts())
    )
    out = tmp_path / "report"
    fused = ["colbert-128+dense", "colbert-128+bm25", "colbert-64+dense+bm25"]
    args = ["eval", "--dataset", str(toy_dataset), "--systems", ",".join(fused), "--output", str(out)]
    result = CliRunner().invoke(cli, [*args, "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert loaded == ["e5"]  # the dense signal needs the e5 pass although "dense" was not asked for
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == fused  # only the systems asked for are reported, not their components
    assert all(0.0 <= metrics[s]["nDCG@10"] <= 1.0 for s in fused)
    assert metrics["colbert-128+bm25"]["MRR@10"] > 0
    assert sorted(p.stem for p in (out / "runs").iterdir()) == sorted(fused)


def test_unusable_output_is_refused_before_any_work(
    cli: typer.Typer, toy_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from polycolbert.eval import harness

    monkeypatch.setattr(
        harness, "evaluate", lambda *a, **k: pytest.fail("evaluated before checking --output")
    )
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    args = ["eval", "--dataset", str(toy_dataset), "--systems", "bm25", "--output", str(tmp_path / "mine")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "not a polycolbert eval report" in result.output
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_a_lone_quote_is_encoded_and_reported_by_id(cli: typer.Typer, tmp_path: Path) -> None:
    """XQuAD-R Hindi's sentence 13_0_11 is a lone '"': the run warns with its id and completes."""
    from eval_fixtures import write_beir

    corpus = {**TOY_CORPUS_FOR_BLANKS, "13_0_11": '"', "dash": "— …"}
    root = write_beir(
        tmp_path / "blank-en",
        corpus,
        {"q1": "where did the cat sit", "q2": "?!"},
        [("q1", "d1", 1), ("q2", "d2", 1)],
    )
    out = tmp_path / "report"
    args = ["eval", "--dataset", str(root), "--systems", "bm25,colbert-64", "--output", str(out)]
    result = CliRunner().invoke(cli, [*args, "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    assert "2 document(s) empty or only punctuation" in result.output and "13_0_11, dash" in result.output
    assert "1 query(s)" in result.output and "q2" in result.output
    run = (out / "runs" / "colbert-64.trec").read_text().splitlines()
    assert run[0].split()[2] == "d1"  # the blank documents are there, ranked, and do not win


TOY_CORPUS_FOR_BLANKS = {
    "d1": "The cat sat on the warm mat in the kitchen.",
    "d2": "Stock markets fell sharply after the bank raised interest rates.",
}


def test_finished_datasets_are_kept_when_a_later_one_fails(
    cli: typer.Typer, toy_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from polycolbert.eval import harness

    second = tmp_path / "second-en"
    shutil.copytree(toy_dataset, second)
    real = harness.evaluate

    def failing_on_second(datasets, *args, **kwargs):
        if datasets[0].name == "second-en":
            raise ValueError("disk full")
        return real(datasets, *args, **kwargs)

    monkeypatch.setattr(harness, "evaluate", failing_on_second)
    out = tmp_path / "report"
    args = ["eval", "--dataset", str(toy_dataset), "--dataset", str(second), "--systems", "bm25"]
    result = CliRunner().invoke(cli, [*args, "--output", str(out)])
    assert result.exit_code == 2 and "disk full" in result.output
    assert "finished dataset(s) are in" in result.output
    assert json.loads((out / "toy-en" / "metrics.json").read_text())["bm25"]["MRR@10"] == 1.0
    assert list(json.loads((out / "summary.json").read_text())) == ["toy-en", "average"]
    assert "1 of 2 done" in (out / "report.md").read_text()


def test_the_table_never_cuts_a_name_at_80_columns() -> None:
    from rich.console import Console

    from polycolbert.eval.report import DatasetResult
    from polycolbert.eval.systems import ALL_SYSTEMS

    names = ["xquad-r-hi@en", "xquad-r-hi@mixed", "xquad-r-de@en", "belebele-zho_Hans@en"]
    metrics = {s: {m: 0.5 for m in ("nDCG@10", "Recall@100", "MRR@10")} for s in ALL_SYSTEMS}
    results = [DatasetResult(name, metrics, {}) for name in names]
    console = Console(width=80, record=True)
    eval_cli._print_table(console, results)
    text = console.export_text()
    assert "…" not in text and all(len(line) <= 80 for line in text.splitlines())
    for name in [*names, *ALL_SYSTEMS, "average"]:
        assert name in text
