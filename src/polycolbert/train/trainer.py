"""The training loop: Matryoshka heads (and optionally the backbone) on late-interaction losses.

With the backbone frozen (the default), token states never change, so they are computed once and kept
(fp16) in a :class:`StateCache`; each step then costs only the heads and MaxSim, which makes training
heads on a CPU take minutes instead of hours. Training the top layers keeps the same idea one level down:
the frozen lower layers' output is cached (:mod:`polycolbert.train.lower_cache`) and each step runs only
the layers being trained. Otherwise (all layers, LoRA adapters, or ``cache_lower_states=False``) states
are recomputed with gradients every step, on the CPU or a GPU unchanged, and across GPUs with torch
distributed when launched by ``torchrun``.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from polycolbert.encoding.encoder import STATES, ColBERT, DType
from polycolbert.models.backbones.layered import layered
from polycolbert.models.catalog import DEFAULT_MODEL
from polycolbert.models.checkpoint import save_polycolbert_checkpoint
from polycolbert.models.heads import ColBERTHeads
from polycolbert.models.spec import MATRYOSHKA_DIMS
from polycolbert.scoring import maxsim_padded
from polycolbert.train.data import TrainingExample
from polycolbert.train.losses import (
    contrastive_loss,
    distillation_loss,
    duplicate_positives,
    matryoshka_sum,
)
from polycolbert.train.lower_cache import LowerStateCache, final_states, run_upper

TRAINER_STATE = "trainer_state.pt"


@dataclass
class TrainConfig:
    """Every knob of a run; saved beside the checkpoint so a run can be repeated or resumed."""

    output: str
    model: str = DEFAULT_MODEL
    dims: tuple[int, ...] = MATRYOSHKA_DIMS
    steps: int = 1000
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 1e-3
    backbone_lr: float = 2e-5
    weight_decay: float = 0.0
    temperature: float = 1.0
    distill_weight: float = 1.0
    train_backbone: Literal["none", "top", "all", "lora"] = "none"
    top_layers: int = 2
    # top-layer training: cache the frozen lower layers' output once (fp16, one window per text) and run
    # only the trained layers each step; costs memory in proportion to the training tokens.
    cache_lower_states: bool = True
    lower_states_dtype: DType = "auto"  # compute dtype of that one pass (bf16 where the hardware has it)
    lora_rank: int = 8
    init_heads: Literal["keep", "pca"] = "keep"
    # Weight of a KL term towards MaxSim over the untrained backbone's own centred token states (frozen
    # backbone, or top layers over cached lower states): keeps training from losing what the raw states
    # already match well.
    self_distill_weight: float = 0.0
    doc_maxlen: int = 256
    seed: int = 0
    device: str | None = None
    save_every: int = 500
    log_every: int = 50
    resume: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


class StateCache:
    """Backbone token states of every training text, computed once (frozen backbone only)."""

    def __init__(self, model: ColBERT, queries: Sequence[str], documents: Sequence[str], doc_maxlen: int):
        self.queries = self.encode(model, queries, "query", doc_maxlen)
        self.documents = self.encode(model, documents, "document", doc_maxlen)

    @classmethod
    def from_tables(cls, queries: dict[str, torch.Tensor], documents: dict[str, torch.Tensor]) -> StateCache:
        """States computed elsewhere (e.g. by the top layers over a :class:`LowerStateCache`)."""
        cache = cls.__new__(cls)
        cache.queries, cache.documents = queries, documents
        return cache

    @staticmethod
    def encode(model: ColBERT, texts: Sequence[str], kind: str, doc_maxlen: int) -> dict[str, torch.Tensor]:
        """fp16 backbone states of each distinct text (documents cut at ``doc_maxlen`` tokens)."""
        unique = list(dict.fromkeys(texts))
        if kind == "document":
            tokenized = model.recipe.tokenize_documents(unique, doc_maxlen=doc_maxlen)
        else:
            tokenized = model.recipe.tokenize_queries(unique)
        states = model._run(tokenized, (STATES,), batch_size=32, progress=True)[STATES]
        return {text: torch.from_numpy(s).half() for text, s in zip(unique, states, strict=True)}

    def mean(self) -> torch.Tensor:
        """Mean token state over every cached row (the anisotropy direction to remove)."""
        total = torch.zeros(next(iter(self.documents.values())).shape[-1], dtype=torch.float64)
        count = 0
        for table in (self.queries, self.documents):
            for states in table.values():
                total += states.double().sum(dim=0)
                count += len(states)
        return (total / max(count, 1)).float()


def pad_rows(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack variable-length row sets; padding repeats each set's first row, so MaxSim needs no mask."""
    width = max(len(r) for r in rows)
    device = rows[0].device
    out = torch.empty(len(rows), width, rows[0].shape[-1], dtype=torch.float32, device=device)
    mask = torch.zeros(len(rows), width, dtype=torch.bool, device=device)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r.float()
        out[i, len(r) :] = r[0].float()
        mask[i, : len(r)] = True
    return out, mask


