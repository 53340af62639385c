"""From readings to what the hub stores: a key per plant and point, and a record per reading.

    eds.stiles.FI-405/415 = {
        "value": 12.75, "quality": "G", "status": "good", "units": "MGD",
        "time": "2025-11-02T06:00:00Z", "local": "2025-11-02T01:00:00-05:00", "tz": "America/Chicago",
        "point": "FI-405/415.UNIT1@NET1", "sid": 5395, "idcs": "FI-405/415", "desc": "FLOW",
        "file": "wide_trend.csv", "line": 4}

A point is named by its IESS whenever it is known (from the file, or through
the point map); otherwise by what the file gives (a SID without a map: ``2308``).
Its key is ``statehub.eds.keys``'s, under the plant ``statehub.eds.plants``
chooses.  The readings of each key are kept as columns (statehub.eds.readings)
and records are made only when a write is sent (``record``), so a million
readings cost some 40 MB, not a million tuples and dicts.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from statehub.eds.keys import point_key, split_iess
from statehub.eds.plants import Placement, Plants
from statehub.eds.point_map import PointInfo, PointMap
from statehub.eds.quality import alarm_names, status_of
from statehub.eds.readings import Readings
from statehub.eds.records import BadRow, EdsInputError, PointKind, Reading


@dataclass(frozen=True)
class Point:
    """What every reading of one key shares: its name, map entry, plant and zone."""

    key: str
    name: str  # the IESS when known, else what the file gave
    info: PointInfo | None
    placement: Placement
    zone: ZoneInfo
    idcs: str | None  # the map's, else the tag of an IESS name


@dataclass
class Named:
    """The readings of an ingest, grouped by key, in the order they were read."""

    points: dict[str, Point] = field(default_factory=dict)
    readings: dict[str, Readings] = field(default_factory=dict)
    bad_rows: list[BadRow] = field(default_factory=list)

    def plants(self) -> list[dict[str, Any]]:
        """Which plant the points went to and why: one entry per plant and reason, for the output."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for key, point in self.points.items():
            placement = point.placement
            entry = found.setdefault(
                (placement.plant, placement.why),
                {"plant": placement.plant, "why": placement.why, "prefix": f"eds.{placement.plant}.", "points": 0},
            )
            entry["points"] += 1 if self.readings.get(key) else 0
        return sorted(found.values(), key=lambda entry: (entry["plant"], entry["why"]))


Names = dict[tuple[str, PointKind], tuple[str, PointInfo | None]]


def point_names(readings: Iterable[Readings], point_map: PointMap | None, plant: str | None) -> Names:
    """The full name and map entry of every distinct point the readings name (looked up once each)."""
    names: Names = {}
    for rows in readings:
        for lookup in sorted(rows.points()):
            if lookup not in names:
                info = point_map.find(*lookup, plant) if point_map else None
                names[lookup] = (info.iess if info else lookup[0], info)
    return names


def suffixes(names: Iterable[tuple[str, PointInfo | None]]) -> set[str]:
    """The IESS suffixes among the names (the plant settings an ingest needs to read)."""
    return {suffix for name, _info in names if (suffix := split_iess(name)[1]) is not None}


def name_readings(readings: Iterable[Readings], names: Mapping[tuple[str, PointKind], tuple[str, PointInfo | None]], plants: Plants, zone: ZoneInfo) -> Named:
    """Group the readings by key, in the order read; a reading whose key cannot be made is a bad row.

    Raises EdsInputError when nothing names a point's plant, or when two
    different points would share one key.
    """
    named = Named()
    points: dict[tuple[str, PointKind], Point | ValueError] = {}
    for rows in readings:
        for index in range(len(rows)):
            lookup = rows.point_of(index)
            point = points.get(lookup)
            if point is None:
                file, line = rows.where(index)
                point = points[lookup] = _point(lookup[0], file, line, *names[lookup], plants, zone)
                if isinstance(point, Point):
                    _check_one_point_per_key(named, point, file, line)
            if isinstance(point, ValueError):
                named.bad_rows.append(BadRow(*rows.where(index), str(point)))
                continue
            named.readings[point.key].copy(rows, index)
    return named


def _point(
    given: str, file: str, line: int, name: str, info: PointInfo | None, plants: Plants, zone: ZoneInfo
) -> Point | ValueError:
    tag, suffix = split_iess(name)
    try:
        placement = plants.place(suffix, info.zd if info else None)
    except ValueError as exc:  # a plant name with nothing to make a key of: the option or map is wrong
        raise EdsInputError(file, line, f"point {name}: {exc}") from None
    if placement is None:
        raise EdsInputError(
            file,
            line,
            f"no plant for point {given}: give --plant NAME, a --points map with a zd column, or set eds.plant",
        )
    try:
        key = point_key(placement.plant, tag, suffix if placement.keeps_suffix else None)
    except ValueError as exc:  # too long: this point's rows are bad, the others go on
        return exc
    idcs = info.idcs if info and info.idcs else (tag if suffix else None)
    return Point(key, name, info, placement, zone, idcs)


def _check_one_point_per_key(named: Named, point: Point, file: str, line: int) -> None:
    earlier = named.points.setdefault(point.key, point)
    if earlier.name != point.name:
        raise EdsInputError(
            file,
            line,
            f"points {earlier.name} and {point.name} would both be stored under {point.key}: "
            f"set eds.plants.<UNIT-NET> for their suffixes, or ingest them with different --plant",
        )
    named.readings.setdefault(point.key, Readings())


def record(reading: Reading, point: Point, times: tuple[str, str] | None = None) -> dict[str, Any]:
    """The value stored under the point's key for this reading.

    ``times`` is ``instant_texts`` of the reading's time, when the caller has
    it already (the points of one instant share it).
    """
    utc, local = times or instant_texts(reading.time, point.zone)
    info = point.info
    sid = info.sid if info else (int(reading.point) if reading.point_kind == "sid" else None)
    value: dict[str, Any] = {
        "value": reading.value,
        "quality": reading.quality,
        "status": status_of(reading.quality, reading.value, reading.alarm),
        "units": (info.units if info else None) or reading.units,
        "time": utc,
        "local": local,
        "tz": point.zone.key,
        "point": point.name,
        "sid": sid,
        "idcs": point.idcs,
        "desc": reading.desc or (info.desc if info else None),
        "file": _file_name(reading.file),
        "line": reading.line,
    }
    if reading.alarm is not None:
        value["alarm"] = reading.alarm
        value["alarms"] = alarm_names(reading.alarm)
    return value


@functools.lru_cache(maxsize=64)
def _file_name(path: str) -> str:
    return Path(path).name


def instant_texts(moment: datetime, zone: ZoneInfo) -> tuple[str, str]:
    """A reading's ``time`` (UTC) and ``local`` (the plant's wall clock with its offset) fields."""
    return utc_text(moment), local_text(moment.astimezone(zone))


def utc_text(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, to the second unless the time has a fraction."""
    moment = moment.astimezone(UTC)
    spec = "microseconds" if moment.microsecond else "seconds"
    return moment.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def local_text(moment: datetime) -> str:
    spec = "microseconds" if moment.microsecond else "seconds"
    return moment.isoformat(timespec=spec)


def parse_utc_text(text: Any) -> datetime | None:
    """The instant of a stored ``time``; None when it is not one (then nothing is known to be stored)."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
