"""The waterfall's rules, without a hub."""

from __future__ import annotations

from pathlib import Path

import pytest

from statehub.client import Client
from statehub.waterfall import MISSING, env_name, flatten, load_defaults, parse_text_value


@pytest.mark.parametrize(
    ("key", "variable"),
    [("plant.rate", "STATEHUB_PLANT__RATE"), ("plant.flow-rate", "STATEHUB_PLANT__FLOW_RATE"), ("a", "STATEHUB_A")],
)
def test_environment_names_follow_the_documented_rule(key: str, variable: str) -> None:
    assert env_name(key) == variable


@pytest.mark.parametrize(
    ("text", "value"), [("30", 30), ("1.5", 1.5), ("true", True), ("null", None), ('"30"', "30"), ("hello", "hello"), ("NaN", "NaN")]
)
def test_typed_text_is_json_when_it_parses(text: str, value: object) -> None:
    assert parse_text_value(text) == value


def test_nested_tables_flatten_to_dotted_keys() -> None:
    assert flatten({"a": {"b": {"c": 1}, "d": [1, {"x": 2}]}}) == {"a.b.c": 1, "a.d": [1, {"x": 2}]}


def test_the_shipped_defaults_load() -> None:
    with Client("/nonexistent-statehub-dir", timeout=0.05) as client:
        found = client.explain("eds.timezone")
    assert (found.layer, found.value) == ("defaults", "America/Chicago")
    assert found.stored is None and "unknown" in found.stored_note


def test_a_broken_defaults_file_names_itself(tmp_path: Path) -> None:
    bad = tmp_path / "d.toml"
    bad.write_text("[a\n")
    with pytest.raises(ValueError, match="d.toml is not valid TOML"):
        load_defaults(bad)


def test_environment_wins_over_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATEHUB_EDS__TIMEZONE", "UTC")
    with Client("/nonexistent-statehub-dir", timeout=0.05) as client:
        found = client.explain("eds.timezone")
        assert client.resolve("eds.timezone") == "UTC"
    assert (found.layer, found.env_value, found.default) == ("environment", "UTC", "America/Chicago")
    assert found.stored is None and found.default is not MISSING
