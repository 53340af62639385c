"""A reading, and many readings kept column by column: about 40 bytes each instead of about 200.

A year of 5-minute data for ten points is a million readings.  As Reading
tuples (each with its float) that is some 270 MB, more than a Pi Zero's ingest
service may use (docs/deploy.md caps it at 160 MiB); as columns it is some
40 MB.  ``Readings`` is a list of Reading to its users: ``append`` one, index
or iterate to get one back.  What many readings share (the point, the file, the
time zone, the quality letter, units and description) is stored once, as a
"shape", and each reading holds the shape's number, its instant, value, line
and alarm word.

Code that handles many readings at once reads the columns instead
(``instant``, ``value``, ``point_of``, ...), so a million readings are never all
tuples at the same time.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, tzinfo
from typing import Literal, NamedTuple, overload

from statehub.eds.quality import Status, status_of

# How a file names a point: by IESS (`M100FI.UNIT0@NET0`), by SID (`2308`), or by a
# name the user gave on the command line (any of IESS, IDCS or SID).
PointKind = Literal["iess", "sid", "given"]


class Reading(NamedTuple):
    """One value of one point at one instant, as one row of one file gave it.

    A NamedTuple: parsers make one per value read, and it is made about three
    times faster than a frozen dataclass.  Many are kept as ``Readings``.
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


_NO_ALARM = -1
_NO_VALUE = math.nan  # never a reading's value: parsers refuse NaN, and None stands for "no value"


class _Shape(NamedTuple):
    """What readings of one point, file and kind of sample have in common."""

    point: str
    point_kind: PointKind
    zone: tzinfo
    quality: str | None
    file: str
    units: str | None
    desc: str | None


class Readings:
    """A list of readings stored as columns (see the module)."""

    __slots__ = ("_alarms", "_instants", "_lines", "_shape_of", "_shapes", "_shape_numbers", "_values")

    def __init__(self, readings: Iterable[Reading] = ()) -> None:
        self._empty()
        for reading in readings:
            self.append(reading)

    def _empty(self) -> None:
        self._instants = array("d")
        self._values = array("d")
        self._lines = array("q")
        self._alarms = array("q")
        self._shape_of = array("I")
        self._shapes: list[_Shape] = []
        self._shape_numbers: dict[_Shape, int] = {}

    # --- as a list of Reading ------------------------------------------------------------

    def append(self, reading: Reading) -> None:
        time = reading.time
        zone = time.tzinfo
        assert zone is not None, "a reading's time is aware"
        shape = _Shape(reading.point, reading.point_kind, zone, reading.quality, reading.file, reading.units, reading.desc)
        self._add(self._number(shape), time.timestamp(), reading.value, reading.line, reading.alarm)

    def copy(self, source: Readings, index: int) -> None:
        """Append ``source``'s reading ``index`` without making it a Reading."""
        number = self._number(source._shapes[source._shape_of[index]])
        self._instants.append(source._instants[index])
        self._values.append(source._values[index])
        self._lines.append(source._lines[index])
        self._alarms.append(source._alarms[index])
        self._shape_of.append(number)

    def clear(self) -> None:
        self._empty()

    def __len__(self) -> int:
        return len(self._instants)

    @overload
    def __getitem__(self, index: int) -> Reading: ...

    @overload
    def __getitem__(self, index: slice) -> list[Reading]: ...

    def __getitem__(self, index: int | slice) -> Reading | list[Reading]:
        if isinstance(index, slice):
            return [self._reading(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("reading index out of range")
        return self._reading(index)

    def __iter__(self) -> Iterator[Reading]:
        return (self._reading(i) for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Readings, list)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like a list

    def __repr__(self) -> str:
        return f"Readings({len(self)} readings)"

    # --- by column ------------------------------------------------------------------------

    @property
    def instants(self) -> array[float]:
        """Seconds since the Unix epoch of every reading, in order (read-only by convention)."""
        return self._instants

    def instant(self, index: int) -> float:
        return self._instants[index]

    def value(self, index: int) -> float | None:
        value = self._values[index]
        return None if math.isnan(value) else value

    def quality(self, index: int) -> str | None:
        return self._shapes[self._shape_of[index]].quality

    def alarm(self, index: int) -> int | None:
        alarm = self._alarms[index]
        return None if alarm == _NO_ALARM else alarm

    def status(self, index: int) -> Status | None:
        return status_of(self.quality(index), self.value(index), self.alarm(index))

    def point_of(self, index: int) -> tuple[str, PointKind]:
        shape = self._shapes[self._shape_of[index]]
        return shape.point, shape.point_kind

    def where(self, index: int) -> tuple[str, int]:
        """The file and line the reading came from."""
        return self._shapes[self._shape_of[index]].file, self._lines[index]

    def points(self) -> set[tuple[str, PointKind]]:
        """Every (point, kind) these readings name."""
        return {(shape.point, shape.point_kind) for shape in self._shapes}

    # --- inside ---------------------------------------------------------------------------

    def _number(self, shape: _Shape) -> int:
        number = self._shape_numbers.get(shape)
        if number is None:
            number = self._shape_numbers[shape] = len(self._shapes)
            self._shapes.append(shape)
        return number

    def _add(self, shape: int, instant: float, value: float | None, line: int, alarm: int | None) -> None:
        self._instants.append(instant)
        self._values.append(_NO_VALUE if value is None else value)
        self._lines.append(line)
        self._alarms.append(_NO_ALARM if alarm is None else alarm)
        self._shape_of.append(shape)

    def _reading(self, index: int) -> Reading:
        shape = self._shapes[self._shape_of[index]]
        return Reading(
            point=shape.point,
            point_kind=shape.point_kind,
            time=datetime.fromtimestamp(self._instants[index], shape.zone),
            value=self.value(index),
            quality=shape.quality,
            file=shape.file,
            line=self._lines[index],
            units=shape.units,
            desc=shape.desc,
            alarm=self.alarm(index),
        )
