"""Reading export text: UTF-8 with or without a BOM, CSV records with their line numbers, numbers."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

from statehub.eds.records import EdsInputError

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def read_text(path: str | Path) -> str:
    """A file's text, without a BOM; raises EdsInputError when it is missing or not UTF-8."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise EdsInputError(name, None, f"cannot read the file: {exc.strerror or exc}") from None
    return decode(data, name)


def decode(data: bytes, file: str) -> str:
    try:
        return data.decode("utf-8-sig")  # Excel writes a BOM; utf-8-sig drops it when present
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise EdsInputError(
            file,
            line,
            f"not UTF-8 text: byte 0x{data[exc.start]:02X} at offset {exc.start} (save the export as UTF-8)",
        ) from None


def records(text: str, file: str) -> Iterator[tuple[int, list[str]]]:
    """(line where the record starts, fields) for every non-blank CSV record.

    Text the csv module cannot split at all (a NUL byte) fails the whole file:
    such a file is damaged, not merely holding a bad row.
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    while True:
        start = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise EdsInputError(file, start, f"not readable as CSV: {exc}") from None
        if any(field.strip() for field in fields):
            yield start, fields


def without_trailing_empty(fields: list[str], width: int) -> list[str]:
    """``fields`` with empty fields beyond ``width`` dropped (some exports end rows with ``,,,``)."""
    end = len(fields)
    while end > width and not fields[end - 1].strip():
        end -= 1
    return fields[:end]


def parse_number(text: str) -> float:
    """A decimal number; raises ValueError naming the text (NaN and infinities are refused)."""
    stripped = text.strip()
    if not stripped:
        raise ValueError("the value is empty")
    if not _NUMBER.fullmatch(stripped):
        raise ValueError(f"value {text!r} is not a number")
    return float(stripped)


def first_line(text: str) -> str:
    return text.split("\n", 1)[0].rstrip("\r")
