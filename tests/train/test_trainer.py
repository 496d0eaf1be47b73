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


@pytest.mark.parametrize("mode", ["top", "lora"])
def test_backbone_training_is_saved_and_reloaded(tmp_path, base, mode):
    trainer = Trainer(
        config(tmp_path, base, steps=3, train_backbone=mode, lr=1e-2, backbone_lr=1e-2), examples()
    )
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
