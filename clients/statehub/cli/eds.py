"""``statehub ingest-eds`` and ``statehub eds``: Ovation EDS exports into the hub, and back out (docs/eds.md).

The options are parsed here; the work lives in statehub.eds (command, migrate,
trend), imported when a command runs, so that merely building the ``statehub``
app stays fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from statehub.cli.base import echo, echo_json, exit_codes_text, reported, settings_of
from statehub.cli.options import JsonOption, add_command

INGEST_TIMEOUT = 5.0  # a batch of a thousand readings takes longer than a get, the more on an SD card

EPILOG = (
    "Keys: eds.<plant>.<tag>, e.g. eds.stiles.FI-405/415 for FI-405/415.UNIT1@NET1; the plant comes from "
    "--plant, the setting eds.plants.<UNIT-NET>, the point map's zd, eds.plant, else the suffix (docs/eds.md). "
    f"Bad rows with --strict are bad input. {exit_codes_text()}"
)

eds_app = typer.Typer(help="EDS points in the hub: a point's trend, and renaming the keys of earlier versions.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``ingest-eds`` and the ``eds`` group to ``app``."""
    app.command("ingest-eds", epilog=EPILOG)(ingest_eds)
    app.add_typer(eds_app, name="eds")
    add_command(eds_app, trend, "trend")
    add_command(eds_app, migrate_keys, "migrate-keys")


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
        None,
        "--plant",
        help="File every point under this plant (default: per point, the setting eds.plants.<UNIT-NET>, "
        "the map's zd, eds.plant, else the IESS suffix).",
    ),
    tz: str | None = typer.Option(
        None,
        "--tz",
        help="Time zone of naive timestamps (default: the setting eds.timezone, shipped as America/Chicago).",
    ),
    latest: bool = typer.Option(
        True,
        "--latest/--replay",
        help="Commit only the newest reading per point, or every reading in time order "
        "(one revision per reading time, marked backfill).",
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
    """Ingest Ovation EDS exports: each point's reading becomes state under eds.<plant>.<tag>."""
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


def trend(
    ctx: typer.Context,
    key: str,
    limit: Annotated[int, typer.Option(help="How many readings, the newest.", min=1, max=10000)] = 48,
    as_json: JsonOption = False,
) -> None:
    """Show a point's readings by reading time: value, units, status and quality, backfill or live."""
    from statehub.eds.trend import trend as read_trend

    settings = settings_of(ctx)
    with reported(settings.debug), settings.client() as client:
        rows = read_trend(client.history, key, limit)
        if as_json:
            echo_json([row.as_dict() for row in rows])
            return
        if not rows:
            echo(f"no readings in the history of {key!r} (within the hub's retention)")
            return
        echo(f"# {key}: {len(rows)} readings by reading time (plant-local), value, status and quality")
        for row in rows:
            echo(row.text())


def migrate_keys(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the renames; change nothing.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Rename the escaped keys of earlier versions (eds.Maxson.M100FI-2EUNIT0-40NET0) to readable ones
    (eds.maxson.M100FI), in one txn, history kept."""
    from statehub.eds.migrate import apply, plan_migration
    from statehub.eds.plants import read_plants
    from statehub.eds.resolve import suffixes

    settings = settings_of(ctx)
    with reported(settings.debug), settings.client(source="eds", fallback=False) as client:
        items = client.list("eds.").items
        points = [(item.value["point"], None) for item in items if isinstance(item.value, dict) and isinstance(item.value.get("point"), str)]
        migration = plan_migration(items, read_plants(client, None, suffixes(points)))
        if not dry_run:
            apply(client, migration)
    if as_json:
        echo_json({"dry_run": dry_run, **migration.as_dict()})
        return
    for rename in migration.renames:
        echo(rename.text())
    for key, why in migration.skipped:
        echo(f"warning: {key} stays: {why}", err=True)
    if not migration.renames:
        echo("no escaped EDS keys: nothing to rename")
    elif dry_run:
        echo(f"{len(migration.renames)} keys would be renamed (--dry-run: nothing was changed)")
    else:
        revs = ", ".join(str(rev) for rev in migration.revs)
        echo(
            f"renamed {len(migration.renames)} keys in {len(migration.revs)} txn{'s' if len(migration.revs) != 1 else ''} "
            f"(revision {revs}); each old key's history stays under its name, and `statehub eds trend NEW` follows it"
        )
