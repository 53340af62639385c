"""The ``statehub`` command line.

Exit codes (also in ``statehub --help``): 0 ok, 1 other error, 2 bad input,
3 not found, 4 conflict, 5 hub unavailable, 6 the hub could not persist.
Imports beyond typer happen inside the commands, to keep start-up fast.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from statehub.cli_options import JsonOption
from statehub.cli_options import settings_of as _settings

if TYPE_CHECKING:
    from statehub.client import Client, Origin
    from statehub.hub.protocol import Changed, Item
    from statehub.remote import Remote

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_NOT_FOUND, EXIT_CONFLICT, EXIT_HUB_DOWN, EXIT_STORAGE = range(7)

EPILOG = (
    "Exit codes: 0 ok, 1 other error, 2 bad input, 3 not found, 4 conflict, "
    "5 hub unavailable, 6 the hub could not persist the change."
)

app = typer.Typer(
    help="statehub: one hub owns your settings and live state; everything else asks it and subscribes.",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@dataclass
class Settings:
    data_dir: str | None
    timeout: float
    debug: bool
    hub: str | None = None  # a remote hub (tcp://HOST:PORT); see statehub.remote
    hub_events: str | None = None
    server_key: str | None = None

    def client(self, source: str = "cli") -> Client:
        from statehub.client import Client

        return Client(
            self.data_dir,
            timeout=self.timeout,
            source=source,
            hub=self.hub,
            events=self.hub_events,
            server_key=self.server_key,
        )

    def remote(self) -> Remote | None:
        from statehub.remote import resolve_remote

        return resolve_remote(self.hub, self.hub_events, self.server_key)


DataDirOption = Annotated[
    str | None,
    typer.Option("--data-dir", envvar="STATEHUB_DATA_DIR", help="The hub's data dir (default: the platform's)."),
]
QueueOption = Annotated[
    bool,
    typer.Option(
        "--queue",
        help="If the hub is down, queue the change for it (checked against the mirror's revisions when applied).",
    ),
]


@app.callback()
def main_options(
    ctx: typer.Context,
    data_dir: DataDirOption = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the hub before treating it as down.", min=0.01)
    ] = 0.5,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    hub: Annotated[
        str | None,
        typer.Option(
            "--hub",
            help="A hub on another machine, tcp://HOST:PORT (env STATEHUB_HUB; else [hub] rpc in client.toml). "
            "Reached over CURVE: see `statehub keys init` and docs/security.md.",
        ),
    ] = None,
    hub_events: Annotated[
        str | None,
        typer.Option("--hub-events", help="Its change stream (env STATEHUB_HUB_EVENTS; default: the --hub port + 1)."),
    ] = None,
    server_key: Annotated[
        str | None,
        typer.Option(
            "--server-key",
            help="The remote hub's public key, or a file holding it (env STATEHUB_SERVER_KEY; "
            "the hub prints it with `statehub keys show-server`).",
        ),
    ] = None,
) -> None:
    ctx.obj = Settings(data_dir, timeout, debug, hub, hub_events, server_key)
    if debug:
        import logging

        logging.basicConfig(level=logging.DEBUG)


# --- errors -----------------------------------------------------------------------


def _fail(message: str, code: int, hint: str = "") -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    if hint:
        typer.echo(f"hint: {hint}", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def _reported(settings: Settings) -> Iterator[None]:
    """Turn statehub's exceptions into one error line, the class's hint and its exit code."""
    from statehub.hub.errors import StatehubError

    try:
        yield
    except StatehubError as exc:
        if settings.debug:
            raise
        _fail(exc.message, exc.exit_code, exc.hint)


# --- output helpers -----------------------------------------------------------------


def _text(value: Any) -> str:
    """A value for people: strings as they are, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _item_dict(item: Item) -> dict[str, Any]:
    import msgspec

    data: dict[str, Any] = msgspec.to_builtins(item)
    data.pop("type", None)
    return data


def _origin_dict(origin: Origin) -> dict[str, Any]:
    """Where a read came from; ``mirror_rev``/``mirror_age`` are null for hub reads."""
    return {
        "from_mirror": origin.from_mirror,
        "mirror_rev": origin.rev if origin.from_mirror else None,
        "mirror_age": origin.age,
    }


