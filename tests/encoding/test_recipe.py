"""The ColBERT recipe, checked on the real XLM-R tokenizer against hand-derived expectations."""

from __future__ import annotations

import time

import pytest

from polycolbert.encoding.recipe import (
    Recipe,
    length_sorted_batches,
    plan_windows,
    stanford_skiplist,
    window_owners,
)
from polycolbert.models.spec import ModelSpec

QUERY_MARKER, DOC_MARKER, MASK = 250002, 250003, 250001


@pytest.fixture(scope="module")
def recipe(xlmr_tok):
    spec = ModelSpec(
        name="t",
        layout="polycolbert",
        backbone="xlm-roberta",
        hidden_size=8,
        head_dims=(128,),
        query_marker_id=QUERY_MARKER,
        doc_marker_id=DOC_MARKER,
    )
    return Recipe(spec, xlmr_tok)


def test_markers_are_the_jina_ids(xlmr_tok):
    assert xlmr_tok.token_to_id("[QueryMarker]") == QUERY_MARKER
    assert xlmr_tok.token_to_id("[DocumentMarker]") == DOC_MARKER
    assert xlmr_tok.token_to_id("<mask>") == MASK


def test_skiplist_follows_stanford_recipe(xlmr_tok):
    skip = stanford_skiplist(xlmr_tok)
    # Hand-checked: XLM-R splits "." into ["▁", "."], so Stanford's first-id rule masks the bare "▁" (6),
    # not "." (5); "!" is the single piece "▁!" (711).
    assert 6 in skip and 711 in skip
    assert 5 not in skip and 4 not in skip
    assert len(skip) <= 32


def test_query_is_marker_text_sep_then_masks(recipe, xlmr_tok):
    [query] = recipe.tokenize_queries(["Hello World"])
    pieces = xlmr_tok.encode("Hello World", add_special_tokens=False).ids
    [window] = query.windows
    assert window.ids[:2] == [0, QUERY_MARKER]
    assert window.ids[2 : 2 + len(pieces)] == pieces
    assert window.ids[2 + len(pieces)] == 2
    assert window.ids[3 + len(pieces) :] == [MASK] * (32 - 3 - len(pieces))
    assert len(window.ids) == 32 and query.n_rows == 32
    assert window.attention == [1] * 32  # jina attends to its <mask> padding
    assert query.n_tokens == 32


def test_long_query_is_cut_keeping_sep(recipe):
    [query] = recipe.tokenize_queries([" ".join(["word"] * 100)])
    ids = query.windows[0].ids
    assert len(ids) == 32 and ids[-1] == 2 and MASK not in ids and query.truncated


def test_query_without_mask_attention():
    from tiny_checkpoints import xlmr_tokenizer

    spec = ModelSpec(
        name="t",
        layout="stanford",
        backbone="xlm-roberta",
        hidden_size=8,
        head_dims=(128,),
        query_marker_id=QUERY_MARKER,
        doc_marker_id=DOC_MARKER,
        attend_to_mask_tokens=False,
    )
    [query] = Recipe(spec, xlmr_tokenizer()).tokenize_queries(["hi"])
    n_real = query.windows[0].ids.index(2) + 1
    assert query.windows[0].attention == [1] * n_real + [0] * (32 - n_real)
    assert query.n_rows == 32  # still 32 vectors, as Stanford returns them


def test_document_drops_skiplist_rows_keeps_specials(recipe, xlmr_tok):
    text = "Hello, world! It works."
    [doc] = recipe.tokenize_documents([text])
    pieces = xlmr_tok.encode(text, add_special_tokens=False).ids
    expected = [0, DOC_MARKER, *[p for p in pieces if p not in recipe.skiplist], 2]
    assert doc.token_ids == expected
    assert doc.n_rows == len(expected)
    assert 711 not in doc.token_ids  # "▁!" dropped
    assert doc.windows[0].ids == [0, DOC_MARKER, *pieces, 2]  # the model still sees every token
    assert doc.n_tokens == len(pieces) + 3
    # spans point back at the text
    for (start, end), tid in zip(doc.spans[2:-1], doc.token_ids[2:-1], strict=True):
        assert text[start:end].strip() == xlmr_tok.id_to_token(tid).replace("▁", "").strip()


def test_doc_truncation_lengths(recipe):
    text = " ".join(f"w{i}" for i in range(6000))
    [full] = recipe.tokenize_documents([text])
    assert full.truncated and full.n_tokens == 8192
    [short] = recipe.tokenize_documents([text], doc_maxlen=300)
    assert short.n_tokens == 300 and short.truncated


