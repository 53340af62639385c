"""From readings to what the hub stores: a key per plant and point, and a record per reading.

    eds.Maxson.M100FI-2EUNIT0-40NET0 = {
        "value": 51.56, "quality": null, "units": "MGD",
        "time": "2025-04-30T17:05:00Z", "local": "2025-04-30T12:05:00-05:00", "tz": "America/Chicago",
        "point": "M100FI.UNIT0@NET0", "sid": 2308, "idcs": "M100FI", "desc": "INFLU",
        "file": "live_data.csv", "line": 2}

A point is named by its IESS whenever it is known (from the file, or through
the point map); otherwise by what the file gives (a SID without a map: ``2308``).
The plant is ``--plant``, else the point map's ``zd`` for the point, else the
configured ``eds.plant``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from statehub.eds.keys import point_key
from statehub.eds.point_map import PointInfo, PointMap
from statehub.eds.records import BadRow, EdsInputError, PointKind, Reading


@dataclass(frozen=True)
class Entry:
    """One reading ready for the hub: its key, its instant and the record to store."""

    key: str
    utc: datetime
    record: dict[str, Any]
    file: str
    line: int


@dataclass(frozen=True)
class Naming:
    """How points get their keys in this ingest."""

    zone: ZoneInfo
    point_map: PointMap | None = None
    plant: str | None = None  # --plant: wins over the map
    default_plant: str | None = None  # the configured eds.plant: used when nothing else names one


def resolve(readings: Iterable[Reading], naming: Naming) -> tuple[list[Entry], list[BadRow]]:
    """Entries for the readings; a reading whose key cannot be made is a bad row."""
    entries: list[Entry] = []
    bad: list[BadRow] = []
    found: dict[tuple[str, PointKind], PointInfo | None] = {}
    keys: dict[tuple[str, str], str | ValueError] = {}  # a file has few points and many rows
    for reading in readings:
        lookup = (reading.point, reading.point_kind)
        if lookup not in found:
            found[lookup] = naming.point_map.find(*lookup, naming.plant) if naming.point_map else None
        info = found[lookup]
        name = info.iess if info else reading.point
        plant = naming.plant or (info.zd if info else None) or naming.default_plant
        if not plant:
            raise EdsInputError(
                reading.file,
                reading.line,
                f"no plant for point {reading.point}: give --plant NAME, a --points map with a zd column, or set eds.plant",
            )
        if (plant, name) not in keys:
            keys[(plant, name)] = _key_or_error(plant, name)
        key = keys[(plant, name)]
        if isinstance(key, ValueError):
            bad.append(BadRow(reading.file, reading.line, str(key)))
            continue
        entries.append(
            Entry(key, reading.utc, record(reading, name, info, naming.zone), reading.file, reading.line)
        )
    return entries, bad


def _key_or_error(plant: str, name: str) -> str | ValueError:
    try:
        return point_key(plant, name)
    except ValueError as exc:
        return exc


def record(reading: Reading, name: str, info: PointInfo | None, zone: ZoneInfo) -> dict[str, Any]:
    """The value stored under the point's key for this reading."""
    sid = info.sid if info else (int(reading.point) if reading.point_kind == "sid" else None)
    return {
        "value": reading.value,
        "quality": reading.quality,
        "units": (info.units if info else None) or reading.units,
        "time": utc_text(reading.utc),
        "local": local_text(reading.time.astimezone(zone)),
        "tz": zone.key,
        "point": name,
        "sid": sid,
        "idcs": info.idcs if info else None,
        "desc": reading.desc or (info.desc if info else None),
        "file": _file_name(reading.file),
        "line": reading.line,
    }


@functools.lru_cache(maxsize=64)
def _file_name(path: str) -> str:
    return Path(path).name


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
