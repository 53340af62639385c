"""What the store hands back: stored keys, changes and applied writes, before any wire shape.

The store speaks in these records; ``hub.replies`` turns them into reply
messages and ``hub.publisher`` into published ones, each applying its own
policy (the secret placeholder, the inline-size limit).  A record keeps a
value as the bytes the store holds: MessagePack, or a sealed secret.

Entry is a NamedTuple because SQLite hands rows over as tuples: a row becomes
an Entry without copying field by field, which matters for a 100,000-key
snapshot or mirror.  (Change cannot be one: its ``index`` and ``count`` would
shadow tuple methods.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

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

    @property
    def is_secret(self) -> bool:
        return is_sealed(self.blob)


@dataclass(frozen=True, slots=True)
class Change:
    """What one revision did to one key: one row of history, and one published change.

    ``blob`` is the new value (None for an unset), ``prev_blob`` and ``prev_rev``
    what the key held before (``prev_rev`` 0: it did not exist).  A revision of
    ``count`` changes has them at ``index`` 0..count-1.
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


class Applied(NamedTuple):
    """What one committed write did: the revision it got and its changes.

    A repeated request id is ``duplicate`` with the original revision and no
    changes; a write whose ops were all dropped (a secret's placeholder written
    back) has the store's current revision and no changes.
    """

    rev: int
    changes: tuple[Change, ...] = ()
    duplicate: bool = False


class Rotation(NamedTuple):
    """What a secrets key rotation re-encrypted: current values, and values in history."""

    secrets: int
    versions: int
