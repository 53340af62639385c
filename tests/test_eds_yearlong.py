"""A year of hourly data for three Stiles points (.UNIT1@NET1), in every export format, through a real hub.

The exports are written by scripts/bench_eds.py (the same writers its figures
come from): wall-clock times across both daylight-saving changes, points named
by IESS, no flags but what a format needs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from statehub.eds.formats import parse_file
from statehub.testing import HubProcess

from .conftest import load_script, run_cli
from .eds_support import CHICAGO, run_ingest

HOURS = 8760
POINTS = 3


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script("bench_eds")


@pytest.fixture(scope="module")
def exports(bench: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The year in each format, written once for the module."""
    folder = tmp_path_factory.mktemp("year")
    return {fmt: bench.write_export(folder / fmt, fmt, POINTS, HOURS, 3600) for fmt in bench.FORMATS}


def truth(bench: ModuleType) -> dict[tuple[str, float], float]:
    """(point, instant) -> value: what every export of the year holds."""
    names = bench.points(POINTS)
    return {
        (name, moment.timestamp()): float(bench.value(n, i))
        for n, moment in enumerate(bench.instants(HOURS, 3600))
        for i, name in enumerate(names)
    }


def parsed(export: Any) -> Iterator[tuple[str, float, float | None]]:
    for args in export.args:
        given = [args[args.index("--point") + 1]] if "--point" in args else []
        result = parse_file(args[0], "auto", CHICAGO, given)
        assert result.bad_rows == []
        for reading in result.readings:
            yield reading.point, reading.time.timestamp(), reading.value


@pytest.mark.parametrize("fmt", ["wide", "two-column", "json"])
def test_every_format_of_the_year_reads_back_the_true_instants_and_values(
    bench: ModuleType, exports: dict[str, Any], fmt: str
) -> None:
    """Wide, two-column and trend JSON exports of the year give back exactly the true (point, instant, value)."""
    assert {(point, instant): value for point, instant, value in parsed(exports[fmt])} == truth(bench)


def test_the_long_year_loses_only_the_repeated_hour_it_cannot_express(bench: ModuleType, exports: dict[str, Any]) -> None:
    """An hourly long export writes 01:00 twice in November: the second is a correction (docs/eds.md)."""
    sids = {5000 + i: name for i, name in enumerate(bench.points(POINTS))}
    read = {(sids[int(point)], instant): value for point, instant, value in parsed(exports["long"])}
    expected = truth(bench)
    missing = sorted(set(expected) - set(read))
    assert len(read) == exports["long"].readings == len(expected) - POINTS
    assert {instant for _point, instant in missing} == {missing[0][1]}  # one instant: the first 01:00 CDT
    assert bench.naive_local(bench.START.fromtimestamp(missing[0][1], UTC)).isoformat() == "2025-11-02T01:00:00"


def test_a_wide_year_of_stiles_points_replays_with_no_flags(hub: HubProcess, exports: dict[str, Any]) -> None:
    """No --plant: the keys are eds.stiles.<tag>, one revision per hour, every change backfill, and again nothing."""
    export = exports["wide"]
    result = run_ingest(hub.data_dir, *export.args[0], "--replay", "--json", timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["committed"], summary["transactions"], summary["backfill"]) == (HOURS * POINTS, HOURS, True)
    assert summary["plants"] == [
        {"plant": "stiles", "why": "the default eds.plants.UNIT1-NET1", "prefix": "eds.stiles.", "points": 3}
    ]
    listing = run_cli(hub.data_dir, "list", "eds.")
    assert [line.split(" = ")[0] for line in listing.stdout.splitlines()] == [
        "eds.stiles.FI-301",
        "eds.stiles.FI-405/415",
        "eds.stiles.LI-410",
    ]
    with hub.client() as client:
        history = client.history("eds.stiles.FI-405/415", limit=10000)
        assert client.get("eds.stiles.FI-405/415").value["local"] == "2025-12-31T23:00:00-06:00"
    assert len(history) == HOURS and all(version.backfill for version in history)
    again = json.loads(run_ingest(hub.data_dir, *export.args[0], "--replay", "--json", timeout=300).stdout)
    assert (again["committed"], again["skipped"]) == (0, HOURS * POINTS)


@pytest.mark.parametrize("fmt", ["long", "two-column", "json"])
def test_the_other_formats_replay_the_same_year_under_the_same_keys(
    hub: HubProcess, exports: dict[str, Any], fmt: str
) -> None:
    """Long (with its map), two-column (one --point per file) and trend JSON land under the same readable keys."""
    export = exports[fmt]
    committed = 0
    for args in export.args:
        result = run_ingest(hub.data_dir, *args, "--replay", "--json", timeout=300)
        assert result.returncode == 0, result.stderr
        committed += json.loads(result.stdout)["committed"]
    assert committed == export.readings
    with hub.client() as client:
        keys = [item.key for item in client.list("eds.").items]
        last = client.get("eds.stiles.LI-410").value
    assert keys == ["eds.stiles.FI-301", "eds.stiles.FI-405/415", "eds.stiles.LI-410"]
    assert (last["time"], last["point"]) == ("2026-01-01T05:00:00Z", "LI-410.UNIT1@NET1")
    if fmt == "json":
        assert last["quality"] in "GUSQB" and last["status"] in ("good", "uncertain", "bad")
    if fmt == "long":
        assert (last["units"], last["sid"], last["idcs"]) == ("MGD", 5001, "LI-410")


def test_the_benchmark_runs_and_reports_its_figures(bench: ModuleType, tmp_path: Path) -> None:
    """scripts/bench_eds.py's measurement, on a few days: every reading committed once, none the second time."""
    result = bench.bench("hourly", "wide", tmp_path, steps=72)
    assert (result["committed"], result["revisions"], result["again_committed"]) == (216, 72, 0)
    assert result["readings_per_second"] > 0
