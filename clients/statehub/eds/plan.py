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
from array import array
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from statehub import MAX_TXN_OPS
from statehub.eds.readings import Reading, Readings
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
    # per key: its readings, and the indices of those to write, in time order
    chosen: dict[str, tuple[Readings, array[int]]] = field(default_factory=dict)
    readings: int = 0  # distinct (key, instant) pairs after corrections
    replaced: int = 0  # rows replaced by another row for the same key and instant
    skipped: int = 0  # not newer than what the hub holds
    not_latest: int = 0  # --latest only: older than the newest reading of their key
    kept_good: int = 0  # bad readings that did not replace a good one (in the files or in the hub)

    @property
    def count(self) -> int:
        """Readings to commit."""
        return sum(len(indices) for _rows, indices in self.chosen.values())

    def writes(self, max_ops: int = MAX_TXN_OPS) -> Iterator[Write]:
        """The writes to send, in order, each made (its readings too) only when asked for."""
        if self.mode == "latest":
            latest = [(key, rows[indices[-1]]) for key, (rows, indices) in self.chosen.items() if indices]
            for start in range(0, len(latest), max_ops):
                yield latest[start : start + max_ops]
            return
        yield from _by_instant(self.chosen, max_ops)


def make_plan(
    readings: Mapping[str, Readings | Sequence[Reading]], stored: Mapping[str, Stored], mode: Mode
) -> Plan:
    """The plan for readings grouped by key (in the order they were read), against what the hub holds."""
    plan = Plan(mode)
    for key, given in readings.items():
        rows = given if isinstance(given, Readings) else Readings(given)
        unique = _corrected(rows, plan)
        plan.readings += len(unique)
        chosen = unique if mode == "replay" else unique[-1:]
        plan.not_latest += len(unique) - len(chosen)
        held = _held(stored.get(key))
        kept = array("q", (index for index in chosen if _changes(rows, index, held, plan)))
        plan.skipped += len(chosen) - len(kept)
        plan.chosen[key] = (rows, kept)
    return plan


def _corrected(rows: Readings, plan: Plan) -> array[int]:
    """One reading per instant, in time order: the last row, unless that would put a bad over a good one."""
    instants = rows.instants
    order = sorted(range(len(rows)), key=instants.__getitem__)  # stable: one instant's rows keep file order
    unique = array("q")
    last_instant: float | None = None
    for index in order:
        instant = instants[index]
        if instant != last_instant:
            unique.append(index)
            last_instant = instant
            continue
        plan.replaced += 1
        if _bad_over_good(rows, index, rows.status(unique[-1])):
            plan.kept_good += 1
        else:
            unique[-1] = index
    return unique


class _Held(NamedTuple):
    """The hub's reading of a key, as the idempotency rule compares with it (None: nothing to compare)."""

    instant: float | None
    record: dict[str, Any]


def _held(stored: Stored | None) -> _Held:
    if stored is None or not isinstance(stored.value, dict):
        return _Held(None, {})
    moment = parse_utc_text(stored.value.get("time"))
    return _Held(moment.timestamp() if moment is not None else None, stored.value)


def _changes(rows: Readings, index: int, held: _Held, plan: Plan) -> bool:
    """Whether reading ``index`` changes what the hub holds (see the module's idempotency rule)."""
    if held.instant is None:
        return True
    instant = rows.instant(index)
    if instant != held.instant:
        return instant > held.instant
    same = ("value", rows.value(index)), ("quality", rows.quality(index)), ("alarm", rows.alarm(index))
    if all(held.record.get(name) == mine for name, mine in same):
        return False
    if _bad_over_good(rows, index, held.record.get("status")):
        plan.kept_good += 1
        return False
    return True


def _bad_over_good(rows: Readings, index: int, held_status: Any) -> bool:
    """A bad reading about to replace a good one of the same instant (the quality rule)."""
    return held_status == "good" and rows.status(index) == "bad"


def _timed(key: str, rows: Readings, indices: array[int]) -> Iterator[tuple[float, str, int]]:
    instants = rows.instants
    return ((instants[index], key, index) for index in indices)


def _by_instant(chosen: Mapping[str, tuple[Readings, array[int]]], max_ops: int) -> Iterator[Write]:
    """Merge the keys' readings by instant: one write per instant, split at ``max_ops``."""
    streams = [_timed(key, rows, indices) for key, (rows, indices) in chosen.items()]
    write: Write = []
    instant: float | None = None
    for moment, key, index in heapq.merge(*streams, key=lambda entry: (entry[0], entry[1])):
        if write and (moment != instant or len(write) >= max_ops):
            yield write
            write = []
        write.append((key, chosen[key][0][index]))
        instant = moment
    if write:
        yield write
