"""What the store hands back: stored keys, changes and applied writes, before any wire shape.

The store speaks in these records; ``hub.replies`` turns them into reply
messages and ``hub.publisher`` into published ones, each applying its own
policy (the secret placeholder, the inline-size limit).  A record keeps a
value as the bytes the store holds: MessagePack, or a sealed secret.

Entry is a NamedTuple because SQLite hands rows over as tuples: a row becomes
an Entry without copying field by field, which matters for a 100,000-key
snapshot or mirror.  Change and Applied, made for every write, are frozen
msgspec Structs, the cheapest record to build in CPython (a frozen dataclass
costs a microsecond more per change on the write path).  None of them is a
wire message.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import msgspec

from statehub.hub.secret_box import is_sealed

OpName = Literal["set", "unset"]


class Entry(NamedTuple):
    """A key as stored now: its value's bytes and the revision, time and writer of its last change."""

    key: str
    blob: bytes
    rev: int
    created_rev: int
    time: float
    source: str
    user: str
    origin: bytes | None = None  # a SiteOrigin in MessagePack, when the change came from another hub
    # Its lifetime as its write gave it: the write's own ttl (a key in the store), or the ttl that
    # change was published with (a key rebuilt from history); None: none, so its rule's if any.
    ttl: float | None = None

    @property
    def is_secret(self) -> bool:
        return is_sealed(self.blob)


class Change(msgspec.Struct, frozen=True, gc=False):
    """What one revision did to one key: one row of history, and one published change.

    ``blob`` is the new value (None for an unset), ``prev_blob`` and ``prev_rev``
    what the key held before (``prev_rev`` 0: it did not exist).  A revision of
    ``count`` changes has them at ``index`` 0..count-1.  ``backfill`` marks
    history written after the fact (a replayed export), not a live change.
    ``origin`` (a SiteOrigin in MessagePack) says where the change was first
    made, when another hub made it.
    """

    rev: int
    index: int
    count: int
    key: str
    op: OpName
    blob: bytes | None
    prev_blob: bytes | None
    prev_rev: int
    time: float
    source: str
    user: str
    backfill: bool = False
    origin: bytes | None = None
    ttl: float | None = None  # a set's lifetime (its write's, else the schema's), as published and kept in history


class Applied(msgspec.Struct, frozen=True, gc=False):
    """What one committed write did: the revision it got and its changes.

    A repeated request id is ``duplicate`` with the original revision and no
    changes; a write whose ops were all dropped (a secret's placeholder written
    back) has the store's current revision and no changes.
    """

    rev: int
    changes: list[Change] = []
    duplicate: bool = False
    warnings: list[str] = []  # keys the schema does not know, accepted (policy warn)


class AppliedBatch(msgspec.Struct, frozen=True, gc=False):
    """What one committed batch did: each write's Applied, in order."""

    applied: list[Applied]
    duplicate: bool = False

    @property
    def revs(self) -> list[int]:
        return [write.rev for write in self.applied]


class Rotation(NamedTuple):
    """What a secrets key rotation re-encrypted: current values, and values in history."""

    secrets: int
    versions: int
