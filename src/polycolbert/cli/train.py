"""``polycolbert train``: fit Matryoshka heads (and optionally the backbone) on local data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from polycolbert.cli.errors import friendly_errors
from polycolbert.models.catalog import DEFAULT_MODEL

app = typer.Typer()


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
    model: Annotated[str, typer.Option(help="Base model: name, hub id or folder.")] = DEFAULT_MODEL,
    steps: Annotated[int, typer.Option(min=1)] = 1000,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    grad_accum: Annotated[int, typer.Option(min=1)] = 1,
    lr: float = 1e-3,
    backbone_lr: float = 2e-5,
    temperature: float = 1.0,
    dims: Annotated[str, typer.Option(help="Comma-separated head sizes.")] = "128,96,64",
    train_backbone: Annotated[str, typer.Option(help="none, top, all or lora.")] = "none",
    top_layers: int = 2,
    cache_lower_states: Annotated[
        bool, typer.Option(help="--train-backbone top: run the frozen lower layers once, not every step.")
    ] = True,
    lora_rank: int = 8,
    init_heads: Annotated[str, typer.Option(help="keep (the base model's heads) or pca.")] = "keep",
    self_distill: Annotated[
        float, typer.Option(help="Weight of distillation from centred backbone MaxSim.")
    ] = 0.0,
    negatives: Annotated[int, typer.Option(help="BM25 hard negatives per example (0: in-batch only).")] = 1,
    limit_per_source: Annotated[
        int | None, typer.Option(help="At most this many examples per --data.")
    ] = None,
    doc_maxlen: int = 256,
    seed: int = 0,
    device: str | None = None,
    save_every: int = 500,
    resume: bool = True,
) -> None:
    """Train with in-batch contrastive (+ hard negatives) and distillation losses, summed over sizes."""
    from polycolbert.train.data import add_bm25_negatives
    from polycolbert.train.trainer import TrainConfig, Trainer

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
