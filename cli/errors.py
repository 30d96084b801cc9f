"""How the officer's commands fail and find their settings: one red line on stderr, exit 1
(refused) or 2 (bad input), never a traceback."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from dsr.settings import Settings, SettingsError, load_settings

err = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    # Escaped: messages quote rules such as '^[a-z_]{2,40}$' and paths, which are not markup.
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def cli_settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as error:
        fail(str(error))
