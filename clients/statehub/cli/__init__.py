"""The ``statehub`` command line.

    base.py       settings, error reporting and exit codes, output: shared by every command (no typer)
    options.py    typer declarations several commands share (--json, a command's own --data-dir, ...)
    fast_get.py   ``statehub get`` without typer, for scripts that call it in loops
    argv.py       global options after the command, negative numbers as values: argv made Click's shape
    app.py        the typer app: global options, help, and every command group registered
    values.py     get, set, unset, list, history, status, explain
    watch.py      watch
    states.py     snapshot, rollback, export, import, queue, restore
    secrets.py    secret set|get|list|rotate-key
    keys.py       keys init|show-server|add|list|remove
    serve.py      serve (runs the hub)
    gui.py        gui
    sync_file.py  sync-file
    eds.py        ingest-eds

Command modules import only ``base``, ``options`` (``values`` also ``fast_get``)
and the public ``statehub`` API, plus the hub entry points named in
docs/clients.md; ``app`` imports them; nothing imports ``app`` but ``main``, so
there is no cycle.  Each command imports what it needs when it runs, so building
the app stays cheap.
"""

from __future__ import annotations

import sys


def main() -> None:
    """The ``statehub`` console script."""
    import logging

    from statehub.cli.fast_get import fast_get

    # The commands say themselves what the library logs (a hub going down, a resync), so its log lines
    # reach the terminal only where a command turns logging on (--debug, gui, sync-file, ingest-eds).
    logging.getLogger("statehub").addHandler(logging.NullHandler())

    code = fast_get(sys.argv[1:])
    if code is not None:
        raise SystemExit(code)
    from statehub.cli.app import run

    run(sys.argv[1:])
