"""JSON decoding that remembers the line on which each array element starts.

The standard decoder forgets positions, but a bad sample deep in a tabular
trend file must be reported with its line like a bad CSV row.  This walks
arrays and objects itself and leaves scalars to ``json.JSONDecoder.raw_decode``.
"""

from __future__ import annotations

import bisect
import json
import re
from typing import Any

MAX_DEPTH = 64  # trend files nest four deep; deeper input is refused rather than recursed into

_SPACE = re.compile(r"[ \t\n\r]*")
_NEWLINE = re.compile("\n")
_NUMBER = r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?"
# A trend sample, [unix_ts, value, "Q"] or [..., alarm_word]: millions of them in a year's file, so they
# are read with one match each instead of character by character (anything else takes the general path).
_SAMPLE = re.compile(
    rf"\[[ \t\n\r]*({_NUMBER})[ \t\n\r]*,[ \t\n\r]*(null|{_NUMBER})[ \t\n\r]*,"
    rf"[ \t\n\r]*\"([A-Za-z])\"[ \t\n\r]*(?:,[ \t\n\r]*(\d+)[ \t\n\r]*)?\]"
)


class LocatedJson:
    """A decoded JSON document, and the line of every array element in it."""

    def __init__(self, value: Any, starts: dict[int, list[int]], text: str) -> None:
        self.value = value
        self._starts = starts  # id(array) -> offsets of its elements; the arrays live as long as value
        self._newlines = [match.start() for match in _NEWLINE.finditer(text)]

    def line_of(self, array: list[Any], index: int) -> int:
        offset = self._starts[id(array)][index]
        return bisect.bisect_left(self._newlines, offset) + 1


def load(text: str) -> LocatedJson:
    """Decode ``text``; raises json.JSONDecodeError (with its line) when it is not JSON."""
    decoder = _Decoder(text)
    value, end = decoder.value(0, 0)
    end = _SPACE.match(text, end).end()  # type: ignore[union-attr]
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return LocatedJson(value, decoder.starts, text)


class _Decoder:
    def __init__(self, text: str) -> None:
        self.text = text
        self.scalars = json.JSONDecoder()
        self.starts: dict[int, list[int]] = {}

    def skip(self, pos: int) -> int:
        return _SPACE.match(self.text, pos).end()  # type: ignore[union-attr]

    def value(self, pos: int, depth: int) -> tuple[Any, int]:
        pos = self.skip(pos)
        if depth > MAX_DEPTH:
            raise json.JSONDecodeError(f"nested deeper than {MAX_DEPTH} levels", self.text, pos)
        char = self.text[pos : pos + 1]
        if char == "[":
            sample = _SAMPLE.match(self.text, pos)
            if sample is not None:
                return _sample(sample), sample.end()
            return self.array(pos + 1, depth)
        if char == "{":
            return self.object(pos + 1, depth)
        value, end = self.scalars.raw_decode(self.text, pos)
        return value, end

    def array(self, pos: int, depth: int) -> tuple[list[Any], int]:
        items: list[Any] = []
        starts: list[int] = []
        self.starts[id(items)] = starts
        pos = self.skip(pos)
        if self.text[pos : pos + 1] == "]":
            return items, pos + 1
        while True:
            pos = self.skip(pos)
            starts.append(pos)
            item, pos = self.value(pos, depth + 1)
            items.append(item)
            pos = self.skip(pos)
            char = self.text[pos : pos + 1]
            if char == "]":
                return items, pos + 1
            if char != ",":
                raise json.JSONDecodeError("Expecting ',' delimiter", self.text, pos)
            pos += 1

    def object(self, pos: int, depth: int) -> tuple[dict[str, Any], int]:
        result: dict[str, Any] = {}
        pos = self.skip(pos)
        if self.text[pos : pos + 1] == "}":
            return result, pos + 1
        while True:
            pos = self.skip(pos)
            if self.text[pos : pos + 1] != '"':
                raise json.JSONDecodeError(
                    "Expecting property name enclosed in double quotes", self.text, pos
                )
            name, pos = self.scalars.raw_decode(self.text, pos)
            pos = self.skip(pos)
            if self.text[pos : pos + 1] != ":":
                raise json.JSONDecodeError("Expecting ':' delimiter", self.text, pos)
            result[name], pos = self.value(pos + 1, depth + 1)
            pos = self.skip(pos)
            char = self.text[pos : pos + 1]
            if char == "}":
                return result, pos + 1
            if char != ",":
                raise json.JSONDecodeError("Expecting ',' delimiter", self.text, pos)
            pos += 1


def _sample(match: re.Match[str]) -> list[Any]:
    """The list a sample's match stands for, numbers typed as JSON types them."""
    stamp, value, quality, alarm = match.groups()
    sample: list[Any] = [_number(stamp), None if value == "null" else _number(value), quality]
    if alarm is not None:
        sample.append(int(alarm))
    return sample


def _number(text: str) -> int | float:
    return float(text) if "." in text or "e" in text or "E" in text else int(text)
