"""Key, value and write rules, with the wording users see."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from statehub.hub.errors import InvalidRequest
from statehub.hub.protocol import MAX_KEY_LENGTH, MAX_TXN_OPS, Op, Set, Txn
from statehub.hub.rules import check_key, check_prefix, check_value, check_write
from statehub.waterfall import env_name


@pytest.mark.parametrize("key", ["a", "plant.rate", "pump_1.speed-max", "A.B.C", "0.1", "eds.stiles.FI-405/415"])
def test_good_keys_pass(key: str) -> None:
    check_key(key)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("plant..rate", "invalid key 'plant..rate': empty segment at position 6"),
        ("", "invalid key '': a key cannot be empty"),
        (".a", "empty segment at position 0"),
        ("a.", "empty segment at position 2"),
        ("plant rate", "character ' ' at position 5"),
        ("@hb", "character '@' at position 0"),
        ("x" * (MAX_KEY_LENGTH + 1), f"the limit is {MAX_KEY_LENGTH}"),
    ],
)
def test_bad_keys_are_refused_with_the_reason(key: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_key(key)
    assert message in str(caught.value)


def test_a_prefix_may_end_with_a_dot() -> None:
    check_prefix("plant.")
    check_prefix("")
    with pytest.raises(InvalidRequest):
        check_prefix("plant..")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (float("nan"), "not a finite number"),
        (b"raw", "type bytes at $ is not allowed"),
        ({1: "x"}, "map key 1 at $ is not a string"),
        ({"a": [1, {"b": float("inf")}]}, "at $.a[1].b"),
    ],
)
def test_bad_values_are_refused_naming_where(value: object, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_value(value)
    assert message in str(caught.value)


def test_values_nested_too_deep_are_refused() -> None:
    value: object = 1
    for _ in range(40):
        value = [value]
    with pytest.raises(InvalidRequest, match="nested deeper than 32"):
        check_value(value)


def test_a_txn_with_a_key_twice_is_refused() -> None:
    txn = Txn(v=1, ops=[Op(op="set", key="a", value=1), Op(op="unset", key="a")])
    with pytest.raises(InvalidRequest, match="appears twice"):
        check_write(txn)


def test_a_txn_over_the_op_limit_names_the_limit() -> None:
    txn = Txn(v=1, ops=[Op(op="set", key=f"k{i}", value=i) for i in range(MAX_TXN_OPS + 1)])
    with pytest.raises(InvalidRequest, match=f"limit of {MAX_TXN_OPS}"):
        check_write(txn)


def test_a_negative_expected_revision_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="negative"):
        check_write(Set(v=1, key="a", value=1, expect=-1))


def test_an_oversized_value_names_the_limit() -> None:
    with pytest.raises(InvalidRequest, match="the limit is 1048576"):
        check_write(Set(v=1, key="a", value="x" * 1_100_000), body_size=1_100_100)


# --- the shared key vectors (tests/vectors/keys.json; Rust checks the same table) ---------------

KEY_VECTORS = json.loads((Path(__file__).parent / "vectors" / "keys.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("key", KEY_VECTORS["valid"])
def test_every_valid_key_of_the_vectors_passes(key: str) -> None:
    """Each key the shared table calls valid passes (NATS KV's token alphabet: '-', '/', '=' and '_')."""
    check_key(key)


@pytest.mark.parametrize("case", KEY_VECTORS["invalid"], ids=lambda case: case["key"][:30] or "empty")
def test_every_invalid_key_of_the_vectors_is_refused_with_its_message(case: dict[str, str]) -> None:
    """Each key the shared table refuses is refused with exactly the table's message."""
    with pytest.raises(InvalidRequest) as caught:
        check_key(case["key"])
    assert caught.value.message == case["message"]


@pytest.mark.parametrize("case", KEY_VECTORS["prefixes"], ids=lambda case: case["prefix"] or "empty")
def test_every_prefix_of_the_vectors_gets_its_verdict(case: dict[str, Any]) -> None:
    """A prefix is valid exactly when the shared table says so."""
    if case["valid"]:
        check_prefix(case["prefix"])
    else:
        with pytest.raises(InvalidRequest):
            check_prefix(case["prefix"])


@pytest.mark.parametrize("case", KEY_VECTORS["env"], ids=lambda case: case["key"])
def test_every_key_of_the_vectors_has_its_environment_name(case: dict[str, str]) -> None:
    """The waterfall reads a key's override from the variable the shared table names ('-', '/', '=' become '_')."""
    assert env_name(case["key"]) == case["variable"]


def test_no_key_can_start_with_the_control_topics_at_sign() -> None:
    """'@' is refused anywhere in a key, so a key can never collide with '@hb' or another control topic."""
    for key in ("@hb", "a.@b", "a@b"):
        with pytest.raises(InvalidRequest, match="character '@'"):
            check_key(key)