def pca_heads(
    cache: StateCache, dims: Sequence[int], sample_rows: int = 200_000, seed: int = 0
) -> ColBERTHeads:
    """Heads that start as centred PCA projections of the backbone's own token states.

    Centring removes the shared direction that makes raw transformer token vectors anisotropic (mean
    cosine 0.66 for e5-small), which matters most for cross-lingual matching; the bias carries it.
    """
    tables = [*cache.queries.values(), *cache.documents.values()]
    total = sum(len(t) for t in tables)
    generator = torch.Generator().manual_seed(seed)
    keep = min(1.0, sample_rows / max(total, 1))  # sample each text's rows: never stack the whole cache
    rows = torch.cat(
        [t[torch.rand(len(t), generator=generator) < keep] for t in tables] if keep < 1.0 else tables
    ).float()
    mean = rows.mean(dim=0)
    _, _, vh = torch.linalg.svd(rows - mean, full_matrices=False)
    weights = {d: vh[:d].contiguous() for d in dims}
    biases = {d: -(vh[:d] @ mean) for d in dims}
    return ColBERTHeads.from_weights(weights, biases)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


class Trainer:
    def __init__(
        self,
        config: TrainConfig,
        examples: list[TrainingExample],
        cache: StateCache | None = None,
        lower_cache: LowerStateCache | None = None,
    ):
        """``cache`` / ``lower_cache``: states already computed for these examples by the same frozen
        backbone (a caller comparing several trainings on one data set pays for the backbone pass once)."""
        if not examples:
            raise ValueError("no training examples")
        unknown = [d for d in config.dims if d <= 0]
        if unknown:
            raise ValueError(f"dims must be positive; got {config.dims}")
        self.config = config
        self.examples = examples
        by_source: dict[str, list[TrainingExample]] = {}
        for example in examples:
            by_source.setdefault(example.source, []).append(example)
        self.sources = [by_source[name] for name in sorted(by_source)]
        self.rank, self.world = _distributed()
        _seed_everything(config.seed + self.rank)
        device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if self.world > 1 and device == "cuda":
            device = f"cuda:{self.rank % torch.cuda.device_count()}"
        # A frozen backbone is only run once to fill the cache, so it may use bf16 where the CPU has it.
        dtype: DType = "auto" if config.train_backbone == "none" else "float32"
        self.model = ColBERT.load(config.model, dtype=dtype, device=device)
        self.device = self.model.device
        queries = [e.query for e in examples]
        documents = [d for e in examples for d in (e.positive, *e.negatives)]
        # cache: the frozen backbone's last-layer states (inputs of the heads when nothing else trains;
        # PCA initialisation and self-distillation teacher in every mode that has them).
        self.cache: StateCache | None = None
        self.lower_cache: LowerStateCache | None = None
        self.split = 0  # first trained layer when lower states are cached
        if config.train_backbone == "none":
            self.model.backbone.requires_grad_(False)
            self.cache = cache or StateCache(self.model, queries, documents, config.doc_maxlen)
        elif config.train_backbone == "top" and config.cache_lower_states:
            layers = layered(self.model.backbone).num_layers
            self.split = layers - config.top_layers
            if not 0 <= self.split < layers:
                raise ValueError(f"top_layers must be 1..{layers}; got {config.top_layers}")
            if lower_cache is not None and lower_cache.upto != self.split:
                raise ValueError(
                    f"lower_cache stops after layer {lower_cache.upto}, training needs {self.split}"
                )
            self.lower_cache = lower_cache or LowerStateCache(
                self.model, queries, documents, config.doc_maxlen, self.split, dtype=config.lower_states_dtype
            )
            self.cache = StateCache.from_tables(
                final_states(self.model, self.lower_cache.queries, self.split),
                final_states(self.model, self.lower_cache.documents, self.split),
            )
        self.state_mean: torch.Tensor | None = None
        if self.cache is not None:
            self.state_mean = self.cache.mean().to(self.device)
        self.heads = self._initial_heads().to(self.device)
        self.model.heads = self.heads  # the in-memory model always encodes with the heads being trained
        self.backbone_params = self._prepare_backbone()
        groups: list[dict[str, Any]] = [{"params": list(self.heads.parameters()), "lr": config.lr}]
        if self.backbone_params:
            groups.append({"params": self.backbone_params, "lr": config.backbone_lr})
        self.optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
        self.step = 0
        self.history: list[dict[str, float]] = []
        self._maybe_resume()

    # -- setup ------------------------------------------------------------------------------------------
    def _initial_heads(self) -> ColBERTHeads:
        dims = tuple(self.config.dims)
        if self.config.init_heads == "pca":
            if self.cache is None:
                raise ValueError(
                    "init_heads='pca' needs the frozen backbone's states: train_backbone='none', or 'top' "
                    "with cache_lower_states"
                )
            return pca_heads(self.cache, dims, seed=self.config.seed)
        existing = self.model.heads
        if not existing.is_linear:
            raise ValueError(
                "the checkpoint's heads are a non-linear Dense chain; training starts from linear heads: "
                "use init_heads='pca' (--init-heads pca) or a checkpoint with linear heads"
            )
        weights, biases = {}, {}
        for d in dims:
            with torch.no_grad():
                probe = torch.eye(existing.hidden_size, device=self.device)
                zero = torch.zeros(1, existing.hidden_size, device=self.device)
                offset = existing(zero, d)[0]
                weights[d] = (existing(probe, d) - offset).T.detach().cpu()
                biases[d] = offset.detach().cpu()
        has_bias = any(bool(b.abs().max() > 0) for b in biases.values())
        return ColBERTHeads.from_weights(weights, biases if has_bias else None)

    def _prepare_backbone(self) -> list[nn.Parameter]:
        mode = self.config.train_backbone
        backbone = self.model.backbone
        if mode == "none":
            return []
        backbone.train()
        if mode == "all":
            return [p for p in backbone.parameters() if p.requires_grad]
        backbone.requires_grad_(False)
        if mode == "top":
            layers = _encoder_layers(backbone)
            chosen = layers[-self.config.top_layers :]
            for layer in chosen:
                layer.requires_grad_(True)
            return [p for layer in chosen for p in layer.parameters()]
        from polycolbert.train.lora import add_lora

        return add_lora(backbone, self.config.lora_rank)

    # -- steps ------------------------------------------------------------------------------------------
    def _batch(self, generator: random.Random) -> list[TrainingExample]:
        """Examples from one source (chosen in proportion to its size): same language and similar
        lengths, so in-batch negatives are harder and padding is small."""
        source = generator.choices(self.sources, weights=[len(g) for g in self.sources])[0]
        return generator.sample(source, min(self.config.batch_size, len(source)))

    def _encode_batch(self, batch: list[TrainingExample]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Query states, the mask of their real rows, and document states of one batch.

        The query mask matters for ``query_padding="zero"``, whose queries come with fewer than
        query_maxlen rows: their padding rows must score zero in training as they do at inference."""
        documents = [e.positive for e in batch] + [n for e in batch for n in e.negatives]
        if self.lower_cache is not None:
            q_rows = run_upper(self.model, [self.lower_cache.queries[e.query] for e in batch], self.split)
            d_rows = run_upper(self.model, [self.lower_cache.documents[d] for d in documents], self.split)
            q_states, q_mask = pad_rows(q_rows)
            d_states, _ = pad_rows(d_rows)
            return q_states, q_mask, d_states
        if self.config.train_backbone == "none" and self.cache is not None:
            q_states, q_mask = pad_rows([self.cache.queries[e.query] for e in batch])
            d_states, _ = pad_rows([self.cache.documents[d] for d in documents])
            return q_states.to(self.device), q_mask.to(self.device), d_states.to(self.device)
        return self._forward_with_grad([e.query for e in batch], documents)

    def _forward_with_grad(self, queries: list[str], documents: list[str]):
        recipe = self.model.recipe
        q_tok = recipe.tokenize_queries(queries)
        d_tok = recipe.tokenize_documents(documents, doc_maxlen=self.config.doc_maxlen)
        outputs = []
        for tokenized in (q_tok, d_tok):
            rows = []
            for text in tokenized:
                window = text.windows[0]  # training truncates to one window (doc_maxlen <= positions)
                ids = torch.tensor([window.ids], device=self.device)
                attention = torch.tensor([window.attention], device=self.device)
                states = self.model.forward_states(ids, attention)[0]
                rows.append(states[torch.tensor(window.source_rows, device=self.device)])
            width = max(len(r) for r in rows)
            padded = torch.zeros(len(rows), width, rows[0].shape[-1], device=self.device)
            mask = torch.zeros(len(rows), width, dtype=torch.bool, device=self.device)
            for i, r in enumerate(rows):
                padded[i, : len(r)] = r
                padded[i, len(r) :] = r[0]  # repeat a real row: MaxSim needs no mask
                mask[i, : len(r)] = True
            outputs.append((padded, mask))
        return outputs[0][0], outputs[0][1], outputs[1][0]

    def _teacher_states(self, batch: list[TrainingExample], q_states: torch.Tensor, d_states: torch.Tensor):
        """The untrained backbone's states of this batch: the inputs themselves when it is frozen."""
        if self.lower_cache is None or self.cache is None:
            return q_states, d_states
        documents = [e.positive for e in batch] + [n for e in batch for n in e.negatives]
        tq, _ = pad_rows([self.cache.queries[e.query] for e in batch])
        td, _ = pad_rows([self.cache.documents[d] for d in documents])
        return tq.to(self.device), td.to(self.device)

    def loss(self, batch: list[TrainingExample]) -> tuple[torch.Tensor, dict[str, float]]:
        q_states, q_mask, d_states = self._encode_batch(batch)
        q_keep = q_mask.unsqueeze(-1).float()  # padding rows of zero-padded queries add nothing
        n = len(batch)
        positives = torch.arange(n, device=self.device)
        documents = [e.positive for e in batch] + [d for e in batch for d in e.negatives]
        exclude = duplicate_positives(documents[:n], documents).to(self.device)
        negative_columns = []
        offset = n
        for e in batch:
            negative_columns.append(list(range(offset, offset + len(e.negatives))))
            offset += len(e.negatives)
        per_dim = {}
        logs = {}
        teacher_inbatch = None
        if self.config.self_distill_weight > 0 and self.state_mean is not None:
            with torch.no_grad():
                raw_q, raw_d = self._teacher_states(batch, q_states, d_states)
                tq = F.normalize(raw_q - self.state_mean, dim=-1) * q_keep
                td = F.normalize(raw_d - self.state_mean, dim=-1)
                teacher_inbatch = maxsim_padded(tq, td)
        for dim in self.config.dims:
            q = F.normalize(self.heads(q_states, dim), dim=-1) * q_keep
            d = F.normalize(self.heads(d_states, dim), dim=-1)
            scores = maxsim_padded(q, d)
            loss = contrastive_loss(scores, positives, self.config.temperature, exclude)
            teacher_rows = [i for i, e in enumerate(batch) if e.teacher_scores is not None]
            if teacher_rows and self.config.distill_weight > 0:
                student = torch.stack([scores[i, [i, *negative_columns[i]]] for i in teacher_rows])
                teacher = torch.tensor([batch[i].teacher_scores for i in teacher_rows], device=self.device)
                loss = loss + self.config.distill_weight * distillation_loss(
                    student, teacher.float(), self.config.temperature
                )
            if teacher_inbatch is not None:
                loss = loss + self.config.self_distill_weight * distillation_loss(
                    scores, teacher_inbatch, self.config.temperature
                )
            per_dim[dim] = loss
            logs[f"loss_{dim}"] = float(loss.detach())
        return matryoshka_sum(per_dim), logs

    def train(self, progress: bool = True) -> Path:
        config = self.config
        generator = random.Random(config.seed * 1000 + self.rank)
        for _ in range(self.step * config.grad_accum):  # resumed runs replay the same batch order
            self._batch(generator)
        bar = None
        if progress and self.rank == 0:
            from rich.progress import Progress

            bar = Progress(transient=True)
            bar.start()
            task = bar.add_task("training", total=config.steps, completed=self.step)
        started = time.perf_counter()
        while self.step < config.steps:
            self.optimizer.zero_grad()
            logs: dict[str, float] = {}
            for _ in range(config.grad_accum):
                loss, logs = self.loss(self._batch(generator))
                (loss / config.grad_accum).backward()
            if self.world > 1:
                for p in self._trainable():
                    if p.grad is not None:
                        dist.all_reduce(p.grad)
                        p.grad /= self.world
            self.optimizer.step()
            self.step += 1
            if self.step % config.log_every == 0 or self.step == config.steps:
                self.history.append({"step": self.step, "seconds": time.perf_counter() - started, **logs})
                if bar is not None and not bar.console.is_terminal:  # logs and CI get lines, not a bar
                    losses = " ".join(f"{k}={v:.3f}" for k, v in logs.items())
                    print(f"step {self.step}/{config.steps} {losses}", file=sys.stderr, flush=True)
            if bar is not None:
                bar.advance(task)
            if self.step % config.save_every == 0 and self.step < config.steps:
                self.save(final=False)
        if bar is not None:
            bar.stop()
        return self.save(final=True)

    def _trainable(self) -> list[nn.Parameter]:
        return [*self.heads.parameters(), *self.backbone_params]

    # -- checkpoints ------------------------------------------------------------------------------------
    def save(self, final: bool) -> Path:
        output = Path(self.config.output)
        if self.rank != 0:
            return output
        manifest = self._manifest()
        backbone_state = backbone_update = None
        source = self.model.checkpoint_extra.get("manifest", {}).get("backbone", {}).get("source", "")
        if self.config.train_backbone != "none":
            from polycolbert.train.lora import merged_state_dict

            trained = merged_state_dict(self.model.backbone)
            if source.startswith("packaged:"):
                changed = {k for k, _ in self._changed_names()}
                backbone_update = {k: v for k, v in trained.items() if k in changed}
            else:
                backbone_state = trained
        elif not source.startswith("packaged:"):
            backbone_state = self.model.backbone.state_dict()
        tokenizer = None if source.startswith("packaged:") else self.model.tokenizer
        save_polycolbert_checkpoint(output, manifest, self.heads, backbone_state, backbone_update, tokenizer)
        state = {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "heads": self.heads.state_dict(),
            "backbone": {
                n: p.detach().cpu() for n, p in self.model.backbone.named_parameters() if p.requires_grad
            },
            "config": asdict(self.config),
        }
        torch.save(state, output / TRAINER_STATE)
        (output / "training.json").write_text(
            json.dumps({"config": asdict(self.config), "history": self.history, "final": final}, indent=2)
        )
        return output

    def _changed_names(self) -> list[tuple[str, nn.Parameter]]:
        from polycolbert.train.lora import base_names_of_trainable

        return base_names_of_trainable(self.model.backbone)

    def _manifest(self) -> dict[str, Any]:
        spec = self.model.spec
        base = self.model.checkpoint_extra.get("manifest", {})
        backbone = base.get("backbone") or {
            "source": "files",
            "kind": spec.backbone,
            "config": self.model.checkpoint_extra.get("backbone_config", {}),
        }
        token = self.model.tokenizer.id_to_token
        return {
            "name": Path(self.config.output).name,
            "backbone": backbone,
            "recipe": {
                "query_maxlen": spec.query_maxlen,
                "doc_maxlen": spec.doc_maxlen,
                "query_marker": token(spec.query_marker_id) if spec.query_marker_id is not None else None,
                "doc_marker": token(spec.doc_marker_id) if spec.doc_marker_id is not None else None,
                "query_prefix": spec.query_prefix,
                "doc_prefix": spec.doc_prefix,
                "attend_to_mask_tokens": spec.attend_to_mask_tokens,
                "query_padding": spec.query_padding,
                "mask_punctuation": spec.mask_punctuation,
            },
            "license": spec.license,
            "notes": [
                n for n in spec.notes if not n.startswith(("heads:", "one trained head", "trained backbone:"))
            ]
            + [f"heads: trained by polycolbert train from {self.config.model} ({self.step} steps)"]
            + self._backbone_note(),
            "base_model": self.config.model,
        }

    def _backbone_note(self) -> list[str]:
        mode = self.config.train_backbone
        if mode == "none":
            return []
        what = {"top": f"top {self.config.top_layers} layers", "all": "all layers", "lora": "LoRA adapters"}[
            mode
        ]
        return [
            f"trained backbone: {what} trained with the heads ({self.step} steps); "
            "the update is stored beside them"
        ]

    def _maybe_resume(self) -> None:
        path = Path(self.config.output) / TRAINER_STATE
        if not (self.config.resume and path.exists()):
            return
        state = torch.load(path, map_location=self.device, weights_only=False)
        self.heads.load_state_dict(state["heads"])
        trainable = dict(self.model.backbone.named_parameters())
        with torch.no_grad():
            for name, value in state["backbone"].items():
                trainable[name].copy_(value)
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])


def _encoder_layers(backbone: nn.Module) -> list[nn.Module]:
    for module in backbone.modules():
        for attr in ("layer", "layers"):
            layers = getattr(module, attr, None)
            if isinstance(layers, nn.ModuleList) and len(layers) > 0:
                return list(layers)
    raise ValueError("cannot find the encoder layers of this backbone to train its top layers")
