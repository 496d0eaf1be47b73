"""The ``polycolbert`` command: thin sub-commands that parse, call the library and format."""

from __future__ import annotations

import typer

from polycolbert.cli import encode, index, models, rerank, serve, train
from polycolbert.cli import eval as eval_cli

app = typer.Typer(no_args_is_help=True, help="Multilingual late-interaction retrieval on your own machine.")
for sub in (serve, encode, models, rerank, train, eval_cli):
    app.registered_commands += sub.app.registered_commands
app.add_typer(index.app, name="index")
