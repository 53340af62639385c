"""``statehub watch``: print every change as it happens, with replays, resyncs and hub outages."""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from statehub.cli.base import echo, echo_json, reported, settings_of
from statehub.cli.options import JsonOption, add_command

if TYPE_CHECKING:
    from statehub import CaughtUp, Changed, HubDown, Synced


def register(app: typer.Typer) -> None:
    add_command(app, watch)


def watch(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="Only keys starting with this.")] = "",
    as_json: JsonOption = False,
    count: Annotated[
        int | None, typer.Option(help="Exit after printing this many changes (live, replayed, or --initial's).", min=1)
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="Start after this revision, REV or EPOCH:REV (as --json prints them): every later change is "
            "replayed from the hub's history first, then changes follow live. With an EPOCH the hub must still "
            "hold that store; if its history no longer reaches back, you are told, and watching starts from now.",
            metavar="[EPOCH:]REV",
        ),
    ] = None,
    initial: Annotated[
        bool, typer.Option("--initial", help="Print the current values first, then follow.")
    ] = False,
) -> None:
    """Print every change as it happens, in revision order; replays, resyncs and hub outages are shown too.

    A gap, a reconnect or a hub restart is filled from the hub's history, so no
    change is skipped; only when history no longer reaches back is the state
    rebuilt from a snapshot, and that is said. Ctrl-C stops.
    """
    from statehub import CaughtUp, HubDown, Synced, item_as_change

    settings = settings_of(ctx)
    seen = 0
    with reported(settings.debug):
        start = parse_since(since) if since is not None else None
        with (
            settings.client() as client,
            contextlib.suppress(KeyboardInterrupt),
            client.subscribe(prefix, since=start) as subscription,
        ):
            for event in subscription:
                if isinstance(event, HubDown):
                    _print_down(event, as_json)
                elif isinstance(event, CaughtUp):
                    _print_caught_up(event, as_json)
                elif isinstance(event, Synced):
                    _print_synced(event, prefix, as_json)
                    shown = event.items.values() if event.first and initial else ()
                    made_up = [item_as_change(item, event.epoch) for item in shown] + event.changes
                    seen += _print_changes(made_up, "snapshot", as_json, _left(count, seen))
                else:
                    seen += _print_changes(event.changes, event.origin, as_json, _left(count, seen))
                sys.stdout.flush()
                if count is not None and seen >= count:
                    return


def parse_since(text: str) -> tuple[str, int]:
    """``REV`` or ``EPOCH:REV`` as (epoch, rev); the epoch is "" when not given (any store)."""
    from statehub import InvalidRequest

    epoch, _, rev = text.rpartition(":")
    if not rev.isdigit():
        raise InvalidRequest(
            f"--since {text!r} is not a revision: give REV or EPOCH:REV, e.g. 41 or 3f2a9c0d1e2b4a5f:41"
        )
    return epoch, int(rev)


def _left(count: int | None, seen: int) -> int | None:
    return None if count is None else count - seen


def _print_changes(changes: list[Changed], origin: str, as_json: bool, limit: int | None = None) -> int:
    """Print ``changes``, at most ``limit`` of them (--count ends mid-revision, as it says); how many."""
    changes = changes if limit is None else changes[:limit]
    for change in changes:
        if as_json:
            echo_json(_change_dict(change, origin))
        else:
            echo(_change_line(change))
    return len(changes)


def _print_down(event: HubDown, as_json: bool) -> None:
    mirror = event.mirror
    if as_json:
        echo_json({"event": "hub_down", "reason": event.reason, "mirror_rev": mirror.rev if mirror else None})
    else:
        where = f"; the mirror is at revision {mirror.rev}" if mirror else ""
        echo(f"# hub down: {event.reason}{where}; waiting for it to come back", err=True)


def _print_synced(event: Synced, prefix: str, as_json: bool) -> None:
    keys = len(event.items)
    if as_json:
        echo_json(
            {
                "event": "synced",
                "rev": event.rev,
                "epoch": event.epoch,
                "reason": event.reason,
                "cause": event.cause,
                "resync": event.resync,
                "keys": keys,
            }
        )
    elif event.first and not event.resync:
        resuming = f"; {event.reason}" if event.cause == "resume" else ""
        echo(f"# watching '{prefix}' at revision {event.rev} ({keys} keys){resuming}", err=True)
    else:
        lost = "changes in between are lost" if event.first else f"{len(event.changes)} keys differ"
        echo(f"# resynced from a snapshot at revision {event.rev}: {event.reason}; {lost}", err=True)


def _print_caught_up(event: CaughtUp, as_json: bool) -> None:
    if as_json:
        echo_json(
            {
                "event": "caught_up",
                "rev": event.rev,
                "epoch": event.epoch,
                "replayed": event.replayed,
                "reason": event.reason,
                "cause": event.cause,
            }
        )
    else:
        echo(
            f"# caught up at revision {event.rev}: {event.replayed} revisions replayed ({event.reason})",
            err=True,
        )


def _change_dict(change: Changed, origin: str) -> dict[str, object]:
    """A change as ``watch --json`` prints it, every field present (``ttl`` only when the set has one,
    as ``get --json``); statehub-rs prints the same."""
    fields: dict[str, object] = {
        "event": "changed",
        "origin": origin,
        "epoch": change.epoch,
        "rev": change.rev,
        "index": change.index,
        "count": change.count,
        "key": change.key,
        "op": change.op,
        "value": change.value,
        "time": change.time,
        "source": change.source,
        "user": change.user,
        "value_omitted": change.value_omitted,
        "prev_rev": change.prev_rev,
        "backfill": change.backfill,
    }
    if change.ttl is not None:
        fields["ttl"] = change.ttl
    return fields


def _change_line(change: Changed) -> str:
    from statehub import json_text, when_text, who_text

    what = f"{change.key} = {json_text(change.value)}" if change.op == "set" else f"unset {change.key}"
    return f"[{change.rev}] {what}  ({who_text(change.source, change.user)}, {when_text(change.time)})"
