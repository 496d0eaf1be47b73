"""The models a server serves, by the names clients use for them."""

from __future__ import annotations

from dataclasses import dataclass, field

from polycolbert.encoding.encoder import ColBERT
from polycolbert.models.catalog import DEFAULT_MODEL
from polycolbert.server.batching import Batcher
from polycolbert.server.errors import APIError

# Clients written for Jina's API name jina-colbert-v2; unless the real model is served under that name,
# it is an alias of the default model (listed as such in /v1/models, and responses name the real model).
DEFAULT_ALIASES = {"jina-colbert-v2": DEFAULT_MODEL}


@dataclass
class ServedModel:
    name: str
    model: ColBERT
    batcher: Batcher


@dataclass
class Registry:
    models: dict[str, ServedModel] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, model: ColBERT, batcher: Batcher) -> None:
        if name in self.models:
            raise ValueError(f"two models are served as {name!r}; give each a distinct NAME=PATH")
        self.models[name] = ServedModel(name, model, batcher)
        self.aliases.pop(name, None)

    def get(self, name: str) -> ServedModel:
        target = name if name in self.models else self.aliases.get(name, name)
        if target not in self.models:
            available = ", ".join(sorted([*self.models, *self.aliases]))
            raise APIError(
                400, "INPUT_MODEL_NOT_FOUND", f"Model '{name}' not found. Available models: {available}"
            )
        return self.models[target]

    def close(self) -> None:
        for served in self.models.values():
            served.batcher.close()
