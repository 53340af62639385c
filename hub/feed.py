"""The change feed: the committed changes after a revision, page by page, from history.

History keeps every change (until ``--history-keep`` prunes it), so a reader
that missed revisions asks for the changes after the last one it applied and
replays them in order, instead of rebuilding from a snapshot and losing every
intermediate value (docs/protocol.md, "The change feed").  A page holds whole
revisions only, bounded in changes and (about) bytes, but always at least one
revision, however large: a txn is bounded by the request limit.  Each change
has the same shape as on the stream, except that a large value is included
(a page is a reply: it pins no memory in the publisher); a secret is its
placeholder, as everywhere.

Reads at a past revision (``get`` with ``at_rev``) are here too: both are the
history seen as a feed rather than as one key's past.
"""

from __future__ import annotations

from collections.abc import Iterable

from statehub.hub import replies
from statehub.hub.errors import InvalidRequest, NotFound
from statehub.hub.protocol import MAX_PAGE_BYTES, MAX_PAGE_LIMIT, Changed, ChangePage, Changes, Item
from statehub.hub.publisher import changed_message
from statehub.hub.records import Change
from statehub.hub.rules import check_key, check_prefix
from statehub.hub.store import StoreView

# A filtered page looks at most this many revisions ahead: a prefix that nothing touches must
# not make one request scan all of history.  ``last`` still advances over what was looked at.
SCAN_REVISIONS = 100_000
# What a change costs in a page besides its key, value and names (its other fields, encoded).
CHANGE_OVERHEAD_BYTES = 96


def change_page(store: StoreView, request: Changes) -> ChangePage:
    """One page of the feed after ``request.after``, or a ``compacted`` page when history no longer reaches it."""
    check_page_request(request)
    with store.snapshot():  # head, oldest and the rows from one instant, while the store thread commits
        return _page(store, request)


def _page(store: StoreView, request: Changes) -> ChangePage:
    head, oldest, after = int(store.meta("rev")), int(store.meta("history_from")), request.after
    if after > head:
        raise InvalidRequest(
            f"revision {after} is ahead of this store (at revision {head}): it is not the store you "
            "followed (or it was put back from an older copy); rebuild from a snapshot"
        )
    if after < oldest - 1:
        return ChangePage(epoch=store.epoch, after=after, last=after, head=head, oldest=oldest, compacted=True)
    until = min(head, after + SCAN_REVISIONS) if request.prefix else head
    rows = store.changes_after(after, until, request.prefix)
    try:
        changes, last, complete = _whole_revisions(store.epoch, rows, request.limit, request.max_bytes)
    finally:
        rows.close()  # a page that stops early must not leave its SELECT open
    if complete:
        last = until  # every revision up to it was looked at; those without a row here touch nothing under the prefix
    return ChangePage(
        epoch=store.epoch, after=after, last=last, head=head, oldest=oldest, changes=changes, more=last < head
    )


def check_page_request(request: Changes) -> None:
    """InvalidRequest naming the field when a ``changes`` request is out of bounds."""
    check_prefix(request.prefix)
    if request.after < 0:
        raise InvalidRequest(f"changes after revision {request.after}: a revision is 0 or more")
    if not 1 <= request.limit <= MAX_PAGE_LIMIT:
        raise InvalidRequest(f"page limit {request.limit} is outside 1..{MAX_PAGE_LIMIT}")
    if not 1 <= request.max_bytes <= MAX_PAGE_BYTES:
        raise InvalidRequest(f"page max_bytes {request.max_bytes} is outside 1..{MAX_PAGE_BYTES}")


def _whole_revisions(
    epoch: str, rows: Iterable[Change], limit: int, max_bytes: int
) -> tuple[list[Changed], int, bool]:
    """The page's changes, the last revision in it, and whether the rows ran out (rather than the room).

    Rows come in revision order; a revision is taken whole or not at all, and the
    first one always, even when it alone exceeds the limits.
    """
    page = _Page(epoch, limit, max_bytes)
    revision: list[Change] = []
    for row in rows:
        if revision and row.rev != revision[0].rev:  # the revision before ended (seen only now when filtered)
            if not page.take(revision) or page.is_full:
                return page.changes, page.last, False
            revision = []
        revision.append(row)
        if len(revision) == row.count:  # all of it: no need to read the next row to know
            if not page.take(revision) or page.is_full:
                return page.changes, page.last, False
            revision = []
    if revision and not page.take(revision):
        return page.changes, page.last, False
    return page.changes, page.last, True


class _Page:
    """The changes of a page being filled, and what they cost."""

    def __init__(self, epoch: str, limit: int, max_bytes: int) -> None:
        self.epoch, self.limit, self.max_bytes = epoch, limit, max_bytes
        self.changes: list[Changed] = []
        self.size = 0
        self.last = 0

    @property
    def is_full(self) -> bool:
        return len(self.changes) >= self.limit or self.size >= self.max_bytes

    def take(self, revision: list[Change]) -> bool:
        """Add a whole revision if it fits (the first always does); False when it does not."""
        cost = sum(_cost(change) for change in revision)
        if self.changes and (len(self.changes) + len(revision) > self.limit or self.size + cost > self.max_bytes):
            return False
        self.changes.extend(changed_message(self.epoch, change, inline_limit=None) for change in revision)
        self.size += cost
        self.last = revision[0].rev
        return True


def _cost(change: Change) -> int:
    """About what ``change`` adds to an encoded page."""
    value = len(change.blob) if change.blob is not None else 0
    return value + len(change.key) + len(change.source) + len(change.user) + CHANGE_OVERHEAD_BYTES


def item_at(store: StoreView, key: str, rev: int) -> Item:
    """``key`` as it was right after revision ``rev``: NotFound if it did not exist then.

    InvalidRequest, naming the oldest revision kept, when history no longer reaches back.
    """
    check_key(key)
    entry = store.entry_at(key, rev)
    if entry is None:
        raise NotFound(f"no key {key!r} at revision {rev}")
    return replies.item(entry, store.ttl_rules())
