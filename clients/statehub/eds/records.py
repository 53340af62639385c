"""What the EDS parsers produce: readings, bad rows, and the error for an unusable file.

Every parser is a pure function from a file's text to a ParseResult.  A row that
cannot be read becomes a BadRow (file, line, reason) and the other rows go on; a
file that cannot be read at all (unknown layout, broken header, not UTF-8)
raises EdsInputError, which also names file, line and reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from statehub import InvalidRequest
from statehub.eds.quality import QUALITY_LETTERS as QUALITY_LETTERS
from statehub.eds.readings import PointKind as PointKind
from statehub.eds.readings import Reading as Reading
from statehub.eds.readings import Readings


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
    readings: Readings = field(default_factory=Readings)
    bad_rows: list[BadRow] = field(default_factory=list)


class EdsInputError(InvalidRequest):
    """A file (or the point map, or an option) cannot be used at all: bad input, exit 2."""

    def __init__(self, file: str, line: int | None, reason: str) -> None:
        self.file = file
        self.line = line
        self.reason = reason
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {reason}")
