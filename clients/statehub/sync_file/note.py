"""The conflict note: refused edits, kept beside the synced file so nothing typed is lost.

Each refusal adds a section to ``PATH.conflict``; older sections stay until the
person deletes the note.  An entry is written in the file's own format, so it
can be copied back into the file as it is::

    # 2026-11-21 14:02:03Z: 1 edit from plant.toml (based on revision 5) was refused, because
    # the hub changed these keys after revision 5. plant.toml now shows the hub's values;
    # to apply yours anyway, copy the line back into the file and save.
    "plant.rate" = 99
    #   the hub has 31 (revision 7, set by cli/ana at 2026-11-21 14:01:58Z); at revision 5 it was 30
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from statehub import when_text, who_text
from statehub.hub.atomic_file import write_atomically
from statehub.sync_file.document import Format
from statehub.sync_file.plan import ABSENT, UNKNOWN, Refusal
from statehub.sync_file.toml_values import toml_string, toml_value


def note_path(path: Path) -> Path:
    return path.with_name(path.name + ".conflict")


def render_section(fmt: Format, file_name: str, base_rev: int, refused: list[Refusal], now: float) -> str:
    """One dated section of the note for the edits refused from one save."""
    count = f"{len(refused)} edit{'s' if len(refused) != 1 else ''}"
    lines = [
        f"# {when_text(now)}: {count} from {file_name} (based on revision {base_rev}) refused, because",
        f"# the hub changed these keys after revision {base_rev}. {file_name} now shows the hub's values;",
        "# to apply yours anyway, copy the line back into the file and save.",
    ]
    for refusal in refused:
        lines.extend(_entry(fmt, refusal, base_rev))
    return "\n".join(lines) + "\n\n"


def _entry(fmt: Format, refusal: Refusal, base_rev: int) -> list[str]:
    if refusal.yours is ABSENT:
        first = f"# you deleted {_key(fmt, refusal.key)}"
    else:
        first = f"{_key(fmt, refusal.key)} {'=' if fmt == 'toml' else ':'} {_value(fmt, refusal.yours)}"
    theirs = refusal.theirs
    if theirs is None:
        now = "the hub no longer has it"
    else:
        who = who_text(theirs.source, theirs.user)
        now = f"the hub has {_value(fmt, theirs.value)} (revision {theirs.rev}, set by {who} at {when_text(theirs.time)})"
    if refusal.base is UNKNOWN:
        then = f"its value at revision {base_rev} is unknown"
    elif refusal.base is ABSENT:
        then = f"at revision {base_rev} it did not exist"
    else:
        then = f"at revision {base_rev} it was {_value(fmt, refusal.base)}"
    return [first, f"#   {now}; {then}"]


def _key(fmt: Format, key: str) -> str:
    return toml_string(key) if fmt == "toml" else json.dumps(key, ensure_ascii=False)


def _value(fmt: Format, value: Any) -> str:
    return toml_value(value) if fmt == "toml" else json.dumps(value, ensure_ascii=False)


def append_section(path: Path, section: str) -> None:
    """Add ``section`` to the note, atomically, keeping what is there."""
    try:
        before = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        before = ""
    write_atomically(path, (before + section).encode(), mode=0o600)


def record(path: Path, fmt: Format, file_name: str, base_rev: int, refused: list[Refusal]) -> Path:
    """Append the refused edits to the note beside ``path``; return the note's path."""
    target = note_path(path)
    append_section(target, render_section(fmt, file_name, base_rev, refused, time.time()))
    return target
