"""What every statehub command shares: settings, error reporting, exit codes and output.

The one place an exception becomes an ``error:`` line, a ``hint:`` line and an
exit code is ``reported``: the code and the default hint come from the error's
class (``statehub.StatehubError`` and its subclasses; ``tests/vectors/errors.json``
holds the table Rust is held to as well).  Commands raise; they never choose an
exit code themselves.

No typer here: ``statehub get`` runs through this module without loading typer
(see ``statehub.cli.fast_get``); the typer declarations are in ``options``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from statehub import (
    ConflictError,
    HubUnavailable,
    InvalidRequest,
    NotFound,
    OutcomeUnknown,
    StatehubError,
    StorageError,
    json_text,
)

if TYPE_CHECKING:
    from statehub import Client, Item, Origin, Queued, Version

EXIT_OK = 0

# What each exit code means, for --help and the docs; the codes themselves are the classes'.
EXIT_MEANINGS: tuple[tuple[type[StatehubError], str], ...] = (
    (StatehubError, "other error"),
    (InvalidRequest, "bad input"),
    (NotFound, "not found"),
    (ConflictError, "conflict"),
    (HubUnavailable, "hub unavailable"),
    (StorageError, "the hub could not persist the change"),
    (OutcomeUnknown, "a write's outcome is unknown (repeating it is safe)"),
)


def exit_codes_text() -> str:
    """``Exit codes: 0 ok, 1 other error, ...``: the epilog of every command's help."""
    meanings = ", ".join(f"{cls.exit_code} {words}" for cls, words in EXIT_MEANINGS)
    return f"Exit codes: {EXIT_OK} ok, {meanings}."


# --- settings ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """The global options (``statehub --data-dir D --timeout T ... COMMAND``)."""

    data_dir: str | None = None
    timeout: float = 0.5
    debug: bool = False
    hub: str | None = None  # a remote hub, tcp://HOST:PORT: see statehub.remote
    hub_events: str | None = None
    server_key: str | None = None

    def client(self, source: str = "cli", *, fallback: bool = True) -> Client:
        """A Client to the hub these settings name (remote ones included), writing as ``source``."""
        from statehub import Client

        return Client(
            self.data_dir,
            timeout=self.timeout,
            source=source,
            fallback=fallback,
            hub=self.hub,
            events=self.hub_events,
            server_key=self.server_key,
        )

    def data_path(self) -> Path:
        """The data dir these settings name (for commands on its files, without the hub)."""
        from statehub import resolve_data_dir

        return resolve_data_dir(self.data_dir)

    def with_own(self, data_dir: str | None, timeout: float | None) -> Settings:
        """These settings with a command's own --data-dir/--timeout, where it was given."""
        return replace(
            self,
            data_dir=data_dir or self.data_dir,
            timeout=self.timeout if timeout is None else timeout,
        )


def settings_of(ctx: Any) -> Settings:
    """The global options given before the command (``ctx`` is the command's typer.Context).

    A command group run on its own (a test's typer app without statehub's
    callback) gets the defaults, with $STATEHUB_DATA_DIR as the data dir.
    """
    settings = ctx.find_root().obj
    if isinstance(settings, Settings):
        return settings
    return Settings(data_dir=os.environ.get("STATEHUB_DATA_DIR") or None)


# --- errors ---------------------------------------------------------------------------------


def print_error(error: StatehubError, *, as_json: bool = False) -> None:
    """Print ``error`` as the CLI does: one ``error:`` line, and a ``hint:`` line when it has one.

    With ``as_json``, one JSON object on one line instead, for scripts:
    ``{"error": {"code": ..., "message": ..., "hint": ...}}`` (the code as on the wire).
    """
    if as_json:
        body = {"code": error.wire_code, "message": error.message, "hint": error.hint or None}
        print(json_text({"error": body}), file=sys.stderr)
        return
    print(f"error: {error.message}", file=sys.stderr)
    if error.hint:
        print(f"hint: {error.hint}", file=sys.stderr)


@contextlib.contextmanager
def reported(debug: bool = False, *, as_json: bool | None = None) -> Iterator[None]:
    """Turn an error into its ``error:``/``hint:`` lines (or, for --json, one JSON object) and its exit code.

    A file the command may not read or write (OSError) is exit 1 with the path
    and the reason.  With ``debug`` the traceback is shown instead.  ``as_json``
    None: as the running command's own ``--json`` says (see ``wants_json``).
    """
    try:
        yield
    except StatehubError as exc:
        if debug:
            raise
        print_error(exc, as_json=wants_json() if as_json is None else as_json)
        raise SystemExit(exc.exit_code) from None
    except OSError as exc:
        if debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        error = StatehubError(f"{where}{exc.strerror or exc}")
        print_error(error, as_json=wants_json() if as_json is None else as_json)
        raise SystemExit(StatehubError.exit_code) from None


