"""Readings kept as columns give back exactly the readings put in, and cost a fraction of the memory."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statehub.eds.readings import Reading, Readings

CHICAGO = ZoneInfo("America/Chicago")
zones = st.sampled_from([CHICAGO, UTC, ZoneInfo("Europe/Paris"), timezone(timedelta(hours=-5))])
readings = st.builds(
    Reading,
    point=st.sampled_from(["M100FI.UNIT0@NET0", "2308", "FI-405/415.UNIT1@NET1"]),
    point_kind=st.sampled_from(["iess", "sid", "given"]),
    time=st.builds(
        lambda moment, zone, fold: moment.replace(tzinfo=zone, fold=fold),
        st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1)),
        zones,
        st.integers(0, 1),
    ).filter(lambda t: t.astimezone(UTC).astimezone(t.tzinfo) == t),  # parsers never make a skipped time
    value=st.none() | st.floats(allow_nan=False, allow_infinity=False),
    quality=st.none() | st.sampled_from(list("GBUSNQ")),
    file=st.sampled_from(["a.csv", "b.json"]),
    line=st.integers(1, 10**9),
    units=st.none() | st.just("MGD"),
    desc=st.none() | st.just("INFLU"),
    alarm=st.none() | st.integers(0, 2**32 - 1),
)


@given(st.lists(readings, max_size=30))
def test_any_readings_come_back_exactly(given_readings: list[Reading]) -> None:
    """Every field comes back, the time as the same instant with the same offset; order is kept."""
    rows = Readings(given_readings)
    assert len(rows) == len(given_readings)
    for back, original in zip(rows, given_readings, strict=True):
        assert back == original
        assert back.time.utcoffset() == original.time.utcoffset()
    assert rows[:2] == given_readings[:2]
    if given_readings:
        assert rows[-1] == given_readings[-1]


def test_columns_answer_without_making_readings() -> None:
    """instant, value, status, point_of and where read one column each."""
    moment = datetime(2025, 11, 2, 1, 30, tzinfo=CHICAGO, fold=1)
    rows = Readings([Reading("P.UNIT0@NET0", "iess", moment, None, "G", "f.csv", 7, alarm=2)])
    assert (rows.instant(0), rows.value(0), rows.status(0)) == (moment.timestamp(), None, "bad")
    assert (rows.point_of(0), rows.where(0), rows.points()) == (("P.UNIT0@NET0", "iess"), ("f.csv", 7), {("P.UNIT0@NET0", "iess")})
    copy = Readings()
    copy.copy(rows, 0)
    assert copy == rows
    rows.clear()
    assert len(rows) == 0 and copy[0].time == moment
    with pytest.raises(IndexError):
        rows[0]


def test_readings_as_columns_take_a_fraction_of_the_memory_of_tuples() -> None:
    """30,000 wide-CSV readings take under 60 bytes each as columns, under a third of them as tuples."""
    start = datetime(2025, 1, 1, tzinfo=CHICAGO)
    made = [
        Reading(f"P{point}.UNIT1@NET1", "iess", start + timedelta(minutes=5 * n), 50.0 + n % 17 + point, None, "year.csv", n + 3)
        for n in range(3_000)
        for point in range(10)
    ]

    def cost(build: object) -> int:
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            kept = build()  # type: ignore[operator]
            return tracemalloc.get_traced_memory()[0] - before if kept else 0
        finally:
            tracemalloc.stop()

    columns = cost(lambda: Readings(made))
    tuples = cost(lambda: [reading._replace(value=reading.value + 0.0) for reading in made])  # type: ignore[operator]
    assert columns / len(made) < 60, f"{columns / len(made):.0f} bytes a reading"
    assert columns * 3 < tuples
