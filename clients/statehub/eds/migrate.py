"""Renaming the escaped keys of earlier versions to readable ones (``statehub eds migrate-keys``).

    eds.Stiles.FI-2D405-2F415-2EUNIT1-40NET1   ->   eds.stiles.FI-405/415
    eds.Maxson.M100FI-2EUNIT0-40NET0           ->   eds.maxson.M100FI

Every key under ``eds.`` that the escaped scheme made (statehub.eds.legacy_keys)
and that holds a reading record gets the key an ingest would give its point
now: the plant its old key named (as ``--plant`` would), the point the record
names, the suffix rule of statehub.eds.plants.  A rename is an ``unset`` of the
old key and a ``set`` of the new one in one txn, with compare-and-set on both,
so a concurrent ingest is never overwritten; all renames go in one txn when
they fit (1000 ops), never a rename split across two.

History is kept: the old key's history stays in the store under its old name,
and the moved record says where it came from (``renamed_from``), which
``statehub eds trend`` follows.  When the readable key exists already (an
ingest ran before the migration), the newer reading of the two stays there and
the old key is removed.  Running the migration again changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from statehub import MAX_TXN_OPS, Item, Op
from statehub.eds import legacy_keys
from statehub.eds.keys import ROOT, point_key, split_iess
from statehub.eds.plants import Plants
from statehub.eds.resolve import parse_utc_text

if TYPE_CHECKING:
    from statehub import Client

RENAMED_FROM = "renamed_from"


@dataclass(frozen=True)
class Rename:
    """The old keys of one readable key, and what the readable key ends up holding."""

    new: str
    olds: list[Item]
    current: Item | None  # what the readable key holds now, if anything
    keeps: Item  # the newest reading of them all, which the readable key holds afterwards

    @property
    def ops(self) -> list[Op]:
        ops = [Op(op="unset", key=old.key, expect=old.rev) for old in self.olds]
        if self.current is None or self.keeps is not self.current:
            value = dict(self.keeps.value, **{RENAMED_FROM: self.keeps.key})
            ops.append(Op(op="set", key=self.new, value=value, expect=self.current.rev if self.current else 0))
        return ops

    def as_dict(self) -> dict[str, Any]:
        return {
            "new": self.new,
            "old": [old.key for old in self.olds],
            "kept": self.keeps.key,
            "existed": self.current is not None,
        }

    def text(self) -> str:
        olds = ", ".join(old.key for old in self.olds)
        if self.current is None:
            return f"{olds} -> {self.new}"
        if self.keeps is self.current:
            return f"{olds} -> {self.new} (which holds a newer reading already: kept)"
        return f"{olds} -> {self.new} (replacing its older reading)"


@dataclass
class Migration:
    renames: list[Rename] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (key, why it stays)
    revs: list[int] = field(default_factory=list)  # one per txn, once applied

    @property
    def txns(self) -> list[list[Op]]:
        """The renames packed into txns of at most MAX_TXN_OPS ops, each rename whole in one."""
        txns: list[list[Op]] = []
        for rename in self.renames:
            ops = rename.ops
            if not txns or len(txns[-1]) + len(ops) > MAX_TXN_OPS:
                txns.append([])
            txns[-1].extend(ops)
        return txns

    def as_dict(self) -> dict[str, Any]:
        return {
            "renames": [rename.as_dict() for rename in self.renames],
            "skipped": [{"key": key, "why": why} for key, why in self.skipped],
            "revs": self.revs,
        }


def plan_migration(items: Iterable[Item], plants: Plants) -> Migration:
    """Which escaped keys become which readable keys (pure: ``items`` are the hub's under ``eds.``)."""
    migration = Migration()
    current = {item.key: item for item in items}
    olds: dict[str, list[Item]] = {}
    for item in current.values():
        new_or_why = _readable_key(item, plants)
        if new_or_why is None:
            continue
        if not new_or_why.startswith(f"{ROOT}."):
            migration.skipped.append((item.key, new_or_why))
        elif new_or_why != item.key:
            olds.setdefault(new_or_why, []).append(item)
    for new, moved in sorted(olds.items()):
        held = current.get(new)
        candidates = [*([held] if held is not None else []), *moved]
        keeps = max(candidates, key=_reading_time)  # the first of equals: what is there already stays
        migration.renames.append(Rename(new, sorted(moved, key=lambda item: item.key), held, keeps))
    return migration


def _readable_key(item: Item, plants: Plants) -> str | None:
    """The readable key of an escaped key's record; None for keys the escaped scheme did not make;
    a reason (not starting with ``eds.``) when it is such a key but cannot be moved."""
    try:
        plant, _point = legacy_keys.split_point_key(item.key)
    except ValueError:
        return None
    point = item.value.get("point") if isinstance(item.value, dict) else None
    if not isinstance(point, str) or not point:
        return "it holds no EDS reading record (no point field)"
    tag, suffix = split_iess(point)
    try:
        placement = Plants(forced=plant, by_suffix=plants.by_suffix).place(suffix, None)
        assert placement is not None  # forced: there is always a plant
        return point_key(placement.plant, tag, suffix if placement.keeps_suffix else None)
    except ValueError as exc:
        return f"it cannot get a readable key: {exc}"


def _reading_time(item: Item) -> float:
    moment = parse_utc_text(item.value.get("time")) if isinstance(item.value, dict) else None
    return moment.timestamp() if moment is not None else float("-inf")


def apply(client: Client, migration: Migration) -> None:
    """Commit the renames, one txn at a time (one in all unless there are more than 500)."""
    for ops in migration.txns:
        committed = client.txn(ops)
        migration.revs.append(committed.rev)
