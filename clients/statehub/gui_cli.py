"""The ``statehub gui`` and ``statehub sync-file`` commands.

``register(app)`` adds them to a Typer app.  Only typer is imported here at
module level; everything else is imported inside the commands, so the CLI
starts fast.  Both commands take ``--data-dir`` and ``--timeout`` themselves and
fall back to the main ``statehub`` options when those were given instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

EXIT_ERROR, EXIT_BAD_INPUT = 1, 2

DataDir = Annotated[
    str | None,  # noqa: UP007 - typer reads the annotation at run time
    typer.Option(
        "--data-dir", envvar="STATEHUB_DATA_DIR", help="The hub's data dir (default: the platform's)."
    ),
]
Timeout = Annotated[
    float | None,  # noqa: UP007
    typer.Option(help="Seconds to wait for the hub before treating it as down [default: 0.5].", min=0.01),
]


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _common(ctx: typer.Context, data_dir: str | None, timeout: float | None) -> tuple[str | None, float]:
    """This command's options, else the main command's (ctx.obj), else the defaults."""
    parent: Any = ctx.obj
    return (
        data_dir or getattr(parent, "data_dir", None),
        timeout if timeout is not None else float(getattr(parent, "timeout", 0.5)),
    )


def _logging() -> None:
    import logging

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S"
    )


def register(app: typer.Typer) -> None:
    """Add ``gui`` and ``sync-file`` to ``app``."""

    @app.command("gui")
    def gui(
        ctx: typer.Context,
        data_dir: DataDir = None,
        timeout: Timeout = None,
        filter_text: Annotated[str, typer.Option("--filter", help="Start with this filter text.")] = "",
        dump_state: Annotated[
            Path | None,  # noqa: UP007
            typer.Option(
                "--dump-state", hidden=True, help="Tests: write the visible table as JSON after each refresh."
            ),
        ] = None,
    ) -> None:
        """Open a window with every key, live: filter, edit with compare-and-set, see history."""
        directory, seconds = _common(ctx, data_dir, timeout)
        _logging()
        try:
            from statehub.gui.window import run
        except ImportError as exc:
            raise _fail(
                f"the GUI cannot start: {exc}; install it with `pip install FreeSimpleGUI` "
                "(and Tk: on Debian `apt-get install python3-tk`)",
                EXIT_ERROR,
            ) from None
        try:
            run(directory, timeout=seconds, filter_text=filter_text, dump_state=dump_state)
        except RuntimeError as exc:  # Tk without a display, among others
            raise _fail(f"the GUI cannot start: {exc}", EXIT_ERROR) from None

    @app.command("sync-file")
    def sync_file(
        ctx: typer.Context,
        path: Annotated[
            Path, typer.Argument(help="The file to keep equal to the hub's state (created if missing).")
        ],
        data_dir: DataDir = None,
        timeout: Timeout = None,
        prefix: Annotated[str, typer.Option(help="Sync only keys starting with this (e.g. 'plant.').")] = "",
        fmt: Annotated[
            str | None,  # noqa: UP007
            typer.Option("--format", help="toml or json [default: json for a .json file, else toml]."),
        ] = None,
        interval: Annotated[
            float, typer.Option(help="Seconds between looks at the file.", min=0.02, max=60)
        ] = 0.2,
        settle: Annotated[
            float, typer.Option(help="Seconds a save must hold still before it is read.", min=0.0, max=10)
        ] = 0.15,
    ) -> None:
        """Keep PATH equal to the hub's state; apply a person's saves with compare-and-set. Ctrl-C stops."""
        directory, seconds = _common(ctx, data_dir, timeout)
        from statehub.hub.errors import InvalidRequest
        from statehub.hub.rules import check_prefix
        from statehub.sync_file.document import format_for

        try:
            check_prefix(prefix)
            chosen = format_for(path, fmt)
        except (InvalidRequest, ValueError) as exc:
            raise _fail(str(exc), EXIT_BAD_INPUT) from None
        folder = path.absolute().parent
        if not folder.is_dir():
            raise _fail(f"the folder {folder} does not exist; create it first", EXIT_BAD_INPUT)
        if path.is_dir():
            raise _fail(f"{path} is a folder; give a file name such as {path / 'state.toml'}", EXIT_BAD_INPUT)
        _logging()
        _run_sync(path, directory, seconds, prefix, chosen, interval, settle)


def _run_sync(
    path: Path, data_dir: str | None, timeout: float, prefix: str, fmt: Any, interval: float, settle: float
) -> None:
    import contextlib
    import signal
    import threading

    from statehub.sync_file.adapter import FileSync, Options

    stop = threading.Event()
    # SIGTERM only sets a flag: the loop finishes its turn, so a rewrite is never cut in half.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    adapter = FileSync(Options(path, data_dir, prefix, fmt, interval, settle, timeout))
    with contextlib.suppress(KeyboardInterrupt):
        adapter.run(stop)
