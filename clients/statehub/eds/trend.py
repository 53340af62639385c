"""A point's readings over time, read back from its key's history (``statehub eds trend KEY``).

History holds one version per reading (``ingest-eds --replay`` writes one
revision per reading time), so a point's trend is its key's versions, in order
of reading time rather than of writing.  A key that ``eds migrate-keys``
renamed continues into its old key's history (the moved record says
``renamed_from``), so a rename loses nothing from the trend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from statehub import MAX_HISTORY_LIMIT, Version
from statehub.eds.migrate import RENAMED_FROM
from statehub.eds.resolve import parse_utc_text

History = Callable[[str, int], list[Version]]  # (key, limit) -> versions, newest first
MAX_RENAMES = 10  # a chain of renames longer than this is a loop, not history


@dataclass(frozen=True)
class TrendRow:
    """One reading of the point, as its key's history holds it."""

    key: str
    rev: int
    time: str  # the reading's time, plant-local with its offset (the record's local, else time)
    value: Any
    units: Any
    quality: Any
    status: Any
    backfill: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "rev": self.rev,
            "time": self.time,
            "value": self.value,
            "units": self.units,
            "quality": self.quality,
            "status": self.status,
            "backfill": self.backfill,
        }

    def text(self) -> str:
        value = "null" if self.value is None else f"{self.value:g}" if isinstance(self.value, float) else str(self.value)
        units = f" {self.units}" if self.units else ""
        quality = " ".join(str(part) for part in (self.status, self.quality) if part) or "-"
        marks = "  backfill" if self.backfill else ""
        return f"{self.time:<26} {value + units:>16}  {quality:<14} rev {self.rev}{marks}"


def trend(history: History, key: str, limit: int) -> list[TrendRow]:
    """The newest ``limit`` readings of ``key`` by reading time, oldest first, following renames back."""
    found: list[tuple[float, int, TrendRow]] = []
    current: str | None = key
    before: int | None = None
    for _ in range(MAX_RENAMES + 1):
        if current is None:
            break
        renamed: tuple[str, int] | None = None
        for version in history(current, min(MAX_HISTORY_LIMIT, limit + 1)):
            if before is not None and version.rev >= before:
                continue
            if version.op != "set" or not isinstance(version.value, dict):
                continue
            source = version.value.get(RENAMED_FROM)
            if isinstance(source, str):  # the moved copy of the old key's last reading: read on there
                renamed = renamed or (source, version.rev)
                continue
            found.append((_instant(version), version.rev, _row(current, version)))
        current, before = renamed if renamed is not None else (None, None)
    found.sort(key=lambda entry: (entry[0], entry[1]))
    return [row for _instant, _rev, row in found[-limit:]]


def _instant(version: Version) -> float:
    """The reading's time, to order by; readings without one sort first."""
    moment = parse_utc_text(version.value.get("time"))
    return moment.timestamp() if moment is not None else float("-inf")


def _row(key: str, version: Version) -> TrendRow:
    record = version.value
    return TrendRow(
        key=key,
        rev=version.rev,
        time=str(record.get("local") or record.get("time") or ""),
        value=record.get("value"),
        units=record.get("units"),
        quality=record.get("quality"),
        status=record.get("status"),
        backfill=version.backfill,
    )
