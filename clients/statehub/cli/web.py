"""``statehub web``: the dashboard and HTTP API (the optional extra ``statehub[web]``).

The command group lives with the web package; importing it loads only typer,
so the CLI starts as fast without the extra as with it.
"""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    from statehub.web import command

    command.register(app)
