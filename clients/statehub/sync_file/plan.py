"""What a save of the synced file asks for: writes to send, and edits to refuse.

A save is compared three ways, key by key: what the person saved (F), what the
hub holds now (C), and what the file showed when it was written, i.e. the state
at the file's revision R (B, the base).

- F equals C: nothing to do (both sides agree).
- F equals B: the person did not touch this key; the hub's newer value stands.
- otherwise the person changed it.  If the key has not changed in the hub since
  R, send the change with compare-and-set against the key's revision (0: "must
  not exist"); if it has, refuse the edit, to be kept in the conflict note.

The hub checks every compare-and-set again, so a plan made from a replica that
is a moment behind can still be refused there, never wrongly applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from statehub import SECRET_PLACEHOLDER, ConflictDetail, Item, Op


class _Marker:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


ABSENT: Any = _Marker("ABSENT")  # the key does not exist (a stored null is a value)
UNKNOWN: Any = _Marker("UNKNOWN")  # the base value cannot be known (history pruned, store replaced)


@dataclass(frozen=True)
class Theirs:
    """What the hub holds for a key now, and who put it there."""

    value: Any
    rev: int
    source: str
    user: str
    time: float

    @classmethod
    def from_item(cls, item: Item) -> Theirs:
        return cls(item.value, item.rev, item.source, item.user, item.time)

    @classmethod
    def from_conflict(cls, detail: ConflictDetail) -> Theirs | None:
        if not detail.exists:
            return None
        return cls(detail.value, detail.rev, detail.source, detail.user, detail.time)


@dataclass(frozen=True)
class Refusal:
    """An edit not applied because the key changed in the hub after the file's revision."""

    key: str
    yours: Any  # ABSENT: you deleted the key
    theirs: Theirs | None  # None: the hub no longer has the key
    base: Any  # the value at the file's revision: ABSENT, UNKNOWN or a value


@dataclass
class Plan:
    ops: list[Op] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)


def same_value(a: Any, b: Any) -> bool:
    """Equal as statehub values: 1, 1.0 and true differ, map order does not matter."""
    if a is ABSENT or b is ABSENT:
        return a is b
    return bool(_canonical(a) == _canonical(b))


def _canonical(value: Any) -> bytes:
    return msgspec.json.encode(value, order="sorted")


def plan_save(
    saved: dict[str, Any],
    current: dict[str, Item],
    base_rev: int | None,
    base: dict[str, Any] | None,
) -> Plan:
    """The writes and refusals for a save.

    ``current``: the hub's items under the prefix now.  ``base_rev``: the file's
    revision, or None when it means nothing here (the store was replaced).
    ``base``: the values at that revision, or None when they cannot be known.
    """
    plan = Plan()
    for key in sorted(saved.keys() | current.keys()):
        yours = saved.get(key, ABSENT)
        now = current.get(key)
        if now is not None and now.secret and (yours is ABSENT or yours == SECRET_PLACEHOLDER):
            continue  # secrets are never in the file: their absence is not a deletion
        if same_value(yours, now.value if now is not None else ABSENT):
            continue
        before = UNKNOWN if base is None else base.get(key, ABSENT)
        if before is not UNKNOWN and same_value(yours, before):
            continue
        if _unchanged_since(now, before, base_rev):
            plan.ops.append(_op(key, yours, now))
        else:
            theirs = Theirs.from_item(now) if now is not None else None
            plan.refused.append(Refusal(key, yours, theirs, before))
    return plan


def _unchanged_since(now: Item | None, before: Any, base_rev: int | None) -> bool:
    """True when the hub's key is as it was at the file's revision."""
    if base_rev is None:
        return False
    if now is not None:
        return now.rev <= base_rev
    return before is ABSENT  # absent then and now (if it came and went meanwhile, no harm)


def _op(key: str, yours: Any, now: Item | None) -> Op:
    expect = now.rev if now is not None else 0
    if yours is ABSENT:
        return Op(op="unset", key=key, expect=expect)
    return Op(op="set", key=key, value=yours, expect=expect)


def refuse_conflicts(plan: Plan, conflicts: list[ConflictDetail], base: dict[str, Any] | None) -> None:
    """Move the ops the hub refused (it saw newer state than our replica) to the refusals.

    A key the hub already holds as saved is no conflict: most often it is this
    save's own earlier attempt, applied although its answer was lost
    (OutcomeUnknown), and retried before the replica caught up.
    """
    by_key = {detail.key: detail for detail in conflicts}
    kept = []
    for op in plan.ops:
        detail = by_key.get(op.key)
        if detail is None:
            kept.append(op)
            continue
        yours = op.value if op.op == "set" else ABSENT
        if same_value(yours, detail.value if detail.exists else ABSENT):
            continue  # already so: nothing to write, nothing to refuse
        before = UNKNOWN if base is None else base.get(op.key, ABSENT)
        plan.refused.append(Refusal(op.key, yours, Theirs.from_conflict(detail), before))
    plan.ops = kept
