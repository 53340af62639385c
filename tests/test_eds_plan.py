"""Planning an ingest: corrections, the quality rule, --latest, --replay order and writes, idempotency (no hub)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from statehub.eds.plan import Plan, Stored, make_plan
from statehub.eds.records import Reading
from statehub.eds.resolve import utc_text

T0 = datetime(2025, 6, 1, tzinfo=UTC)


def reading(minute: int, value: float | None, quality: str | None = None, line: int = 0) -> Reading:
    return Reading("P.UNIT0@NET0", "iess", T0 + timedelta(minutes=minute), value, quality, "f.csv", line)


def by_key(rows: list[tuple[str, Reading]]) -> dict[str, list[Reading]]:
    grouped: dict[str, list[Reading]] = defaultdict(list)
    for key, row in rows:
        grouped[key].append(row)
    return grouped


def stored(minute: int, value: float | None, rev: int = 7, quality: str | None = None, status: str | None = None) -> Stored:
    when = utc_text(T0 + timedelta(minutes=minute))
    return Stored({"value": value, "quality": quality, "status": status, "time": when}, rev)


def written(plan: Plan, max_ops: int = 1000) -> list[list[tuple[str, int]]]:
    """The plan's writes as (key, minute) pairs, write by write."""
    return [
        [(key, int((row.utc - T0).total_seconds() // 60)) for key, row in write] for write in plan.writes(max_ops)
    ]


def test_latest_commits_only_the_newest_reading_of_each_key_in_one_write() -> None:
    """--latest writes each key's newest reading, every key in one write, and counts the older ones."""
    rows = [("eds.p.a", reading(0, 1)), ("eds.p.a", reading(10, 2)), ("eds.p.b", reading(5, 3)), ("eds.p.a", reading(5, 4))]
    plan = make_plan(by_key(rows), {}, "latest")
    assert written(plan) == [[("eds.p.a", 10), ("eds.p.b", 5)]]
    assert (plan.readings, plan.not_latest, plan.skipped, plan.count) == (4, 2, 0, 2)


def test_a_later_row_for_the_same_key_and_time_wins() -> None:
    """Two rows for one instant are one reading: the later row's."""
    plan = make_plan(by_key([("eds.p.a", reading(0, 1.0, line=2)), ("eds.p.a", reading(0, 1.5, line=9))]), {}, "replay")
    [[(_key, only)]] = list(plan.writes())
    assert (only.value, only.line, plan.replaced, plan.readings) == (1.5, 9, 1, 1)


def test_a_bad_row_never_replaces_a_good_reading_of_the_same_instant() -> None:
    """A later bad row for an instant with a good reading is counted, not applied; a later good row still wins."""
    rows = [("eds.p.a", reading(0, 1.0, "G", line=2)), ("eds.p.a", reading(0, None, "B", line=3))]
    plan = make_plan(by_key(rows), {}, "replay")
    [[(_key, kept)]] = list(plan.writes())
    assert (kept.line, plan.replaced, plan.kept_good) == (2, 1, 1)
    rows.append(("eds.p.a", reading(0, 1.25, "G", line=4)))
    [[(_key, corrected)]] = list(make_plan(by_key(rows), {}, "replay").writes())
    assert corrected.line == 4


def test_a_bad_reading_never_replaces_the_hubs_good_reading_of_that_instant() -> None:
    """The hub's good reading stays when a bad one for the same instant arrives; an uncertain one replaces it."""
    hub = {"eds.p.a": stored(10, 2.0, quality="G", status="good")}
    bad = make_plan(by_key([("eds.p.a", reading(10, 2.0, "B"))]), hub, "latest")
    assert (bad.count, bad.skipped, bad.kept_good) == (0, 1, 1)
    uncertain = make_plan(by_key([("eds.p.a", reading(10, 2.0, "U"))]), hub, "latest")
    assert uncertain.count == 1


def test_a_newer_bad_reading_is_committed() -> None:
    """A bad reading newer than the hub's good one is the point's state now: it is committed."""
    hub = {"eds.p.a": stored(10, 2.0, quality="G", status="good")}
    plan = make_plan(by_key([("eds.p.a", reading(15, None, "B"))]), hub, "latest")
    assert written(plan) == [[("eds.p.a", 15)]]


def test_replay_writes_one_revision_per_instant_in_time_order() -> None:
    """--replay groups the points of one instant into one write, writes in time order, each key once a write."""
    rows = [(f"eds.p.k{k}", reading(minute, minute + k)) for minute in (30, 0, 20, 10) for k in range(3)]
    plan = make_plan(by_key(rows), {}, "replay")
    writes = written(plan)
    assert [len(write) for write in writes] == [3, 3, 3, 3]
    assert [write[0][1] for write in writes] == [0, 10, 20, 30]
    assert all(len({key for key, _m in write}) == len(write) for write in writes)


def test_writes_never_exceed_the_op_limit() -> None:
    """2500 points in --latest are three writes of at most 1000 ops."""
    plan = make_plan(by_key([(f"eds.p.k{k}", reading(0, k)) for k in range(2500)]), {}, "latest")
    assert [len(write) for write in plan.writes()] == [1000, 1000, 500]


@given(
    st.lists(st.tuples(st.integers(0, 4), st.integers(0, 50), st.floats(-10, 10)), max_size=60),
    st.integers(1, 7),
)
def test_any_replay_keeps_time_order_limits_and_every_reading(rows: list[tuple[int, int, float]], max_ops: int) -> None:
    """Every distinct (key, instant) is written once, in time order, in writes of at most max_ops distinct keys."""
    plan = make_plan(by_key([(f"eds.p.k{k}", reading(minute, value)) for k, minute, value in rows]), {}, "replay")
    writes = list(plan.writes(max_ops))
    flat = [(key, row.utc) for write in writes for key, row in write]
    assert len(flat) == len({(f"eds.p.k{k}", minute) for k, minute, _v in rows}) == plan.readings == plan.count
    assert [moment for _key, moment in flat] == sorted(moment for _key, moment in flat)
    for write in writes:
        assert 0 < len(write) <= max_ops
        assert len({key for key, _row in write}) == len(write)
        assert len({row.utc for _key, row in write}) == 1


def test_readings_not_newer_than_the_hub_are_skipped_in_both_modes() -> None:
    """The idempotency rule: only readings newer than the hub's are written, in --replay and --latest."""
    rows = [("eds.p.a", reading(0, 1)), ("eds.p.a", reading(10, 2)), ("eds.p.a", reading(20, 3))]
    replay = make_plan(by_key(rows), {"eds.p.a": stored(10, 2)}, "replay")
    assert (written(replay), replay.skipped) == ([[("eds.p.a", 20)]], 2)
    latest = make_plan(by_key(rows), {"eds.p.a": stored(20, 3)}, "latest")
    assert (latest.count, latest.skipped, latest.not_latest) == (0, 1, 2)


def test_a_different_value_at_the_stored_time_is_a_correction_and_is_committed() -> None:
    """Same instant, another value or quality: a correction of the stored reading."""
    plan = make_plan(by_key([("eds.p.a", reading(10, 2.5))]), {"eds.p.a": stored(10, 2.0)}, "latest")
    assert written(plan) == [[("eds.p.a", 10)]]
    quality = make_plan(by_key([("eds.p.a", reading(10, 2.0, "U"))]), {"eds.p.a": stored(10, 2.0, quality="G")}, "latest")
    assert quality.count == 1


def test_a_stored_value_that_is_not_a_reading_is_replaced() -> None:
    """A key holding something else than a reading record gets the reading."""
    plan = make_plan(by_key([("eds.p.a", reading(0, 1))]), {"eds.p.a": Stored("hand-written", 3)}, "latest")
    assert plan.count == 1
