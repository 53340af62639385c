"""``statehub ingest-eds``: push Ovation EDS exports into the hub (docs/eds.md).

The options are parsed here; the work lives in statehub.eds.command, imported
when the command runs, so that merely building the ``statehub`` app stays fast.
"""

from __future__ import annotations

import typer

from statehub.cli.base import exit_codes_text, settings_of

INGEST_TIMEOUT = 5.0  # a big ingest's transactions take longer than a get

EPILOG = (
    "Keys: eds.<plant>.<point>, names escaped reversibly (see docs/eds.md). "
    f"Bad rows with --strict are bad input. {exit_codes_text()}"
)


def register(app: typer.Typer) -> None:
    """Add the ``ingest-eds`` command to ``app``."""
    app.command("ingest-eds", epilog=EPILOG)(ingest_eds)


# Options are declared as defaults (typer's older style) rather than with Annotated, which would
# need a typing import here; hence the B008 exemptions below.
def ingest_eds(
    ctx: typer.Context,
    files: list[str] | None = typer.Argument(  # noqa: B008
        None,
        metavar="FILES...",
        help="Export files: long, wide or two-column CSV, or tabular trend JSON.",
        show_default=False,
    ),
    fmt: str = typer.Option("auto", "--format", help="auto, long, wide, two-column or json."),
    point: list[str] | None = typer.Option(  # noqa: B008
        None,
        "--point",
        help="The point of a two-column file; for bare trend JSON, once per point in request order.",
        show_default=False,
    ),
    points: str | None = typer.Option(
        None, "--points", metavar="MAP", help="Point map: CSV (zd,idcs,iess,sid,...) or /points/export text."
    ),
    plant: str | None = typer.Option(
        None, "--plant", help="Plant name in the keys (default: the map's zd, else the setting eds.plant)."
    ),
    tz: str | None = typer.Option(
        None,
        "--tz",
        help="Time zone of naive timestamps (default: the setting eds.timezone, shipped as America/Chicago).",
    ),
    latest: bool = typer.Option(
        True,
        "--latest/--replay",
        help="Commit only the newest reading per point, or every reading in time order.",
    ),
    strict: bool = typer.Option(False, "--strict", help="Commit nothing if any row is bad (exit 2)."),
    watch: str | None = typer.Option(
        None,
        "--watch",
        metavar="DIR",
        help="Ingest each file dropped into DIR exactly once; keeps done/ and failed/.",
    ),
    interval: float = typer.Option(
        1.0, "--interval", min=0.05, help="With --watch: seconds between looks at DIR."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the summary as JSON (with --watch: one object per file)."
    ),
    data_dir: str | None = typer.Option(
        None,
        "--data-dir",
        help="The hub's data dir (default: statehub's --data-dir, $STATEHUB_DATA_DIR, the platform's).",
    ),
    timeout: float | None = typer.Option(
        None,
        "--timeout",
        min=0.01,
        help=f"Seconds to wait for the hub (default: at least {INGEST_TIMEOUT:g}).",
    ),
) -> None:
    """Ingest Ovation EDS exports: each point's reading becomes state under eds.<plant>.<point>."""
    from statehub.eds.command import Request, run

    parent = settings_of(ctx)  # statehub's global options, when run as `statehub --data-dir D ingest-eds`
    settings = parent.with_own(data_dir, timeout or max(parent.timeout, INGEST_TIMEOUT))
    run(
        Request(
            files=list(files or []),
            fmt=fmt,
            points=list(point or []),
            map_file=points,
            plant=plant,
            tz=tz,
            mode="latest" if latest else "replay",
            strict=strict,
            watch=watch,
            interval=interval,
            as_json=as_json,
        ),
        settings,
    )