def _warn_if_mirror(origin: Origin) -> None:
    if origin.from_mirror:
        typer.echo(
            f"warning: the hub is not answering; showing the mirror at revision {origin.rev}, "
            f"{origin.describe().rsplit(', ', 1)[-1]} (values may be stale; start the hub with `statehub serve`)",
            err=True,
        )


def _when(seconds: float) -> str:
    from statehub.hub.mirror import iso_time

    return iso_time(seconds)[:19].replace("T", " ") + "Z"


# --- commands -----------------------------------------------------------------------


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
def serve(ctx: typer.Context) -> None:
    """Run the hub (all options: statehub serve --help)."""
    from statehub.hub.command import main as serve_main

    args = list(ctx.args)
    settings = _settings(ctx)
    if settings.data_dir and "--data-dir" not in args:
        args = ["--data-dir", settings.data_dir, *args]
    raise typer.Exit(serve_main(args))


@app.command()
def get(
    ctx: typer.Context,
    key: str,
    as_json: JsonOption = False,
) -> None:
    """Print the value of KEY (from the mirror, with a warning, when the hub is down)."""
    _print_value(_settings(ctx), key, as_json)


def _print_value(settings: Settings, key: str, as_json: bool) -> None:
    with _reported(settings), settings.client() as client:
        reading = client.get(key)
        _warn_if_mirror(reading.origin)
        if as_json:
            typer.echo(_json({**_item_dict(reading.item), **_origin_dict(reading.origin)}))
        else:
            typer.echo(_text(reading.value))


@app.command("set")
def set_(
    ctx: typer.Context,
    key: str,
    value: Annotated[str, typer.Argument(help="JSON when it parses as JSON (30, true, [1,2]), else a string.")],
    string: Annotated[bool, typer.Option("--string", help="Store VALUE as a string even if it parses as JSON.")] = False,
    expect_rev: Annotated[
        int | None,
        typer.Option("--expect-rev", help="Only if KEY is still at this revision (0: only if it does not exist).", min=0),
    ] = None,
    queue: QueueOption = False,
    as_json: JsonOption = False,
) -> None:
    """Set KEY to VALUE; prints the new revision."""
    from statehub.waterfall import parse_text_value

    settings = _settings(ctx)
    parsed = value if string else parse_text_value(value)
    with _reported(settings), settings.client() as client:
        committed = _write_or_explain(lambda: client.set(key, parsed, expect=expect_rev, queue=queue))
        if _queued(committed, as_json):
            return
        if as_json:
            typer.echo(_json({"rev": committed.rev, "epoch": committed.epoch, "duplicate": committed.duplicate}))
        else:
            typer.echo(f"{key} = {_text(parsed)}  (revision {committed.rev})")


@app.command()
def unset(
    ctx: typer.Context,
    key: str,
    expect_rev: Annotated[
        int | None, typer.Option("--expect-rev", help="Only if KEY is still at this revision.", min=1)
    ] = None,
    queue: QueueOption = False,
    as_json: JsonOption = False,
) -> None:
    """Remove KEY."""
    settings = _settings(ctx)
    with _reported(settings), settings.client() as client:
        committed = _write_or_explain(lambda: client.unset(key, expect=expect_rev, queue=queue))
        if _queued(committed, as_json):
            return
        if as_json:
            typer.echo(_json({"rev": committed.rev, "epoch": committed.epoch}))
        else:
            typer.echo(f"unset {key}  (revision {committed.rev})")


def _queued(result: Any, as_json: bool) -> bool:
    """Report a write queued for a hub that is down; True if it was."""
    from statehub.client import Queued

    if not isinstance(result, Queued):
        return False
    if as_json:
        typer.echo(_json({"queued": str(result.path), "mirror_rev": result.mirror_rev}))
    else:
        typer.echo(
            f"warning: the hub is down; queued the change in {result.path} (it applies when the hub starts, "
            f"unless the keys moved on since revision {result.mirror_rev}; see `statehub queue`)",
            err=True,
        )
    return True


def _write_or_explain(write: Any) -> Any:
    """Run a write; on a hub-down error, say the write did not happen and what to do."""
    from statehub.hub.errors import ConflictError, HubUnavailable

    try:
        return write()
    except HubUnavailable as exc:
        _fail(f"{exc.message}; nothing was written", EXIT_HUB_DOWN, "add --queue to have the hub apply it when it returns")
    except ConflictError as exc:
        detail = exc.conflicts[0] if exc.conflicts else None
        if detail is not None and detail.exists:
            exc.message += f" (value {_text(detail.value)}, set by {detail.source or '?'} at {_when(detail.time)})"
        raise


