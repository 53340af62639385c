"""What the EDS parsers produce: readings, bad rows, and the error for an unusable file.

Every parser is a pure function from a file's text to a ParseResult.  A row that
cannot be read becomes a BadRow (file, line, reason) and the other rows go on; a
file that cannot be read at all (unknown layout, broken header, not UTF-8)
raises EdsInputError, which also names file, line and reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, NamedTuple

from statehub import InvalidRequest
from statehub.eds.quality import QUALITY_LETTERS as QUALITY_LETTERS

# How a file names a point: by IESS (`M100FI.UNIT0@NET0`), by SID (`2308`), or by a
# name the user gave on the command line (any of IESS, IDCS or SID).
PointKind = Literal["iess", "sid", "given"]


class Reading(NamedTuple):
    """One value of one point at one instant, as one row of one file gave it.

    A NamedTuple because a year of 5-minute data is a million of these: it is
    made about three times faster than a frozen dataclass and takes half the
    memory.  Readings of one row share their ``time``, ``file`` and ``point`` objects.
    """

    point: str
    point_kind: PointKind
    time: datetime  # aware; its offset is the one the file gave or the plant's at that instant
    value: float | None  # None only when EDS sent a sample without a value
    quality: str | None  # an EDS quality letter; None for formats that carry none
    file: str
    line: int
    units: str | None = None
    desc: str | None = None  # the file's own description of the point (long CSV `shortdesc`)
    alarm: int | None = None  # the Ovation alarm word, when the export has one

    @property
    def utc(self) -> datetime:
        return self.time.astimezone(UTC)

    @property
    def instant(self) -> float:
        """Seconds since the Unix epoch: what readings are ordered and compared by."""
        return self.time.timestamp()


@dataclass(frozen=True)
class BadRow:
    """A row (or a cell of a row) that was not ingested, and why."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"

    def as_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "reason": self.reason}


@dataclass
class ParseResult:
    """Everything read from one file."""

    file: str
    format: str
    rows: int = 0  # data rows read (headers and blank lines not counted)
    readings: list[Reading] = field(default_factory=list)
    bad_rows: list[BadRow] = field(default_factory=list)


class EdsInputError(InvalidRequest):
    """A file (or the point map, or an option) cannot be used at all: bad input, exit 2."""

    def __init__(self, file: str, line: int | None, reason: str) -> None:
        self.file = file
        self.line = line
        self.reason = reason
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {reason}")
