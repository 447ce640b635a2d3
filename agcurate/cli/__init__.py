"""The command line: parse, call the library, print a summary. One module per command family."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from .. import __version__
from .common import STATE

app = typer.Typer(
    name="agcurate",
    help="Curate image, video and satellite collections with embeddings: duplicates, keyframes, "
         "outliers, clusters and similarity search.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"agcurate {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    STATE.debug = debug or bool(os.environ.get("AGCURATE_DEBUG"))


def _register_all() -> None:
    from . import cluster, dedup, embed, frames, outliers, pretrain, probe, search

    for module in (embed, dedup, search, frames, outliers, cluster, pretrain, probe):
        module.register(app)


_register_all()


def main() -> None:
    """Console entry point."""
    app()
