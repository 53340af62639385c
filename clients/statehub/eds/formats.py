"""Which format a file is in, and parsing a file in its format."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from statehub.eds.csv_rows import first_line, read_text, records
from statehub.eds.long_csv import parse_long
from statehub.eds.records import EdsInputError, ParseResult
from statehub.eds.timezones import parse_timestamp
from statehub.eds.trend_json import parse_trend_json
from statehub.eds.two_column import parse_two_column
from statehub.eds.wide_csv import parse_wide

Format = Literal["auto", "long", "wide", "two-column", "json"]
FORMATS: tuple[str, ...] = ("auto", "long", "wide", "two-column", "json")


def detect_format(text: str, file: str) -> str:
    """The format of an export from its first line; EdsInputError when none fits."""
    stripped = text.lstrip()
    if not stripped:
        raise EdsInputError(file, None, "the file is empty")
    if file.lower().endswith(".json") or stripped[0] in "[{":
        return "json"
    first = next(records(text, file), None)
    if first is None:
        raise EdsInputError(file, None, "the file holds only empty rows")
    line, fields = first
    names = [field.strip().lower() for field in fields]
    if names and names[0] == "timestamp" and "sid" in names:
        return "long"
    if len(names) >= 3 and not names[0] and not names[1] and names[2].startswith("\\"):
        return "wide"
    if "iess" in names or stripped.startswith("POINT "):
        raise EdsInputError(file, line, "this is a point map, not readings: pass it with --points")
    if len([n for n in names if n]) == 2 and _is_timestamp(fields[0]):
        return "two-column"
    raise EdsInputError(
        file,
        line,
        f"cannot tell the format from {first_line(stripped)[:60]!r}: give --format long, wide, two-column or json",
    )


OnRows = Callable[[int], None]  # told every few thousand rows how many more were read


def parse_file(
    path: str | Path, fmt: str, zone: ZoneInfo, points: list[str], on_rows: OnRows | None = None
) -> ParseResult:
    """Read one export; ``points`` are the --point names (two-column and bare trend JSON need them)."""
    file = str(path)
    text = read_text(path)
    return parse_text(text, file, fmt, zone, points, on_rows)


def parse_text(
    text: str, file: str, fmt: str, zone: ZoneInfo, points: list[str], on_rows: OnRows | None = None
) -> ParseResult:
    text = text.removeprefix("\ufeff")  # read_text drops it already; text from elsewhere may keep it
    chosen = detect_format(text, file) if fmt == "auto" else fmt
    result = _parse(text, file, chosen, zone, points)
    if on_rows is not None:
        on_rows(result.rows)
    return result


def _parse(text: str, file: str, chosen: str, zone: ZoneInfo, points: list[str]) -> ParseResult:
    if chosen == "long":
        return parse_long(text, file, zone)
    if chosen == "wide":
        return parse_wide(text, file, zone)
    if chosen == "json":
        return parse_trend_json(text, file, zone, points)
    if chosen == "two-column":
        if len(points) != 1:
            raise EdsInputError(
                file,
                None,
                f"a two-column file holds one point: give --point exactly once (got {len(points)})",
            )
        return parse_two_column(text, file, zone, points[0])
    raise EdsInputError(file, None, f"unknown format {chosen!r}: choose one of {', '.join(FORMATS)}")


def _is_timestamp(text: str) -> bool:
    try:
        parse_timestamp(text)
    except ValueError:
        return False
    return True
