"""The change feed against a real hub: pages of whole revisions after R, compaction, reads at a past revision."""

from __future__ import annotations

from pathlib import Path

import pytest

from statehub.client import Client
from statehub.hub.errors import InvalidRequest, NotFound
from statehub.hub.protocol import MAX_INLINE_VALUE_BYTES, SECRET_PLACEHOLDER, Op
from statehub.testing import HubProcess

BIG = {"rows": ["z" * 100] * 100}  # about 10 KB: over the inline limit of the stream


def fill(client: Client) -> None:
    """Revisions 1..6: a set, a txn with a large value, a replace, an unset, a secret, a set elsewhere."""
    client.set("plant.rate", 30)  # 1
    client.txn([Op(op="set", key="plant.name", value="Maxson"), Op(op="set", key="plant.table", value=BIG)])  # 2
    client.set("plant.rate", 31)  # 3
    client.unset("plant.name")  # 4
    client.set_secret("plant.password", "hunter2")  # 5
    client.set("pump.speed", 1450)  # 6


def test_a_page_holds_every_change_after_a_revision_with_values_as_of_their_revision(hub: HubProcess) -> None:
    """Changes after R come in revision order, with prev_rev, large values whole and secrets as the placeholder."""
    with hub.client() as client:
        fill(client)
        client.set("plant.table", {"rows": []})  # 7: the large value moves on; page 2 still shows the old one
        page = client.changes(0)
    assert (page.after, page.last, page.head, page.oldest, page.more, page.compacted) == (0, 7, 7, 1, False, False)
    summary = [(c.rev, c.index, c.count, c.key, c.op, c.prev_rev) for c in page.changes]
    assert summary == [
        (1, 0, 1, "plant.rate", "set", 0),
        (2, 0, 2, "plant.name", "set", 0),
        (2, 1, 2, "plant.table", "set", 0),
        (3, 0, 1, "plant.rate", "set", 1),
        (4, 0, 1, "plant.name", "unset", 2),
        (5, 0, 1, "plant.password", "set", 0),
        (6, 0, 1, "pump.speed", "set", 0),
        (7, 0, 1, "plant.table", "set", 2),
    ]
    by_rev = {(c.rev, c.key): c for c in page.changes}
    assert by_rev[2, "plant.table"].value == BIG and not by_rev[2, "plant.table"].value_omitted
    assert by_rev[5, "plant.password"].value == SECRET_PLACEHOLDER and by_rev[5, "plant.password"].secret
    assert "hunter2" not in repr(page)
    assert all(c.epoch == page.epoch for c in page.changes)


def test_pages_are_bounded_but_never_split_a_revision(hub: HubProcess) -> None:
    """A limit of 2 changes stops before a revision that would exceed it; the first revision always comes whole."""
    with hub.client() as client:
        fill(client)
        first = client.changes(0, limit=2)
        assert [(c.rev, c.key) for c in first.changes] == [(1, "plant.rate")]
        assert (first.last, first.more) == (1, True)
        txn_alone = client.changes(1, limit=1, max_bytes=10)  # revision 2 alone exceeds both limits
        assert [c.rev for c in txn_alone.changes] == [2, 2] and txn_alone.last == 2
        by_bytes = client.changes(0, max_bytes=MAX_INLINE_VALUE_BYTES)  # the large value does not fit after rev 1
        assert by_bytes.last == 1 and by_bytes.more
        pages, after = [], 0
        for _ in range(10):
            page = client.changes(after, limit=1)
            pages.append([c.rev for c in page.changes])
            after = page.last
            if not page.more:
                break
    assert pages == [[1], [2, 2], [3], [4], [5], [6]]


def test_a_prefix_filters_changes_but_last_advances_over_the_rest(hub: HubProcess) -> None:
    """With a prefix only its keys come, the txn's count stays whole, and last reaches the head."""
    with hub.client() as client:
        fill(client)
        for i in range(5):
            client.set("other.noise", i)  # 7..11
        page = client.changes(0, prefix="plant.t")
        assert [(c.rev, c.key, c.index, c.count) for c in page.changes] == [(2, "plant.table", 1, 2)]
        assert (page.last, page.head, page.more) == (11, 11, False)
        nothing = client.changes(6, prefix="pump.")
        assert (nothing.changes, nothing.last, nothing.more) == ([], 11, False)


def test_a_reader_behind_the_kept_history_is_told_so_with_the_oldest_revision(data_dir: Path) -> None:
    """Once history is pruned past R, the page after R is empty and compacted, naming the oldest kept revision."""
    with HubProcess(data_dir, args=["--history-keep", "10"]) as hub, hub.client() as client:
        for n in range(1001):  # the hub prunes when the revision crosses a thousand: keeping 991..1000
            client.set("k.fast", n)
        page = client.changes(5)
        assert page.compacted and page.changes == [] and (page.oldest, page.head, page.last) == (991, 1001, 5)
        resumed = client.changes(page.oldest - 1)
        assert not resumed.compacted and resumed.changes[0].rev == 991 and resumed.last == 1001
        with pytest.raises(InvalidRequest, match="history before revision 991 was pruned"):
            client.get("k.fast", at_rev=5)


def test_reading_ahead_of_the_store_or_out_of_bounds_is_refused_clearly(hub: HubProcess) -> None:
    """A revision after the head, a negative one or a limit out of range gets `invalid` naming the problem."""
    with hub.client() as client:
        client.set("a", 1)
        with pytest.raises(InvalidRequest, match="revision 9 is ahead of this store \\(at revision 1\\)"):
            client.changes(9)
        with pytest.raises(InvalidRequest, match="a revision is 0 or more"):
            client.changes(-1)
        with pytest.raises(InvalidRequest, match="page limit 0 is outside 1..10000"):
            client.changes(0, limit=0)
        with pytest.raises(InvalidRequest, match="outside 1..16777216"):
            client.changes(0, max_bytes=0)


def test_get_and_list_at_a_past_revision_read_history(hub: HubProcess) -> None:
    """`get --rev`/`list --rev` give the state right after R, with who wrote it; a key not yet created is not found."""
    with hub.client(source="test", user="ana") as client:
        fill(client)
        old = client.get("plant.rate", at_rev=2)
        assert (old.value, old.item.rev, old.item.source, old.item.user) == (30, 1, "test", "ana")
        assert client.get("plant.rate", at_rev=6).value == 31
        assert client.get("plant.name", at_rev=3).value == "Maxson"
        with pytest.raises(NotFound, match="no key 'plant.name' at revision 4"):
            client.get("plant.name", at_rev=4)
        with pytest.raises(NotFound):
            client.get("pump.speed", at_rev=5)
        listing = client.list("plant.", at_rev=2)
        assert {i.key: i.value for i in listing.items} == {"plant.rate": 30, "plant.name": "Maxson", "plant.table": BIG}
        assert listing.origin.rev == 2 and all(i.source == "test" for i in listing.items)
        with pytest.raises(InvalidRequest, match="revision 99 does not exist"):
            client.get("plant.rate", at_rev=99)
