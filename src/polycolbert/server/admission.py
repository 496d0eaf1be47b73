"""How a request's model work is admitted: tokenised in a worker thread, held to the per-request token
cap, then queued on the model's ``Batcher`` (a full queue is a 429 with ``Retry-After``, never a wait).

Every route that encodes text goes through here (the Jina routes, and the index routes that add
documents or search), so one request cannot hog the model whichever route it comes by.
"""

from __future__ import annotations

import numpy as np
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from polycolbert.encoding.encoder import InputType
from polycolbert.encoding.recipe import TokenizedText
from polycolbert.server.batching import QueueFull
from polycolbert.server.errors import APIError
from polycolbert.server.registry import ServedDense, ServedModel


async def tokenize(
    served: ServedModel | ServedDense, texts: list[str], input_type: InputType
) -> list[TokenizedText]:
    """The texts as the model will read them; a text it cannot take is a 400 saying why."""
    try:
        return await run_in_threadpool(served.model.tokenize, texts, input_type)
    except ValueError as error:
        raise APIError(400, "INPUT_INVALID", str(error)) from None


async def encode(
    request: Request,
    served: ServedModel | ServedDense,
    tokenized: list[TokenizedText],
    dims: tuple[int, ...],
    field: str | None = None,
) -> dict[int, list[np.ndarray]]:
    """Token vectors at each size in ``dims``, once the request passed the token cap and the queue.

    ``field`` names the part of the body the tokens came from, in the refusal (``documents: ...``).
    """
    metrics = request.app.state.metrics
    tokens = sum(t.n_tokens for t in tokenized)  # as usage.total_tokens counts them
    limit = request.app.state.max_request_tokens
    if tokens > limit:
        where = f"{field}: " if field else ""
        raise APIError(
            400,
            "INPUT_TOO_LARGE",
            f"{where}This request is {tokens} tokens; this server accepts at most {limit} per "
            "request. Split the inputs over several requests.",
        )
    try:
        outputs = await served.batcher.encode(tokenized, dims)
    except QueueFull:
        metrics.rejected.labels(served.name).inc()
        raise APIError(
            429,
            "RATE_CONCURRENCY_LIMIT_EXCEEDED",
            "Server is at capacity; retry shortly",
            {"Retry-After": "1"},
        ) from None
    metrics.tokens.labels(served.name).inc(tokens)
    return outputs