@app.command("list")
def list_(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="Only keys starting with this (use 'plant.' for a subtree).")] = "",
    as_json: JsonOption = False,
) -> None:
    """List keys and values, sorted by key."""
    settings = _settings(ctx)
    with _reported(settings), settings.client() as client:
        listing = client.list(prefix)
        _warn_if_mirror(listing.origin)
        if as_json:
            items = [_item_dict(item) for item in listing.items]
            typer.echo(
                _json({"rev": listing.origin.rev, "epoch": listing.origin.epoch, **_origin_dict(listing.origin), "items": items})
            )
            return
        for item in listing.items:
            typer.echo(f"{item.key} = {_json(item.value)}")


@app.command()
def watch(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="Only keys starting with this.")] = "",
    as_json: JsonOption = False,
    count: Annotated[int | None, typer.Option(help="Exit after this many changes.", min=1)] = None,
) -> None:
    """Print every change as it happens; resyncs and hub outages are shown too. Ctrl-C stops."""
    from statehub.hub.paths import resolve_data_dir
    from statehub.hub.rules import check_prefix
    from statehub.subscription import HubDown, Subscription, Synced

    settings = _settings(ctx)
    with _reported(settings):
        check_prefix(prefix)
        seen = 0
        with contextlib.suppress(KeyboardInterrupt), Subscription(
            resolve_data_dir(settings.data_dir), prefix=prefix, timeout=settings.timeout, remote=settings.remote()
        ) as subscription:
            for event in subscription:
                if isinstance(event, HubDown):
                    _print_down(event, as_json)
                    continue
                if isinstance(event, Synced):
                    _print_synced(event, len(subscription.items), prefix, as_json)
                changes = event.changes
                for change in changes:
                    typer.echo(_change_line(change, as_json))
                seen += len(changes) if not isinstance(event, Synced) else 0
                sys.stdout.flush()
                if count is not None and seen >= count:
                    return


def _print_down(event: Any, as_json: bool) -> None:
    mirror = event.mirror
    if as_json:
        typer.echo(_json({"event": "hub_down", "reason": event.reason, "mirror_rev": mirror.rev if mirror else None}))
    else:
        where = f"; the mirror is at revision {mirror.rev}" if mirror else ""
        typer.echo(f"# hub down: {event.reason}{where}; waiting for it to come back", err=True)


def _print_synced(event: Any, keys: int, prefix: str, as_json: bool) -> None:
    if as_json:
        typer.echo(
            _json({"event": "synced", "rev": event.rev, "epoch": event.epoch, "reason": event.reason, "keys": keys})
        )
    elif event.first:
        typer.echo(f"# watching '{prefix}' at revision {event.rev} ({keys} keys)", err=True)
    else:
        typer.echo(
            f"# resynced at revision {event.rev}: {event.reason}; {len(event.changes)} keys differ", err=True
        )


def _change_line(change: Changed, as_json: bool) -> str:
    if as_json:
        import msgspec

        data = msgspec.to_builtins(change)
        data["event"] = data.pop("type")
        return _json(data)
    who = "/".join(part for part in (change.source, change.user) if part) or "?"
    what = f"{change.key} = {_json(change.value)}" if change.op == "set" else f"unset {change.key}"
    return f"[{change.rev}] {what}  ({who}, {_when(change.time)})"


@app.command()
def history(
    ctx: typer.Context,
    key: str,
    limit: Annotated[int, typer.Option(help="How many versions, newest first.", min=1, max=10000)] = 20,
    as_json: JsonOption = False,
) -> None:
    """Show who changed KEY, when, and from what to what."""
    import msgspec

    settings = _settings(ctx)
    with _reported(settings), settings.client() as client:
        versions = client.history(key, limit)
        if as_json:
            typer.echo(_json([msgspec.to_builtins(v) for v in versions]))
            return
        if not versions:
            typer.echo(f"no history for {key!r} (within the hub's retention)")
        for version in versions:
            before = _json(version.prev_value) if version.prev_rev else "(new)"
            after = "(unset)" if version.op == "unset" else _json(version.value)
            who = "/".join(part for part in (version.source, version.user) if part) or "?"
            typer.echo(f"[{version.rev}] {_when(version.time)}  {who:<16} {before} -> {after}")


