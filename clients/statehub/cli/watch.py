"""``statehub watch``: print every change as it happens, with resyncs and hub outages."""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from statehub.cli.base import echo, echo_json, reported, settings_of
from statehub.cli.options import JsonOption, add_command

if TYPE_CHECKING:
    from statehub import Changed, HubDown, Synced


def register(app: typer.Typer) -> None:
    add_command(app, watch)


def watch(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="Only keys starting with this.")] = "",
    as_json: JsonOption = False,
    count: Annotated[int | None, typer.Option(help="Exit after this many changes.", min=1)] = None,
) -> None:
    """Print every change as it happens; resyncs and hub outages are shown too. Ctrl-C stops."""
    from statehub import HubDown, Synced

    settings = settings_of(ctx)
    seen = 0
    with (
        reported(settings.debug),
        settings.client() as client,
        contextlib.suppress(KeyboardInterrupt),
        client.subscribe(prefix) as subscription,
    ):
        for event in subscription:
            if isinstance(event, HubDown):
                _print_down(event, as_json)
                continue
            if isinstance(event, Synced):
                _print_synced(event, prefix, as_json)
            for change in event.changes:
                if as_json:
                    echo_json(_change_dict(change))
                else:
                    echo(_change_line(change))
            seen += 0 if isinstance(event, Synced) else len(event.changes)
            sys.stdout.flush()
            if count is not None and seen >= count:
                return


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
        echo_json({"event": "synced", "rev": event.rev, "epoch": event.epoch, "reason": event.reason, "keys": keys})
    elif event.first:
        echo(f"# watching '{prefix}' at revision {event.rev} ({keys} keys)", err=True)
    else:
        echo(f"# resynced at revision {event.rev}: {event.reason}; {len(event.changes)} keys differ", err=True)


def _change_dict(change: Changed) -> dict[str, object]:
    import msgspec

    data: dict[str, object] = msgspec.to_builtins(change)
    data["event"] = data.pop("type")
    return data


def _change_line(change: Changed) -> str:
    from statehub import json_text, when_text, who_text

    what = f"{change.key} = {json_text(change.value)}" if change.op == "set" else f"unset {change.key}"
    return f"[{change.rev}] {what}  ({who_text(change.source, change.user)}, {when_text(change.time)})"
