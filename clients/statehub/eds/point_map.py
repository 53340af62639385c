"""The point map: which SID, IDCS and IESS name the same point, its plant and its units.

Two sources, told apart by their content:

- a CSV with a header naming at least ``iess`` (plus any of ``zd``, ``idcs``,
  ``sid``, ``shortdesc`` or ``desc``, ``un`` or ``units``), like
  ``points-maxson.csv``: ``zd,idcs,iess,sid,shortdesc,...``;
- the text of the EDS ``/points/export`` call: one ``POINT`` line per point with
  ``NAME=value`` attributes, quoted (``'...'``, ``''`` for a quote inside, or
  ``"..."``) or not: ``POINT RT=ANALOG SID=2308 IESS='M100FI.UNIT0@NET0'
  ZD='Maxson' IDCS='M100FI' DESC='PLANT INFLU' UN='MGD'``.  Other lines are
  ignored.

A map is configuration: any bad line fails the whole command, naming file and line.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from statehub.eds.csv_rows import read_text, records, without_trailing_empty
from statehub.eds.records import EdsInputError, PointKind

_ATTRIBUTE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)=('(?:[^']|'')*'|\"[^\"]*\"|[^\s'\"]*)")
_COLUMNS = {
    "iess": "iess",
    "sid": "sid",
    "idcs": "idcs",
    "zd": "zd",
    "shortdesc": "desc",
    "desc": "desc",
    "un": "units",
    "units": "units",
}


@dataclass(frozen=True)
class PointInfo:
    iess: str
    sid: int | None = None
    idcs: str | None = None
    zd: str | None = None
    desc: str | None = None
    units: str | None = None
    line: int = 0


class PointMap:
    """Points looked up by IESS, SID or IDCS, optionally within one plant (ZD)."""

    def __init__(self, file: str, points: list[PointInfo]) -> None:
        self.file = file
        self.points = points
        self._by: dict[str, dict[str, list[PointInfo]]] = {
            "iess": defaultdict(list),
            "sid": defaultdict(list),
            "idcs": defaultdict(list),
        }
        for point in points:
            self._by["iess"][point.iess].append(point)
            if point.sid is not None:
                self._by["sid"][str(point.sid)].append(point)
            if point.idcs:
                self._by["idcs"][point.idcs].append(point)

    def find(self, name: str, kind: PointKind, plant: str | None = None) -> PointInfo | None:
        """The entry for ``name``; None when the map lacks it; EdsInputError when it is ambiguous."""
        fields = {"iess": ["iess"], "sid": ["sid"], "given": ["iess", "idcs", "sid"]}[kind]
        for field in fields:
            found = self._by[field].get(name, [])
            if plant is not None:
                found = [p for p in found if p.zd is None or p.zd.casefold() == plant.casefold()]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                lines = ", ".join(str(p.line) for p in found)
                raise EdsInputError(
                    self.file,
                    found[0].line,
                    f"{field} {name!r} names {len(found)} points (lines {lines}): give --plant to choose",
                )
        return None


def read_point_map(path: str | Path) -> PointMap:
    file = str(path)
    text = read_text(path)
    if any(line.lstrip().startswith("POINT ") for line in text.splitlines()):
        return parse_points_export(text, file)
    return parse_point_csv(text, file)


def parse_point_csv(text: str, file: str) -> PointMap:
    rows = records(text, file)
    first = next(rows, None)
    if first is None:
        raise EdsInputError(file, None, "the point map is empty")
    header_line, header = first
    names = [name.strip().lower() for name in without_trailing_empty(header, 0)]
    if "iess" not in names:
        raise EdsInputError(
            file, header_line, "a point map needs an iess column (e.g. zd,idcs,iess,sid,shortdesc)"
        )
    points: list[PointInfo] = []
    for line, fields in rows:
        fields = without_trailing_empty(fields, len(names))
        if len(fields) != len(names):
            raise EdsInputError(
                file, line, f"expected {len(names)} fields ({','.join(names)}), found {len(fields)}"
            )
        cells = {
            _COLUMNS[name]: cell.strip() for name, cell in zip(names, fields, strict=True) if name in _COLUMNS
        }
        points.append(_point(cells, file, line))
    _check_unique(points, file)
    return PointMap(file, points)


def parse_points_export(text: str, file: str) -> PointMap:
    points: list[PointInfo] = []
    for line, content in enumerate(text.splitlines(), start=1):
        stripped = content.strip()
        if not stripped.startswith("POINT "):
            continue
        attributes = _attributes(stripped[len("POINT ") :], file, line)
        cells = {
            _COLUMNS[name.lower()]: value for name, value in attributes.items() if name.lower() in _COLUMNS
        }
        points.append(_point(cells, file, line))
    if not points:
        raise EdsInputError(file, None, "no POINT lines in the points export")
    _check_unique(points, file)
    return PointMap(file, points)


def _attributes(text: str, file: str, line: int) -> dict[str, str]:
    attributes: dict[str, str] = {}
    pos = 0
    while text[pos:].strip():
        match = _ATTRIBUTE.match(text, pos)
        if match is None:
            raise EdsInputError(
                file, line, f"cannot read an attribute NAME=value at {text[pos:].strip()[:30]!r}"
            )
        attributes[match.group(1)] = _unquote(match.group(2))
        pos = match.end()
    return attributes


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _point(cells: dict[str, str], file: str, line: int) -> PointInfo:
    iess = cells.get("iess", "")
    if not iess:
        raise EdsInputError(file, line, "the point has no IESS")
    sid_text = cells.get("sid", "")
    if sid_text and not sid_text.isdigit():
        raise EdsInputError(file, line, f"SID {sid_text!r} is not a number")
    return PointInfo(
        iess=iess,
        sid=int(sid_text) if sid_text else None,
        idcs=cells.get("idcs") or None,
        zd=cells.get("zd") or None,
        desc=cells.get("desc") or None,
        units=cells.get("units") or None,
        line=line,
    )


def _check_unique(points: list[PointInfo], file: str) -> None:
    seen: dict[tuple[str, str], PointInfo] = {}
    for point in points:
        plant = (point.zd or "").casefold()
        for field, value in (("iess", point.iess), ("sid", point.sid)):
            if value is None:
                continue
            earlier = seen.setdefault((plant, f"{field}={value}"), point)
            if earlier is not point:
                raise EdsInputError(
                    file, point.line, f"{field} {value} is already mapped at line {earlier.line}"
                )