def test_windows_cover_every_row_once(xlmr_tok):
    spec = ModelSpec(
        name="t",
        layout="polycolbert",
        backbone="xlm-roberta",
        hidden_size=8,
        head_dims=(128,),
        query_marker_id=QUERY_MARKER,
        doc_marker_id=DOC_MARKER,
        max_positions=64,
    )
    [doc] = Recipe(spec, xlmr_tok).tokenize_documents(["Paris is the capital of France. " * 40])
    assert len(doc.windows) > 2
    targets = sorted(row for w in doc.windows for row in w.target_rows)
    assert targets == list(range(doc.n_rows))
    assert all(len(w.ids) <= 64 for w in doc.windows)
    for w in doc.windows:  # every row taken from a window comes from the token it stands for
        for src, dst in zip(w.source_rows, w.target_rows, strict=True):
            assert w.ids[src] == doc.token_ids[dst]


def test_plan_windows_and_owners():
    ranges = plan_windows(10, 4)
    assert ranges == [(0, 4), (3, 7), (6, 10)]
    owners = window_owners(10, ranges)
    assert owners == [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
    for piece, w in enumerate(owners):
        assert ranges[w][0] <= piece < ranges[w][1]


def test_million_characters_is_bounded(recipe):
    text = "lorem ipsum dolor sit amet " * 40000  # ~1.1M characters
    started = time.perf_counter()
    [doc] = recipe.tokenize_documents([text])
    assert doc.truncated and doc.n_tokens == 8192
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ([3], "must be a string"),
        (["ok", None], r"input\[1\]"),
        ("a string", "list of texts"),
    ],
)
def test_bad_input_is_a_clear_value_error(recipe, texts, message):
    with pytest.raises(ValueError, match=message):
        recipe.tokenize_documents(texts)
    with pytest.raises(ValueError, match=message):
        recipe.tokenize_queries(texts)


@pytest.mark.parametrize("text", ["", "   \n", '"', "?!...", "— … ¿?"])
def test_blank_text_encodes_to_its_special_rows_only(recipe, text):
    """XQuAD-R Hindi sentence 13_0_11 is a lone '"': it must encode, flagged, not stop the job."""
    ok, [doc] = recipe.tokenize_documents(["ok"]), recipe.tokenize_documents([text])
    assert doc.blank and not ok[0].blank
    assert doc.token_ids == [0, DOC_MARKER, 2] and doc.n_rows == 3 and doc.spans == [(0, 0)] * 3
    [window] = doc.windows
    assert window.ids == [0, DOC_MARKER, 2] and window.target_rows == [0, 1, 2]
    [query] = recipe.tokenize_queries(["ok", text])[1:]
    assert query.blank and query.n_rows == 32
    assert query.token_ids[:3] == [0, QUERY_MARKER, 2] and set(query.token_ids[3:]) == {MASK}


def test_length_sorted_batches_respect_limits():
    lengths = [10, 200, 30, 200, 5, 40]
    batches = list(length_sorted_batches(lengths, max_batch=2, max_tokens=300))
    assert sorted(i for b in batches for i in b) == list(range(6))
    for batch in batches:
        assert (len(batch) <= 2 and max(lengths[i] for i in batch) * len(batch) <= 300) or len(batch) == 1


def _padding_spec(query_padding: str) -> ModelSpec:
    return ModelSpec(
        name="t",
        layout="polycolbert",
        backbone="xlm-roberta",
        hidden_size=8,
        head_dims=(128,),
        query_marker_id=QUERY_MARKER,
        doc_marker_id=DOC_MARKER,
        query_padding=query_padding,  # type: ignore[arg-type]
    )


def test_repeat_padding_cycles_real_token_rows(xlmr_tok):
    spec = _padding_spec("repeat")
    [query] = Recipe(spec, xlmr_tok).tokenize_queries(["Hello World"])
    [window] = query.windows
    pieces = xlmr_tok.encode("Hello World", add_special_tokens=False).ids
    assert window.ids == [0, QUERY_MARKER, *pieces, 2] and MASK not in window.ids
    n = len(window.ids)
    assert query.n_rows == 32 and window.source_rows == [i % n for i in range(32)]
    assert query.token_ids == [window.ids[i % n] for i in range(32)]
    assert query.n_tokens == 32


def test_zero_padding_encodes_real_tokens_and_leaves_the_rest_empty(xlmr_tok):
    spec = _padding_spec("zero")
    [query] = Recipe(spec, xlmr_tok).tokenize_queries(["Hello World"])
    [window] = query.windows
    pieces = xlmr_tok.encode("Hello World", add_special_tokens=False).ids
    assert window.ids == [0, QUERY_MARKER, *pieces, 2] and window.attention == [1] * len(window.ids)
    n = len(window.ids)
    # output rows 0..n-1 come from the n real positions; rows n..31 are written by nobody (zero)
    assert window.source_rows == list(range(n)) and window.target_rows == list(range(n))
    assert query.n_rows == 32 and query.n_tokens == 32 and len(query.spans) == 32
    assert query.token_ids == [*window.ids, *[spec.pad_id] * (32 - n)]
