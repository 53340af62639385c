"""Everything the GUI decides, as plain functions: no window, no sockets, testable alone.

The window (window.py) feeds each subscription event into a ``View`` with
``on_event``, and asks this module what to show: the rows for the current
filter, the status line, why edits are off, what a conflict means and what to
write after the operator chose.  Values, times and writers are worded by the
display helpers every front end shares (``statehub.value_text`` and friends).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

from statehub import (
    SECRET_PLACEHOLDER,
    CaughtUp,
    Changed,
    ConflictDetail,
    Event,
    HubDown,
    InvalidRequest,
    Item,
    MirrorState,
    Op,
    Schema,
    Synced,
    Update,
    Version,
    age_text,
    apply_change,
    check_key,
    check_value,
    json_text,
    local_when_text,
    parse_text_value,
    value_text,
    who_text,
)
from statehub.gui import typed
from statehub.gui.masking import is_secret, shown_value

VALUE_WIDTH = 120  # characters of a value shown in the table; the edit dialog shows it whole
DIFF_WIDTH = 200  # characters of each value in the restore dialog's old -> new lines
NOTICE_SECONDS = 6.0  # how long a resync notice stays
HIGHLIGHT_SECONDS = 2.0  # how long a changed row stays highlighted
HEADINGS = ["key", "value", "type", "rev", "set by", "changed"]
HISTORY_HEADINGS = ["rev", "when", "who", "old → new"]


class Phase(Enum):
    CONNECTING = "connecting"  # no word from the hub or the mirror yet
    LIVE = "live"  # the replica follows the hub
    DOWN = "down"  # the hub is not answering; the table is the mirror


@dataclass
class View:
    """What the window shows, fed by hub events."""

    items: dict[str, Item] = field(default_factory=dict)
    phase: Phase = Phase.CONNECTING
    rev: int = 0  # the replica's revision (LIVE), or the mirror's (DOWN)
    epoch: str = ""
    mirror_written: float | None = None  # DOWN: when the shown mirror was written; None: no mirror
    down_reason: str = ""
    notice: str = ""
    notice_until: float = 0.0
    changed_at: dict[str, float] = field(default_factory=dict)
    schema: Schema = field(default_factory=Schema)  # the hub's, from the schema keys the window follows


# --- hub events ----------------------------------------------------------------------


def on_event(view: View, event: Event, now: float) -> None:
    """Feed one subscription event into the view."""
    if isinstance(event, Synced):
        changed = [change.key for change in event.changes]
        on_synced(view, event.items, event.rev, event.epoch, event.reason, event.first, changed, now)
    elif isinstance(event, Update):
        on_update(view, event.rev, event.changes, now)
    elif isinstance(event, CaughtUp):
        on_caught_up(view, event.rev, event.epoch, event.replayed, now)
    elif isinstance(event, HubDown):
        on_down(view, event.reason, event.mirror, now)


def on_synced(
    view: View,
    items: dict[str, Item],
    rev: int,
    epoch: str,
    reason: str,
    first: bool,
    changed: list[str],
    now: float,
) -> None:
    """The replica was (re)built from a snapshot: replace the table at once, note a resync briefly."""
    was_down = view.phase is Phase.DOWN
    view.items, view.rev, view.epoch, view.phase = dict(items), rev, epoch, Phase.LIVE
    view.mirror_written, view.down_reason = None, ""
    view.schema = typed.schema_from(view.items, view.schema)
    for key in changed:
        view.changed_at[key] = now
    if first:
        return
    what = "reconnected" if was_down else "resynced"
    keys = f"{len(changed)} key{'s' if len(changed) != 1 else ''} changed meanwhile"
    _notify(view, f"{what} at revision {rev} ({reason}); {keys}", now)


def on_update(view: View, rev: int, changes: list[Changed], now: float) -> None:
    """One complete revision: apply each change to the table.

    While the hub is down the table is the mirror; revisions replayed from the
    hub's history when it returns that the mirror already holds are skipped.
    """
    if view.phase is Phase.DOWN and rev <= view.rev:
        return
    for change in changes:
        apply_change(view.items, change)
        view.changed_at[change.key] = now
        if change.op == "unset" and change.source == "ttl":
            _notify(view, f"{change.key} expired: not written within its ttl, so the hub removed it", now)
    view.rev = rev
    view.schema = typed.schema_from(view.items, view.schema)


def on_caught_up(view: View, rev: int, epoch: str, replayed: int, now: float) -> None:
    """The subscription replayed what it missed from the hub's history: live again, nothing lost."""
    was_down = view.phase is Phase.DOWN
    view.phase, view.rev, view.epoch = Phase.LIVE, max(rev, view.rev), epoch
    view.mirror_written, view.down_reason = None, ""
    if was_down:
        _notify(view, f"reconnected at revision {rev}; {replayed} revisions replayed, none missed", now)


