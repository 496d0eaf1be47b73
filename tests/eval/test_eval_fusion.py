"""The fusion math against hand-computed values, the script gate, and fused systems run by the harness."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from eval_fixtures import ToyColBERT, tiny_e5_parts

from polycolbert.eval import fusion
from polycolbert.eval.datasets import load_beir
from polycolbert.eval.fusion import (
    Fusion,
    bm25_gate,
    components,
    fused_run,
    fused_scores,
    normalise,
    parse_fused,
    reciprocal_ranks,
    script_of,
)
from polycolbert.eval.harness import colbert_dims, evaluate, needs_e5
from polycolbert.eval.report import DatasetResult, quality_bars
from polycolbert.eval.systems import E5Encoder

SQRT_2_3 = np.sqrt(2 / 3)  # population standard deviation of (1, 2, 3)


def test_normalise_by_hand() -> None:
    rows = np.array([[1.0, 2.0, 3.0], [4.0, 4.0, 4.0], [0.0, 0.0, 6.0]])
    z = normalise(rows, "z")
    assert z[0] == pytest.approx([-1 / SQRT_2_3, 0.0, 1 / SQRT_2_3])
    assert z[1].tolist() == [0.0, 0.0, 0.0]  # a constant row says nothing: it contributes 0
    assert z[2] == pytest.approx([-2 / np.sqrt(8), -2 / np.sqrt(8), 4 / np.sqrt(8)])  # mean 2, std sqrt 8
    minmax = normalise(rows, "minmax")
    assert minmax.tolist() == [[0.0, 0.5, 1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    # float noise on an otherwise constant row is not blown up to +-1
    assert normalise(np.array([[0.7, 0.7 + 1e-13]]), "z").tolist() == [[0.0, 0.0]]
    with pytest.raises(ValueError, match="unknown normalisation"):
        normalise(rows, "softmax")


def test_reciprocal_ranks_by_hand() -> None:
    scores = np.array([[0.2, 0.9, 0.5], [1.0, 1.0, 0.0]])
    assert reciprocal_ranks(scores) == pytest.approx(
        np.array([[1 / 63, 1 / 61, 1 / 62], [1 / 61, 1 / 62, 1 / 63]])  # ties keep column order
    )
    present = np.array([[True, False, True], [False, True, False]])
    assert reciprocal_ranks(scores, present, k0=10) == pytest.approx(
        np.array([[1 / 12, 0.0, 1 / 11], [0.0, 1 / 11, 0.0]])
    )


def test_fused_scores_by_hand() -> None:
    colbert = np.array([[3.0, 2.0, 1.0]])
    bm25 = np.array([[0.0, 0.0, 6.0]])
    dense = np.array([[0.1, 0.3, 0.2]])
    half = {"bm25": np.array([0.5]), "dense": np.array([2.0])}
    z = fused_scores(colbert, {"bm25": bm25}, half, "z")
    c, b = 1 / SQRT_2_3, 2 / np.sqrt(8)
    assert z[0] == pytest.approx([c - 0.5 * b, -0.5 * b, -c + 0.5 * 2 * b])
    both = fused_scores(colbert, {"bm25": bm25, "dense": dense}, half, "minmax")
    assert both[0] == pytest.approx([1.0 + 0 + 0, 0.5 + 0 + 2.0, 0 + 0.5 + 2 * 0.5])
    # RRF: BM25's zero scores are documents it did not retrieve, so only the third gets a BM25 rank
    rrf = fused_scores(colbert, {"bm25": bm25}, half, "rrf")
    assert rrf[0] == pytest.approx([1 / 61, 1 / 62, 1 / 63 + 0.5 / 61])
    gated = fused_scores(colbert, {"bm25": bm25}, {"bm25": np.array([0.0])}, "z")
    assert gated[0] == pytest.approx(normalise(colbert, "z")[0])


def test_script_of_and_the_bm25_gate() -> None:
    assert script_of("Wo wohnt Tom? 1998") == "LATIN"
    assert script_of("Где живёт Том? Tom") == "CYRILLIC"  # most letters win
    assert script_of("東京に住んでいますか") == "CJK"  # kana and kanji are one script
    assert script_of("ｔｏｍ") == "LATIN"  # full-width letters are read as what NFKC makes of them
    assert script_of("12 + 3") is None
    latin = ["Where does Tom live?", "He lives in Berlin.", "1998", *["Tom was there."] * 7]
    queries = ["Wo wohnt Tom?", "Где живёт Том?", "2024", "أين يعيش توم؟"]
    assert bm25_gate(queries, latin, "script").tolist() == [1.0, 0.0, 1.0, 0.0]  # no letters: open
    assert bm25_gate(queries, latin, "none").tolist() == [1.0, 1.0, 1.0, 1.0]
    # 9 of the 10 documents with letters in one script: the corpus has that script (fusion.ONE_SCRIPT = 0.9)
    almost = [*latin, "Он живёт в Москве."]
    assert bm25_gate(queries, almost, "script").tolist() == [1.0, 0.0, 1.0, 0.0]
    # 7 of 9: the corpus mixes scripts (so languages), and BM25 counts for no query
    mixed = [*latin[:8], "Он живёт в Москве.", "Он живёт в Москве."]
    assert bm25_gate(queries, mixed, "script").tolist() == [0.0, 0.0, 0.0, 0.0]
    languages = bm25_gate(queries, latin, "language", ["de", "ru", None, "ar"], ["en"] * 10)
    assert languages.tolist() == [0.0, 0.0, 1.0, 0.0]  # German is Latin but not English
    assert bm25_gate(queries, latin, "language", [None] * 4, ["en"] * 5 + ["de"] * 5).sum() == 0
    with pytest.raises(ValueError, match="unknown gate"):
        bm25_gate(queries, latin, "words")


def test_fused_run_reranks_colbert_candidates_only() -> None:
    ids = ["a", "b", "c", "d"]
    scores = {
        "colbert": np.array([[4.0, 3.0, 2.0, 1.0], [4.0, 3.0, 2.0, 1.0]]),
        "bm25": np.array([[0.0, 5.0, 0.0, 9.0], [0.0, 5.0, 0.0, 9.0]]),
    }
    settings = Fusion(method="minmax", bm25=2.0, depth=3)
    run = fused_run(scores, settings, ids, ["q1", "q2"], k=10, gate=np.array([1.0, 0.0]))
    # q1: minmax colbert over a, b, c = 1, .5, 0; bm25 = 0, 1, 0 -> b (2.5) before a (1) before c (0);
    # d is outside ColBERT's top 3 and is never returned, however high its BM25
    assert run["q1"] == {"b": 2.5, "a": 1.0, "c": 0.0}
    assert list(run["q2"]) == ["a", "b", "c"]  # gated: ColBERT's own order
    assert list(fused_run(scores, settings, ids, ["q1", "q2"], k=2, gate=None)["q2"]) == ["b", "a"]


def test_fused_system_names() -> None:
    assert parse_fused("colbert-96+dense+bm25") == (96, ("dense", "bm25"))
    assert parse_fused("colbert-128+bm25") == (128, ("bm25",))
    for name in ("colbert-128", "bm25", "colbert-128+bm25+dense", "colbert-x+dense", "dense+bm25"):
        assert parse_fused(name) is None
    assert components(["bm25", "colbert-64+dense+bm25", "colbert-64+bm25"]) == ["colbert-64", "dense", "bm25"]
    assert colbert_dims(["colbert-96+bm25"]) == [96]
    assert needs_e5(["colbert-64+dense"]) and not needs_e5(["colbert-64+bm25", "bm25"])
    assert set(fusion.CHOSEN) == set(fusion.COMBINATIONS)
    for name in fusion.FUSED_SYSTEMS:  # each system's settings weigh exactly the signals it names
        settings, signals = fusion.fusion_of(name), (parse_fused(name) or (0, ()))[1]
        assert (settings.dense > 0, settings.bm25 > 0) == ("dense" in signals, "bm25" in signals)


def test_harness_computes_only_the_fused_systems_asked_for(toy_dataset: Path, tmp_path: Path) -> None:
    ds = load_beir(toy_dataset)
    e5 = E5Encoder(*tiny_e5_parts())
    asked = ["colbert-64+dense+bm25", "colbert-64+bm25"]
    (result,) = evaluate([ds], asked, tmp_path / "cache", colbert=ToyColBERT(), e5=e5, k=100)
    assert list(result.metrics) == asked == list(result.runs)
    assert set(result.timings["colbert-64+bm25"]) == {"fuse"}
    # The same fusion by hand, from the component systems' runs (4 documents: every score is in the run)
    (full,) = evaluate([ds], ["colbert-64", "bm25"], tmp_path / "cache", colbert=ToyColBERT(), k=100)
    colbert = np.array([[full.runs["colbert-64"][q][d] for d in ds.corpus_ids] for q in ds.query_ids])
    bm25 = np.array([[full.runs["bm25"][q].get(d, 0.0) for d in ds.corpus_ids] for q in ds.query_ids])
    settings = fusion.CHOSEN["bm25"]
    assert settings.method != "rrf"  # else the expected values below would be reciprocal ranks
    expected = normalise(colbert, settings.method) + settings.bm25 * normalise(bm25, settings.method)
    for i, qid in enumerate(ds.query_ids):
        got = result.runs["colbert-64+bm25"][qid]
        assert list(got) == [ds.corpus_ids[j] for j in np.argsort(-expected[i], kind="stable")]
        assert list(got.values()) == pytest.approx(sorted(expected[i], reverse=True), abs=1e-4)


def test_fused_systems_get_the_two_average_bars() -> None:
    metrics = {"nDCG@10": 0.0, "Recall@100": 0.0, "MRR@10": 0.0}

    def res(name: str, values: dict[str, float]) -> DatasetResult:
        return DatasetResult(name, {s: {**metrics, "nDCG@10": v} for s, v in values.items()}, {})

    values = {"dense": 0.80, "colbert-raw": 0.84, "colbert-128": 0.82, "colbert-128+bm25": 0.85}
    bars = {bar: (met, numbers) for bar, met, numbers in quality_bars([res("a", values)])}
    assert bars["average: colbert-128+bm25 >= dense + 0.03"] == (True, "0.8500 vs 0.8300 (dense 0.8000)")
    assert bars["average: colbert-128+bm25 >= colbert-raw"] == (True, "0.8500 vs 0.8400")
    assert bars["average: colbert-128 >= colbert-raw"] == (False, "0.8200 vs 0.8400")
    assert not any(bar.startswith("a: colbert-128+") for bar in bars)  # per-set bars stay ColBERT's own