def wants_json(default: bool = False) -> bool:
    """Whether the command running now was given ``--json`` (its parameter ``as_json``).

    Read from Click's current context, so ``reported`` needs no argument in every
    command; without Click loaded (the ``get`` fast path passes it), ``default``.
    """
    click = sys.modules.get("click")
    if click is None:
        return default
    context = click.get_current_context(silent=True)
    return bool(context.params.get("as_json", default)) if context is not None else default


@contextlib.contextmanager
def writing(*, can_queue: bool = False) -> Iterator[None]:
    """Around a write: a write that never reached the hub says nothing was written, and what to do.

    ``can_queue``: the command takes ``--queue`` and was not given it, so a hub
    that is not running gets that suggestion too.  A write that reached the hub
    unanswered is OutcomeUnknown, which passes untouched: it may be applied.
    """
    try:
        yield
    except HubUnavailable as exc:
        exc.message += "; nothing was written"
        if can_queue and exc.not_running:
            exc.hint = f"{exc.hint}, or add --queue to have the hub apply it when it starts"
        raise


# --- output -----------------------------------------------------------------------------------


def echo(text: str = "", *, err: bool = False) -> None:
    """One line of output (stderr with ``err``): results on stdout, everything about them on stderr."""
    print(text, file=sys.stderr if err else sys.stdout)


def echo_json(data: Any) -> None:
    """One JSON document on one line, for scripts."""
    print(json_text(data))


def item_dict(item: Item) -> dict[str, Any]:
    """An item as --json prints it: every field, empty ones too, so scripts can rely on the shape.

    The one exception is ``ttl``, present only when the key has one: it came
    later, and a key without a ttl prints as it always did.  statehub-rs prints
    the same (tests/vectors/cli.json holds both to it).
    """
    fields = struct_dict(item)
    if fields.get("ttl") is None:
        fields.pop("ttl", None)
    return fields


def struct_dict(record: Item | Version) -> dict[str, Any]:
    """Every field of a reply record, a nested struct (a site ``origin``) as plain JSON data."""
    import msgspec

    fields = msgspec.structs.asdict(record)
    return {
        name: msgspec.to_builtins(value) if isinstance(value, msgspec.Struct) else value
        for name, value in fields.items()
    }


def origin_dict(origin: Origin) -> dict[str, Any]:
    """Where a read came from; ``mirror_rev``/``mirror_age`` are null for hub reads."""
    return {
        "from_mirror": origin.from_mirror,
        "mirror_rev": origin.rev if origin.from_mirror else None,
        "mirror_age": origin.age,
    }


def warn_if_mirror(origin: Origin) -> None:
    """Say on stderr that a read came from the mirror: why, from which revision, how old, and what to do."""
    if origin.from_mirror:
        why = origin.hub_problem or "the hub is not answering"
        todo = f"; {origin.hint}" if origin.hint else ""
        echo(
            f"warning: {why}; showing the mirror at revision {origin.rev}, "
            f"{origin.describe().rsplit(', ', 1)[-1]} (values may be stale{todo})",
            err=True,
        )


def report_queued(queued: Queued, as_json: bool) -> None:
    """Report a write queued for a hub that is down: where it waits, and what it is checked against."""
    if as_json:
        echo_json({"queued": str(queued.path), "mirror_rev": queued.mirror_rev})
    else:
        echo(
            f"warning: the hub is down; queued the change in {queued.path} (it applies when the hub starts, "
            f"unless the keys moved on since revision {queued.mirror_rev}; see `statehub queue`)",
            err=True,
        )


@contextlib.contextmanager
def working(what: str, *, quiet: bool = False) -> Iterator[None]:
    """A spinner with ``what`` on stderr while long work runs: on a terminal only, so pipes, cron jobs
    and --json (``quiet``) see nothing but the result.  rich is imported only when it is drawn."""
    if quiet or not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(what):
        yield


def show_logs(level: int = logging.INFO) -> None:
    """Log lines on stderr, for the commands that keep running (gui, sync-file, ingest-eds --watch)."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
