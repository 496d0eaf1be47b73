"""The ``polycolbert`` command: thin sub-commands that parse, call the library and format."""

from __future__ import annotations

import typer

from polycolbert.cli import encode, train

app = typer.Typer(no_args_is_help=True, help="Multilingual late-interaction retrieval on your own machine.")
app.registered_commands += encode.app.registered_commands
app.registered_commands += train.app.registered_commands
