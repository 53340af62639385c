"""Shared by the EDS tests: the sample files, file builders and the ingest-eds command entries."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import typer

from statehub.cli.app import app as statehub_app
from statehub.eds.plants import Plants, Setting
from statehub.eds.point_map import PointMap
from statehub.eds.readings import Reading, Readings
from statehub.eds.resolve import Named, name_readings, point_names

from .conftest import cli_env

EDS_DATA = Path(__file__).parent / "data" / "eds"
LONG_SAMPLE = EDS_DATA / "live_data.csv"
POINT_MAP = EDS_DATA / "points-maxson.csv"
CHICAGO = ZoneInfo("America/Chicago")

# The statehub command itself, as a process.
ENTRY = "from statehub.cli import main; main()"


def ingest_app() -> typer.Typer:
    """The in-process twin of ENTRY, for typer's CliRunner: statehub's own app."""
    return statehub_app


# The plant settings the shipped defaults make, as an ingest reads them.
SHIPPED_PLANTS = {
    "UNIT0@NET0": Setting("maxson", "the default eds.plants.UNIT0-NET0"),
    "UNIT1@NET1": Setting("stiles", "the default eds.plants.UNIT1-NET1"),
}


def named(
    readings: Readings | list[Reading],
    *,
    plant: str | None = None,
    point_map: PointMap | None = None,
    by_suffix: dict[str, Setting] | None = None,
    default: Setting | None = None,
) -> Named:
    """The readings under their keys, as an ingest names them, with the plant settings given (no hub)."""
    plants = Plants(forced=plant, by_suffix=SHIPPED_PLANTS if by_suffix is None else by_suffix, default=default)
    rows = readings if isinstance(readings, Readings) else Readings(readings)
    return name_readings([rows], point_names([rows], point_map, plant), plants, CHICAGO)


def run_ingest(
    data_dir: Path, *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``ingest-eds --data-dir DATA_DIR ARGS`` as a real process."""
    return subprocess.run(
        [sys.executable, "-c", ENTRY, "ingest-eds", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env if env is not None else cli_env(),
    )


def wide_csv(points: list[str], rows: Iterable[tuple[datetime, list[str]]], *, bom: bool = True) -> str:
    """A wide trend export: two header rows, then M/D/YYYY,ISO,values."""
    lines = [
        ",," + ",".join(f"\\{p}\\" for p in points),
        "Date,," + ",".join(f"VALUE(\\{p}\\)" for p in points),
    ]
    for when, cells in rows:
        lines.append(f"{when.month}/{when.day}/{when.year},{when.isoformat()}," + ",".join(cells))
    return ("\ufeff" if bom else "") + "\r\n".join(lines) + "\r\n"


def long_csv(rows: Iterable[tuple[str, int, str]], *, trailing: str = "") -> str:
    """A long export: timestamp,sid,shortdesc,rjn_siteid,rjn_entityid,value."""
    lines = ["timestamp,sid,shortdesc,rjn_siteid,rjn_entityid,value"]
    lines += [f"{stamp},{sid},P{sid},SITE,1,{value}{trailing}" for stamp, sid, value in rows]
    return "\n".join(lines) + "\n"


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path
