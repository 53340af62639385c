"""The shared table of sync cases (tests/vectors/sync.json), written by scripts/make_vectors.py.

Each case feeds a pure replica (Python's ``statehub.replica.Replica``, Rust's
``statehub::sync::SyncState``) a sequence of inputs and says, for each, what
it must answer, and at the end what the replica holds.  The expected answers
are written here by hand: they are the rules of docs/protocol.md §5 and
"The change feed", not a recording of either implementation.

Inputs (one key per step, besides ``expect``):
  ``load``       an ``items`` reply (a snapshot) and ``cause``: what it was taken for
  ``published``  a ``changed``, ``heartbeat`` or ``welcome`` message
  ``page``       a ``change_page`` reply
  ``catch_up``   a cause: the driver starts a catch-up (the hub is back, or a consumer resumes)
Answers, in order:
  ``{"synced": {rev, epoch, first, resync, cause, changes}}``   (for ``load``; changes sorted by key)
  ``{"update": {rev, origin, changes}}``                        a whole revision applied
  ``{"fetch": {after, limit, cause}}``                          ask for the changes after ``after``
  ``{"resync": {cause}}``                                       ask for a snapshot
  ``{"caught_up": {rev, replayed, cause}}``                     a catch-up reached the hub's head
A change is ``[key, op, value]``.  The final ``state`` is ``{epoch, rev, items: {key: [value, rev]}}``.
"""

from __future__ import annotations

from typing import Any

E = "e1"  # the store's epoch
F = "f2"  # another store's (restored or replaced)
T = 1795000000.25
BIG = {"rows": [1, 2, 3], "note": "stands for a value over the stream's inline limit"}

Json = dict[str, Any]


# --- inputs --------------------------------------------------------------------------------


def item(key: str, value: Any, rev: int) -> Json:
    return {"type": "item", "key": key, "value": value, "rev": rev, "created_rev": rev, "time": T}


def load(rev: int, items: list[Json], cause: str = "start", epoch: str = E) -> Json:
    return {"load": {"type": "items", "epoch": epoch, "rev": rev, "items": items}, "cause": cause}


def changed(
    rev: int, key: str, value: Any = None, *, index: int = 0, count: int = 1, epoch: str = E, omitted: bool = False
) -> Json:
    message: Json = {
        "type": "changed",
        "epoch": epoch,
        "rev": rev,
        "index": index,
        "count": count,
        "key": key,
        "op": "unset" if value is None and not omitted else "set",
        "time": T,
    }
    if value is not None:
        message["value"] = value
    if omitted:
        message["value_omitted"] = True
    return message


def published(message: Json) -> Json:
    return {"published": message}


def beat(rev: int, epoch: str = E, kind: str = "heartbeat") -> Json:
    message: Json = {"type": kind, "epoch": epoch, "rev": rev, "time": T} if kind == "heartbeat" else {
        "type": kind, "epoch": epoch, "rev": rev, "topic": ""
    }  # fmt: skip
    return {"published": message}


def page(after: int, last: int, head: int, changes: list[Json], *, epoch: str = E, oldest: int = 1) -> Json:
    reply: Json = {
        "type": "change_page",
        "epoch": epoch,
        "after": after,
        "last": last,
        "head": head,
        "oldest": oldest,
        "changes": changes,
    }
    if last < head:
        reply["more"] = True
    return {"page": reply}


def compacted(after: int, head: int, oldest: int) -> Json:
    reply = {"type": "change_page", "epoch": E, "after": after, "last": after, "head": head, "oldest": oldest}
    return {"page": {**reply, "compacted": True}}


# --- answers ---------------------------------------------------------------------------------


def synced(rev: int, *, first: bool, resync: bool, cause: str, changes: list[list[Any]], epoch: str = E) -> Json:
    return {"synced": {"rev": rev, "epoch": epoch, "first": first, "resync": resync, "cause": cause, "changes": changes}}


def update(rev: int, changes: list[list[Any]], origin: str = "live") -> Json:
    return {"update": {"rev": rev, "origin": origin, "changes": changes}}


def fetch(after: int, cause: str, limit: int = 1000) -> Json:
    return {"fetch": {"after": after, "limit": limit, "cause": cause}}


def resync(cause: str) -> Json:
    return {"resync": {"cause": cause}}


def caught_up(rev: int, replayed: int, cause: str) -> Json:
    return {"caught_up": {"rev": rev, "replayed": replayed, "cause": cause}}


def step(given: Json, *expect: Json) -> Json:
    return {**given, "expect": list(expect)}


def state(rev: int, items: dict[str, list[Any]], epoch: str = E) -> Json:
    return {"epoch": epoch, "rev": rev, "items": items}


FIRST = synced(5, first=True, resync=False, cause="start", changes=[])
START = step(load(5, [item("a", 1, 2)]), FIRST)


# --- the cases -------------------------------------------------------------------------------