@app.command()
def status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show the hub's revision, epoch, uptime, key count, files and endpoints."""
    import msgspec

    settings = _settings(ctx)
    with _reported(settings), settings.client() as client:
        hub = client.status()
        if as_json:
            typer.echo(_json(msgspec.to_builtins(hub)))
            return
        typer.echo(f"statehub {hub.version} (protocol {hub.protocol}), pid {hub.pid}, up {hub.uptime:.0f} s")
        typer.echo(f"revision {hub.rev}, epoch {hub.epoch}, {hub.keys} keys")
        typer.echo(f"store    {hub.store}\nmirror   {hub.mirror}")
        for name, endpoint in hub.endpoints.items():
            typer.echo(f"{name:<8} {endpoint}")


@app.command()
def explain(ctx: typer.Context, key: str, as_json: JsonOption = False) -> None:
    """Show which layer gives KEY its value: environment > stored > defaults."""
    from statehub.waterfall import MISSING

    settings = _settings(ctx)
    with _reported(settings), settings.client() as client:
        from statehub.hub.rules import check_key

        check_key(key)
        found = client.explain(key)

    def shown(value: Any) -> str:
        return "(not set)" if value is MISSING else _json(value)

    stored = found.stored.value if found.stored is not None else MISSING
    if as_json:

        def plain(value: Any) -> Any:
            return None if value is MISSING else value

        typer.echo(
            _json(
                {
                    "key": key,
                    "layer": found.layer,
                    "value": plain(found.value),
                    "environment": {"variable": found.env_var, "set": found.env_value is not MISSING, "value": plain(found.env_value)},
                    "stored": {"set": stored is not MISSING, "value": plain(stored), "note": found.stored_note},
                    "defaults": {"set": found.default is not MISSING, "value": plain(found.default), "file": found.defaults_path},
                }
            )
        )
        return
    if found.layer is None:
        typer.echo(f"{key} has no value in any layer")
    else:
        typer.echo(f"{key} = {_text(found.value)}  (from the {found.layer} layer)")
    marks = {name: "<- wins" if found.layer == name else "" for name in ("environment", "stored", "defaults")}
    typer.echo(f"  environment  {found.env_var} = {shown(found.env_value)}  {marks['environment']}")
    typer.echo(f"  stored       {shown(stored)}  [{found.stored_note}]  {marks['stored']}")
    typer.echo(f"  defaults     {shown(found.default)}  [{found.defaults_path}]  {marks['defaults']}")
    if found.layer is None:
        raise typer.Exit(EXIT_NOT_FOUND)


def _register_more_commands() -> None:
    from statehub import cli_secret, cli_state, eds_cli, gui_cli, keys_cli
    from statehub.web import command as web_command

    cli_state.register(app)
    cli_secret.register(app)
    keys_cli.register(app)
    gui_cli.register(app)
    eds_cli.register(app)
    web_command.register(app)


_register_more_commands()


def main() -> None:
    code = _fast_get(sys.argv[1:])
    if code is not None:
        raise SystemExit(code)
    app()


def _fast_get(args: list[str]) -> int | None:
    """Run `statehub [--data-dir D] [--timeout T] get KEY [--json]` without typer's parser.

    typer coerces parameters through pydantic, whose import costs more than the
    rest of a `get` together, and scripts call `statehub get` in loops.  Any other
    form (help, other options, other commands) returns None and goes to typer,
    which gives the same result, only slower.
    """
    import os

    options: dict[str, str | None] = {"--data-dir": os.environ.get("STATEHUB_DATA_DIR") or None, "--timeout": "0.5"}
    while len(args) >= 2 and args[0] in options:
        options[args[0]], args = args[1], args[2:]
    if not (2 <= len(args) <= 3 and args[0] == "get" and not args[1].startswith("-")):
        return None
    if len(args) == 3 and args[2] != "--json":
        return None
    try:
        timeout = float(options["--timeout"] or "")
    except ValueError:
        return None
    if not timeout >= 0.01:
        return None
    try:
        _print_value(Settings(options["--data-dir"], timeout, False), args[1], len(args) == 3)
    except typer.Exit as done:
        return int(done.exit_code)
    return 0


if __name__ == "__main__":
    main()
