"""What ``statehub ingest-eds`` does once its options are parsed (statehub.eds_cli parses them).

Output: bad rows as ``warning: bad row FILE:LINE: reason`` lines on stderr, the
summary on stdout (one JSON object with --json).  Errors: one ``error:`` line
on stderr and the documented exit code: 0 ok, 1 other error, 2 bad input
(including --strict with bad rows), 4 conflict, 5 hub unavailable, 6 storage.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import typer

from statehub.client import Client
from statehub.eds.ingest import BadRowsRefused, Options, Summary, ingest, parse_all
from statehub.eds.plan import Mode
from statehub.eds.point_map import read_point_map
from statehub.eds.records import BadRow, EdsInputError, ParseResult
from statehub.eds.timezones import plant_zone
from statehub.eds.watch import Outcome, Watcher
from statehub.hub import errors
from statehub.hub.errors import InvalidRequest

EXIT_ERROR, EXIT_BAD_INPUT, EXIT_CONFLICT, EXIT_HUB_DOWN, EXIT_STORAGE = 1, 2, 4, 5, 6
PROGRESS_MIN_WRITES = 2000  # smaller ingests finish before a bar is worth drawing
SHOWN_BAD_ROWS = 200  # on the terminal; --json lists them all
FORMAT_NAMES = ("auto", "long", "wide", "two-column", "json")

_EXIT_CODES: list[tuple[type[BaseException], int]] = [
    (EdsInputError, EXIT_BAD_INPUT),
    (BadRowsRefused, EXIT_BAD_INPUT),
    (InvalidRequest, EXIT_BAD_INPUT),
    (errors.InvalidRequest, EXIT_BAD_INPUT),
    (errors.ConflictError, EXIT_CONFLICT),
    (errors.HubUnavailable, EXIT_HUB_DOWN),
    (errors.StorageError, EXIT_STORAGE),
    (errors.StatehubError, EXIT_ERROR),
    (OSError, EXIT_ERROR),
]


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
    data_dir: str | None
    timeout: float
    debug: bool


def run(request: Request) -> None:
    with _reported(request.debug):
        if request.fmt not in FORMAT_NAMES:
            _fail(
                f"unknown --format {request.fmt!r}: choose one of {', '.join(FORMAT_NAMES)}", EXIT_BAD_INPUT
            )
        if bool(request.files) == bool(request.watch):
            _fail("give export files, or --watch DIR (not both)", EXIT_BAD_INPUT)
        # fallback=False: planning from a stale mirror could commit older readings over newer ones.
        with Client(request.data_dir, timeout=request.timeout, source="eds", fallback=False) as client:
            if request.watch:
                _watch(client, Path(request.watch), request)  # a hub that is down is waited for, file by file
            else:
                client.status()  # fails fast, with exit 5, when the hub is not running
                _ingest_files(client, request)


def options_for(client: Client, request: Request) -> Options:
    """Ingest options; the time zone and plant defaults are read through the waterfall now."""
    try:
        zone = plant_zone(str(request.tz or client.resolve("eds.timezone")))
    except ValueError as exc:
        raise EdsInputError("--tz (or the setting eds.timezone)", None, str(exc)) from None
    default_plant: Any = None
    if not request.plant:
        with contextlib.suppress(errors.NotFound):
            default_plant = client.resolve("eds.plant")
    return Options(
        zone=zone,
        mode=request.mode,
        fmt=request.fmt,
        points=request.points,
        point_map=read_point_map(request.map_file) if request.map_file else None,
        plant=request.plant or None,
        default_plant=str(default_plant) if default_plant else None,
        strict=request.strict,
    )


# --- one-shot ----------------------------------------------------------------------


def _ingest_files(client: Client, request: Request) -> None:
    options = options_for(client, request)
    results = parse_all(request.files, options)
    _note_unmapped(results, options)
    with _Progress(enabled=sys.stderr.isatty() and not request.as_json) as progress:
        summary = ingest(client, results, options, progress)
    _warn_bad_rows(summary.bad_rows)
    typer.echo(json.dumps(summary.as_dict()) if request.as_json else summary.text())


# --- watch -------------------------------------------------------------------------


def _watch(client: Client, folder: Path, request: Request) -> None:
    if not folder.is_dir():
        _fail(f"no folder {folder} to watch; create it first", EXIT_BAD_INPUT)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()

    def ingest_file(dropped: Path) -> Summary:
        options = options_for(client, request)  # per file: settings changed in the hub apply to the next one
        summary = ingest(client, parse_all([dropped], options), options)
        _warn_bad_rows(summary.bad_rows)
        return summary

    def show(outcome: Outcome) -> None:
        if request.as_json:
            typer.echo(json.dumps(outcome.as_dict()))
        else:
            detail = outcome.summary.text() if outcome.summary else outcome.reason or "ingested before"
            typer.echo(f"{outcome.status} {outcome.name} -> {outcome.moved_to.relative_to(folder)}: {detail}")
        sys.stdout.flush()

    typer.echo(
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


def _note_unmapped(results: list[ParseResult], options: Options) -> None:
    if options.point_map is None and any(
        r.point_kind == "sid" for result in results for r in result.readings[:1]
    ):
        typer.echo(
            "note: no point map, so points are named by SID (eds.<plant>.2308); pass --points MAP to name them by IESS",
            err=True,
        )


def _warn_bad_rows(bad_rows: list[BadRow]) -> None:
    for bad in bad_rows[:SHOWN_BAD_ROWS]:
        typer.echo(f"warning: bad row {bad}", err=True)
    if len(bad_rows) > SHOWN_BAD_ROWS:
        typer.echo(
            f"warning: ... and {len(bad_rows) - SHOWN_BAD_ROWS} more bad rows (--json lists them all)",
            err=True,
        )


class _Progress:
    """A bar on stderr for ingests of many writes; nothing for small ones or off a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None

    def __enter__(self) -> _Progress:
        return self

    def __call__(self, done: int, total: int) -> None:
        if self._bar is None:
            if not self.enabled or total < PROGRESS_MIN_WRITES:
                return
            self._bar = typer.progressbar(length=total, label="committing readings", file=sys.stderr)
            self._bar.__enter__()
        self._bar.update(done)

    def __exit__(self, *exc_info: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc_info)


# --- errors ------------------------------------------------------------------------


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def _reported(debug: bool) -> Iterator[None]:
    """One ``error:`` line and the documented exit code for expected failures; tracebacks with --debug."""
    try:
        yield
    except tuple(cls for cls, _code in _EXIT_CODES) as exc:
        if debug:
            raise
        if isinstance(exc, BadRowsRefused):
            _warn_bad_rows(exc.bad_rows)
        code = next(code for cls, code in _EXIT_CODES if isinstance(exc, cls))
        _fail(getattr(exc, "message", None) or str(exc), code)
