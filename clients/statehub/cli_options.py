"""What every group of CLI commands shares: the --json option and the global settings.

Kept apart from statehub.cli, which imports the command groups while it loads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from statehub.cli import Settings

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def settings_of(ctx: typer.Context) -> Settings:
    """The global options (data dir, timeout, remote hub) given before the command."""
    settings: Settings = ctx.find_root().obj
    return settings
