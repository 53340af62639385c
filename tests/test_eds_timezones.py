"""Naive plant-local timestamps across America/Chicago's DST changes (rule: statehub.eds.timezones)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from statehub.eds.formats import parse_file, parse_text
from statehub.eds.plan import make_plan
from statehub.eds.resolve import record

from .eds_support import CHICAGO, EDS_DATA, long_csv, named, wide_csv

SPRING = datetime(2025, 3, 9, 6, 0, tzinfo=UTC)  # 00:00 CST; at 08:00Z clocks jump 02:00 -> 03:00
FALL = datetime(2025, 11, 2, 4, 0, tzinfo=UTC)  # 23:00 CDT on Nov 1; at 07:00Z clocks go 02:00 -> 01:00


def truth(start: datetime, hours: int, step_minutes: int) -> list[datetime]:
    """Real instants every ``step_minutes`` for ``hours``, as a plant historian samples them."""
    return [start + timedelta(minutes=m) for m in range(0, hours * 60, step_minutes)]


def naive_local(moment: datetime) -> datetime:
    return moment.astimezone(CHICAGO).replace(tzinfo=None)


@pytest.mark.parametrize("start", [SPRING, FALL], ids=["spring-forward", "fall-back"])
@pytest.mark.parametrize("step", [5, 60])
def test_a_wide_export_of_wall_clock_times_maps_back_to_the_true_instants(start: datetime, step: int) -> None:
    instants = truth(start, 5, step)
    text = wide_csv(["P"], [(naive_local(t), [str(i)]) for i, t in enumerate(instants)])
    result = parse_text(text, "w.csv", "wide", CHICAGO, [])
    assert result.bad_rows == []
    assert [r.utc for r in result.readings] == instants


@pytest.mark.parametrize("start", [SPRING, FALL], ids=["spring-forward", "fall-back"])
def test_a_five_minute_long_export_maps_back_per_point(start: datetime) -> None:
    """Two points interleaved: each point's clock steps back on its own."""
    instants = truth(start, 5, 5)
    rows = [(naive_local(t).isoformat(), sid, str(i)) for i, t in enumerate(instants) for sid in (2308, 8528)]
    result = parse_text(long_csv(rows), "l.csv", "long", CHICAGO, [])
    assert result.bad_rows == []
    for sid in ("2308", "8528"):
        assert [r.utc for r in result.readings if r.point == sid] == instants


@pytest.mark.parametrize("start", [SPRING, FALL], ids=["spring-forward", "fall-back"])
def test_a_two_column_export_maps_back(start: datetime) -> None:
    instants = truth(start, 5, 15)
    text = "".join(f"{naive_local(t).isoformat()},{i}\n" for i, t in enumerate(instants))
    result = parse_text(text, "t.csv", "two-column", CHICAGO, ["P"])
    assert [r.utc for r in result.readings] == instants


def test_a_time_in_the_spring_forward_gap_is_a_bad_row_not_a_guess() -> None:
    text = "2025-03-09T01:30:00,1\n2025-03-09T02:30:00,2\n2025-03-09T03:00:00,3\n"
    result = parse_text(text, "t.csv", "two-column", CHICAGO, ["P"])
    assert [str(b) for b in result.bad_rows] == [
        "t.csv:2: 2025-03-09T02:30:00 does not exist in America/Chicago (clocks skip that hour for daylight saving)"
    ]
    assert [r.time.isoformat() for r in result.readings] == [
        "2025-03-09T01:30:00-06:00",
        "2025-03-09T03:00:00-05:00",
    ]


def test_the_fall_back_example_records_both_offsets_of_the_repeated_hour() -> None:
    result = parse_file(EDS_DATA / "wide_trend.csv", "wide", CHICAGO, [])
    flow = [r for r in result.readings if r.point == "FI-405/415.UNIT1@NET1"]
    assert [r.time.isoformat() for r in flow] == [
        "2025-11-02T00:00:00-05:00",
        "2025-11-02T01:00:00-05:00",  # first 01:00: daylight time
        "2025-11-02T01:00:00-06:00",  # the repeated 01:00: standard time
        "2025-11-02T03:00:00-06:00",
    ]
    assert [r.utc.hour for r in flow] == [5, 6, 7, 9]


def test_an_equal_time_in_a_long_export_is_a_correction_even_in_the_repeated_hour() -> None:
    """Documented limit: an hourly long export cannot express the repeated hour; the later row wins."""
    rows = [("2025-11-02T01:00:00", 2308, "1"), ("2025-11-02T01:00:00", 2308, "2")]
    result = parse_text(long_csv(rows), "l.csv", "long", CHICAGO, [])
    assert {r.time.isoformat() for r in result.readings} == {"2025-11-02T01:00:00-05:00"}
    plan = make_plan(named(result.readings, plant="Maxson").readings, {}, "latest")
    assert [reading.value for write in plan.writes() for _key, reading in write] == [2.0]
    assert plan.replaced == 1


def test_the_stored_record_keeps_utc_and_the_plant_offset() -> None:
    result = parse_file(EDS_DATA / "wide_trend.csv", "wide", CHICAGO, [])
    grouped = named(result.readings, plant="Maxson")
    key = "eds.maxson.FI-405/415=UNIT1-NET1"
    repeated = record(grouped.readings[key][2], grouped.points[key])
    assert (repeated["time"], repeated["local"], repeated["tz"]) == (
        "2025-11-02T07:00:00Z",
        "2025-11-02T01:00:00-06:00",
        "America/Chicago",
    )
