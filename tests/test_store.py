"""The SQLite store on real files: revisions, compare-and-set, txns, idempotency, history."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statehub.hub.errors import ConflictError, InvalidRequest, NotFound, StatehubError, StorageError
from statehub.hub.protocol import Op, Set, Txn, Unset
from statehub.hub.records import Applied, Entry
from statehub.hub.store import Store


def value_of(entry: Entry) -> object:
    return msgspec.msgpack.decode(entry.blob)


def set_(key: str, value: object, expect: int | None = None, request_id: str = "") -> Set:
    return Set(v=1, key=key, value=value, expect=expect, request_id=request_id, source="test", user="u")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "state.db")


def test_each_write_gets_the_next_revision(store: Store) -> None:
    results = store.commit([set_("a", 1), set_("b", 2), Unset(v=1, key="a")])
    assert [r.rev for r in results if isinstance(r, Applied)] == [1, 2, 3]
    assert store.rev == 3


def test_the_store_is_in_wal_mode_with_full_sync(store: Store, tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "state.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_revision_and_epoch_survive_reopening(tmp_path: Path) -> None:
    first = Store(tmp_path / "s.db")
    first.commit([set_("a", 1), set_("a", 2)])
    epoch = first.epoch
    first.close()
    again = Store(tmp_path / "s.db")
    assert (again.rev, again.epoch) == (2, epoch)
    assert again.commit_one(set_("a", 3)).rev == 3


def test_compare_and_set_accepts_the_current_revision_and_refuses_a_stale_one(store: Store) -> None:
    store.commit([set_("a", 1)])
    ok, stale = store.commit([set_("a", 2, expect=1), set_("a", 3, expect=1)])
    assert isinstance(ok, Applied)
    assert isinstance(stale, ConflictError)
    detail = stale.conflicts[0]
    assert (detail.key, detail.expected, detail.rev, detail.exists) == ("a", 1, 2, True)
    assert value_of(store.entry("a")) == 2
    assert "you expected revision 1, it is at revision 2" in stale.message


def test_expect_zero_means_must_not_exist(store: Store) -> None:
    first, second = store.commit([set_("a", 1, expect=0), set_("a", 2, expect=0)])
    assert isinstance(first, Applied)
    assert isinstance(second, ConflictError) and "you expected it to be absent" in second.message


def test_a_txn_applies_all_under_one_revision_or_nothing(store: Store) -> None:
    store.commit([set_("a", 1)])
    txn = Txn(v=1, ops=[Op(op="set", key="b", value=2), Op(op="set", key="a", value=9, expect=99)])
    with pytest.raises(ConflictError):
        store.commit_one(txn)
    with pytest.raises(NotFound):
        store.entry("b")
    good = Txn(v=1, ops=[Op(op="set", key="b", value=2), Op(op="unset", key="a", expect=1)])
    applied = store.commit_one(good)
    assert applied.rev == 2
    assert [(c.rev, c.index, c.count, c.key, c.op) for c in applied.changes] == [
        (2, 0, 2, "b", "set"),
        (2, 1, 2, "a", "unset"),
    ]


def test_unsetting_a_missing_key_is_not_found_and_uses_no_revision(store: Store) -> None:
    (refusal,) = store.commit([Unset(v=1, key="ghost")])
    assert isinstance(refusal, NotFound) and refusal.message == "cannot unset 'ghost': no such key"
    assert store.rev == 0


def test_a_repeated_request_id_is_applied_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    first = store.commit_one(set_("n", 1, request_id="abc"))
    same_batch = store.commit([set_("n", 2, request_id="x"), set_("n", 2, request_id="x")])
    store.close()
    reopened = Store(tmp_path / "s.db")
    again = reopened.commit_one(set_("n", 5, request_id="abc"))
    assert again == Applied(rev=first.rev, duplicate=True)
    assert isinstance(same_batch[0], Applied) and same_batch[1] == Applied(rev=same_batch[0].rev, duplicate=True)
    assert value_of(reopened.entry("n")) == 2
    assert reopened.rev == 2


def test_history_lists_versions_newest_first_with_who(store: Store) -> None:
    store.commit([set_("a", 1), set_("a", 2), Unset(v=1, key="a", source="cli")])
    versions = store.history("a", 10)
    assert [(v.rev, v.op) for v in versions] == [(3, "unset"), (2, "set"), (1, "set")]
    assert versions[2].source == "test" and versions[0].source == "cli"


def test_history_is_pruned_to_the_retention(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db", history_keep=10)
    store.commit([set_("a", i) for i in range(1005)])
    revs = [v.rev for v in store.history("a", 10_000)]
    assert min(revs) > 1000 - 10 and max(revs) == 1005


def test_created_revision_is_kept_across_updates(store: Store) -> None:
    store.commit([set_("x", 1), set_("y", 1), set_("x", 2)])
    entry = store.entry("x")
    assert (entry.created_rev, entry.rev) == (1, 3)


def test_list_by_prefix_is_sorted_and_exact(store: Store) -> None:
    store.commit([set_("plant.b", 1), set_("plant.a", 1), set_("plantx", 1), set_("other", 1)])
    assert [e.key for e in store.entries("plant.")] == ["plant.a", "plant.b"]
    assert [e.key for e in store.entries("plant")] == ["plant.a", "plant.b", "plantx"]
    assert len(list(store.entries())) == store.count() == 4


def test_a_failed_commit_applies_nothing_and_keeps_the_revision(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.commit([set_("a", 1)])
    store._conn.execute("PRAGMA query_only = ON")  # every write now fails inside SQLite
    with pytest.raises(StorageError, match="could not write its store"):
        store.commit([set_("a", 2), set_("b", 3)])
    store._conn.execute("PRAGMA query_only = OFF")
    assert store.rev == 1
    assert store.commit_one(set_("b", 3)).rev == 2


keys = st.sampled_from(["a", "b", "c.d", "c.e"])
ops = st.lists(
    st.tuples(st.sampled_from(["set", "unset"]), keys, st.integers(0, 9), st.sampled_from([None, 0, 1, 2, 3])),
    min_size=1,
    max_size=30,
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(script=ops)
def test_the_store_behaves_like_a_dict_with_revisions(tmp_path_factory: pytest.TempPathFactory, script: list) -> None:
    """Against a plain-dict model: same values, same revisions, same refusals."""
    store = Store(tmp_path_factory.mktemp("model") / "s.db")
    model: dict[str, tuple[int, int]] = {}  # key -> (value, rev)
    rev = 0
    for op, key, value, expect in script:
        write = set_(key, value, expect) if op == "set" else Unset(v=1, key=key, expect=expect)
        (result,) = store.commit([write])
        current = model.get(key, (None, 0))[1]
        if (expect is not None and expect != current) or (op == "unset" and key not in model):
            assert isinstance(result, StatehubError)
            continue
        rev += 1
        assert isinstance(result, Applied) and result.rev == rev
        if op == "set":
            model[key] = (value, rev)
        else:
            del model[key]
    assert {e.key: (value_of(e), e.rev) for e in store.entries()} == model
    store.close()


def test_the_state_at_a_past_revision_is_rebuilt_from_history(store: Store) -> None:
    store.commit([set_("a", 1), set_("b", 1), set_("a", 2), Unset(v=1, key="b"), set_("c", 3)])
    at = {e.key: (value_of(e), e.rev) for e in store.state_at(2)}
    assert at == {"a": (1, 1), "b": (1, 2)}
    assert [e.key for e in store.state_at(0)] == []
    assert {e.key: value_of(e) for e in store.state_at(5)} == {"a": 2, "c": 3}


def test_history_carries_the_value_each_change_replaced(store: Store) -> None:
    store.commit([set_("a", 1), set_("a", 2), Unset(v=1, key="a")])
    versions = store.history("a", 10)
    assert [(v.rev, v.prev_rev) for v in versions] == [(3, 2), (2, 1), (1, 0)]
    assert versions[0].prev_blob is not None and msgspec.msgpack.decode(versions[0].prev_blob) == 2


def test_a_revision_older_than_the_kept_history_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db", history_keep=10)
    store.commit([set_("a", i) for i in range(1005)])
    with pytest.raises(InvalidRequest, match="history before revision 996 was pruned"):
        store.state_at(100)
    assert {e.key: value_of(e) for e in store.state_at(1000)} == {"a": 999}
    with pytest.raises(InvalidRequest, match="does not exist"):
        store.state_at(2000)