def on_down(view: View, reason: str, mirror: MirrorState | None, now: float) -> None:
    """The hub went away: show the mirror (or, without one, what we last had), read-only."""
    view.phase, view.down_reason = Phase.DOWN, reason
    if mirror is not None:
        view.items, view.rev, view.mirror_written = dict(mirror.items), mirror.rev, mirror.written
        view.schema = typed.schema_from(view.items, view.schema)
    else:
        view.mirror_written = None


def _notify(view: View, text: str, now: float) -> None:
    view.notice, view.notice_until = text, now + NOTICE_SECONDS


def notice_text(view: View, now: float) -> str:
    return view.notice if now < view.notice_until else ""


# --- status line and edit permission ------------------------------------------------


def status_line(view: View, now: float, hub_announced: bool = False) -> str:
    """The truth about what the table shows.  ``now`` is wall-clock time (mirror ages are)."""
    if view.phase is Phase.CONNECTING:
        return "connecting to the hub…"
    if view.phase is Phase.LIVE:
        return f"connected at revision {view.rev}"
    if view.mirror_written is None:
        shown = f"what this window last received (revision {view.rev})" if view.rev else "nothing"
        text = f"hub down and the mirror cannot be read: showing {shown}"
    else:
        text = f"hub down, showing the mirror from revision {view.rev}, {age_text(now - view.mirror_written)} old"
    # hub.json is back: a hub process announced itself and the subscription is catching up.
    return f"reconnecting… ({text.removeprefix('hub down, ')})" if hub_announced else text


def edit_block_reason(view: View) -> str:
    """Why edits are off now ("" when they are on)."""
    if view.phase is Phase.LIVE:
        return ""
    if view.phase is Phase.CONNECTING:
        return "edits wait for the connection to the hub"
    return "edits are off while the hub is down: the table is the mirror, read-only"


# --- the table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    key: str
    value: str
    type: str
    rev: str
    who: str
    changed: str

    def cells(self) -> list[str]:
        return [self.key, self.value, self.type, self.rev, self.who, self.changed]


def matches(key: str, filter_text: str, prefix_only: bool = False) -> bool:
    """A key passes the filter: a prefix match, or else a case-insensitive substring match."""
    if not filter_text:
        return True
    if prefix_only:
        return key.startswith(filter_text)
    return filter_text.lower() in key.lower()


def visible_rows(
    view: View, filter_text: str = "", prefix_only: bool = False, now: float | None = None
) -> list[Row]:
    """The rows the filter passes; with ``now`` (wall clock), a key with a ttl says when it expires."""
    keys = [key for key in sorted(view.items) if matches(key, filter_text, prefix_only)]
    return [row_for(view.items[key], view.schema if now is not None else None, now or 0.0) for key in keys]


def row_for(item: Item, schema: Schema | None = None, now: float = 0.0) -> Row:
    changed = local_when_text(item.time)
    expiry = typed.expiry_text(schema, item, now) if schema is not None else ""
    return Row(
        key=item.key,
        value=shown_value(item.key, format_value(item.value), item.secret),
        type=type_name(item.value),
        rev=str(item.rev),
        who=who_text(item.source, item.user),
        changed=f"{changed}, {expiry}" if expiry else changed,
    )


def highlighted(rows: list[Row], view: View, now: float) -> list[int]:
    """Indexes of rows whose key changed within the last HIGHLIGHT_SECONDS, or is about to expire."""
    return [
        i
        for i, row in enumerate(rows)
        if now - view.changed_at.get(row.key, -1e9) < HIGHLIGHT_SECONDS
        or (row.key in view.items and typed.is_expiring_soon(view.schema, view.items[row.key], now))
    ]


def format_value(value: Any, width: int = VALUE_WIDTH) -> str:
    """A value on one line: strings as they are, everything else as JSON; cut at ``width``."""
    text = value_text(value).replace("\r", "").replace("\n", "⏎")
    return text if len(text) <= width else text[: width - 1] + "…"


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "map"


# --- edits ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    """A write the operator asked for, with the revision it was based on (0: must not exist)."""

    op: Literal["set", "unset"]
    key: str
    expect: int
    value: Any = None


def parse_edit(text: str, as_string: bool = False, schema: Schema | None = None, key: str = "") -> Any:
    """The value typed: by the key's type in ``schema`` when it has one; else JSON where it parses
    (30, true, [1, 2], {"a": 1}), else the text."""
    if as_string:
        value: Any = text
    elif schema is not None and key:
        value = typed.parse_typed(schema, key, text)
    else:
        value = parse_text_value(text)
    check_value(value)
    return value


