"""The sync rules of docs/protocol.md §5 as a pure replica: no sockets, no clock, no threads.

A ``Replica`` holds the items under a prefix at one revision of one epoch,
and the txn being assembled.  It is fed what the hub said (a snapshot, a
published message, a page of the change feed) and answers with outcomes:
the revisions it applied (``Update``), what to ask the hub next (``Fetch`` a
page of history, or ``Resync`` from a snapshot), and when a catch-up from
history is done (``CaughtUp``).  ``statehub.subscription`` drives it with
real sockets; ``tests/vectors/sync.json`` holds it (and the Rust crate's
``sync.rs``) to one table of cases.

The rules, in short: a revision is applied only when it is the next one and
whole.  A gap, a heartbeat ahead, a reconnect or a hub restart asks for the
changes after the replica's revision, page by page, so every intermediate
revision is applied in order.  Only a new epoch, or history that no longer
reaches back (``compacted``), rebuilds the replica from a snapshot, and that
is a ``Synced`` with ``resync`` set, never silent.  A change published
without its (large) value is completed from its revision's page, never from
the key's current value: after every applied revision the replica is exactly
the hub's state at that revision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from statehub.hub.protocol import DEFAULT_PAGE_LIMIT, Changed, ChangePage, Heartbeat, Item, Items, Welcome

Origin = Literal["live", "replay"]
# Why the replica asks for history or a snapshot: the machine-readable part of a reason.
Cause = Literal[
    "start",  # the first snapshot
    "resume",  # a consumer resuming after a revision it saw before (``since``)
    "reconnect",  # the hub is back (restarted, or reachable again)
    "gap",  # a change that does not continue the sequence
    "heartbeat",  # a heartbeat or welcome names a revision the replica does not have
    "value_omitted",  # a change published without its large value
    "epoch",  # the hub's store is another one (restored or replaced)
    "compacted",  # history no longer reaches back to the replica's revision
    "refused",  # the hub refused to page its history (too old a hub, or a store behind us)
]


@dataclass(frozen=True)
class Update:
    """One whole revision that changed keys under the prefix (a txn arrives whole).

    ``origin`` says how it came: ``live`` from the change stream, ``replay``
    from the hub's history after a gap, a reconnect or a restart.
    """

    rev: int
    epoch: str
    changes: list[Changed]
    origin: Origin = "live"


@dataclass(frozen=True)
class Synced:
    """The replica was (re)built from a snapshot at ``rev``.

    ``items`` is the whole replica then (a copy: the receiver may keep it, even
    in another thread); ``changes`` is how it differs from the replica before
    (empty on the first sync); ``reason`` says why it was rebuilt, ``cause`` the
    same as a code.  ``resync`` is true when revisions between the replica (or
    the revision a consumer resumed from) and this snapshot were never seen:
    those are the counted resyncs.
    """

    rev: int
    epoch: str
    reason: str
    first: bool
    changes: list[Changed] = field(default_factory=list)
    items: dict[str, Item] = field(default_factory=dict)
    resync: bool = False
    cause: str = ""


@dataclass(frozen=True)
class CaughtUp:
    """The replica replayed the hub's history up to its head after a gap, a reconnect or a restart.

    ``replayed`` revisions (with changes under the prefix) came as ``Update``
    events with origin ``replay`` just before this; from here on, changes are live.
    """

    rev: int
    epoch: str
    reason: str
    replayed: int
    cause: str = ""


@dataclass(frozen=True)
class Fetch:
    """Ask the hub for the changes after ``after`` (a page of at most ``limit``), then call ``receive_page``."""

    after: int
    limit: int
    cause: Cause
    reason: str


@dataclass(frozen=True)
class Resync:
    """Ask the hub for a snapshot, then call ``load``: neither the stream nor history can continue the replica."""

    cause: Cause
    reason: str


Outcome = Update | CaughtUp | Fetch | Resync


@dataclass
class _CatchUp:
    """A request for history in flight, and what it has replayed so far."""

    cause: Cause
    reason: str
    replayed: int = 0


class Replica:
    """The items under ``prefix`` at revision ``rev`` of ``epoch`` ("" before the first snapshot)."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.epoch = ""
        self.rev = 0
        self.items: dict[str, Item] = {}
        self._assembling: list[Changed] = []  # the parts of revision rev + 1 received so far
        self._catching_up: _CatchUp | None = None

    @property
    def is_loaded(self) -> bool:
        return self.epoch != ""

    @property
    def is_catching_up(self) -> bool:
        return self._catching_up is not None

    # --- what the hub said ------------------------------------------------------------

    def load(self, snapshot: Items, cause: Cause, reason: str, now: float = 0.0) -> Synced:
        """Replace the replica with a snapshot; ``now`` times the unsets a resync reports."""
        first = not self.is_loaded
        fresh = {item.key: item for item in snapshot.items if item.key.startswith(self.prefix)}
        changes = [] if first else diff(self.items, fresh, snapshot.rev, snapshot.epoch, now)
        self.items, self.rev, self.epoch = fresh, snapshot.rev, snapshot.epoch
        self._assembling, self._catching_up = [], None
        resync = cause not in ("start", "resume")
        return Synced(snapshot.rev, snapshot.epoch, reason, first, changes, dict(fresh), resync, cause)

    def catch_up(self, cause: Cause, reason: str) -> Fetch | Resync:
        """Start replaying history after the replica's revision (the hub is back, or a consumer resumes)."""
        if not self.is_loaded:
            return Resync("start", "start")
        self._assembling = []
        self._catching_up = _CatchUp(cause, reason)
        return Fetch(self.rev, DEFAULT_PAGE_LIMIT, cause, reason)

    def receive(self, message: Changed | Heartbeat | Welcome) -> list[Outcome]:
        """A message from the change stream."""
        if not self.is_loaded:
            return [Resync("start", "start")]
        if self._catching_up is not None:
            return []  # the page in flight decides; later messages stay in the socket meanwhile
        if message.epoch != self.epoch:
            return [self._resync("epoch", f"the hub's epoch changed from {self.epoch} to {message.epoch}")]
        if isinstance(message, Changed):
            return self._receive_change(message)
        if message.rev > self.rev:
            # The hub publishes every part of a revision before any later heartbeat or welcome,
            # so one naming the revision being assembled means its tail was dropped too.
            return [self._fetch("heartbeat", f"missed revisions {self.rev + 1}..{message.rev} (the hub is at {message.rev})")]
        return []

    def receive_page(self, page: ChangePage) -> list[Outcome]:
        """A page of the change feed, the answer to the last ``Fetch``."""
        catch_up = self._catching_up
        if catch_up is None:
            return []  # nothing asked for it
        if page.epoch != self.epoch:
            return [self._resync("epoch", f"the hub's epoch changed from {self.epoch} to {page.epoch}")]
        if page.compacted:
            reason = (
                f"history starts at revision {page.oldest} and the replica is at {self.rev}: "
                "the revisions between are lost"
            )
            return [self._resync("compacted", reason)]
        origin: Origin = "live" if catch_up.cause == "value_omitted" else "replay"
        outcomes: list[Outcome] = []
        for revision in _revisions(page.changes):
            if revision[0].rev > self.rev:
                update = self._apply(revision, origin)
                if update is not None:
                    outcomes.append(update)
                    catch_up.replayed += origin == "replay"
        self.rev = max(self.rev, page.last)
        if catch_up.cause == "value_omitted":
            self._catching_up = None
        elif page.more:
            outcomes.append(Fetch(self.rev, DEFAULT_PAGE_LIMIT, catch_up.cause, catch_up.reason))
        else:
            self._catching_up = None
            outcomes.append(CaughtUp(self.rev, self.epoch, catch_up.reason, catch_up.replayed, catch_up.cause))
        return outcomes

    # --- the rules ---------------------------------------------------------------------------

    def _receive_change(self, change: Changed) -> list[Outcome]:
        if change.rev <= self.rev:
            return []  # already applied (from a snapshot or a page)
        if not self._continues(change):
            got = f"revision {change.rev} part {change.index + 1}/{change.count}"
            return [self._fetch("gap", f"gap: expected revision {self.rev + 1}, got {got}")]
        self._assembling.append(change)
        if change.index < change.count - 1:
            return []  # hold it: no subscriber ever sees half a txn
        revision, self._assembling = self._assembling, []
        if any(c.value_omitted and c.key.startswith(self.prefix) for c in revision):
            # Its large value as of this revision is in the revision's page: one revision, whole.
            self._catching_up = _CatchUp("value_omitted", f"revision {change.rev} has a large value")
            return [Fetch(self.rev, 1, "value_omitted", f"revision {change.rev} has a large value")]
        update = self._apply(revision, "live")
        return [update] if update is not None else []

    def _continues(self, change: Changed) -> bool:
        """Is ``change`` exactly the next message of the sequence?"""
        if not 0 <= change.index < change.count:
            return False
        if not self._assembling:
            return change.rev == self.rev + 1 and change.index == 0
        last = self._assembling[-1]
        return change.rev == last.rev and change.index == last.index + 1 and change.count == last.count

    def _apply(self, revision: list[Changed], origin: Origin) -> Update | None:
        relevant = [change for change in revision if change.key.startswith(self.prefix)]
        for change in relevant:
            apply_change(self.items, change)
        self.rev = revision[0].rev
        return Update(self.rev, self.epoch, relevant, origin) if relevant else None

    def _fetch(self, cause: Cause, reason: str) -> Fetch:
        self._assembling = []
        self._catching_up = _CatchUp(cause, reason)
        return Fetch(self.rev, DEFAULT_PAGE_LIMIT, cause, reason)

    def _resync(self, cause: Cause, reason: str) -> Resync:
        self._assembling, self._catching_up = [], None
        return Resync(cause, reason)


