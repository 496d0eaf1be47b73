"""The models a server serves, by the names clients use for them.

Two kinds: ColBERT models (one vector per token: ``/v1/multi-vector``, ``/v1/rerank``, indexes, and
``/v1/embeddings`` in Jina's multi-vector shape) and single-vector models (``/v1/embeddings`` in OpenAI's
and Jina's dense shape; :mod:`polycolbert.encoding.dense`). Responses name a model as the request did,
so a client that asked for an alias gets the alias back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from polycolbert.encoding.dense import DenseEncoder
from polycolbert.encoding.encoder import ColBERT
from polycolbert.models.catalog import DEFAULT_MODEL
from polycolbert.server.batching import Batcher
from polycolbert.server.errors import APIError
from polycolbert.server.schemas import ModelCard

# Clients written for Jina's API name jina-colbert-v2; unless the real model is served under that name,
# it is an alias of the default model (listed as such in /v1/models).
DEFAULT_ALIASES = {"jina-colbert-v2": DEFAULT_MODEL}


@dataclass
class ServedModel:
    name: str
    model: ColBERT
    batcher: Batcher


@dataclass
class ServedDense:
    name: str
    model: DenseEncoder
    batcher: Batcher


@dataclass
class Registry:
    models: dict[str, ServedModel] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    dense: dict[str, ServedDense] = field(default_factory=dict)

    def add(self, name: str, model: ColBERT, batcher: Batcher) -> None:
        self._check_free(name)
        self.models[name] = ServedModel(name, model, batcher)
        self.aliases.pop(name, None)

    def add_dense(self, name: str, model: DenseEncoder, batcher: Batcher) -> None:
        self._check_free(name)
        self.dense[name] = ServedDense(name, model, batcher)
        self.aliases.pop(name, None)

    def _check_free(self, name: str) -> None:
        if name in self.models or name in self.dense:
            raise ValueError(f"two models are served as {name!r}; give each a distinct NAME=PATH")

    def names(self) -> list[str]:
        """Every served name, aliases included, sorted."""
        return sorted([*self.models, *self.dense, *self.aliases])

    def find(self, name: str) -> ServedModel | ServedDense:
        """The model of either kind that ``name`` (or the alias ``name``) serves."""
        if name in self.dense:
            return self.dense[name]
        target = name if name in self.models else self.aliases.get(name, name)
        if target not in self.models:
            raise APIError(
                400,
                "INPUT_MODEL_NOT_FOUND",
                f"Model '{name}' not found. Available models: {', '.join(self.names())}",
            )
        return self.models[target]

    def get(self, name: str) -> ServedModel:
        """The ColBERT model ``name`` serves; a single-vector model's name is a 400 saying where it goes."""
        served = self.find(name)
        if isinstance(served, ServedDense):
            colbert = ", ".join(sorted([*self.models, *self.aliases]))
            raise APIError(
                400,
                "INPUT_MODEL_NOT_SUPPORTED",
                f"Model '{name}' gives one vector per text: use it with /v1/embeddings. This route needs "
                f"a ColBERT model: {colbert}",
            )
        return served

    def cards(self) -> list[ModelCard]:
        """What ``/v1/models`` lists: every model, then every alias with the model it stands for."""
        cards = [ModelCard(id=name, info=served.model.info()) for name, served in self.models.items()]
        cards += [ModelCard(id=name, info=served.model.info()) for name, served in self.dense.items()]
        cards += [
            ModelCard(id=alias, alias_of=target, info=self.models[target].model.info())
            for alias, target in self.aliases.items()
            if target in self.models
        ]
        return cards

    def batchers(self) -> dict[str, Batcher]:
        batchers = {name: served.batcher for name, served in self.models.items()}
        return batchers | {name: served.batcher for name, served in self.dense.items()}

    def close(self) -> None:
        for batcher in self.batchers().values():
            batcher.close()
