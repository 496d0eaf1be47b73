"""``polycolbert train``: fit Matryoshka heads (and optionally the backbone) on local data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from polycolbert.cli.errors import friendly_errors
from polycolbert.train.trainer import TrainConfig

app = typer.Typer()
DEFAULT = TrainConfig(output="")  # every option's default is TrainConfig's


def load_data_spec(spec: str, limit: int | None, seed: int):
    """``file.jsonl`` (examples) or a BEIR folder, optionally ``FOLDER:qrels-file`` (default train.tsv)."""
    from polycolbert.train.data import beir_pairs, read_examples_jsonl

    path, _, qrels = spec.partition(":")
    if Path(path).is_file():
        examples = read_examples_jsonl(path)
        return examples[:limit] if limit else examples
    if not Path(path).is_dir():
        raise ValueError(f"--data {spec}: no such file or folder")
    return beir_pairs(path, qrels or "train.tsv", limit=limit, seed=seed)


@app.command()
@friendly_errors
def train(
    output: Annotated[Path, typer.Option(help="Folder for the checkpoint (polycolbert layout).")],
    data: Annotated[list[str], typer.Option(help="JSONL file or BEIR folder[:qrels.tsv]; repeatable.")],
    model: Annotated[str, typer.Option(help="Base model: name, hub id or folder.")] = DEFAULT.model,
    steps: Annotated[int, typer.Option(min=1)] = DEFAULT.steps,
    batch_size: Annotated[int, typer.Option(min=1)] = DEFAULT.batch_size,
    grad_accum: Annotated[int, typer.Option(min=1)] = DEFAULT.grad_accum,
    lr: float = DEFAULT.lr,
    backbone_lr: float = DEFAULT.backbone_lr,
    temperature: float = DEFAULT.temperature,
    dims: Annotated[str, typer.Option(help="Comma-separated head sizes.")] = ",".join(map(str, DEFAULT.dims)),
    train_backbone: Annotated[str, typer.Option(help="none, top, all or lora.")] = DEFAULT.train_backbone,
    top_layers: int = DEFAULT.top_layers,
    cache_lower_states: Annotated[
        bool, typer.Option(help="--train-backbone top: run the frozen lower layers once, not every step.")
    ] = DEFAULT.cache_lower_states,
    lora_rank: int = DEFAULT.lora_rank,
    init_heads: Annotated[
        str, typer.Option(help="keep (the base model's heads) or pca.")
    ] = DEFAULT.init_heads,
    self_distill: Annotated[
        float, typer.Option(help="Weight of distillation from centred backbone MaxSim.")
    ] = DEFAULT.self_distill_weight,
    negatives: Annotated[int, typer.Option(help="BM25 hard negatives per example (0: in-batch only).")] = 1,
    limit_per_source: Annotated[
        int | None, typer.Option(help="At most this many examples per --data.")
    ] = None,
    doc_maxlen: int = DEFAULT.doc_maxlen,
    seed: int = DEFAULT.seed,
    device: str | None = DEFAULT.device,
    save_every: int = DEFAULT.save_every,
    resume: bool = DEFAULT.resume,
) -> None:
    """Train with in-batch contrastive (+ hard negatives) and distillation losses, summed over sizes."""
    from polycolbert.train.data import add_bm25_negatives
    from polycolbert.train.trainer import Trainer

    if train_backbone not in ("none", "top", "all", "lora"):
        raise ValueError(f"--train-backbone must be none, top, all or lora; got {train_backbone!r}")
    if init_heads not in ("keep", "pca"):
        raise ValueError(f"--init-heads must be keep or pca; got {init_heads!r}")
    try:
        sizes = tuple(int(d) for d in dims.split(","))
    except ValueError:
        raise ValueError(f"--dims must be comma-separated integers; got {dims!r}") from None
    examples = [e for spec in data for e in load_data_spec(spec, limit_per_source, seed)]
    if negatives > 0:
        add_bm25_negatives([e for e in examples if not e.negatives], per_example=negatives, seed=seed)
    config = TrainConfig(
        output=str(output),
        model=model,
        dims=sizes,
        steps=steps,
        batch_size=batch_size,
        grad_accum=grad_accum,
        lr=lr,
        backbone_lr=backbone_lr,
        temperature=temperature,
        train_backbone=train_backbone,  # type: ignore[arg-type]
        top_layers=top_layers,
        cache_lower_states=cache_lower_states,
        lora_rank=lora_rank,
        init_heads=init_heads,  # type: ignore[arg-type]
        self_distill_weight=self_distill,
        doc_maxlen=doc_maxlen,
        seed=seed,
        device=device,
        save_every=save_every,
        resume=resume,
        extra={"data": list(data), "negatives": negatives, "limit_per_source": limit_per_source},
    )
    trainer = Trainer(config, examples)
    path = trainer.train()
    last = trainer.history[-1] if trainer.history else {}
    typer.echo(f"saved {path} after {trainer.step} steps; last losses {last}")
