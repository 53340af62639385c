"""A real hub process, real sockets, real SQLite: the behaviours users rely on."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import msgspec
import pytest
import zmq

from statehub.client import Client
from statehub.hub.errors import ConflictError, HubUnavailable, NotFound
from statehub.hub.mirror import read_mirror
from statehub.hub.paths import Layout, read_hub_info
from statehub.hub.protocol import Get, Op, Set, Status, reply_decoder
from statehub.subscription import CaughtUp, Event, HubDown, Subscription, Synced, Update
from statehub.testing import HubProcess, mirror_rev, wait_until

from .conftest import run_cli


def collect(subscription: Subscription, until: object, timeout: float = 20.0) -> list[Event]:
    """Events from ``subscription`` until ``until(events)`` is true; bounded in time."""
    events: list[Event] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(events):  # type: ignore[operator]
        event = subscription.next_event(0.1)
        if event is not None:
            events.append(event)
    return events


def assert_no_missed_revision(events: list[Event]) -> None:
    """After each (re)sync at S, updates continue at S+1, S+2, ... with nothing skipped."""
    expected = None
    for event in events:
        if isinstance(event, Synced):
            expected = event.rev + 1
        elif isinstance(event, Update):
            assert event.rev == expected, f"revision {event.rev} after {expected - 1}"
            expected += 1


def test_round_trip_of_every_request(hub: HubProcess) -> None:
    """Set, get, list, history and status through the client against a real hub."""
    with hub.client(source="test", user="ana") as client:
        assert client.set("plant.rate", 30).rev == 1
        assert client.set("plant.name", "Maxson").rev == 2
        reading = client.get("plant.rate")
        assert (reading.value, reading.item.rev, reading.item.source, reading.item.user) == (30, 1, "test", "ana")
        assert not reading.origin.from_mirror
        assert [i.key for i in client.list("plant.").items] == ["plant.name", "plant.rate"]
        client.unset("plant.rate")
        with pytest.raises(NotFound):
            client.get("plant.rate")
        assert [(v.rev, v.op) for v in client.history("plant.rate")] == [(3, "unset"), (1, "set")]
        status = client.status()
        assert (status.rev, status.keys, status.pid) == (3, 1, hub.pid)


def test_compare_and_set_is_refused_with_the_current_value_then_accepted(hub: HubProcess) -> None:
    with hub.client() as client:
        client.set("plant.rate", 30)
        client.set("plant.rate", 31)
        with pytest.raises(ConflictError) as caught:
            client.set("plant.rate", 40, expect=1)
        detail = caught.value.conflicts[0]
        assert (detail.rev, detail.value) == (2, 31)
        assert client.set("plant.rate", 40, expect=2).rev == 3
        with pytest.raises(ConflictError, match="you expected it to be absent"):
            client.set("plant.rate", 1, expect=0)


def test_no_subscriber_ever_sees_half_a_txn(hub: HubProcess) -> None:
    """Each txn of three keys arrives as one Update holding all three."""
    with Subscription(hub.data_dir, timeout=2.0) as subscription, hub.client() as client:
        assert isinstance(subscription.next_event(5), Synced)
        for i in range(100):
            client.txn([Op(op="set", key=f"t.{name}", value=i) for name in ("a", "b", "c")])
        events = collect(subscription, lambda ev: sum(isinstance(e, Update) for e in ev) >= 100)
    updates = [e for e in events if isinstance(e, Update)]
    assert len(updates) == 100
    assert all(sorted(c.key for c in u.changes) == ["t.a", "t.b", "t.c"] for u in updates)
    assert all(len({c.value for c in u.changes}) == 1 for u in updates)
    assert subscription.resyncs == 0


def test_watch_prints_every_change_in_order(hub: HubProcess) -> None:
    """`statehub watch --json` shows each change once, in revision order."""
    watch = subprocess.Popen(
        [sys.executable, "-m", "statehub.cli", "--data-dir", str(hub.data_dir), "watch", "w.", "--json", "--count", "40"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watch.stdout is not None
    assert '"event": "synced"' in watch.stdout.readline()  # the watcher is live before we write
    with hub.client() as client:
        for i in range(40):
            client.set(f"w.k{i % 3}", i)
            client.set("other.noise", i)  # outside the prefix: not shown
    out, err = watch.communicate(timeout=20)
    changes = [msgspec.json.decode(line) for line in out.splitlines()]
    assert [c["value"] for c in changes] == list(range(40)), err
    assert all(c["key"].startswith("w.") for c in changes)
    assert [c["rev"] for c in changes] == sorted(c["rev"] for c in changes)


def test_late_joiners_during_a_write_stream_all_end_with_the_hub_state(hub: HubProcess) -> None:
    """50 subscribers join while 2,000 writes stream in; each ends equal, none misses a revision."""
    # 2,000 writes (~2 s at ~1 ms an acknowledgement) outlast the joins, spread over the first second;
    # every subscriber handles every change in this one process, so each write costs 50 of those.
    writer = subprocess.Popen([sys.executable, "-m", "tests.workers", "write", str(hub.data_dir), "2000"])
    final_rev: list[int] = []
    results: dict[int, tuple[int, dict[str, object], list[Event]]] = {}

    def join(n: int) -> None:
        time.sleep(n * 0.02)  # staggered joins across the stream
        with Subscription(hub.data_dir, timeout=5.0) as subscription:
            events: list[Event] = []
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and not (final_rev and subscription.rev >= final_rev[0]):
                event = subscription.next_event(0.05)
                if event is not None:
                    events.append(event)
            items = {k: i.value for k, i in subscription.items.items()}
            results[n] = (subscription.rev, items, events)

    threads = [threading.Thread(target=join, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    assert writer.wait(120) == 0
    with hub.client() as client:
        final = client.list()
    final_rev.append(final.origin.rev or 0)
    for thread in threads:
        thread.join(100)
    assert len(results) == 50
    expected = {i.key: i.value for i in final.items}
    for rev, items, events in results.values():
        assert rev == final.origin.rev
        assert items == expected
        assert_no_missed_revision(events)


def test_a_killed_hub_leaves_reads_working_from_the_mirror(hub: HubProcess) -> None:
    """After SIGKILL, `statehub get` answers from the mirror, naming its revision, with a warning."""
    with hub.client() as client:
        for i in range(10):
            client.set("plant.rate", i)
    mirror = Layout(hub.data_dir).mirror
    assert wait_until(lambda: mirror.exists() and read_mirror(mirror).rev == 10)
    hub.kill()
    result = run_cli(hub.data_dir, "get", "plant.rate")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "9"
    assert "showing the mirror at revision 10" in result.stderr
    listed = run_cli(hub.data_dir, "list", "--json")
    assert msgspec.json.decode(listed.stdout)["from_mirror"] is True
    refused = run_cli(hub.data_dir, "set", "plant.rate", "1")
    assert refused.returncode == 5
    assert "nothing was written" in refused.stderr and "statehub serve" in refused.stderr


def test_a_killed_hub_is_known_not_running_from_the_pid_in_its_hub_json(hub: HubProcess) -> None:
    """After SIGKILL the client says "not running" from the dead pid hub.json names, not from a timeout."""
    pid = hub.pid
    hub.kill()
    with Client(hub.data_dir, timeout=30, fallback=False) as client, pytest.raises(HubUnavailable) as down:
        client.status()
    assert down.value.message == f"the hub is not running ({hub.data_dir / 'hub.json'} names pid {pid}, which has exited)"
    assert down.value.not_running and down.value.hint == "start it with `statehub serve`"


def test_a_restarted_hub_is_found_again_and_subscribers_replay_what_they_missed(hub: HubProcess) -> None:
    """After a hub restart the subscriber catches up from history: every revision, no snapshot resync."""
    with hub.client() as client, Subscription(hub.data_dir, timeout=1.0) as subscription:
        client.set("a", 1)
        assert isinstance(subscription.next_event(5), Synced)
        hub.kill()
        events = collect(subscription, lambda ev: any(isinstance(e, HubDown) for e in ev), timeout=10)
        assert any(isinstance(e, HubDown) for e in events)
        hub.start()
        client.set("a", 2)  # the same client object: it reconnects by itself
        client.set("a", 3)
        events = collect(subscription, lambda ev: any(isinstance(e, CaughtUp) for e in ev) and subscription.rev >= 3)
    updates = [e for e in events if isinstance(e, Update)]
    assert [(u.rev, u.changes[0].value) for u in updates] == [(2, 2), (3, 3)]
    assert any(isinstance(e, CaughtUp) for e in events) and not any(isinstance(e, Synced) for e in events)
    assert subscription.items["a"].value == 3 and subscription.resyncs == 0


def test_the_revision_survives_a_crash_and_is_never_reused(hub: HubProcess) -> None:
    with hub.client() as client:
        revs = [client.set("k", i).rev for i in range(5)]
    hub.kill()
    hub.start()
    with hub.client() as client:
        assert client.status().rev == revs[-1]
        assert client.set("k", 99).rev == revs[-1] + 1


def test_sigterm_finishes_leaves_a_whole_mirror_and_exits_zero(hub: HubProcess) -> None:
    writer = subprocess.Popen([sys.executable, "-m", "tests.workers", "write", str(hub.data_dir), "100000"])
    with hub.client() as client:
        assert wait_until(lambda: client.status().rev > 200)
    assert hub.terminate() == 0
    writer.kill()
    writer.wait()
    state = read_mirror(Layout(hub.data_dir).mirror)
    assert read_hub_info(Layout(hub.data_dir)) is None  # a clean exit removes hub.json
    hub.start()
    with hub.client() as client:
        assert client.status().rev == state.rev
        assert {i.key: i.value for i in client.list().items} == {k: i.value for k, i in state.items.items()}


def test_a_second_hub_on_the_same_data_dir_refuses_to_start(hub: HubProcess) -> None:
    second = HubProcess(hub.data_dir)
    with pytest.raises(RuntimeError) as caught:
        second.start(timeout=10)
    assert f"another hub (pid {hub.pid}) is already serving" in str(caught.value)
    with hub.client() as client:
        assert client.status().pid == hub.pid


def test_concurrent_writers_share_transactions(hub: HubProcess) -> None:
    """Group commit: 8 concurrent writers need fewer fsynced transactions than writes."""
    writers = [
        subprocess.Popen([sys.executable, "-m", "tests.workers", "write", str(hub.data_dir), "300", f"w{n}."])
        for n in range(8)
    ]
    assert [w.wait(120) for w in writers] == [0] * 8
    with hub.client() as client:
        status = client.status()
        assert status.rev == status.writes == 2400
        assert status.commits < status.writes
        assert len(client.list().items) == 8 * 20


def raw_request(endpoint: str, frames: list[bytes], timeout: float = 2.0) -> bytes | None:
    with zmq.Context() as ctx, ctx.socket(zmq.DEALER) as sock:
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        sock.send_multipart(frames)
        if not sock.poll(timeout * 1000):
            return None
        return sock.recv_multipart()[-1]


@pytest.mark.parametrize(
    ("frames", "error"),
    [
        ([b"", b"\xc1garbage"], "undecodable request"),
        ([b"", msgspec.msgpack.encode({"type": "get", "v": 9, "key": "a"})], "unsupported protocol version 9"),
        ([b"", msgspec.msgpack.encode({"type": "launch", "v": 1})], "Invalid value 'launch'"),
        ([b"", msgspec.msgpack.encode({"type": "get", "v": 1, "key": 5})], "Expected `str`, got `int`"),
        ([b"", msgspec.msgpack.encode(Set(v=1, key="a..b", value=1))], "empty segment"),
        ([b"", b"\x00" * (5 * 1024 * 1024)], "exceeds the limit of 4194304 bytes"),
    ],
)
def test_bad_requests_get_a_clear_error_and_the_hub_keeps_serving(hub: HubProcess, frames: list[bytes], error: str) -> None:
    endpoint = read_hub_info(Layout(hub.data_dir)).rpc
    reply = raw_request(endpoint, frames)
    assert reply is not None
    assert error in reply_decoder().decode(reply).message
    assert raw_request(endpoint, [b"", msgspec.msgpack.encode(Status(v=1))]) is not None


def test_garbage_that_is_not_a_request_is_dropped_and_the_hub_keeps_serving(hub: HubProcess) -> None:
    endpoint = read_hub_info(Layout(hub.data_dir)).rpc
    assert raw_request(endpoint, [b"no delimiter"], timeout=0.3) is None
    assert raw_request(endpoint, [b""] * 20, timeout=0.3) is None
    reply = raw_request(endpoint, [b"", msgspec.msgpack.encode(Get(v=1, key="missing"))])
    assert reply is not None and reply_decoder().decode(reply).code == "not_found"


def test_a_retried_write_with_the_same_request_id_is_applied_once(hub: HubProcess) -> None:
    endpoint = read_hub_info(Layout(hub.data_dir)).rpc
    body = msgspec.msgpack.encode(Set(v=1, key="n", value=1, request_id="retry-1"))
    first = reply_decoder().decode(raw_request(endpoint, [b"", body]))
    second = reply_decoder().decode(raw_request(endpoint, [b"", body]))
    assert (first.rev, first.duplicate) == (1, False)
    assert (second.rev, second.duplicate) == (1, True)
    with hub.client() as client:
        assert client.status().rev == 1


def test_the_mirror_follows_the_store_under_load(hub: HubProcess) -> None:
    """Coalesced rewrites: the mirror reaches the final revision shortly after the last write."""
    with hub.client() as client:
        for i in range(500):
            client.set(f"m.k{i % 7}", i)
        final = client.status().rev
    mirror = Layout(hub.data_dir).mirror
    assert wait_until(lambda: mirror_rev(hub.data_dir) == final, timeout=5)
    assert read_mirror(mirror).items["m.k2"].value == 499 - (499 - 2) % 7


def test_the_data_dir_is_private(hub: HubProcess) -> None:
    if sys.platform == "win32":
        pytest.skip("POSIX permissions")
    assert Path(hub.data_dir).stat().st_mode & 0o077 == 0


def test_a_large_value_travels_without_its_value_and_subscribers_fetch_it(hub: HubProcess) -> None:
    """A value over the inline limit is published with value_omitted; the Subscription fetches it, no resync."""
    big = {"rows": ["x" * 100] * 100}  # ~10 KB, over MAX_INLINE_VALUE_BYTES
    with hub.client() as client, client.subscribe("big.") as subscription:
        first = subscription.next_event(5)
        assert isinstance(first, Synced)
        context = zmq.Context()
        raw = context.socket(zmq.SUB)
        raw.setsockopt(zmq.LINGER, 0)
        raw.setsockopt(zmq.SUBSCRIBE, b"big.")
        info = read_hub_info(Layout(hub.data_dir))
        assert info is not None
        raw.connect(info.events)
        try:
            assert wait_until(lambda: raw.poll(0) != 0, 10), "no welcome on the raw subscriber"
            raw.recv_multipart()
            committed = client.set("big.table", big)
            assert raw.poll(5000), "the change was not published"
            published = msgspec.msgpack.decode(raw.recv_multipart()[1])
        finally:
            context.destroy(linger=0)
        update = subscription.next_event(5)
        assert isinstance(update, Update), update
        [change] = update.changes
        assert (change.value, change.value_omitted, change.rev) == (big, False, committed.rev)
        assert subscription.items["big.table"].value == big and subscription.resyncs == 0
    assert published["value_omitted"] is True and "value" not in published
