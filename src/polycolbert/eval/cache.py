"""On-disk cache of encodings, keyed by (encoder identity, side, dims) and then by each text's hash.

Keying by text rather than by dataset lets pools reuse work: the English XQuAD paragraphs encoded for
``xquad-en`` serve again in every ``xquad-xx@en`` and ``@mixed`` pool. The encoder identity includes a
fingerprint of the weights (see :func:`fingerprint_modules`), so a retrained model never reads stale vectors.

Layout: ``<root>/<encoder>/<side>-<dims>/<shard>/{keys.txt, offsets.npy, vectors.npy}``; a shard is
written in a temporary folder and renamed into place, so a crash leaves no partial shard. Vectors are
stored as float16 (half the disk) and every score is computed from the stored values, so a first run and
a cached rerun give identical numbers.

>>> import tempfile, numpy as np
>>> cache = EncodingCache(tempfile.mkdtemp(), "toy", "document", 2)
>>> calls = []
>>> def encode(texts):
...     calls.append(list(texts)); return [np.ones((len(t), 2), np.float32) for t in texts]
>>> [v.shape for v in cache.get_or_encode(["ab", "c"], encode)]
[(2, 2), (1, 2)]
>>> [v.shape for v in cache.get_or_encode(["c", "def"], encode)], calls
([(1, 2), (3, 2)], [['ab', 'c'], ['def']])
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

Encoder = Callable[[Sequence[str]], list[np.ndarray]]


def default_cache_dir() -> Path:
    """``$POLYCOLBERT_CACHE/eval`` if set, else the user cache folder (platformdirs)."""
    env = os.environ.get("POLYCOLBERT_CACHE")
    if env:
        return Path(env) / "eval"
    import platformdirs

    return Path(platformdirs.user_cache_dir("polycolbert")) / "eval"


def text_key(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def fingerprint_modules(modules: Iterable[object], extra: str = "") -> str:
    """A short hash of every parameter and buffer of the given modules/tensors (order matters).

    Hashing the weights costs about a second for a 118M-parameter backbone and is the only key that
    cannot go stale when a checkpoint is retrained under the same name.
    """
    digest = hashlib.blake2b(extra.encode("utf-8"), digest_size=12)
    for module in modules:
        if isinstance(module, torch.nn.Module):
            items = list(module.state_dict().items())
        elif isinstance(module, torch.Tensor):
            items = [("", module)]
        elif isinstance(module, np.ndarray):
            items = [("", torch.from_numpy(module))]
        else:
            continue
        for name, tensor in items:
            if not isinstance(tensor, torch.Tensor):  # e.g. a quantised layer's packed parameters
                digest.update(f"{name}:{tensor!r}".encode())
                continue
            t = tensor.detach().cpu()
            if t.is_quantized:
                t = t.int_repr()
            t = t.contiguous().reshape(-1)  # 0-d tensors (scales, zero points) cannot change dtype in place
            digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
            digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


class EncodingCache:
    """Vectors for one (encoder, side, dims), stored in append-only shards."""

    def __init__(self, root: str | Path, encoder: str, side: str, dims: int):
        self.folder = Path(root) / encoder / f"{side}-{dims}"
        self.dims = dims
        self._index: dict[str, tuple[Path, int]] = {}
        self._loaded: dict[Path, tuple[np.ndarray, np.ndarray]] = {}
        if self.folder.is_dir():
            for shard in sorted(
                p for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith(".")
            ):
                try:
                    keys = (shard / "keys.txt").read_text(encoding="utf-8").split()
                except OSError:
                    continue
                for i, key in enumerate(keys):
                    self._index.setdefault(key, (shard, i))

    def _shard(self, shard: Path) -> tuple[np.ndarray, np.ndarray]:
        if shard not in self._loaded:
            offsets = np.load(shard / "offsets.npy")
            vectors = np.load(shard / "vectors.npy", mmap_mode="r")
            self._loaded[shard] = (offsets, vectors)
        return self._loaded[shard]

    def _write(self, keys: list[str], vectors: list[np.ndarray]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.folder))
        try:
            offsets = np.zeros(len(vectors) + 1, dtype=np.int64)
            offsets[1:] = np.cumsum([len(v) for v in vectors])
            packed = (
                np.concatenate(vectors).astype(np.float16)
                if offsets[-1]
                else np.zeros((0, self.dims), np.float16)
            )
            np.save(tmp / "vectors.npy", packed)
            np.save(tmp / "offsets.npy", offsets)
            (tmp / "keys.txt").write_text("\n".join(keys) + "\n", encoding="utf-8")
            final = self.folder / uuid.uuid4().hex
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for i, key in enumerate(keys):
            self._index.setdefault(key, (final, i))

    def missing(self, texts: Sequence[str]) -> list[str]:
        """The distinct texts of ``texts`` that have no stored vectors yet, in first-seen order."""
        out: dict[str, str] = {}
        for text in texts:
            key = text_key(text)
            if key not in self._index and key not in out:
                out[key] = text
        return list(out.values())

    def put(self, texts: Sequence[str], vectors: Sequence[np.ndarray]) -> None:
        """Store one ``[n, dims]`` array per text (one new shard)."""
        if len(vectors) != len(texts):
            raise RuntimeError(f"encoder returned {len(vectors)} results for {len(texts)} texts")
        for v in vectors:
            if v.ndim != 2 or v.shape[1] != self.dims:
                raise RuntimeError(f"encoder returned shape {v.shape}, expected [n, {self.dims}]")
        if texts:
            self._write([text_key(t) for t in texts], list(vectors))

    def get(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Float32 vectors of texts already stored (KeyError otherwise)."""
        out = []
        for text in texts:
            shard, i = self._index[text_key(text)]
            offsets, vectors = self._shard(shard)
            out.append(np.asarray(vectors[offsets[i] : offsets[i + 1]], dtype=np.float32))
        return out

    def get_or_encode(self, texts: Sequence[str], encode: Encoder) -> list[np.ndarray]:
        """Float32 vectors for ``texts``, calling ``encode`` only on texts never seen before."""
        todo = self.missing(texts)
        if todo:
            self.put(todo, encode(todo))
        return self.get(texts)