def type_preview(text: str, as_string: bool = False, schema: Schema | None = None, key: str = "") -> str:
    """What the typed text will be stored as, for the edit dialog ("int", "string", ...)."""
    if schema is not None and key and not as_string and schema.rule_for(key) is not None:
        return typed.preview(schema, key, text)
    try:
        return f"stored as {type_name(parse_edit(text, as_string))}"
    except InvalidRequest as exc:
        return f"cannot be stored: {exc}"


def edit_text(item: Item) -> str:
    """The text to start editing from: a secret starts empty (never shown), a string as is."""
    if is_secret(item.key, item.secret):
        return ""
    return value_text(item.value)


def new_write(key: str, text: str, as_string: bool = False, schema: Schema | None = None) -> Write:
    """Add a key: it must not exist yet.  Raises InvalidRequest naming the problem."""
    key = key.strip()
    check_key(key)
    return Write("set", key, 0, parse_edit(text, as_string, schema, key))


def change_write(item: Item, text: str, as_string: bool = False, schema: Schema | None = None) -> Write:
    """Change a key shown at ``item.rev``: only if it is still at that revision."""
    return Write("set", item.key, item.rev, parse_edit(text, as_string, schema, item.key))


def delete_write(item: Item) -> Write:
    return Write("unset", item.key, item.rev)


# --- conflicts -----------------------------------------------------------------------------


class Choice(Enum):
    KEEP_MINE = "keep mine"
    TAKE_THEIRS = "take theirs"
    CANCEL = "cancel"


@dataclass(frozen=True)
class Resolution:
    write: Write | None  # what to send now, if anything
    reopen: bool  # go back to the edit dialog with the operator's text
    message: str


def conflict_message(write: Write, detail: ConflictDetail) -> str:
    """What happened, for the conflict dialog: their value, who set it and when."""
    base = f"you started from revision {write.expect}" if write.expect else "you were adding it"
    if not detail.exists:
        now = "it has been deleted since"
    else:
        value = shown_value(detail.key, format_value(detail.value, 400), detail.value == SECRET_PLACEHOLDER)
        now = (
            f"it is now at revision {detail.rev}: {value}  ({type_name(detail.value)}), "
            f"set by {who_text(detail.source, detail.user)} at {local_when_text(detail.time)}"
        )
    yours = (
        "delete it"
        if write.op == "unset"
        else f"set it to {shown_value(write.key, format_value(write.value, 400))}"
    )
    return f"{write.key} changed while you were editing: {base}; {now}.\n\nYou wanted to {yours}."


def resolve(choice: Choice, write: Write, detail: ConflictDetail) -> Resolution:
    """Turn the operator's choice into the next write (against the revision they have now seen)."""
    if choice is Choice.TAKE_THEIRS:
        return Resolution(None, False, f"kept their value of {write.key}")
    if choice is Choice.CANCEL:
        return Resolution(None, True, "")
    if write.op == "unset" and not detail.exists:
        return Resolution(None, False, f"{write.key} was already deleted")
    expect = detail.rev if detail.exists else 0
    return Resolution(Write(write.op, write.key, expect, write.value), False, "")


# --- history ---------------------------------------------------------------------------------


def history_rows(key: str, versions: list[Version]) -> list[list[str]]:
    """Rows for the history pane, newest first: revision, when, who, old → new (secrets masked)."""
    rows = []
    for version in versions:
        old = "(new)" if not version.prev_rev else shown_value(key, format_value(version.prev_value, 60), version.secret)
        new = "(deleted)" if version.op == "unset" else shown_value(key, format_value(version.value, 60), version.secret)
        rows.append(
            [
                str(version.rev),
                local_when_text(version.time),
                who_text(version.source, version.user),
                f"{old} → {new}",
            ]
        )
    return rows


# --- restoring a snapshot ---------------------------------------------------------------------


def snapshot_label(name: str, rev: int, keys: int, created: float) -> str:
    """One line of the snapshot picker: its name, revision, size and when it was taken."""
    taken = f", taken {local_when_text(created)}" if created else ""
    return f"{name}  (revision {rev}, {keys} keys{taken})"


def restore_lines(ops: list[Op], current: list[Item]) -> list[str]:
    """The restore dialog's changes, one a key, old -> new: JSON as ``rollback --dry-run`` prints
    it, but secrets masked (both sides) and long values cut."""
    now = {item.key: item.value for item in current}
    lines = []
    for op in ops:
        before = _diff_value(op.key, now[op.key]) if op.key in now else "(absent)"
        after = _diff_value(op.key, op.value) if op.op == "set" else "(unset)"
        lines.append(f"{op.key}: {before} -> {after}")
    return lines


def _diff_value(key: str, value: Any) -> str:
    return shown_value(key, format_value(json_text(value), DIFF_WIDTH))
