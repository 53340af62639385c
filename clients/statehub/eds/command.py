"""What ``statehub ingest-eds`` does once its options are parsed (statehub.cli.eds parses them).

Output: which plant the points went to and why, and bad rows as ``warning: bad
row FILE:LINE: reason`` lines, on stderr; progress on stderr when it is a
terminal; the summary on stdout (one JSON object with --json).  Errors are raised and
reported like every command's (statehub.cli.base): an unusable file or option
(EdsInputError) and --strict with bad rows (BadRowsRefused) are bad input, exit 2.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from statehub import Client, InvalidRequest
from statehub.cli.base import Settings, echo, reported, show_logs
from statehub.eds.ingest import BadRowsRefused, Options, Summary, ingest, parse_all
from statehub.eds.plan import Mode
from statehub.eds.point_map import read_point_map
from statehub.eds.progress import IngestProgress
from statehub.eds.records import BadRow, EdsInputError, ParseResult
from statehub.eds.timezones import plant_zone
from statehub.eds.watch import Outcome, Watcher

SHOWN_BAD_ROWS = 200  # on the terminal; --json lists them all
REVISIONS_KEPT_NOTE = 100_000  # the hub's default --history-keep
FORMAT_NAMES = ("auto", "long", "wide", "two-column", "json")


@dataclass(frozen=True)
class Request:
    files: list[str]
    fmt: str
    points: list[str]
    map_file: str | None
    plant: str | None
    tz: str | None
    mode: Mode
    strict: bool
    watch: str | None
    interval: float
    as_json: bool


def run(request: Request, settings: Settings) -> None:
    """Ingest the files (or watch the folder) of ``request`` into the hub ``settings`` name."""
    with reported(settings.debug), _bad_rows_shown():
        if request.fmt not in FORMAT_NAMES:
            raise InvalidRequest(f"unknown --format {request.fmt!r}: choose one of {', '.join(FORMAT_NAMES)}")
        if bool(request.files) == bool(request.watch):
            raise InvalidRequest("give export files, or --watch DIR (not both)")
        # fallback=False: planning from a stale mirror could commit older readings over newer ones.
        with settings.client(source="eds", fallback=False) as client:
            if request.watch:
                _watch(client, Path(request.watch), request)  # a hub that is down is waited for, file by file
            else:
                client.status()  # fails fast, with exit 5, when the hub is not running
                _ingest_files(client, request)


def options_for(client: Client, request: Request) -> Options:
    """Ingest options; the time zone is read through the waterfall now (the plants when naming)."""
    try:
        zone = plant_zone(str(request.tz or client.resolve("eds.timezone")))
    except ValueError as exc:
        raise EdsInputError("--tz (or the setting eds.timezone)", None, str(exc)) from None
    return Options(
        zone=zone,
        mode=request.mode,
        fmt=request.fmt,
        points=request.points,
        point_map=read_point_map(request.map_file) if request.map_file else None,
        plant=request.plant or None,
        strict=request.strict,
    )


# --- one-shot ----------------------------------------------------------------------


def _ingest_files(client: Client, request: Request) -> None:
    options = options_for(client, request)
    with IngestProgress(enabled=sys.stderr.isatty() and not request.as_json) as progress:
        progress.reading(len(request.files), sum(_size(file) for file in request.files))
        results = parse_all(request.files, options, progress.rows)
        _note_unmapped(results, options)
        summary = ingest(client, results, options, progress)
    if not request.as_json:
        _note_plants(summary)
    _warn_bad_rows(summary.bad_rows)
    echo(json.dumps(summary.as_dict()) if request.as_json else summary.text())


# --- watch -------------------------------------------------------------------------


def _watch(client: Client, folder: Path, request: Request) -> None:
    if not folder.is_dir():
        raise InvalidRequest(f"no folder {folder} to watch; create it first")
    show_logs()
    stop = threading.Event()

    def ingest_file(dropped: Path) -> Summary:
        options = options_for(client, request)  # per file: settings changed in the hub apply to the next one
        summary = ingest(client, parse_all([dropped], options), options)
        _warn_bad_rows(summary.bad_rows)
        return summary

    def show(outcome: Outcome) -> None:
        if request.as_json:
            echo(json.dumps(outcome.as_dict()))
        else:
            detail = outcome.summary.text() if outcome.summary else outcome.reason or "ingested before"
            echo(f"{outcome.status} {outcome.name} -> {outcome.moved_to.relative_to(folder)}: {detail}")
        sys.stdout.flush()

    echo(
        f"# watching {folder} every {request.interval:g} s (done/ and failed/ beside); Ctrl-C or SIGTERM stops",
        err=True,
    )
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())  # a handler only sets a flag
    try:
        with contextlib.suppress(KeyboardInterrupt):
            Watcher(folder, ingest_file).run(stop, request.interval, on_outcome=show)
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- output ------------------------------------------------------------------------


def _size(file: str) -> int:
    try:
        return Path(file).stat().st_size
    except OSError:
        return 0  # parsing says what is wrong with it


def _note_plants(summary: Summary) -> None:
    """Say where the points went, and why: the plant is chosen without flags, so say which."""
    for plant in summary.plants:
        count = f"{plant['points']} point{'s' if plant['points'] != 1 else ''}"
        echo(f"plant {plant['plant']} ({plant['why']}): {count} under {plant['prefix']}", err=True)
    if summary.backfill and summary.transactions > REVISIONS_KEPT_NOTE:
        echo(
            f"note: this replay made {summary.transactions} revisions; a hub keeps the history of its newest "
            f"--history-keep revisions ({REVISIONS_KEPT_NOTE:,} unless started with more)",
            err=True,
        )


def _note_unmapped(results: list[ParseResult], options: Options) -> None:
    if options.point_map is None and any(
        r.point_kind == "sid" for result in results for r in result.readings[:1]
    ):
        echo(
            "note: no point map, so points are named by SID (eds.<plant>.2308); pass --points MAP to name them by IESS",
            err=True,
        )


def _warn_bad_rows(bad_rows: list[BadRow]) -> None:
    for bad in bad_rows[:SHOWN_BAD_ROWS]:
        echo(f"warning: bad row {bad}", err=True)
    if len(bad_rows) > SHOWN_BAD_ROWS:
        echo(
            f"warning: ... and {len(bad_rows) - SHOWN_BAD_ROWS} more bad rows (--json lists them all)",
            err=True,
        )


@contextlib.contextmanager
def _bad_rows_shown() -> Iterator[None]:
    """Under --strict, list the bad rows that refused the ingest before the error line."""
    try:
        yield
    except BadRowsRefused as exc:
        _warn_bad_rows(exc.bad_rows)
        raise
