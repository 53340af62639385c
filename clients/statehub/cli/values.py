"""The everyday commands: get, set, unset, list, history, status, explain.

Only typer is imported at module level; the client inside each command, so
that building the app costs little (and ``get`` usually skips it: fast_get).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from statehub.cli.base import (
    echo,
    echo_json,
    item_dict,
    origin_dict,
    report_queued,
    reported,
    settings_of,
    struct_dict,
    warn_if_mirror,
    writing,
)
from statehub.cli.fast_get import print_value
from statehub.cli.options import JsonOption, QueueOption, add_command
from statehub.cli.typed_value import TypedValue, guess, typed_value

if TYPE_CHECKING:
    from statehub import Client, Committed, Queued


def register(app: typer.Typer) -> None:
    add_command(app, get)
    add_command(app, set_, "set")
    add_command(app, unset)
    add_command(app, list_, "list")
    add_command(app, count)
    add_command(app, history)
    add_command(app, status)
    add_command(app, explain)


RevOption = Annotated[
    int | None,
    typer.Option(
        "--rev",
        help="As it was right after this revision, read from the hub's history (the hub must be up, and still "
        "hold that history: see `statehub serve --history-keep`).",
        min=0,
    ),
]


def get(ctx: typer.Context, key: str, as_json: JsonOption = False, rev: RevOption = None) -> None:
    """Print the value of KEY (from the mirror, with a warning, when the hub is down)."""
    print_value(settings_of(ctx), key, as_json, at_rev=rev)


def set_(
    ctx: typer.Context,
    key: str,
    value: Annotated[
        str | None,
        typer.Argument(
            help="The value; - reads it from stdin. Its type: see --type (a negative number needs no --).",
            show_default=False,
        ),
    ] = None,
    type_name: Annotated[
        str | None,
        typer.Option(
            "--type",
            help="str, int, float, bool or json. Default: the key's current type when VALUE parses as it, "
            "else JSON when it parses as JSON (30, true, [1,2]), else a string.",
            metavar="TYPE",
        ),
    ] = None,
    string: Annotated[bool, typer.Option("--string", help="Same as --type str.")] = False,
    file: Annotated[
        Path | None, typer.Option("--file", help="Read the value from this file (one trailing newline dropped).")
    ] = None,
    expect_rev: Annotated[
        int | None,
        typer.Option("--expect-rev", help="Only if KEY is still at this revision (0: only if it does not exist).", min=0),
    ] = None,
    ttl: Annotated[
        float | None,
        typer.Option(
            "--ttl",
            help="Seconds: the hub removes KEY when it has not been written for this long (a heartbeat).",
            min=0.001,
        ),
    ] = None,
    queue: QueueOption = False,
    as_json: JsonOption = False,
) -> None:
    """Set KEY to VALUE; prints the value stored (as JSON) and the new revision.

    A value that does not print back as typed (1.10 stored as 1.1) is stored with a note on stderr.
    """
    from statehub import Queued, json_text

    settings = settings_of(ctx)
    with reported(settings.debug), settings.client() as client:
        text = _value_text(value, file)
        typed = _typed(client, key, text, "str" if string else type_name)
        committed = _write(
            client, lambda: client.set(key, typed.value, expect=expect_rev, ttl=ttl, queue=queue), queue
        )
        if typed.note:
            echo(f"note: {typed.note}", err=True)
        if isinstance(committed, Queued):
            report_queued(committed, as_json)
            return
        if as_json:
            echo_json(
                {"rev": committed.rev, "epoch": committed.epoch, "duplicate": committed.duplicate, "warnings": committed.warnings}
            )
        else:
            for warning in committed.warnings:
                echo(f"warning: {warning}", err=True)
            echo(f"{key} = {json_text(typed.value)}  (revision {committed.rev})")


def _value_text(value: str | None, file: Path | None) -> str:
    """The text of the value: the argument, stdin for ``-``, or ``--file``'s contents."""
    from statehub import InvalidRequest

    if (value is None) == (file is None):
        raise InvalidRequest("give the value as VALUE (- for stdin) or --file PATH (one of them)")
    if file is not None:
        text = file.read_text(encoding="utf-8")
    elif value == "-":
        text = sys.stdin.read()
    else:
        return value or ""
    return text.removesuffix("\n").removesuffix("\r")


def _typed(client: Client, key: str, text: str, type_name: str | None) -> TypedValue:
    """The value ``text`` stands for, for KEY.

    The key's current type matters only when the text is not plain text (a number, true, [1, 2]):
    then it is read from the mirror, a local file, so a write never waits for an extra round trip
    to a slow hub (a remote client, with no mirror here, asks the hub).
    """
    from statehub import MISSING, check_key
    from statehub.cli.schema import schema_value

    check_key(key)
    if type_name is None:
        by_schema = schema_value(client, key, text)  # the key's type in the hub's schema wins
        if by_schema is not MISSING:
            return TypedValue(by_schema)
    current: Any = MISSING
    if type_name is None and not isinstance(guess(text), str):
        current = _current_value(client, key)
    return typed_value(text, type_name=type_name, current=current)


