"""Two-column CSV: ``ISO-timestamp,value`` per row, no header, sometimes a BOM.

The file does not name its point; the command line does (``--point``).  Rows
hold one time each, so a repeated time within the fall-back hour is the
repeated hour (see statehub.eds.timezones).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from statehub.eds.csv_rows import parse_number, records, without_trailing_empty
from statehub.eds.records import BadRow, EdsInputError, ParseResult, Reading
from statehub.eds.timezones import LocalClock, parse_timestamp

FORMAT = "two-column"


def parse_two_column(text: str, file: str, zone: ZoneInfo, point: str) -> ParseResult:
    if not point:
        raise EdsInputError(file, None, "a two-column file does not name its point: give --point NAME")
    result = ParseResult(file, FORMAT)
    clock = LocalClock(zone, equal_time_repeats=True)
    for line, fields in records(text, file):
        result.rows += 1
        fields = without_trailing_empty(fields, 2)
        if len(fields) != 2:
            result.bad_rows.append(
                BadRow(file, line, f"expected 2 fields (timestamp,value), found {len(fields)}")
            )
            continue
        try:
            stamp = parse_timestamp(fields[0])
            value = parse_number(fields[1])
            when = clock.place(point, stamp)
        except ValueError as exc:
            result.bad_rows.append(BadRow(file, line, str(exc)))
            continue
        result.readings.append(Reading(point, "given", when, value, None, file, line))
    if result.rows == 0:
        raise EdsInputError(file, None, "the file is empty")
    return result
