"""The Client's own surface for front ends: subscribe, its events, with_source, is_hub_announced."""

from __future__ import annotations

import queue
from pathlib import Path

import pytest

from statehub import Client, Event, InvalidRequest, Subscription, SubscriptionThread, Synced, Update
from statehub.testing import HubProcess, wait_until


def next_of(events: queue.Queue[Event], kind: type, timeout: float = 10.0) -> Event:
    """The next event of ``kind`` from a callback's queue (others are skipped); fails after ``timeout``."""
    for _ in range(100):
        event = events.get(timeout=timeout)
        if isinstance(event, kind):
            return event
    raise AssertionError(f"no {kind.__name__} among 100 events")


def test_subscribe_without_a_callback_is_a_subscription_to_iterate(hub: HubProcess) -> None:
    """The first event is a Synced carrying the replica; the subscription keeps its own."""
    with hub.client() as client:
        client.set("plant.rate", 30)
        client.set("other.key", 1)
        with client.subscribe("plant.") as subscription:
            assert isinstance(subscription, Subscription)
            first = subscription.next_event(timeout=10)
            assert isinstance(first, Synced) and first.first
            assert {key: item.value for key, item in first.items.items()} == {"plant.rate": 30}
            assert first.items == subscription.items and first.items is not subscription.items


def test_subscribe_with_a_callback_runs_a_thread_and_each_event_is_whole(hub: HubProcess) -> None:
    """The callback gets Synced with the items, then Updates; the items it got stay as they were."""
    events: queue.Queue[Event] = queue.Queue()
    with hub.client() as client:
        client.set("plant.rate", 30)
        thread = client.subscribe("plant.", callback=events.put)
        try:
            assert isinstance(thread, SubscriptionThread) and thread.is_alive()
            synced = next_of(events, Synced)
            assert isinstance(synced, Synced)
            client.set("plant.rate", 31)
            update = next_of(events, Update)
            assert isinstance(update, Update) and [c.value for c in update.changes] == [31]
            assert synced.items["plant.rate"].value == 30  # a copy: the replica moved on, this did not
        finally:
            thread.stop()
        assert not thread.is_alive()


def test_subscribe_refuses_a_bad_prefix_before_starting_anything(hub: HubProcess) -> None:
    """A malformed prefix is bad input at once, not a subscription that never matches."""
    with hub.client() as client, pytest.raises(InvalidRequest, match="empty segment"):
        client.subscribe("plant..")


def test_with_source_writes_to_the_same_hub_as_another_source(hub: HubProcess) -> None:
    """A sibling client keeps the data dir and timeout, and its writes carry the new source."""
    with hub.client(source="gui", timeout=1.5) as client, client.with_source("rollback") as sibling:
        assert (sibling.data_dir, sibling.timeout, sibling.source) == (client.data_dir, 1.5, "rollback")
        sibling.set("plant.rate", 1)
        assert client.history("plant.rate", 1)[0].source == "rollback"


def test_is_hub_announced_follows_hub_json_and_its_process(tmp_path: Path) -> None:
    """True while a hub runs; False after it is killed (hub.json stays, its process is gone); True again
    once a new hub announces itself."""
    hub = HubProcess(tmp_path / "data")
    with Client(tmp_path / "data") as client:
        assert not client.is_hub_announced()
        with hub:
            assert client.is_hub_announced()
            hub.kill()
            assert (tmp_path / "data" / "hub.json").exists()
            assert not client.is_hub_announced()
            hub.start()
            assert wait_until(client.is_hub_announced, 10)


def test_a_replica_keeps_the_secret_flag_of_a_published_change() -> None:
    """apply_change carries `secret`, so a front end masks a secret that arrived on the stream."""
    from statehub import SECRET_PLACEHOLDER, Changed, Item, apply_change

    items: dict[str, Item] = {}
    change = Changed(epoch="e", rev=3, index=0, count=1, key="eds.password", op="set", time=1.0, value=SECRET_PLACEHOLDER, secret=True)
    apply_change(items, change)
    assert items["eds.password"].secret is True and items["eds.password"].value == SECRET_PLACEHOLDER