def _revisions(changes: list[Changed]) -> list[list[Changed]]:
    """The changes of a page, grouped by revision (a page holds whole revisions, in order)."""
    groups: list[list[Changed]] = []
    for change in changes:
        if groups and groups[-1][0].rev == change.rev:
            groups[-1].append(change)
        else:
            groups.append([change])
    return groups


def apply_change(items: dict[str, Item], change: Changed) -> None:
    """Apply one published change to a replica of items (keeps a key's created revision and its site origin)."""
    if change.op == "unset" or change.value_omitted:
        # A value the stream left out is never guessed: the key waits for its revision's page.
        items.pop(change.key, None)
        return
    previous = items.get(change.key)
    items[change.key] = Item(
        key=change.key,
        value=change.value,
        rev=change.rev,
        created_rev=previous.created_rev if previous else change.rev,
        time=change.time,
        source=change.source,
        user=change.user,
        secret=change.secret,
        origin=change.origin,  # a change first made at another hub stays marked as such
        ttl=change.ttl,
    )


def diff(old: dict[str, Item], new: dict[str, Item], rev: int, epoch: str, now: float) -> list[Changed]:
    """The changes that turn replica ``old`` into ``new``, one per key that differs (unsets timed ``now``)."""
    changes = [
        item_as_change(item, epoch)
        for key, item in new.items()
        if (before := old.get(key)) is None or before.rev != item.rev or before.value != item.value
    ]
    for key in old.keys() - new.keys():
        changes.append(Changed(epoch=epoch, rev=rev, index=0, count=1, key=key, op="unset", time=now))
    return changes


def item_as_change(item: Item, epoch: str) -> Changed:
    """A current value as a change that just set it (a resync's, or watch --initial's)."""
    return Changed(
        epoch=epoch,
        rev=item.rev,
        index=0,
        count=1,
        key=item.key,
        op="set",
        value=item.value,
        time=item.time,
        source=item.source,
        user=item.user,
        secret=item.secret,
        origin=item.origin,
        ttl=item.ttl,
    )