def _current_value(client: Client, key: str) -> Any:
    """KEY's stored value as far as this client can tell at once; MISSING when unknown or absent."""
    from statehub import MISSING, HubUnavailable, MirrorError, NotFound

    if client.is_remote:
        with contextlib.suppress(NotFound, HubUnavailable):
            return client.get(key).value
        return MISSING
    try:
        item = client.read_mirror().items.get(key)
    except MirrorError:
        return MISSING  # no mirror yet (a hub that never ran): nothing to keep
    return MISSING if item is None else item.value


def unset(
    ctx: typer.Context,
    key: Annotated[str | None, typer.Argument(help="The key (or give --prefix).", show_default=False)] = None,
    prefix: Annotated[
        str | None,
        typer.Option("--prefix", help="Remove every key starting with this, as one change (asks first unless --yes)."),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="With --prefix: do not ask for confirmation.")] = False,
    expect_rev: Annotated[
        int | None, typer.Option("--expect-rev", help="Only if KEY is still at this revision.", min=1)
    ] = None,
    queue: QueueOption = False,
    as_json: JsonOption = False,
) -> None:
    """Remove KEY, or with --prefix every key under it (one txn: all of them or none)."""
    from statehub import InvalidRequest, Queued

    settings = settings_of(ctx)
    with reported(settings.debug), settings.client() as client:
        if (key is None) == (prefix is None):
            raise InvalidRequest("give a KEY or --prefix P (one of them)")
        if prefix is not None:
            _unset_prefix(client, prefix, yes=yes, as_json=as_json)
            return
        assert key is not None  # one of the two, as checked above
        committed = _write(client, lambda: client.unset(key, expect=expect_rev, queue=queue), queue)
        if isinstance(committed, Queued):
            report_queued(committed, as_json)
            return
        if as_json:
            echo_json({"rev": committed.rev, "epoch": committed.epoch, "duplicate": committed.duplicate})
        else:
            echo(f"unset {key}  (revision {committed.rev})")


def _unset_prefix(client: Client, prefix: str, *, yes: bool, as_json: bool) -> None:
    """Unset every key under ``prefix`` in one txn, each only if it is still at the revision shown."""
    from statehub import Op

    listing = client.list(prefix)
    if listing.origin.from_mirror:
        warn_if_mirror(listing.origin)
    keys = [item.key for item in listing.items]
    if not keys:
        if as_json:
            echo_json({"prefix": prefix, "count": 0, "rev": None})
        else:
            echo(f"no keys start with {prefix!r}: nothing to unset", err=True)
        return
    if not yes:
        shown = ", ".join(keys[:5]) + (", ..." if len(keys) > 5 else "")
        if not typer.confirm(f"Unset {len(keys)} keys starting with {prefix!r} ({shown})?", err=True):
            raise typer.Exit(1)
    ops = [Op(op="unset", key=item.key, expect=item.rev) for item in listing.items]
    with writing():
        committed = client.txn(ops)
    if as_json:
        echo_json({"prefix": prefix, "count": len(keys), "rev": committed.rev, "epoch": committed.epoch})
    else:
        echo(f"unset {len(keys)} keys starting with {prefix!r}  (revision {committed.rev})")


def _write(client: Client, write: Callable[[], Committed | Queued], queue: bool) -> Committed | Queued:
    """Run a write; say what a refusal or an unreached hub means, and what to do."""
    from statehub import ConflictError, value_text, when_text

    try:
        with writing(can_queue=not queue and not client.is_remote):
            return write()
    except ConflictError as exc:
        detail = exc.conflicts[0] if exc.conflicts else None
        if detail is not None and detail.exists:
            exc.message += f" (value {value_text(detail.value)}, set by {detail.source or '?'} at {when_text(detail.time)})"
        raise


def list_(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="Only keys starting with this (use 'plant.' for a subtree).")] = "",
    as_json: JsonOption = False,
    rev: RevOption = None,
    keys_only: Annotated[bool, typer.Option("--keys-only", help="Print the keys alone.")] = False,
    limit: Annotated[int | None, typer.Option("--limit", help="At most this many keys (the first, by key).", min=1)] = None,
) -> None:
    """List keys and values, sorted by key."""
    from statehub import json_text

    settings = settings_of(ctx)
    with reported(settings.debug), settings.client() as client:
        listing = client.list(prefix, at_rev=rev)
        warn_if_mirror(listing.origin)
        shown = listing.items[:limit] if limit is not None else listing.items
        if as_json:
            items: list[Any] = [item.key if keys_only else item_dict(item) for item in shown]
            origin = listing.origin
            more = {"truncated": len(shown) < len(listing.items)} if limit is not None else {}
            echo_json({"rev": origin.rev, "epoch": origin.epoch, **origin_dict(origin), **more, "items": items})
            return
        for item in shown:
            echo(item.key if keys_only else f"{item.key} = {json_text(item.value)}")


