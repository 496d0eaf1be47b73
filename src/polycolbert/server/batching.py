"""Dynamic batching: concurrent requests for one model share forward passes.

Requests tokenise (and are validated) on their own; only model work is queued. One worker thread per
model drains the queue, merging jobs (queries and documents, any mix of output sizes: one backbone pass
serves them all, each window keeping its own attention mask) until ``max_batch_tokens``. A full queue
is refused at once (HTTP 429), never waited on.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from polycolbert.encoding.protocol import TokenizedEncoder
from polycolbert.encoding.recipe import TokenizedText
from polycolbert.server.limits import MAX_BATCH_TOKENS, MAX_QUEUE


class QueueFull(Exception):
    """The model's queue is at capacity; the client should retry later."""


@dataclass
class Job:
    tokenized: list[TokenizedText]
    dims: tuple[int, ...]
    future: Future = field(default_factory=Future)

    @property
    def tokens(self) -> int:
        return sum(len(w.ids) for t in self.tokenized for w in t.windows)


class Batcher:
    def __init__(
        self,
        model: TokenizedEncoder,
        max_queue: int = MAX_QUEUE,
        max_batch_tokens: int = MAX_BATCH_TOKENS,
        wait_ms: float = 2.0,
        enabled: bool = True,
    ):
        self.model = model
        self.queue: queue.Queue[Job | None] = queue.Queue(maxsize=max_queue)
        self.max_batch_tokens = max_batch_tokens
        self.wait = wait_ms / 1000
        self.enabled = enabled  # False: every job alone (batch size 1), for measuring what batching buys
        self.batches = 0
        self.batched_jobs = 0
        self._thread = threading.Thread(target=self._work, name=f"batcher-{model.name}", daemon=True)
        self._thread.start()

    async def encode(
        self, tokenized: list[TokenizedText], dims: tuple[int, ...]
    ) -> dict[int, list[np.ndarray]]:
        job = Job(tokenized, dims)
        try:
            self.queue.put_nowait(job)
        except queue.Full:
            raise QueueFull from None
        return await asyncio.wrap_future(job.future)

    @property
    def depth(self) -> int:
        return self.queue.qsize()

    def close(self, timeout: float = 30.0) -> None:
        """Finish every queued job, then stop (graceful shutdown drains, it does not drop)."""
        self.queue.put(None)
        self._thread.join(timeout)

    def _work(self) -> None:
        pending: list[Job] = []
        while True:
            job = pending.pop(0) if pending else self.queue.get()
            if job is None:
                return
            group, tokens = [job], job.tokens
            deadline = time.monotonic() + self.wait
            while self.enabled and tokens < self.max_batch_tokens:
                try:
                    extra = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if extra is None:
                    self.queue.put(None)
                    break
                if tokens + extra.tokens <= self.max_batch_tokens:
                    group.append(extra)
                    tokens += extra.tokens
                else:
                    pending.append(extra)
                    break
            self._run(group)

    def _run(self, group: list[Job]) -> None:
        dims = tuple(dict.fromkeys(d for job in group for d in job.dims))
        texts = [t for job in group for t in job.tokenized]
        try:
            outputs = self.model.encode_tokenized(texts, dims)
        except Exception as error:  # handed to each waiting request, which turns it into an error response
            for job in group:
                job.future.set_exception(error)
            return
        self.batches += 1
        self.batched_jobs += len(group)
        start = 0
        for job in group:
            stop = start + len(job.tokenized)
            job.future.set_result({d: outputs[d][start:stop] for d in job.dims})
            start = stop
