"""The typer declarations several commands share: --json, a command's own --data-dir and --timeout.

Kept apart from ``base`` so that the ``get`` fast path never imports typer.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from statehub.cli.base import exit_codes_text

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]

DataDirOption = Annotated[
    str | None,
    typer.Option("--data-dir", envvar="STATEHUB_DATA_DIR", help="The hub's data dir (default: the platform's)."),
]

# For the long-running commands (serve, gui, sync-file), which also take these after their name.  No
# envvar: $STATEHUB_DATA_DIR is read by the global option, which a command's own one must not override.
OwnDataDirOption = Annotated[
    str | None,
    typer.Option(
        "--data-dir",
        help="The hub's data dir (default: statehub's --data-dir, else $STATEHUB_DATA_DIR, else the platform's).",
    ),
]
OwnTimeoutOption = Annotated[
    float | None,
    typer.Option(help="Seconds to wait for a running hub to take a request and answer it [default: 0.5].", min=0.01),
]

PrefixOption = Annotated[str, typer.Option("--prefix", help="Only keys starting with this.")]

QueueOption = Annotated[
    bool,
    typer.Option(
        "--queue",
        help="If the hub is down, queue the change for it (checked against the mirror's revisions when applied).",
    ),
]


def add_command(app: typer.Typer, function: Any, name: str | None = None) -> None:
    """Register ``function`` as a command of ``app``, with the exit codes under its help like every command."""
    app.command(name, epilog=exit_codes_text())(function)
