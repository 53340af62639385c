"""``statehub sync-file PATH``: keep a hand-editable file equal to the hub's state (statehub.sync_file)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from statehub.cli.base import reported, settings_of, show_logs
from statehub.cli.options import OwnDataDirOption, OwnTimeoutOption, add_command


def register(app: typer.Typer) -> None:
    add_command(app, sync_file, "sync-file")


def sync_file(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="The file to keep equal to the hub's state (created if missing).")],
    data_dir: OwnDataDirOption = None,
    timeout: OwnTimeoutOption = None,
    prefix: Annotated[str, typer.Option(help="Sync only keys starting with this (e.g. 'plant.').")] = "",
    fmt: Annotated[
        str | None, typer.Option("--format", help="toml or json [default: json for a .json file, else toml].")
    ] = None,
    interval: Annotated[float, typer.Option(help="Seconds between looks at the file.", min=0.02, max=60)] = 0.2,
    settle: Annotated[
        float, typer.Option(help="Seconds a save must hold still before it is read.", min=0.0, max=10)
    ] = 0.15,
) -> None:
    """Keep PATH equal to the hub's state; apply a person's saves with compare-and-set. Ctrl-C stops."""
    import contextlib
    import signal
    import threading

    from statehub import InvalidRequest, check_prefix
    from statehub.sync_file.adapter import FileSync, Options
    from statehub.sync_file.document import format_for

    settings = settings_of(ctx).with_own(data_dir, timeout)
    with reported(settings.debug):
        check_prefix(prefix)
        options = Options(path, prefix, format_for(path, fmt), interval, settle)
        folder = path.absolute().parent
        if not folder.is_dir():
            raise InvalidRequest(f"the folder {folder} does not exist; create it first")
        if path.is_dir():
            raise InvalidRequest(f"{path} is a folder; give a file name such as {path / 'state.toml'}")
        show_logs()
        stop = threading.Event()
        # SIGTERM only sets a flag: the loop finishes its turn, so a rewrite is never cut in half.
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with settings.client(source="file") as client, contextlib.suppress(KeyboardInterrupt):
            FileSync(client, options).run(stop)
