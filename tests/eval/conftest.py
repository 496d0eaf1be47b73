"""Fixtures for the evaluation tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from eval_fixtures import TOY_CORPUS, TOY_QRELS, TOY_QUERIES, write_beir


@pytest.fixture
def toy_dataset(tmp_path: Path) -> Path:
    return write_beir(tmp_path / "toy-en", TOY_CORPUS, TOY_QUERIES, TOY_QRELS)
