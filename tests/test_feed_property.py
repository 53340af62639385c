"""A replica is, after every revision it applies, exactly the hub's state at that revision: a property, on a real hub.

A writer streams sets, unsets and multi-key txns with values under and over the
stream's 4 KiB inline limit; subscribers join at random moments (some restart
midway, resuming after the last revision they handled).  Each keeps its own
replica the documented way (``Synced.items``, then each ``Update``'s changes)
and records it after every event; afterwards every record is compared with the
hub's state read at that revision, every revision under the prefix must have
been seen exactly once, and every final replica must equal the hub's.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from statehub.client import Client
from statehub.hub.protocol import Op
from statehub.replica import CaughtUp, Synced, Update
from statehub.subscription import HubDown
from statehub.testing import HubProcess, wait_until

WRITES = 240
SUBSCRIBERS = 6
KEYS = [f"prop.k{n}" for n in range(8)]
SEED = 14


def big(n: int) -> dict[str, Any]:
    return {"n": n, "blob": "x" * 5000}  # over the inline limit: published without its value


def random_write(client: Client, rng: random.Random, n: int, present: set[str]) -> None:
    """One write of a random kind; ``present`` tracks the keys that exist."""
    kind = rng.choice(["small", "small", "big", "unset", "txn", "txn", "other"])
    if kind == "other":
        client.set("other.noise", n)  # outside the prefix: must not show
        return
    if kind == "unset" and present:
        key = rng.choice(sorted(present))
        client.unset(key)
        present.discard(key)
        return
    if kind in ("small", "big", "unset"):
        key = rng.choice(KEYS)
        client.set(key, big(n) if kind == "big" else n)
        present.add(key)
        return
    ops = []
    for key in rng.sample(KEYS, rng.randint(2, 4)):
        if key in present and rng.random() < 0.3:
            ops.append(Op(op="unset", key=key))
            present.discard(key)
        else:
            ops.append(Op(op="set", key=key, value=big(n) if rng.random() < 0.4 else n))
            present.add(key)
    client.txn(ops)


@dataclass
class Record:
    """What one subscriber saw: its replica after every event, by revision, and how it got there."""

    prefix: str
    seen: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (rev, replica) after each event
    updates: list[int] = field(default_factory=list)
    first_rev: int = -1
    resyncs: int = 0
    restarts: int = 0
    failure: str = ""


def follow(hub: HubProcess, record: Record, progress: list[int], join_at: int, restart_at: int | None, done: list[int]) -> None:
    """Join once the writer is at ``join_at``; with ``restart_at``, close there and resume after it."""
    if not wait_until(lambda: progress[0] >= join_at, 60):
        record.failure = "the writer never got there"
        return
    since: tuple[str, int] | None = None
    deadline = time.monotonic() + 90
    with Client(hub.data_dir, timeout=5.0) as client:
        while time.monotonic() < deadline:
            with client.subscribe(record.prefix, since=since) as subscription:
                stop_at = restart_at if record.restarts == 0 else None
                ended = consume(subscription, record, stop_at, done, deadline)
                if ended == "restart":
                    since = (subscription.epoch, record.seen[-1][0])
                    record.restarts += 1
                    continue  # leaving the block closes it, as a consumer's restart does
            if ended == "done":
                return
    record.failure = record.failure or "did not reach the final revision in time"


def consume(subscription: Any, record: Record, stop_at: int | None, done: list[int], deadline: float) -> str:
    """Handle events until the final revision ("done"), ``stop_at`` ("restart") or the deadline."""
    replica = dict(record.seen[-1][1]) if record.seen else {}
    while time.monotonic() < deadline:
        event = subscription.next_event(0.05)
        if isinstance(event, Synced):
            replica = {key: item.value for key, item in event.items.items()}
            record.first_rev = event.rev if record.first_rev < 0 else record.first_rev
            record.resyncs += event.resync
        elif isinstance(event, Update):
            for change in event.changes:
                if change.op == "set":
                    replica[change.key] = change.value
                else:
                    replica.pop(change.key, None)
            record.updates.append(event.rev)
        elif isinstance(event, HubDown):
            record.failure = f"hub down: {event.reason}"
        elif isinstance(event, CaughtUp) and record.seen and event.rev < record.seen[-1][0]:
            record.failure = "caught up behind what it applied"
        if isinstance(event, (Synced, Update)):
            record.seen.append((event.rev, dict(replica)))
            if stop_at is not None and event.rev >= stop_at:
                return "restart"
        if event is None and done and subscription.rev >= done[0]:
            return "done"
    return "timeout"


def revisions_under(client: Client, prefix: str) -> list[int]:
    """Every revision that changed a key under ``prefix``, from the hub's feed."""
    revs: list[int] = []
    after = 0
    for _ in range(1000):
        page = client.changes(after, prefix=prefix)
        revs.extend(sorted({change.rev for change in page.changes}))
        after = page.last
        if not page.more:
            break
    return revs


def test_every_replica_equals_the_hub_at_every_revision_it_applied(hub: HubProcess) -> None:
    """Random joins and restarts under sets, unsets and txns with large values: exact replicas, no skipped revision."""
    rng = random.Random(SEED)
    progress, done = [0], []
    records = [Record("" if n == 0 else "prop.") for n in range(SUBSCRIBERS)]
    threads = [
        threading.Thread(
            target=follow,
            args=(hub, records[n], progress, rng.randint(0, WRITES * 2 // 3), rng.randint(WRITES // 2, WRITES) if n % 2 else None, done),
        )
        for n in range(SUBSCRIBERS)
    ]
    for thread in threads:
        thread.start()
    with hub.client() as client:
        present: set[str] = set()
        for n in range(WRITES):
            random_write(client, rng, n, present)
            progress[0] = n + 1  # one revision per write: none of them is a no-op
        final = client.status().rev
        assert final == WRITES
        progress[0] = final
        done.append(final)
        for thread in threads:
            thread.join(100)
        expected = {
            prefix: revisions_under(client, prefix) for prefix in {record.prefix for record in records}
        }
        states: dict[tuple[str, int], dict[str, Any]] = {}

        def state_at(prefix: str, rev: int) -> dict[str, Any]:
            if (prefix, rev) not in states:
                states[prefix, rev] = {item.key: item.value for item in client.list(prefix, at_rev=rev).items}
            return states[prefix, rev]

        for n, record in enumerate(records):
            assert not record.failure, f"subscriber {n}: {record.failure}"
            assert record.resyncs == 0, f"subscriber {n} resynced from a snapshot"
            for rev, replica in record.seen:
                assert replica == state_at(record.prefix, rev), f"subscriber {n} at revision {rev}"
            assert record.updates == [rev for rev in expected[record.prefix] if rev > record.first_rev], f"subscriber {n}"
            assert record.seen[-1][1] == state_at(record.prefix, final), f"subscriber {n} final"
    assert sum(record.restarts for record in records) >= 1
    assert any(isinstance(v, dict) for record in records for _, replica in record.seen for v in replica.values())