def cases() -> list[Json]:
    return [
        {
            "name": "live_revisions_apply_in_order_and_old_ones_are_ignored",
            "prefix": "",
            "steps": [
                START,
                step(published(changed(5, "a", 9))),
                step(published(changed(6, "b", 2)), update(6, [["b", "set", 2]])),
                step(published(changed(7, "a")), update(7, [["a", "unset", None]])),
            ],
            "state": state(7, {"b": [2, 6]}),
        },
        {
            "name": "before_a_snapshot_everything_asks_for_one",
            "prefix": "",
            "steps": [step(beat(3), resync("start")), step(published(changed(4, "a", 1)), resync("start"))],
            "state": state(0, {}, epoch=""),
        },
        {
            "name": "a_txn_applies_only_when_whole",
            "prefix": "",
            "steps": [
                START,
                step(published(changed(6, "p", 1, index=0, count=3))),
                step(published(changed(6, "q", 2, index=1, count=3))),
                step(
                    published(changed(6, "r", 3, index=2, count=3)),
                    update(6, [["p", "set", 1], ["q", "set", 2], ["r", "set", 3]]),
                ),
            ],
            "state": state(6, {"a": [1, 2], "p": [1, 6], "q": [2, 6], "r": [3, 6]}),
        },
        {
            "name": "a_gap_replays_the_missed_revisions_from_history",
            "prefix": "",
            "steps": [
                START,
                step(published(changed(7, "c", 7)), fetch(5, "gap")),
                step(published(changed(8, "c", 8))),  # ignored while the page is awaited
                step(
                    page(5, 8, 8, [changed(6, "b", 6), changed(7, "c", 7), changed(8, "c", 8)]),
                    update(6, [["b", "set", 6]], "replay"),
                    update(7, [["c", "set", 7]], "replay"),
                    update(8, [["c", "set", 8]], "replay"),
                    caught_up(8, 3, "gap"),
                ),
                step(published(changed(8, "c", 8))),
                step(published(changed(9, "c", 9)), update(9, [["c", "set", 9]])),
            ],
            "state": state(9, {"a": [1, 2], "b": [6, 6], "c": [9, 9]}),
        },
        {
            "name": "a_missing_txn_member_is_a_gap",
            "prefix": "",
            "steps": [
                START,
                step(published(changed(6, "p", 1, index=0, count=3))),
                step(published(changed(6, "r", 3, index=2, count=3)), fetch(5, "gap")),
                step(
                    page(5, 6, 6, [changed(6, "p", 1, count=3), changed(6, "q", 2, index=1, count=3), changed(6, "r", 3, index=2, count=3)]),
                    update(6, [["p", "set", 1], ["q", "set", 2], ["r", "set", 3]], "replay"),
                    caught_up(6, 1, "gap"),
                ),
            ],
            "state": state(6, {"a": [1, 2], "p": [1, 6], "q": [2, 6], "r": [3, 6]}),
        },
        {
            "name": "a_heartbeat_ahead_replays_page_by_page",
            "prefix": "",
            "steps": [
                START,
                step(beat(5)),
                step(beat(7), fetch(5, "heartbeat")),
                step(page(5, 6, 7, [changed(6, "b", 6)]), update(6, [["b", "set", 6]], "replay"), fetch(6, "heartbeat")),
                step(page(6, 7, 7, [changed(7, "b", 7)]), update(7, [["b", "set", 7]], "replay"), caught_up(7, 2, "heartbeat")),
            ],
            "state": state(7, {"a": [1, 2], "b": [7, 7]}),
        },
        {
            "name": "a_heartbeat_naming_the_txn_being_assembled_means_its_tail_was_lost",
            "prefix": "",
            "steps": [
                START,
                step(published(changed(6, "p", 1, index=0, count=2))),
                step(beat(6), fetch(5, "heartbeat")),
                step(
                    page(5, 6, 6, [changed(6, "p", 1, count=2), changed(6, "q", 2, index=1, count=2)]),
                    update(6, [["p", "set", 1], ["q", "set", 2]], "replay"),
                    caught_up(6, 1, "heartbeat"),
                ),
            ],
            "state": state(6, {"a": [1, 2], "p": [1, 6], "q": [2, 6]}),
        },
        {
            "name": "a_welcome_ahead_is_a_gap_too",
            "prefix": "",
            "steps": [START, step(beat(9, kind="welcome"), fetch(5, "heartbeat"))],
            "state": state(5, {"a": [1, 2]}),
        },
        {
            "name": "another_epoch_on_the_stream_rebuilds_from_a_snapshot",
            "prefix": "",
            "steps": [
                START,
                step(published(changed(1, "z", 1, epoch=F)), resync("epoch")),
                step(
                    load(3, [item("z", 1, 1), item("a", 1, 2)], cause="epoch", epoch=F),
                    synced(3, first=False, resync=True, cause="epoch", changes=[["z", "set", 1]], epoch=F),
                ),
                step(published(changed(4, "z", 2, epoch=F)), update(4, [["z", "set", 2]])),
            ],
            "state": state(4, {"a": [1, 2], "z": [2, 4]}, epoch=F),
        },
        {
            "name": "a_heartbeat_or_welcome_of_another_epoch_rebuilds_from_a_snapshot",
            "prefix": "",
            "steps": [START, step(beat(5, epoch=F), resync("epoch")), step(beat(2, epoch=F, kind="welcome"), resync("epoch"))],
            "state": state(5, {"a": [1, 2]}),
        },
        {
            "name": "a_page_of_another_epoch_rebuilds_from_a_snapshot",
            "prefix": "",
            "steps": [START, step(beat(8), fetch(5, "heartbeat")), step(page(5, 8, 8, [], epoch=F), resync("epoch"))],
            "state": state(5, {"a": [1, 2]}),
        },
        {
            "name": "history_compacted_past_the_replica_rebuilds_from_a_snapshot_and_says_so",
            "prefix": "",
            "steps": [
                START,
                step(published(changed(9, "a", 9)), fetch(5, "gap")),
                step(compacted(5, 9, 8), resync("compacted")),
                step(
                    load(9, [item("a", 9, 9), item("n", 3, 8)], cause="compacted"),
                    synced(9, first=False, resync=True, cause="compacted", changes=[["a", "set", 9], ["n", "set", 3]]),
                ),
            ],
            "state": state(9, {"a": [9, 9], "n": [3, 8]}),
        },
        {
            "name": "a_large_value_is_read_from_its_revision_page_never_from_the_current_value",
            "prefix": "",
            "steps": [
                START,
                step(published(changed(6, "t", index=0, count=2, omitted=True))),
                step(published(changed(6, "u", 1, index=1, count=2)), fetch(5, "value_omitted", limit=1)),
                step(
                    page(5, 6, 8, [changed(6, "t", BIG, count=2), changed(6, "u", 1, index=1, count=2)]),
                    update(6, [["t", "set", BIG], ["u", "set", 1]], "live"),
                ),
                step(published(changed(7, "t", 2)), update(7, [["t", "set", 2]])),
            ],
            "state": state(7, {"a": [1, 2], "t": [2, 7], "u": [1, 6]}),
        },
        {
            "name": "a_prefix_filters_the_replica_but_not_the_sequence",
            "prefix": "plant.",
            "steps": [
                step(
                    load(5, [item("plant.a", 1, 1), item("pump.b", 2, 2)]),
                    synced(5, first=True, resync=False, cause="start", changes=[]),
                ),
                step(published(changed(6, "pump.b", 3))),
                step(published(changed(7, "plant.z", 3)), update(7, [["plant.z", "set", 3]])),
                step(published(changed(8, "pump.table", omitted=True))),  # not ours: nothing to read
                step(published(changed(9, "plant.z", 4)), update(9, [["plant.z", "set", 4]])),
            ],
            "state": state(9, {"plant.a": [1, 1], "plant.z": [4, 9]}),
        },
        {
            "name": "a_filtered_page_advances_over_the_revisions_it_skips",
            "prefix": "plant.",
            "steps": [
                step(load(5, [item("plant.a", 1, 1)]), synced(5, first=True, resync=False, cause="start", changes=[])),
                step(beat(9), fetch(5, "heartbeat")),
                step(page(5, 9, 9, [changed(7, "plant.a", 7)]), update(7, [["plant.a", "set", 7]], "replay"), caught_up(9, 1, "heartbeat")),
                step(published(changed(10, "plant.a", 10)), update(10, [["plant.a", "set", 10]])),
            ],
            "state": state(10, {"plant.a": [10, 10]}),
        },
        {
            "name": "the_hub_back_replays_what_it_committed_meanwhile",
            "prefix": "",
            "steps": [
                START,
                step({"catch_up": "reconnect"}, fetch(5, "reconnect")),
                step(page(5, 5, 5, []), caught_up(5, 0, "reconnect")),
                step({"catch_up": "reconnect"}, fetch(5, "reconnect")),
                step(page(5, 6, 6, [changed(6, "a", 6)]), update(6, [["a", "set", 6]], "replay"), caught_up(6, 1, "reconnect")),
            ],
            "state": state(6, {"a": [6, 6]}),
        },
        {
            "name": "a_consumer_resumes_after_the_revision_it_last_handled",
            "prefix": "",
            "steps": [
                step(load(3, [item("a", 1, 2)], cause="resume"), synced(3, first=True, resync=False, cause="resume", changes=[])),
                step({"catch_up": "resume"}, fetch(3, "resume")),
                step(
                    page(3, 5, 5, [changed(4, "a", 4), changed(5, "b", 5)]),
                    update(4, [["a", "set", 4]], "replay"),
                    update(5, [["b", "set", 5]], "replay"),
                    caught_up(5, 2, "resume"),
                ),
            ],
            "state": state(5, {"a": [4, 4], "b": [5, 5]}),
        },
        {
            "name": "a_page_nobody_asked_for_is_ignored",
            "prefix": "",
            "steps": [START, step(page(5, 6, 6, [changed(6, "b", 6)]))],
            "state": state(5, {"a": [1, 2]}),
        },
    ]
