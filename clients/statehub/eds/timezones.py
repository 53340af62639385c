"""Naive plant-local timestamps to instants, across daylight-saving changes.

EDS exports write the plant's wall-clock time without an offset.  Two hours a
year that is not enough (America/Chicago shown; any IANA zone works the same):

- **Spring forward** (second Sunday of March, 02:00 -> 03:00): 02:00-02:59 never
  happens.  A row with such a time is a bad row ("does not exist"), never moved
  to a guessed instant.
- **Fall back** (first Sunday of November, 02:00 -> 01:00): 01:00-01:59 happens
  twice, first in daylight time (CDT, -05:00), then in standard time (CST,
  -06:00).  A file lists that hour twice, in order, so for each point the rows
  of the repeated hour are daylight time until the clock steps back, and
  standard time from then on.  The clock steps back when a row's time is
  earlier than the previous row's time of that point within the repeated hour;
  in formats with one row per time (wide, two-column) an equal time is also a
  step back, because the repeated hour is the only way a time can recur there.
  In the long format an equal time is a correction instead (the later row
  wins), so an hourly long export cannot express the repeated hour; 5-minute
  exports can, because the clock visibly goes back.  A file that starts inside
  the second pass of the repeated hour is read as daylight time.

Timestamps that carry an offset (``...-05:00`` or ``...Z``) are instants already
and skip these rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?")


class NonexistentTime(ValueError):
    """A naive local time that falls in the spring-forward gap."""


def plant_zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; raises ValueError naming it when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}: give an IANA name such as America/Chicago "
            "(and install the tz database: Debian package tzdata)"
        ) from None


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 date and time, naive or with an offset; raises ValueError naming the text."""
    stripped = text.strip()
    if not _TIMESTAMP.fullmatch(stripped):
        raise ValueError(f"{text!r} is not a timestamp (expected YYYY-MM-DDTHH:MM:SS)")
    try:
        return datetime.fromisoformat(stripped)
    except ValueError:
        raise ValueError(f"{text!r} is not a valid date and time") from None


def from_unix(seconds: float, zone: ZoneInfo) -> datetime:
    """A Unix timestamp as the plant's local time (offsets from the zone)."""
    return datetime.fromtimestamp(seconds, UTC).astimezone(zone)


def is_nonexistent(naive: datetime, zone: ZoneInfo) -> bool:
    aware = naive.replace(tzinfo=zone)
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive


def is_ambiguous(naive: datetime, zone: ZoneInfo) -> bool:
    first, second = naive.replace(tzinfo=zone, fold=0), naive.replace(tzinfo=zone, fold=1)
    return first.utcoffset() != second.utcoffset() and not is_nonexistent(naive, zone)


@dataclass
class _RepeatedHour:
    day: date
    last: datetime  # the point's previous naive time within the repeated hour
    stepped_back: bool


class LocalClock:
    """Places one file's timestamps in time, point by point, following the rules above."""

    def __init__(self, zone: ZoneInfo, *, equal_time_repeats: bool) -> None:
        self.zone = zone
        self.equal_time_repeats = equal_time_repeats
        self._repeated: dict[str, _RepeatedHour] = {}

    def place(self, point: str, stamp: datetime) -> datetime:
        """``stamp`` as an aware datetime; raises NonexistentTime in the spring-forward gap."""
        if stamp.tzinfo is not None:
            return stamp
        placed = stamp.replace(tzinfo=self.zone)
        if placed.utcoffset() == stamp.replace(tzinfo=self.zone, fold=1).utcoffset():
            return placed  # neither skipped nor repeated: all but two hours a year, so checked first
        if is_nonexistent(stamp, self.zone):
            raise NonexistentTime(
                f"{stamp.isoformat()} does not exist in {self.zone.key} (clocks skip that hour for daylight saving)"
            )
        if not is_ambiguous(stamp, self.zone):
            return stamp.replace(tzinfo=self.zone)
        return stamp.replace(tzinfo=self.zone, fold=self._fold(point, stamp))

    def _fold(self, point: str, stamp: datetime) -> int:
        seen = self._repeated.get(point)
        if seen is None or seen.day != stamp.date():
            self._repeated[point] = _RepeatedHour(stamp.date(), stamp, stepped_back=False)
            return 0
        went_back = stamp < seen.last or (self.equal_time_repeats and stamp == seen.last)
        seen.stepped_back = seen.stepped_back or went_back
        seen.last = stamp
        return 1 if seen.stepped_back else 0
