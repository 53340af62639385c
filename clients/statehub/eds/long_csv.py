"""Long CSV: one row per point and time.

    timestamp,sid,shortdesc,rjn_siteid,rjn_entityid,value
    2025-04-30T12:05:00,2308,INFLU,47EE48FD-...,199,51.56

Timestamps are naive plant-local time.  A repeated (sid, timestamp) is a
correction: the later row wins (that is decided when readings are planned, so
it holds across files too).  Some exports end every row with ``,,,``.  Columns
are found by name, so their order and extra columns do not matter.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from statehub.eds.csv_rows import parse_number, records, without_trailing_empty
from statehub.eds.records import BadRow, EdsInputError, ParseResult, Reading
from statehub.eds.timezones import LocalClock, parse_timestamp

FORMAT = "long"
REQUIRED = ("timestamp", "sid", "value")


def parse_long(text: str, file: str, zone: ZoneInfo) -> ParseResult:
    result = ParseResult(file, FORMAT)
    rows = records(text, file)
    first = next(rows, None)
    if first is None:
        raise EdsInputError(file, None, "the file is empty")
    header_line, header = first
    names = [name.strip().lower() for name in without_trailing_empty(header, 0)]
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        raise EdsInputError(
            file,
            header_line,
            f"the header has no {', '.join(missing)} column (a long export starts timestamp,sid,shortdesc,...,value)",
        )
    clock = LocalClock(zone, equal_time_repeats=False)  # an equal time is a correction here
    for line, fields in rows:
        result.rows += 1
        fields = without_trailing_empty(fields, len(names))
        if len(fields) != len(names):
            result.bad_rows.append(
                BadRow(file, line, f"expected {len(names)} fields ({','.join(names)}), found {len(fields)}")
            )
            continue
        row = dict(zip(names, fields, strict=True))
        try:
            result.readings.append(_reading(row, file, line, clock))
        except ValueError as exc:
            result.bad_rows.append(BadRow(file, line, str(exc)))
    return result


def _reading(row: dict[str, str], file: str, line: int, clock: LocalClock) -> Reading:
    sid_text = row["sid"].strip()
    if not sid_text.isdigit():
        raise ValueError(f"sid {row['sid']!r} is not a point number")
    sid = str(int(sid_text))
    stamp = parse_timestamp(row["timestamp"])
    value = parse_number(row["value"])
    # Placed last: only a row that is otherwise good may move the point's DST state.
    return Reading(
        point=sid,
        point_kind="sid",
        time=clock.place(sid, stamp),
        value=value,
        quality=None,
        file=file,
        line=line,
        desc=row.get("shortdesc", "").strip() or None,
    )
