"""The schema's verdicts against tests/vectors/schema.json, the table the Rust client is held to too."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import pytest

from statehub.hub.errors import InvalidRequest
from statehub.hub.schema import Schema, load_schema
from statehub.hub.schema_types import show_value

from .conftest import VECTORS

TABLE = json.loads((VECTORS / "schema.json").read_text(encoding="utf-8"))
DOCS = VECTORS.parent.parent / "docs" / "schema.md"


def texts(lines_by_key: dict[str, list[str]]) -> dict[str, str]:
    """Schema texts as the vectors keep them: lines, joined with newlines and ended by one."""
    return {key: "\n".join(lines) + "\n" if lines else "" for key, lines in lines_by_key.items()}


@cache
def schema(name: str) -> Schema:
    return load_schema(texts(TABLE["schemas"][name]))


def case_id(case: dict[str, Any]) -> str:
    return f"{case['schema']}:{case['key']}:{json.dumps(case.get('value', case.get('text')))[:30]}"


@pytest.mark.parametrize("case", TABLE["checks"], ids=case_id)
def test_check_gives_the_shared_verdict(case: dict[str, Any]) -> None:
    """Each op gets the verdict of the table: ok, a warning, or `invalid` with that exact message."""
    judge = schema(case["schema"])
    call = (case["key"], case.get("value"), case["source"], case["op"])
    if case["verdict"] == "invalid":
        with pytest.raises(InvalidRequest) as refused:
            judge.check(*call, secret=case.get("secret", False))
        assert refused.value.message == case["message"]
        return
    warning = judge.check(*call, secret=case.get("secret", False))
    assert warning == (case["message"] if case["verdict"] == "warn" else None)


@pytest.mark.parametrize("case", TABLE["parse_text"], ids=case_id)
def test_typed_text_reads_as_the_table_says(case: dict[str, Any]) -> None:
    """Text typed for a key becomes the table's value, of the same JSON type, or its exact error."""
    judge = schema(case["schema"])
    if "error" in case:
        with pytest.raises(InvalidRequest) as refused:
            judge.parse_text(case["key"], case["text"])
        assert refused.value.message == case["error"]
        return
    value = judge.parse_text(case["key"], case["text"])
    assert json.dumps(value) == json.dumps(case["value"])  # 30 and 30.0 are different answers


@pytest.mark.parametrize("case", TABLE["rules"], ids=case_id)
def test_the_rule_that_governs_a_key_is_the_tables(case: dict[str, Any]) -> None:
    """Precedence (exact, then the most literal pattern) picks the table's rule, with its secret, ttl and default."""
    judge = schema(case["schema"])
    rule = judge.rule_for(case["key"])
    assert (rule.name if rule else None, rule.type if rule else None) == (case["rule"], case["type"])
    assert judge.is_secret(case["key"]) is case["secret"]
    assert judge.ttl_of(case["key"]) == case["ttl"]
    assert json.dumps(judge.default_of(case["key"])) == json.dumps(case["default"])


@pytest.mark.parametrize("name", sorted(TABLE["defaults"]))
def test_defaults_are_every_exact_keys_default(name: str) -> None:
    """defaults() lists each exact key's default, as the table does."""
    assert json.dumps(schema(name).defaults()) == json.dumps(TABLE["defaults"][name])


@pytest.mark.parametrize("case", TABLE["load_errors"], ids=[c["name"] for c in TABLE["load_errors"]])
def test_a_bad_schema_is_refused_with_the_tables_message(case: dict[str, Any]) -> None:
    """Each bad schema fails to load with the table's message (a TOML syntax error: its prefix and line)."""
    with pytest.raises(InvalidRequest) as refused:
        load_schema(texts(case["texts"]))
    if "error_prefix" in case:
        assert refused.value.message.startswith(case["error_prefix"] + ": ")
    else:
        assert refused.value.message == case["error"]


@pytest.mark.parametrize("case", TABLE["shown"], ids=lambda case: json.dumps(case["value"])[:20])
def test_values_read_in_messages_as_the_table_says(case: dict[str, Any]) -> None:
    """A value in a message is compact JSON with Python's float spelling, cut at 60 characters."""
    assert show_value(case["value"]) == case["text"]


def test_every_schema_of_the_table_loads() -> None:
    """The table's schemas are valid, so every case above tests a verdict and not a load error."""
    for name in TABLE["schemas"]:
        assert schema(name) is not None
    assert not schema("none").rules() and schema("none").is_empty


def test_the_docs_example_is_the_plant_schema_of_the_table() -> None:
    """docs/schema.md shows exactly the schema the vectors test, so the example cannot rot."""
    example = re.search(r"<!-- example: plant -->\n```toml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    assert example is not None, "docs/schema.md lost its marked example"
    assert example.group(1) == texts(TABLE["schemas"]["plant"])["statehub.schema"]