def count(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="Only keys starting with this.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Print how many keys start with PREFIX (every key without one)."""
    settings = settings_of(ctx)
    with reported(settings.debug), settings.client() as client:
        listing = client.list(prefix)
        warn_if_mirror(listing.origin)
        if as_json:
            origin = listing.origin
            echo_json({"prefix": prefix, "count": len(listing.items), "rev": origin.rev, **origin_dict(origin)})
        else:
            echo(str(len(listing.items)))


def history(
    ctx: typer.Context,
    key: str,
    limit: Annotated[int, typer.Option(help="How many versions, newest first.", min=1, max=10000)] = 20,
    as_json: JsonOption = False,
) -> None:
    """Show who changed KEY, when, and from what to what."""

    from statehub import NotFound, json_text, site_text, when_text, who_text

    settings = settings_of(ctx)
    with reported(settings.debug), settings.client() as client:
        versions = client.history(key, limit)
        if not versions:
            raise NotFound(
                f"no history for {key!r} within the hub's retention", hint="check the key's name with `statehub list`"
            )
        if as_json:
            echo_json([struct_dict(v) for v in versions])
            return
        for version in versions:
            before = json_text(version.prev_value) if version.prev_rev else "(new)"
            after = "(unset)" if version.op == "unset" else json_text(version.value)
            who = who_text(version.source, version.user)
            site = f"  ({site_text(version.origin)})" if version.origin else ""
            echo(f"[{version.rev}] {when_text(version.time)}  {who:<16} {before} -> {after}{site}")


def status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show the hub's revision, epoch, uptime, key count, files and endpoints."""
    import msgspec

    settings = settings_of(ctx)
    with reported(settings.debug), settings.client() as client:
        hub = client.status()
        if as_json:
            echo_json(msgspec.to_builtins(hub))
            return
        echo(f"statehub {hub.version} (protocol {hub.protocol}), pid {hub.pid}, up {hub.uptime:.0f} s")
        echo(f"revision {hub.rev}, epoch {hub.epoch}, {hub.keys} keys")
        echo(f"store    {hub.store}\nmirror   {hub.mirror}")
        for name, endpoint in hub.endpoints.items():
            echo(f"{name:<8} {endpoint}")
        for problem in hub.schema_errors:
            echo(f"warning: schema file not applied: {problem}", err=True)


def explain(ctx: typer.Context, key: str, as_json: JsonOption = False) -> None:
    """Show which layer gives KEY its value: environment > stored > defaults."""
    from statehub import MISSING, NotFound, check_key, json_text, value_text
    from statehub.cli.schema import rule_dict

    settings = settings_of(ctx)
    with reported(settings.debug), settings.client() as client:
        check_key(key)
        found = client.explain(key)

    def shown(value: Any) -> str:
        return "(not set)" if value is MISSING else json_text(value)

    def plain(value: Any) -> Any:
        return None if value is MISSING else value

    stored = found.stored.value if found.stored is not None else MISSING
    ttl = found.stored.item.ttl if found.stored is not None else None
    if as_json:
        echo_json(
            {
                "key": key,
                "layer": found.layer,
                "value": plain(found.value),
                "environment": {"variable": found.env_var, "set": found.env_value is not MISSING, "value": plain(found.env_value)},
                "stored": {
                    "set": stored is not MISSING,
                    "value": plain(stored),
                    "note": found.stored_note,
                    **({"ttl": ttl} if ttl is not None else {}),
                },
                "defaults": {"set": found.default is not MISSING, "value": plain(found.default), "file": found.defaults_path},
                "schema": rule_dict(found.rule) if found.rule is not None else None,
            }
        )
        return
    if found.layer is None:
        echo(f"{key} has no value in any layer")
    else:
        echo(f"{key} = {value_text(found.value)}  (from the {found.layer} layer)")
    marks = {name: "<- wins" if found.layer == name else "" for name in ("environment", "stored", "defaults")}
    echo(f"  environment  {found.env_var} = {shown(found.env_value)}  {marks['environment']}")
    note = found.stored_note
    if found.stored is not None and ttl is not None:
        note += f"; {_expiry_text(found.stored.item.time + ttl - time.time())}"
    echo(f"  stored       {shown(stored)}  [{note}]  {marks['stored']}")
    echo(f"  defaults     {shown(found.default)}  [{found.defaults_path}]  {marks['defaults']}")
    if found.rule is not None:
        rule = found.rule
        echo(f"  schema       {rule.allows()}{', ' + rule.unit if rule.unit else ''}  [{rule.name}]")
        if rule.description:
            echo(f"               {rule.description}")
    if found.layer is None:
        raise SystemExit(NotFound.exit_code)


def _expiry_text(left: float) -> str:
    """When a stored key with a ttl goes unless written again (counted from its last write, as the hub counts)."""
    from statehub import age_text

    if left <= 0:
        return "past its ttl: the hub removes it now"
    return f"expires in {age_text(left)} unless written again"
