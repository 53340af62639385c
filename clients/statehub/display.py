"""How values, times, ages and writers read to a person: one wording for every front end.

The CLI, the GUI, ``sync-file`` and ``Origin.describe`` all format through these
functions, so "2026-11-21 14:02:03Z", "cli/ana" and "4 s old" look the same
wherever they appear.  Machine output (``--json``) does not use them.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from statehub.hub.protocol import SiteOrigin


def value_text(value: Any) -> str:
    """A value for people: a string as it is, anything else as compact JSON."""
    return value if isinstance(value, str) else json_text(value)


def json_text(value: Any) -> str:
    """A value as JSON, non-ASCII kept readable (a string keeps its quotes)."""
    return json.dumps(value, ensure_ascii=False)


def who_text(source: str, user: str) -> str:
    """Who made a change: ``source/user``, whichever parts are known, else ``?``."""
    return "/".join(part for part in (source, user) if part) or "?"


def site_text(origin: SiteOrigin | None) -> str:
    """Where a change was first made, when another hub made it: ``from site north rev 41``; else ``""``."""
    if origin is None:
        return ""
    return f"from site {origin.site} rev {origin.rev} ({who_text(origin.source, origin.user)} at {when_text(origin.time)})"


def when_text(seconds: float) -> str:
    """A moment in UTC to the second, ``2026-11-21 14:02:03Z``: what logs, notes and the CLI show."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def local_when_text(seconds: float) -> str:
    """A moment in this machine's time zone with the zone named, ``2026-11-21 08:02:03 CST``, for an
    operator's screen (never a bare local time); empty when unknown (time 0)."""
    if not seconds:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(seconds))


def age_text(seconds: float) -> str:
    """How old something is, in the unit a person would use: ``4 s``, ``5 min``, ``2.0 h``, ``2.3 days``."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
