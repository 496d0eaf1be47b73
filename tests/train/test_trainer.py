"""Training end to end on tiny checkpoints: loss falls, checkpoints reload, resume is exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polycolbert import ColBERT
from polycolbert.train.data import TrainingExample
from polycolbert.train.trainer import TrainConfig, Trainer
from tiny_checkpoints import write_stanford

CITIES = [("paris", "france"), ("berlin", "germany"), ("a", "b"), ("c", "d"), ("e", "f"), ("g", "h")]


def examples() -> list[TrainingExample]:
    out = []
    for city, country in CITIES:
        out.append(
            TrainingExample(f"capital {country}", f"{city} is the capital city of {country}", source="x")
        )
        out.append(TrainingExample(f"{city} river", f"the river of {city} has music", source="x"))
    return out


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    folder = tmp_path_factory.mktemp("base") / "tiny"
    write_stanford(folder, kind="bert", dim=16)
    return folder


def config(tmp_path, base, **kw) -> TrainConfig:
    values = dict(
        output=str(tmp_path / "out"),
        model=str(base),
        dims=(16, 8),
        steps=30,
        batch_size=6,
        lr=5e-3,
        doc_maxlen=32,
        save_every=1000,
        log_every=1,
        seed=0,
    )
    values.update(kw)
    return TrainConfig(**values)  # type: ignore[arg-type]


def test_heads_training_lowers_loss_and_reloads(tmp_path, base):
    trainer = Trainer(config(tmp_path, base, init_heads="pca"), examples())
    path = trainer.train(progress=False)
    first, last = trainer.history[0], trainer.history[-1]
    assert last["loss_16"] < first["loss_16"] and last["loss_8"] < first["loss_8"]
    reloaded = ColBERT.load(path, dtype="float32")
    assert reloaded.spec.head_dims == (16, 8) and reloaded.spec.layout == "polycolbert"
    batch = examples()[:2]
    # The reloaded checkpoint computes the same vectors as the trainer's in-memory heads.
    docs = reloaded.encode_documents([batch[0].positive], dimensions=8)[0]
    states = trainer.cache.documents[batch[0].positive].float()
    expected = torch.nn.functional.normalize(trainer.heads(states, 8), dim=-1).detach().numpy()
    assert np.abs(docs - expected).max() < 2e-3  # cache holds fp16 states


def test_resume_continues_exactly(tmp_path, base):
    straight = Trainer(config(tmp_path / "a", base, steps=12), examples())
    straight.train(progress=False)
    first = Trainer(config(tmp_path / "b", base, steps=6, save_every=6), examples())
    first.train(progress=False)
    resumed = Trainer(config(tmp_path / "b", base, steps=12), examples())
    assert resumed.step == 6
    resumed.train(progress=False)
    for key, value in straight.heads.state_dict().items():
        assert torch.allclose(value, resumed.heads.state_dict()[key], atol=1e-6)


@pytest.mark.parametrize("mode", ["top", "top-uncached", "lora"])
def test_backbone_training_is_saved_and_reloaded(tmp_path, base, mode):
    extra = {"cache_lower_states": False} if mode == "top-uncached" else {}
    settings = config(tmp_path, base, steps=3, train_backbone=mode.split("-")[0], lr=1e-2, backbone_lr=1e-2)
    trainer = Trainer(TrainConfig(**{**settings.__dict__, **extra}), examples())
    path = trainer.train(progress=False)
    reloaded = ColBERT.load(path, dtype="float32")
    original = ColBERT.load(base, dtype="float32")
    text = [examples()[0].positive]
    trainer.model.backbone.eval()
    mine = trainer.model.encode_documents(text, dimensions=16)[0]
    assert np.abs(reloaded.encode_documents(text, dimensions=16)[0] - mine).max() < 1e-4
    assert np.abs(original.encode_documents(text, dimensions=16)[0] - mine).max() > 1e-3


def test_no_examples_is_an_error(tmp_path, base):
    with pytest.raises(ValueError, match="no training examples"):
        Trainer(config(tmp_path, base), [])


def test_cached_lower_layers_give_the_full_models_loss_and_gradients(tmp_path, base):
    """Top-layer training on cached lower states computes what the whole backbone would (up to fp16)."""
    settings = config(tmp_path, base, train_backbone="top", top_layers=1, init_heads="pca")
    settings.lower_states_dtype = "float32"  # bf16 (the default where the CPU has it) would blur the check
    trainer = Trainer(settings, examples())
    assert trainer.split == trainer.model.backbone.num_layers - 1
    trainer.model.backbone.eval()  # no dropout: both paths must then agree
    batch = examples()[:6]
    results = []
    for cached in (trainer.lower_cache, None):
        trainer.lower_cache = cached
        trainer.optimizer.zero_grad()
        loss, _ = trainer.loss(batch)
        loss.backward()
        results.append(
            (float(loss.detach()), torch.cat([p.grad.flatten() for p in trainer.backbone_params]).clone())
        )
    (cached_loss, cached_grad), (full_loss, full_grad) = results
    assert cached_loss == pytest.approx(full_loss, rel=1e-3)
    assert torch.nn.functional.cosine_similarity(cached_grad, full_grad, dim=0) > 0.999
    assert cached_grad.abs().max() > 0  # the top layer really receives gradients


def test_top_layers_with_pca_heads_and_self_distillation_learn(tmp_path, base):
    trainer = Trainer(
        config(
            tmp_path,
            base,
            train_backbone="top",
            top_layers=1,
            init_heads="pca",
            self_distill_weight=1.0,
            backbone_lr=1e-3,
        ),
        examples(),
    )
    trainer.train(progress=False)
    assert trainer.history[-1]["loss_16"] < trainer.history[0]["loss_16"]
    manifest = (tmp_path / "out" / "polycolbert.json").read_text()
    assert "top 1 layers trained" in manifest


def test_top_layers_outside_the_backbone_are_an_error(tmp_path, base):
    with pytest.raises(ValueError, match="top_layers must be"):
        Trainer(config(tmp_path, base, train_backbone="top", top_layers=99), examples())


def test_lower_cache_refuses_texts_longer_than_one_window(base):
    from polycolbert.train.lower_cache import encode_lower

    model = ColBERT.load(base, dtype="float32")
    long_text = " ".join(["word"] * 400)
    with pytest.raises(ValueError, match="one window per text"):
        encode_lower(model, [long_text], "document", doc_maxlen=4096, upto=1, progress=False)
