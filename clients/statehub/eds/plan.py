"""Which readings to commit, in which order and in which transactions (pure: no hub here).

- **Corrections**: for one key and instant, the last row read wins (files in the
  order given, rows in file order); earlier rows count as ``replaced``.
- **--latest** (default): per key, only the newest reading; the older ones
  count as ``not_latest``.
- **--replay**: per key, every reading, in time order, so the key's history in
  the hub is the point's history.
- **Idempotency**, in both modes: a reading is committed only if it is newer
  than the reading the hub holds for its key, or at the same instant with a
  different value or quality (a correction of the stored reading).  Anything
  else is ``skipped``, so ingesting a file again commits nothing, and a replay
  that was interrupted continues where it stopped.  (A replay never moves a
  key back to an older reading: the current value stays the newest known.)
- **Batching**: writes go in time order into transactions of at most 1000 ops
  (the protocol's limit) holding each key at most once, so a subscriber sees
  exactly one change per point per reading, and revisions follow time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from statehub import MAX_TXN_OPS
from statehub.eds.resolve import Entry, parse_utc_text

Mode = Literal["latest", "replay"]


@dataclass(frozen=True)
class Stored:
    """What the hub holds for a key: its value and revision."""

    value: Any
    rev: int


@dataclass
class Plan:
    batches: list[list[Entry]] = field(default_factory=list)
    readings: int = 0  # distinct (key, instant) pairs after corrections
    replaced: int = 0  # rows replaced by a later row for the same key and instant
    skipped: int = 0  # not newer than what the hub holds
    not_latest: int = 0  # --latest only: older than the newest reading of their key

    @property
    def writes(self) -> int:
        return sum(len(batch) for batch in self.batches)


def make_plan(
    entries: Iterable[Entry], stored: Mapping[str, Stored], mode: Mode, max_ops: int = MAX_TXN_OPS
) -> Plan:
    rows = 0
    unique: dict[tuple[str, datetime], Entry] = {}
    for entry in entries:
        rows += 1
        unique[(entry.key, entry.utc)] = entry  # a later row for the same key and instant wins
    by_key: dict[str, list[Entry]] = defaultdict(list)
    for entry in unique.values():
        by_key[entry.key].append(entry)
    plan = Plan(readings=len(unique), replaced=rows - len(unique))
    candidates: list[Entry] = []
    for key_entries in by_key.values():
        key_entries.sort(key=lambda e: e.utc)
        chosen = key_entries if mode == "replay" else key_entries[-1:]
        plan.not_latest += len(key_entries) - len(chosen)
        candidates.extend(chosen)
    writes = [entry for entry in candidates if is_newer(entry, stored.get(entry.key))]
    plan.skipped = len(candidates) - len(writes)
    writes.sort(key=lambda e: (e.utc, e.key))
    plan.batches = batch(writes, max_ops)
    return plan


def is_newer(entry: Entry, stored: Stored | None) -> bool:
    """Whether ``entry`` changes what the hub holds (see the module's idempotency rule)."""
    if stored is None or not isinstance(stored.value, dict):
        return True
    held = parse_utc_text(stored.value.get("time"))
    if held is None or entry.utc > held:
        return True
    if entry.utc < held:
        return False
    same = ("value", "quality")
    return any(entry.record.get(name) != stored.value.get(name) for name in same)


def batch(writes: list[Entry], max_ops: int) -> list[list[Entry]]:
    """Consecutive transactions of at most ``max_ops`` writes, each key at most once per transaction."""
    batches: list[list[Entry]] = []
    current: list[Entry] = []
    keys: set[str] = set()
    for entry in writes:
        if entry.key in keys or len(current) >= max_ops:
            batches.append(current)
            current, keys = [], set()
        current.append(entry)
        keys.add(entry.key)
    if current:
        batches.append(current)
    return batches
