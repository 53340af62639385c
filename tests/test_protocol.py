"""The wire format against the golden vectors shared with the Rust crate."""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from statehub.hub.protocol import (
    Published,
    Reply,
    Request,
    Set,
    published_decoder,
    reply_decoder,
    request_decoder,
)

from .conftest import VECTORS

VECTOR_LIST = json.loads((VECTORS / "protocol.json").read_text())
TYPES = {"request": Request, "reply": Reply, "published": Published}


def test_vectors_cover_every_message_kind() -> None:
    """Every request, reply and published type has at least one vector."""
    import typing

    names = {v["meaning"]["type"] for v in VECTOR_LIST}
    kinds = (*typing.get_args(Request), *typing.get_args(Reply), *typing.get_args(Published))
    assert names == {kind.__struct_config__.tag for kind in kinds}
    assert {"get", "rotate_key", "rotated", "changed", "welcome"} <= names


@pytest.mark.parametrize("vector", VECTOR_LIST, ids=[v["name"] for v in VECTOR_LIST])
def test_vector_bytes_decode_to_their_meaning(vector: dict) -> None:
    """The bytes of each vector decode to the message its JSON describes."""
    decoded = msgspec.msgpack.decode(bytes.fromhex(vector["msgpack"]), type=TYPES[vector["kind"]])
    assert json.loads(msgspec.json.encode(decoded)) == vector["meaning"]


@pytest.mark.parametrize("vector", VECTOR_LIST, ids=[v["name"] for v in VECTOR_LIST])
def test_vector_meaning_encodes_to_its_exact_bytes(vector: dict) -> None:
    """Encoding each vector's meaning gives exactly its bytes (field order, omitted defaults)."""
    message = msgspec.json.decode(json.dumps(vector["meaning"]), type=TYPES[vector["kind"]])
    assert msgspec.msgpack.encode(message).hex() == vector["msgpack"]


def test_decoders_reject_an_unknown_type_naming_it() -> None:
    with pytest.raises(msgspec.ValidationError, match="'launch'"):
        request_decoder().decode(msgspec.msgpack.encode({"type": "launch", "v": 1}))


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    body = msgspec.msgpack.encode({"type": "committed", "epoch": "e", "rev": 3, "future": [1]})
    assert reply_decoder().decode(body).rev == 3


def test_a_wrong_field_type_names_the_field() -> None:
    body = msgspec.msgpack.encode({"type": "changed", "epoch": "e", "rev": "x"})
    with pytest.raises(msgspec.ValidationError, match=r"\$\.rev"):
        published_decoder().decode(body)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(value=json_values)
def test_any_value_round_trips_through_a_set_request(value: object) -> None:
    """Values of every allowed type survive encode and decode unchanged."""
    message = Set(v=1, key="a.b", value=value)
    assert request_decoder().decode(msgspec.msgpack.encode(message)) == message


def test_request_ids_are_uuid7_unique_and_time_ordered() -> None:
    """Python's request ids are UUIDv7, like Rust's: the hub's request index then grows at its end."""
    import time
    import uuid

    from statehub.client import new_request_id

    first = new_request_id()
    ids = {new_request_id() for _ in range(1000)}
    time.sleep(0.002)
    later = new_request_id()
    assert uuid.UUID(first).version == 7 and len(first) == 36
    assert len(ids) == 1000 and first not in ids
    assert later[:13] > first[:13]
