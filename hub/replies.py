"""Reply messages built from store records: how a stored value is shown outside the hub.

A stored value is MessagePack, passed through to the wire untouched
(``msgspec.Raw``), or a sealed secret, shown as the placeholder; a ``sealed``
read (an export) shows the secret's token instead, and a ``reveal`` read its
plaintext.  Published changes follow the same rule, plus the inline-size
limit: ``hub.publisher``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from statehub.hub.protocol import (
    SECRET_PLACEHOLDER,
    ConflictDetail,
    Item,
    Items,
    SiteOrigin,
    Version,
    Versions,
)
from statehub.hub.records import Change, Entry
from statehub.hub.schema import Schema
from statehub.hub.secret_box import is_sealed, token_of


def shown(blob: bytes | None) -> Any:
    """A stored value as readers may see it: MessagePack passed through, a secret as its placeholder."""
    if blob is None:
        return None
    return SECRET_PLACEHOLDER if is_sealed(blob) else msgspec.Raw(blob)


def site_origin(stored: bytes | None) -> SiteOrigin | None:
    """The origin a change was stored with (another hub's change), or None."""
    return None if stored is None else msgspec.msgpack.decode(stored, type=SiteOrigin)


def lifetime(entry: Entry, rules: Schema | None) -> float | None:
    """The key's ttl as clients see it: its write's own, else its rule's in ``rules`` (None: no rule has a ttl)."""
    if entry.ttl is not None or rules is None:
        return entry.ttl
    ttl = rules.ttl_of(entry.key)
    return None if ttl is None else float(ttl)  # a rule's may be an integer: the wire says float


def item(entry: Entry, rules: Schema | None, *, sealed: bool = False) -> Item:
    """The item of a stored key; a secret as the placeholder, or as its token when ``sealed``.

    ``rules``: the schema whose rules give a key without a ttl of its own its lifetime (None: none does).
    """
    key, blob, rev, created_rev, when, source, user, origin, _ = entry
    ttl = lifetime(entry, rules)
    if not is_sealed(blob):
        return Item(
            key=key,
            value=msgspec.Raw(blob),
            rev=rev,
            created_rev=created_rev,
            time=when,
            source=source,
            user=user,
            origin=site_origin(origin),
            ttl=ttl,
        )
    value = token_of(blob).decode("ascii") if sealed else SECRET_PLACEHOLDER
    return Item(
        key=key,
        value=value,
        rev=rev,
        created_rev=created_rev,
        time=when,
        source=source,
        user=user,
        secret=True,
        origin=site_origin(origin),
        ttl=ttl,
    )


def revealed_item(entry: Entry, plain: bytes, rules: Schema | None) -> Item:
    """The item of a secret showing its plaintext (``plain``: the value's MessagePack encoding)."""
    key, _blob, rev, created_rev, when, source, user, origin, _ = entry
    return Item(
        key=key,
        value=msgspec.Raw(plain),
        rev=rev,
        created_rev=created_rev,
        time=when,
        source=source,
        user=user,
        secret=True,
        origin=site_origin(origin),
        ttl=lifetime(entry, rules),
    )


def items(epoch: str, rev: int, entries: Iterable[Entry], rules: Schema | None, *, sealed: bool = False) -> Items:
    return Items(epoch=epoch, rev=rev, items=[item(entry, rules, sealed=sealed) for entry in entries])


def versions(key: str, changes: Iterable[Change]) -> Versions:
    """A key's history, newest first; a secret's values (before and after) as the placeholder."""
    return Versions(
        key=key,
        versions=[
            Version(
                rev=change.rev,
                op=change.op,
                value=shown(change.blob),
                prev_rev=change.prev_rev,
                prev_value=shown(change.prev_blob),
                time=change.time,
                source=change.source,
                user=change.user,
                secret=is_sealed(change.blob) or is_sealed(change.prev_blob),
                origin=site_origin(change.origin),
                backfill=change.backfill,
            )
            for change in changes
        ],
    )


def conflict(key: str, expected: int, entry: Entry | None) -> ConflictDetail:
    """Why one compare-and-set condition failed: what ``key`` holds now."""
    if entry is None:
        return ConflictDetail(key=key, expected=expected)
    return ConflictDetail(
        key=key,
        expected=expected,
        rev=entry.rev,
        exists=True,
        value=shown(entry.blob),
        time=entry.time,
        source=entry.source,
        user=entry.user,
    )
