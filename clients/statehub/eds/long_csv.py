"""Long CSV: one row per point and time.

    timestamp,sid,shortdesc,rjn_siteid,rjn_entityid,value
    2025-04-30T12:05:00,2308,INFLU,47EE48FD-...,199,51.56

Timestamps are naive plant-local time.  A repeated (sid, timestamp) is a
correction: the later row wins (that is decided when readings are planned, so
it holds across files too).  Some exports end every row with ``,,,``.  Columns
are found by name, so their order and extra columns do not matter.  Where an
export has them, a ``quality`` column holds the EDS quality letter and a
``stat`` (or ``alarm``) column the Ovation alarm word (statehub.eds.quality).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from statehub.eds.csv_rows import parse_number, records, without_trailing_empty
from statehub.eds.quality import QUALITY_LETTERS, parse_alarm_word
from statehub.eds.records import BadRow, EdsInputError, ParseResult, Reading
from statehub.eds.timezones import LocalClock, parse_timestamp

FORMAT = "long"
REQUIRED = ("timestamp", "sid", "value")
ALARM_COLUMNS = ("stat", "alarm")


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
    alarm_column = next((name for name in ALARM_COLUMNS if name in names), None)
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
            result.readings.append(_reading(row, file, line, clock, alarm_column))
        except ValueError as exc:
            result.bad_rows.append(BadRow(file, line, str(exc)))
    return result


def _reading(
    row: dict[str, str], file: str, line: int, clock: LocalClock, alarm_column: str | None
) -> Reading:
    sid_text = row["sid"].strip()
    if not sid_text.isdigit():
        raise ValueError(f"sid {row['sid']!r} is not a point number")
    sid = str(int(sid_text))
    stamp = parse_timestamp(row["timestamp"])
    value = parse_number(row["value"])
    quality = _quality(row.get("quality", ""))
    alarm = parse_alarm_word(row[alarm_column]) if alarm_column and row[alarm_column].strip() else None
    # Placed last: only a row that is otherwise good may move the point's DST state.
    return Reading(
        point=sid,
        point_kind="sid",
        time=clock.place(sid, stamp),
        value=value,
        quality=quality,
        file=file,
        line=line,
        desc=row.get("shortdesc", "").strip() or None,
        alarm=alarm,
    )


def _quality(text: str) -> str | None:
    letter = text.strip().upper()
    if not letter:
        return None
    if letter not in QUALITY_LETTERS:
        raise ValueError(f"quality {text!r} is not one of {', '.join(sorted(QUALITY_LETTERS))}")
    return letter
