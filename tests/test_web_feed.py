"""The web process's replica, replay log and per-stream queues (statehub.web.feed), as plain logic."""

from __future__ import annotations

import pytest

pytest.importorskip("starlette", reason="statehub[web] is not installed")

from statehub.hub.protocol import Changed, Item  # noqa: E402
from statehub.web.feed import Entry, Feed, Resync, Status, parse_event_id  # noqa: E402


def change(rev: int, key: str, value: object = 1, *, op: str = "set", index: int = 0, count: int = 1) -> Changed:
    return Changed(epoch="e1", rev=rev, index=index, count=count, key=key, op=op, time=1000.0 + rev, value=value)  # type: ignore[arg-type]


def live_feed(log_size: int = 100, queue_size: int = 100) -> Feed:
    feed = Feed(log_size=log_size, queue_size=queue_size)
    feed.replace([Item(key="a", value=0, rev=1, created_rev=1, time=1.0)], Status("live", "e1", 1), "start")
    return feed


def test_event_ids_parse_only_as_epoch_and_revision() -> None:
    """A Last-Event-ID is `epoch:rev`; anything else means "no usable id" and leads to a resync."""
    assert parse_event_id("3f2a:41") == ("3f2a", 41)
    assert parse_event_id(" 3f2a:41 ") == ("3f2a", 41)
    for bad in (None, "", "41", ":41", "3f2a:", "3f2a:-1", "3f2a:x"):
        assert parse_event_id(bad) is None, bad


def test_revisions_apply_to_the_replica_and_keep_created_revisions() -> None:
    """Sets replace an item (keeping its created revision), unsets remove it, and the status follows."""
    feed = live_feed()
    feed.apply("e1", 2, [change(2, "a", 5), change(2, "b", "x", index=1, count=2)])
    feed.apply("e1", 3, [change(3, "b", op="unset")])
    assert feed.items["a"].value == 5 and feed.items["a"].created_rev == 1
    assert "b" not in feed.items
    assert (feed.status.state, feed.rev) == ("live", 3)


def test_a_value_left_out_of_the_stream_is_never_held_as_made_up() -> None:
    """A change with value_omitted drops the key rather than storing a null in its place."""
    feed = live_feed()
    omitted = Changed(epoch="e1", rev=2, index=0, count=1, key="a", op="set", time=1.0, value_omitted=True)
    feed.apply("e1", 2, [omitted])
    assert "a" not in feed.items


def test_a_reader_inside_the_log_gets_exactly_the_revisions_it_missed() -> None:
    """since(epoch, rev) returns the entries after rev, filtered by prefix, in order."""
    feed = live_feed()
    for rev in range(2, 8):
        feed.apply("e1", rev, [change(rev, "plant.x" if rev % 2 else "eds.y", rev)])
    missed = feed.since("e1", 3)
    assert missed is not None and [entry.rev for entry in missed] == [4, 5, 6, 7]
    plant = feed.since("e1", 3, "plant.")
    assert plant is not None and [entry.rev for entry in plant] == [5, 7]
    assert feed.since("e1", 7) == []


def test_a_reader_outside_the_log_or_from_another_epoch_must_resync() -> None:
    """An id older than the log, newer than the replica, or of another epoch gets None: resync."""
    feed = live_feed(log_size=3)
    for rev in range(2, 10):
        feed.apply("e1", rev, [change(rev, "k", rev)])
    assert feed.since("e1", 6) is not None
    assert feed.since("e1", 5) is None  # trimmed: the log holds 3 changes
    assert feed.since("e1", 10) is None  # ahead of us
    assert feed.since("other", 8) is None


def test_a_rebuild_from_a_snapshot_starts_a_new_log_and_resyncs_every_listener() -> None:
    """After replace() at a new revision, ids from before it cannot resume, and listeners get a Resync."""
    feed = live_feed()
    feed.apply("e1", 2, [change(2, "k")])
    listener = feed.listen("")
    feed.replace([], Status("live", "e1", 9), "the hub is back")
    assert feed.since("e1", 2) is None
    assert feed.since("e1", 9) == []
    kinds = [type(message) for message in listener.pending]
    assert kinds == [Resync, Status]


def test_a_rebuild_at_the_revision_held_changes_nothing_for_listeners() -> None:
    """A hub restart with no missed writes lands on our revision: ids stay valid, no resync is sent."""
    feed = live_feed()
    feed.apply("e1", 2, [change(2, "k")])
    listener = feed.listen("")
    feed.replace(list(feed.items.values()), Status("live", "e1", 2), "the hub is back")
    assert feed.since("e1", 1) is not None
    assert [type(message) for message in listener.pending] == [Status]


def test_a_listener_gets_only_its_prefix() -> None:
    """Entries with no change under the listener's prefix are not queued for it."""
    feed = live_feed()
    listener = feed.listen("plant.")
    feed.apply("e1", 2, [change(2, "eds.a")])
    feed.apply("e1", 3, [change(3, "plant.a"), change(3, "eds.b", index=1, count=2)])
    entries = [m for m in listener.pending if isinstance(m, Entry)]
    assert [e.rev for e in entries] == [3] and [c.key for c in entries[0].under("plant.")] == ["plant.a"]


def test_a_listener_that_falls_too_far_behind_is_dropped_without_touching_the_others() -> None:
    """A full queue marks that listener dropped and removes it; the feed and other listeners go on."""
    feed = live_feed(queue_size=5)
    slow, fast = feed.listen(""), feed.listen("")
    for rev in range(2, 12):
        feed.apply("e1", rev, [change(rev, "k", rev)])
        fast.pending.clear()  # this one keeps up
    assert slow.dropped and not fast.dropped
    assert len(slow.pending) == 5  # what it had before the overflow stays, in order
    assert feed.listeners == 1 and feed.dropped_listeners == 1
    assert feed.since("e1", 6) is not None  # and it can resume from the log
