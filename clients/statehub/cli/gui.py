"""``statehub gui``: open the window (statehub.gui) on the hub the settings name."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from statehub.cli.base import reported, settings_of, show_logs
from statehub.cli.options import OwnDataDirOption, OwnTimeoutOption, add_command


def register(app: typer.Typer) -> None:
    add_command(app, gui)


def gui(
    ctx: typer.Context,
    data_dir: OwnDataDirOption = None,
    timeout: OwnTimeoutOption = None,
    filter_text: Annotated[str, typer.Option("--filter", help="Start with this filter text.")] = "",
    dump_state: Annotated[
        Path | None,
        typer.Option("--dump-state", hidden=True, help="Tests: write the visible table as JSON after each refresh."),
    ] = None,
) -> None:
    """Open a window with every key, live: filter, edit with compare-and-set, see history."""
    from statehub import StatehubError

    settings = settings_of(ctx).with_own(data_dir, timeout)
    with reported(settings.debug):
        show_logs()
        try:
            from statehub.gui.window import run
        except ImportError as exc:
            raise StatehubError(
                f"the GUI cannot start: {exc}",
                hint="install it with `pip install FreeSimpleGUI` (and Tk: on Debian `apt-get install python3-tk`)",
            ) from None
        with settings.client(source="gui") as client:
            try:
                run(client, filter_text=filter_text, dump_state=dump_state)
            except RuntimeError as exc:  # Tk without a display, among others
                raise StatehubError(f"the GUI cannot start: {exc}") from None
