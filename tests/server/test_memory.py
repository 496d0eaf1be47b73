"""glibc malloc settings of the server (server/memory.py): applied on Linux, harmless everywhere."""

from __future__ import annotations

import sys

from polycolbert.server.memory import release_free_memory, tune_malloc


def test_arenas_are_capped_and_free_memory_is_released():
    assert tune_malloc() is sys.platform.startswith("linux")
    release_free_memory()  # returns, whatever the platform
