"""One way for every command to fail: a plain message on stderr and a non-zero exit, never a traceback.

What counts as the user's error: bad values (``ValueError``, which the project's own refusals
``CorpusError``, ``FilterError`` and ``CheckpointError`` are), missing or unreadable files and paths the
system refuses (``OSError``: not found, permission, a name too long, a folder where a file belongs), an
unknown key, an index that is busy or damaged. Anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from polycolbert.index.errors import IndexBusy, IndexDamaged

F = TypeVar("F", bound=Callable[..., Any])
USER_ERRORS = (ValueError, OSError, KeyError, IndexBusy, IndexDamaged)
EXIT_CODE = 2


def message(error: BaseException) -> str:
    """What is printed after ``error:``: the error's own words, or for a system error what failed on what."""
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    return str(error) or type(error).__name__


def friendly_errors(function: F) -> F:
    """Turn the errors users cause into ``error: ...`` on stderr and exit code 2."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except USER_ERRORS as error:
            print(f"error: {message(error)}", file=sys.stderr)
            raise typer.Exit(code=EXIT_CODE) from None

    return wrapper  # type: ignore[return-value]
