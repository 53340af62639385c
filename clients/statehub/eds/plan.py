"""Which readings to commit, in which order and in which writes (pure: no hub here).

- **Corrections**: for one key and instant, the last row read wins (files in the
  order given, rows in file order); earlier rows count as ``replaced``.  A row
  whose status is bad never replaces a good reading of the same instant: the
  good one stays and the bad one counts as ``replaced`` (and ``kept_good``).
- **--latest** (default): per key, only the newest reading; the older ones
  count as ``not_latest``.
- **--replay**: per key, every reading, in time order, so the key's history in
  the hub is the point's history.
- **Idempotency**, in both modes: a reading is committed only if it is newer
  than the reading the hub holds for its key, or at the same instant with a
  different value or quality (a correction of the stored reading) that is not
  a bad reading over a good one.  Anything else is ``skipped``, so ingesting a
  file again commits nothing, and a replay that was interrupted continues where
  it stopped.  (A replay never moves a key back to an older reading: the
  current value stays the newest known.)
- **Writes**: in time order; one write (one revision) per instant, holding
  every point read at that instant (at most MAX_TXN_OPS), so a subscriber sees
  exactly one change per point per reading, and revisions follow time.  In
  --latest, every point's newest reading in one write.

Counts: ``rows = readings + replaced + bad rows`` and
``readings = committed + skipped + not_latest``.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from statehub import MAX_TXN_OPS
from statehub.eds.quality import status_of
from statehub.eds.records import Reading
from statehub.eds.resolve import parse_utc_text

Mode = Literal["latest", "replay"]
Write = list[tuple[str, Reading]]  # (key, reading) for each point of one revision


@dataclass(frozen=True)
class Stored:
    """What the hub holds for a key: its value and revision."""

    value: Any
    rev: int


@dataclass
class Plan:
    mode: Mode
    chosen: dict[str, list[Reading]] = field(default_factory=dict)  # per key, in time order
    readings: int = 0  # distinct (key, instant) pairs after corrections
    replaced: int = 0  # rows replaced by another row for the same key and instant
    skipped: int = 0  # not newer than what the hub holds
    not_latest: int = 0  # --latest only: older than the newest reading of their key
    kept_good: int = 0  # bad readings that did not replace a good one (in the files or in the hub)

    @property
    def count(self) -> int:
        """Readings to commit."""
        return sum(len(readings) for readings in self.chosen.values())

    def writes(self, max_ops: int = MAX_TXN_OPS) -> Iterator[Write]:
        """The writes to send, in order, made as they are asked for."""
        if self.mode == "latest":
            latest = [(key, readings[-1]) for key, readings in self.chosen.items() if readings]
            for start in range(0, len(latest), max_ops):
                yield latest[start : start + max_ops]
            return
        yield from _by_instant(self.chosen, max_ops)


def make_plan(readings: Mapping[str, list[Reading]], stored: Mapping[str, Stored], mode: Mode) -> Plan:
    """The plan for readings grouped by key (in the order they were read), against what the hub holds."""
    plan = Plan(mode)
    for key, rows in readings.items():
        unique = _corrected(rows, plan)
        plan.readings += len(unique)
        chosen = unique if mode == "replay" else unique[-1:]
        plan.not_latest += len(unique) - len(chosen)
        held = stored.get(key)
        kept = [reading for reading in chosen if _changes(reading, held, plan)]
        plan.skipped += len(chosen) - len(kept)
        plan.chosen[key] = kept
    return plan


def _corrected(rows: list[Reading], plan: Plan) -> list[Reading]:
    """One reading per instant, in time order: the last row, unless that would put a bad over a good one."""
    ordered = sorted(rows, key=_instant)  # stable: rows of one instant stay in file order
    unique: list[Reading] = []
    last_instant: float | None = None
    for reading in ordered:
        instant = reading.time.timestamp()
        if instant != last_instant:
            unique.append(reading)
            last_instant = instant
            continue
        plan.replaced += 1
        earlier = unique[-1]
        if _bad_over_good(reading, status_of(earlier.quality, earlier.value, earlier.alarm)):
            plan.kept_good += 1
        else:
            unique[-1] = reading
    return unique


def _changes(reading: Reading, held: Stored | None, plan: Plan) -> bool:
    """Whether ``reading`` changes what the hub holds (see the module's idempotency rule)."""
    if held is None or not isinstance(held.value, dict):
        return True
    held_time = parse_utc_text(held.value.get("time"))
    if held_time is None:
        return True
    instant, held_instant = reading.time.timestamp(), held_time.timestamp()
    if instant != held_instant:
        return instant > held_instant
    same = ("value", reading.value), ("quality", reading.quality), ("alarm", reading.alarm)
    if all(held.value.get(name) == mine for name, mine in same):
        return False
    if _bad_over_good(reading, held.value.get("status")):
        plan.kept_good += 1
        return False
    return True


def _bad_over_good(reading: Reading, held_status: Any) -> bool:
    """A bad reading about to replace a good one of the same instant (the quality rule)."""
    return held_status == "good" and status_of(reading.quality, reading.value, reading.alarm) == "bad"


def _instant(reading: Reading) -> float:
    return reading.time.timestamp()


def _timed(key: str, readings: list[Reading]) -> Iterator[tuple[float, str, Reading]]:
    return ((reading.time.timestamp(), key, reading) for reading in readings)


def _by_instant(chosen: Mapping[str, list[Reading]], max_ops: int) -> Iterator[Write]:
    """Merge the keys' readings by instant: one write per instant, split at ``max_ops``."""
    streams = [_timed(key, readings) for key, readings in chosen.items()]
    write: Write = []
    instant: float | None = None
    for moment, key, reading in heapq.merge(*streams, key=lambda entry: (entry[0], entry[1])):
        if write and (moment != instant or len(write) >= max_ops):
            yield write
            write = []
        write.append((key, reading))
        instant = moment
    if write:
        yield write
