"""The plaintext mirror: format, parsing, atomic replacement."""

from __future__ import annotations

import json
import os
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from statehub.hub.mirror import MirrorError, parse, read_mirror, render
from statehub.hub.mirror_writer import write_mirror
from statehub.hub.protocol import Set
from statehub.hub.records import Entry
from statehub.hub.store import Store

from .conftest import VECTORS
from .test_protocol import json_values


def test_the_mirror_vector_parses_to_its_meaning() -> None:
    state = parse((VECTORS / "mirror.txt").read_text())
    meaning = json.loads((VECTORS / "mirror.json").read_text())
    assert (state.epoch, state.rev, state.written) == (meaning["epoch"], meaning["rev"], meaning["written"])
    assert [json.loads(msgspec.json.encode(i)) for i in state.items.values()] == meaning["items"]


names = st.text(st.characters(exclude_categories=["Cs", "Cc"]), max_size=12)


@given(value=json_values, source=names, user=names)
def test_any_value_and_name_round_trip_through_the_mirror(value: object, source: str, user: str) -> None:
    blob = msgspec.msgpack.encode(value)
    text = render("e", 7, [Entry("k.v", blob, 7, 2, 1795000000.5, source, user)], 1795000001.0)
    item = parse(text.decode()).items["k.v"]
    assert (item.value, item.rev, item.created_rev, item.source, item.user) == (value, 7, 2, source, user)


def test_a_truncated_mirror_is_refused_not_half_read() -> None:
    text = (VECTORS / "mirror.txt").read_text()
    cut = "\n".join(text.splitlines()[:-1])
    with pytest.raises(MirrorError, match="says 6 keys but holds 5"):
        parse(cut)


def test_a_missing_mirror_says_the_hub_never_ran(tmp_path: Path) -> None:
    with pytest.raises(MirrorError, match="never run"):
        read_mirror(tmp_path / "state.txt")


def test_writing_the_mirror_leaves_no_temp_file_and_matches_the_store(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db")
    store.commit([Set(v=1, key=f"k{i}", value={"n": i}) for i in range(50)])
    assert write_mirror(tmp_path / "state.db", tmp_path / "state.txt") == 50
    state = read_mirror(tmp_path / "state.txt")
    assert state.rev == 50 and state.epoch == store.epoch
    assert {k: i.value for k, i in state.items.items()} == {f"k{i}": {"n": i} for i in range(50)}
    assert sorted(os.listdir(tmp_path)) == ["state.db", "state.db-shm", "state.db-wal", "state.txt"]
