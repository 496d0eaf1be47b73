"""Crash safety: a writer process SIGKILLed at random moments, repeatedly, never corrupts the index.

The writer adds fixed batches (ids ``b{batch}-{i}``) and prints the batch number after each commit
returns. After each kill the index must open, pass ``check()``, and hold exactly batches ``0..m`` where
``m`` is the last batch printed, or the next one (killed between its commit and the print). The next
writer resumes from what is in the index, so commits keep landing between kills.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from polycolbert.index import Index

DIMS = 16
BATCH = 40
WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from polycolbert.index import Index

    BATCH, DIMS = int(sys.argv[4]), int(sys.argv[5])
    path, start, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    index = Index.open(path)
    for b in range(start, stop):
        rng = np.random.default_rng(b)
        raw = rng.normal(size=(BATCH, 6, DIMS)).astype("float32")
        vectors = list(raw / np.linalg.norm(raw, axis=2, keepdims=True))
        ids = [f"b{b}-{i}" for i in range(BATCH)]
        index.add([f"text {i}" for i in ids], ids=ids, vectors=vectors, metadata=[{"b": b}] * BATCH)
        print(b, flush=True)
    """
)


def _batches_in(index: Index) -> set[int]:
    ids = index.ids()
    batches = {int(i.split("-")[0][1:]) for i in ids}
    expected = {f"b{b}-{i}" for b in batches for i in range(BATCH)}
    assert set(ids) == expected, "a batch is partly present: commits were not atomic"
    return batches


def test_sigkill_mid_add_leaves_last_commit(tmp_path: Path) -> None:
    path = tmp_path / "ix"
    Index.create(path, dimensions=DIMS, nbits=2).close()
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    rand = random.Random(0)
    committed = -1
    kills = 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for _ in range(5):
        proc = subprocess.Popen(
            [
                sys.executable,
                str(script),
                str(path),
                str(committed + 1),
                str(committed + 400),
                str(BATCH),
                str(DIMS),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()  # wait for at least one commit of this writer
        assert first.strip(), "writer died before committing anything"
        printed = int(first)
        time.sleep(rand.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        kills += proc.returncode == -signal.SIGKILL
        lines = [int(x) for x in out.split()]
        printed = max([printed, *lines])

        with Index.open(path) as index:
            assert index.check() == []
            batches = _batches_in(index)
            top = max(batches)
            assert batches == set(range(top + 1)), "a committed batch was lost"
            assert top in (printed, printed + 1)
            # the reopened index answers queries and never returns ids outside the committed batches
            rng = np.random.default_rng(top)
            raw = rng.normal(size=(BATCH, 6, DIMS)).astype("float32")
            q = raw[3] / np.linalg.norm(raw[3], axis=1, keepdims=True)
            hits = index.search(query_vectors=[q], k=5)[0]
            assert len(hits) == 5
            assert hits[0].id == f"b{top}-3"
            committed = top
    assert kills >= 4  # the writers really were killed mid-run, not finished
    with Index.open(path) as index:
        # a later writer cleans files left by killed writers: only referenced arrays remain
        rng = np.random.default_rng(99)
        raw = rng.normal(size=(2, 4, DIMS)).astype("float32")
        index.add(["x", "y"], ids=["x", "y"], vectors=list(raw / np.linalg.norm(raw, axis=2, keepdims=True)))
        assert index.check() == []
        assert not [f for f in (path / "segments").iterdir() if f.name.endswith(".tmp")]
        assert not list((path / "staging").iterdir())  # nor the staging folders of killed writers
