from __future__ import annotations

from pathlib import Path

import pytest
from eval_fixtures import write_beir

from polycolbert.corpus import CorpusError
from polycolbert.eval.crosslingual import crosslingual_pool, load_spec, mixed_pool, sibling_languages


@pytest.fixture
def parallel(tmp_path: Path) -> Path:
    texts = {
        "en": ({"p1": "The cat sleeps.", "p2": "Rain falls."}, {"q1": "Who sleeps?", "q2": "What falls?"}),
        "de": (
            {"p1": "Die Katze schläft.", "p2": "Regen fällt."},
            {"q1": "Wer schläft?", "q2": "Was fällt?"},
        ),
        "zh": ({"p1": "猫在睡觉。", "p2": "下雨了。"}, {"q1": "谁在睡觉？", "q2": "什么在下？"}),
    }
    for lang, (corpus, queries) in texts.items():
        write_beir(
            tmp_path / f"xq-{lang}", corpus, queries, [("q1", "p1", 1), ("q2", "p2", 1)], language=lang
        )
    return tmp_path


def test_queries_in_one_language_against_another(parallel: Path) -> None:
    ds = crosslingual_pool(parallel / "xq-de", "en")
    assert ds.name == "xq-de@en"
    assert ds.query_texts == ["Wer schläft?", "Was fällt?"]
    assert ds.corpus_texts == ["The cat sleeps.", "Rain falls."]
    assert ds.query_languages == ["de", "de"] and ds.doc_languages == ["en", "en"]
    assert ds.qrels == {"q1": {"p1": 1}, "q2": {"p2": 1}}


def test_mixed_pool_counts_every_translation_as_relevant(parallel: Path) -> None:
    assert sibling_languages(parallel / "xq-de") == ["de", "en", "zh"]
    ds = mixed_pool(parallel / "xq-zh")
    assert ds.name == "xq-zh@mixed"
    assert len(ds.corpus_ids) == 6 and "zh:p1" in ds.corpus_ids
    assert ds.qrels["q1"] == {"de:p1": 1, "en:p1": 1, "zh:p1": 1}
    assert ds.doc_languages[ds.corpus_ids.index("zh:p2")] == "zh"


def test_spec_strings(parallel: Path) -> None:
    assert load_spec(f"{parallel / 'xq-de'}@en").name == "xq-de@en"
    assert load_spec(f"{parallel / 'xq-de'}@mixed").name == "xq-de@mixed"
    assert load_spec(parallel / "xq-de").name == "xq-de"
    with pytest.raises(CorpusError, match="two-letter language code"):
        load_spec(f"{parallel / 'xq-de'}@english")
    with pytest.raises(CorpusError, match="not found"):
        load_spec(f"{parallel / 'xq-de'}@fr")


def test_non_parallel_folders_are_refused(parallel: Path) -> None:
    write_beir(parallel / "xq-fr", {"other": "x"}, {"q1": "y"}, [("q1", "other", 1)], language="fr")
    with pytest.raises(CorpusError, match="not parallel"):
        crosslingual_pool(parallel / "xq-de", "fr")
    with pytest.raises(CorpusError, match="<family>-<lang>"):
        crosslingual_pool(parallel / "xq-de" / "qrels", "en")
