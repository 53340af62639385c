"""Wide CSV: an EDS trend export as pasted into Excel, one column per point.

    ,,\\FI-405/415.UNIT1@NET1\\,\\M100FI.UNIT0@NET0\\
    Date,,VALUE(\\FI-405/415.UNIT1@NET1\\),VALUE(\\M100FI.UNIT0@NET0\\)
    4/30/2025,2025-04-30T12:00:00,51.56,39.51
    4/30/2025,2025-04-30T13:00:00,,40.02

UTF-8 with a BOM; each point's IESS between backslashes; naive local times; an
empty cell is no reading.  Every data row is one time for all points, so the
daylight-saving rule of statehub.eds.timezones applies to the row, not per
point.  A bad cell is reported alone; the other cells of its row still count.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

from statehub.eds.csv_rows import parse_number, records, without_trailing_empty
from statehub.eds.records import BadRow, EdsInputError, ParseResult, Reading
from statehub.eds.timezones import LocalClock, parse_timestamp

FORMAT = "wide"
_NAME = re.compile(r"\\(.+)\\")
_FUNCTION = re.compile(r"[A-Za-z_]+\((\\.+\\)\)")
_ROW_CLOCK = "*"  # the whole row shares one time line


def parse_wide(text: str, file: str, zone: ZoneInfo) -> ParseResult:
    result = ParseResult(file, FORMAT)
    rows = records(text, file)
    points = _point_names(next(rows, None), file)
    _check_second_header(next(rows, None), points, file)
    width = 2 + len(points)
    clock = LocalClock(zone, equal_time_repeats=True)
    for line, fields in rows:
        result.rows += 1
        fields = without_trailing_empty(fields, width)
        if len(fields) != width:
            result.bad_rows.append(
                BadRow(
                    file,
                    line,
                    f"expected {width} fields (date, time, {len(points)} points), found {len(fields)}",
                )
            )
            continue
        try:
            when = clock.place(_ROW_CLOCK, _row_time(fields[0], fields[1]))
        except ValueError as exc:
            result.bad_rows.append(BadRow(file, line, str(exc)))
            continue
        for column, (point, cell) in enumerate(zip(points, fields[2:], strict=True), start=3):
            if not cell.strip():
                continue
            try:
                value = parse_number(cell)
            except ValueError as exc:
                result.bad_rows.append(BadRow(file, line, f"column {column} ({point}): {exc}"))
                continue
            result.readings.append(Reading(point, "iess", when, value, None, file, line))
    return result


def _point_names(first: tuple[int, list[str]] | None, file: str) -> list[str]:
    if first is None:
        raise EdsInputError(file, None, "the file is empty")
    line, fields = first
    fields = without_trailing_empty(fields, 2)
    if len(fields) < 3 or fields[0].strip() or fields[1].strip():
        raise EdsInputError(
            file, line, "the first row must be ,,\\IESS1\\,\\IESS2\\,... (two empty cells, then the points)"
        )
    names: list[str] = []
    for column, cell in enumerate(fields[2:], start=3):
        match = _NAME.fullmatch(cell.strip())
        if match is None:
            raise EdsInputError(
                file, line, f"column {column} is {cell!r}; a point is written between backslashes: \\IESS\\"
            )
        if match.group(1) in names:
            raise EdsInputError(file, line, f"column {column}: point {match.group(1)} appears twice")
        names.append(match.group(1))
    return names


def _check_second_header(second: tuple[int, list[str]] | None, points: list[str], file: str) -> None:
    if second is None:
        raise EdsInputError(
            file,
            None,
            "the file ends after the first row; the second row Date,,VALUE(\\IESS\\),... is missing",
        )
    line, fields = second
    fields = without_trailing_empty(fields, 2 + len(points))
    if not fields or fields[0].strip().lower() != "date" or len(fields) != 2 + len(points):
        raise EdsInputError(
            file,
            line,
            f"the second row must be Date,, and then VALUE(\\IESS\\) for each of the {len(points)} points",
        )
    for column, (point, cell) in enumerate(zip(points, fields[2:], strict=True), start=3):
        match = _FUNCTION.fullmatch(cell.strip())
        if match is None or match.group(1) != f"\\{point}\\":
            raise EdsInputError(
                file, line, f"column {column} is {cell!r}; the first row names \\{point}\\ there"
            )


def _row_time(date_cell: str, time_cell: str) -> datetime:
    stamp = parse_timestamp(time_cell)
    if date_cell.strip():
        day = _us_date(date_cell)
        if day != stamp.date():
            raise ValueError(
                f"the date column says {date_cell.strip()} but the time column says {time_cell.strip()}"
            )
    return stamp


def _us_date(text: str) -> date:
    parts = text.strip().split("/")
    try:
        if len(parts) != 3 or len(parts[2]) != 4 or not all(part.isdigit() for part in parts):
            raise ValueError
        return date(int(parts[2]), int(parts[0]), int(parts[1]))
    except ValueError:
        raise ValueError(f"date {text!r} is not M/D/YYYY") from None
