"""Planning an ingest: corrections, --latest, --replay order and batching, idempotency (no hub)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from statehub.eds.plan import Stored, make_plan
from statehub.eds.resolve import Entry, utc_text

T0 = datetime(2025, 6, 1, tzinfo=UTC)


def entry(key: str, minute: int, value: float, quality: str | None = None, line: int = 0) -> Entry:
    when = T0 + timedelta(minutes=minute)
    record = {"value": value, "quality": quality, "time": utc_text(when)}
    return Entry(key, when, record, "f.csv", line)


def stored(minute: int, value: float, rev: int = 7, quality: str | None = None) -> Stored:
    return Stored({"value": value, "quality": quality, "time": utc_text(T0 + timedelta(minutes=minute))}, rev)


def written(plan: object) -> list[tuple[str, int]]:
    return [(e.key, int((e.utc - T0).total_seconds() // 60)) for batch in plan.batches for e in batch]  # type: ignore[attr-defined]


def test_latest_commits_only_the_newest_reading_of_each_key() -> None:
    entries = [
        entry("eds.p.a", 0, 1),
        entry("eds.p.a", 10, 2),
        entry("eds.p.b", 5, 3),
        entry("eds.p.a", 5, 4),
    ]
    plan = make_plan(entries, {}, "latest")
    assert sorted(written(plan)) == [("eds.p.a", 10), ("eds.p.b", 5)]
    assert (plan.readings, plan.not_latest, plan.skipped, len(plan.batches)) == (4, 2, 0, 1)


def test_a_later_row_for_the_same_key_and_time_wins() -> None:
    entries = [entry("eds.p.a", 0, 1.0, line=2), entry("eds.p.a", 0, 1.5, line=9)]
    plan = make_plan(entries, {}, "replay")
    [[only]] = plan.batches
    assert (only.record["value"], only.line, plan.replaced, plan.readings) == (1.5, 9, 1, 1)


def test_replay_commits_in_time_order_with_each_key_once_per_transaction() -> None:
    entries = [entry(f"eds.p.k{k}", minute, minute + k) for minute in (30, 0, 20, 10) for k in range(3)]
    plan = make_plan(entries, {}, "replay", max_ops=1000)
    assert [len(batch) for batch in plan.batches] == [3, 3, 3, 3]  # one transaction per timestamp
    minutes = [m for _key, m in written(plan)]
    assert minutes == sorted(minutes)
    for batch in plan.batches:
        assert len({e.key for e in batch}) == len(batch)


def test_transactions_never_exceed_the_op_limit() -> None:
    entries = [entry(f"eds.p.k{k}", 0, k) for k in range(2500)]
    plan = make_plan(entries, {}, "latest")
    assert [len(batch) for batch in plan.batches] == [1000, 1000, 500]


@given(
    st.lists(st.tuples(st.integers(0, 4), st.integers(0, 50), st.floats(-10, 10)), max_size=60),
    st.integers(1, 7),
)
def test_any_replay_batches_keep_time_order_limits_and_every_reading(
    rows: list[tuple[int, int, float]], max_ops: int
) -> None:
    entries = [entry(f"eds.p.k{k}", minute, value) for k, minute, value in rows]
    plan = make_plan(entries, {}, "replay", max_ops=max_ops)
    flat = [e for batch in plan.batches for e in batch]
    assert len(flat) == len({(e.key, e.utc) for e in entries}) == plan.readings
    assert [e.utc for e in flat] == sorted(e.utc for e in flat)
    for batch in plan.batches:
        assert 0 < len(batch) <= max_ops
        assert len({e.key for e in batch}) == len(batch)


def test_readings_not_newer_than_the_hub_are_skipped_in_both_modes() -> None:
    entries = [entry("eds.p.a", 0, 1), entry("eds.p.a", 10, 2), entry("eds.p.a", 20, 3)]
    hub = {"eds.p.a": stored(10, 2)}
    replay = make_plan(entries, hub, "replay")
    assert (written(replay), replay.skipped) == ([("eds.p.a", 20)], 2)
    latest = make_plan(entries, {"eds.p.a": stored(20, 3)}, "latest")
    assert (latest.writes, latest.skipped, latest.not_latest) == (0, 1, 2)


def test_a_different_value_at_the_stored_time_is_a_correction_and_is_committed() -> None:
    plan = make_plan([entry("eds.p.a", 10, 2.5)], {"eds.p.a": stored(10, 2.0)}, "latest")
    assert written(plan) == [("eds.p.a", 10)]
    quality = make_plan([entry("eds.p.a", 10, 2.0, "B")], {"eds.p.a": stored(10, 2.0, quality="G")}, "latest")
    assert quality.writes == 1


def test_a_stored_value_that_is_not_a_reading_is_replaced() -> None:
    plan = make_plan([entry("eds.p.a", 0, 1)], {"eds.p.a": Stored("hand-written", 3)}, "latest")
    assert plan.writes == 1
