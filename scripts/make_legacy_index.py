"""Write the format-3 index fixture (compressed segments in document order) with the release that wrote it.

Why: an index written by an older release must keep opening, searching and compacting correctly; the
oracle is that release's own files and its own search results, not a fixture shaped by today's loader.
Run from a checkout of commit 46b5e1f (the last to write format 3), with that checkout's ``src`` first on
the path:

    git worktree add /tmp/format3 46b5e1f
    PYTHONPATH=/tmp/format3/src .venv/bin/python scripts/make_legacy_index.py tests/fixtures/index-format3

It writes the index folder and ``expected.json``: the queries and that release's top-5 (ids and scores)
for each, by exhaustive search and by its cluster scan.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

DIMS = 16
DOCS = 700
TOKENS = 12  # 8,400 tokens: enough for a codec (params.MIN_CODEC_TOKENS)


def main(out: Path) -> None:
    import polycolbert
    from polycolbert.index import Index
    from polycolbert.index import params as P
    from polycolbert.index.writer import FORMAT_VERSION

    assert FORMAT_VERSION == 3, f"run with the format-3 release first on the path, not {polycolbert.__file__}"
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(40, DIMS))
    picks = centres[rng.integers(0, 40, size=(DOCS, TOKENS))] + 0.5 * rng.normal(size=(DOCS, TOKENS, DIMS))
    docs = list((picks / np.linalg.norm(picks, axis=2, keepdims=True)).astype(np.float32))
    queries = [d[:4] + 0.1 * rng.normal(size=(4, DIMS)).astype(np.float32) for d in docs[:: DOCS // 6][:6]]
    queries = [(q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32) for q in queries]
    index_dir = out / "index"
    with Index.create(index_dir, dimensions=DIMS, nbits=2) as index:
        half = DOCS // 2
        ids = [f"d{i}" for i in range(DOCS)]
        index.add([f"text {i}" for i in range(half)], ids=ids[:half], vectors=docs[:half])
        index.add([f"text {i}" for i in range(half, DOCS)], ids=ids[half:], vectors=docs[half:])
        index.delete(["d3"])
        exhaustive = index.search(query_vectors=queries, k=5, exhaustive=True)
        P.BRUTE_FORCE_TOKENS = 0
        scan = index.search(query_vectors=queries, k=5)
        assert index.check() == []
    hits = [[[h.id, h.score] for h in row] for row in exhaustive]
    scanned = [[[h.id, h.score] for h in row] for row in scan]
    expected = {
        "written_by": "polycolbert at 46b5e1f (index format 3), scripts/make_legacy_index.py",
        "queries": [q.tolist() for q in queries],
        "exhaustive": hits,
        "scan": scanned,
    }
    (out / "expected.json").write_text(json.dumps(expected))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
