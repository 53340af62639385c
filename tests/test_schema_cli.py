"""The schema on the command line: schema show/check/docs/apply, typed input and --ttl for set, explain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from statehub.testing import HubProcess, wait_until

from .conftest import cli_env, run_cli
from .schema_support import SMALL, plant_schema


@pytest.fixture
def plant_hub(hub: HubProcess, tmp_path: Path) -> HubProcess:
    schema = tmp_path / "plant.toml"
    schema.write_text(plant_schema(), encoding="utf-8")
    done = run_cli(hub.data_dir, "schema", "apply", str(schema))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"applied {schema} as statehub.schema at revision 1 (")
    return hub


def test_apply_refuses_a_bad_file_before_sending_naming_the_file(hub: HubProcess, tmp_path: Path) -> None:
    """A schema file that does not load exits 2 with its path and problem; nothing is written."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[schema]\nformat = 1\n[keys.plant.rate]\ntype = "integer"\n', encoding="utf-8")
    done = run_cli(hub.data_dir, "schema", "apply", str(bad))
    assert done.returncode == 2
    assert done.stderr.startswith(f'error: {bad}: [keys."plant"]: unknown field "rate" holding a table')
    with hub.client() as client:
        assert client.status().rev == 0


def test_set_reads_typed_input_by_the_schema(plant_hub: HubProcess) -> None:
    """For a string key 1.10 stays "1.10"; for an integer key "30" becomes 30; text an integer cannot be is refused."""
    assert run_cli(plant_hub.data_dir, "set", "plant.version", "1.10").returncode == 0
    assert run_cli(plant_hub.data_dir, "set", "plant.north.rate", "30").returncode == 0
    refused = run_cli(plant_hub.data_dir, "set", "plant.north.rate", "30.0")
    with plant_hub.client() as client:
        assert client.get("plant.version").value == "1.10"
        assert client.get("plant.north.rate").value == 30
    assert refused.returncode == 2
    assert refused.stderr.startswith(
        "error: invalid value for 'plant.north.rate': expected integer 0..500 (schema: plant.*.rate), got \"30.0\""
    )


def test_set_prints_the_hubs_warning_for_a_key_it_does_not_know(plant_hub: HubProcess) -> None:
    """A key under a warn prefix is written, and the warning is printed on stderr (and in --json)."""
    done = run_cli(plant_hub.data_dir, "set", "eds.plant", "Maxson")
    as_json = run_cli(plant_hub.data_dir, "set", "eds.plant", "Maxson", "--json")
    expected = "unknown key 'eds.plant': not in the schema (accepted: unknown keys under 'eds.' only warn)"
    assert done.returncode == 0
    assert f"warning: {expected}" in done.stderr
    assert json.loads(as_json.stdout)["warnings"] == [expected]


def test_set_with_ttl_expires_the_key(hub: HubProcess) -> None:
    """`statehub set --ttl` writes a key the hub removes when its ttl runs out."""
    done = run_cli(hub.data_dir, "set", "svc.beat", "1", "--ttl", "0.5")
    assert done.returncode == 0, done.stderr
    with hub.client() as client:
        assert wait_until(lambda: client.list("svc.").items == [], timeout=20)


def test_check_lists_what_the_stored_values_break_and_exits_4(plant_hub: HubProcess) -> None:
    """Values stored before a schema tightened are listed by `schema check`, sorted by key, exit 4."""
    with plant_hub.client(source="cli") as client:
        client.unset("statehub.schema")
        client.set("plant.north.rate", 900)
        client.set("eds.plant", "x")
    apply = run_cli(plant_hub.data_dir, "schema", "apply", "/dev/stdin", input=plant_schema())
    assert apply.returncode == 0, apply.stderr
    done = run_cli(plant_hub.data_dir, "schema", "check")
    as_json = run_cli(plant_hub.data_dir, "schema", "check", "--json")
    assert done.returncode == 4
    assert done.stdout.splitlines() == [
        "warning: unknown key 'eds.plant': not in the schema (accepted: unknown keys under 'eds.' only warn)",
        "error: invalid value for 'plant.north.rate': expected integer 0..500 (schema: plant.*.rate), got 900",
    ]
    assert [v["key"] for v in json.loads(as_json.stdout)["violations"]] == ["eds.plant", "plant.north.rate"]


def test_check_with_only_warnings_lists_them_and_exits_0(plant_hub: HubProcess) -> None:
    """Unknown keys under a warn prefix are listed, but they were accepted by design: exit 0."""
    with plant_hub.client(source="cli") as client:
        client.set("eds.plant", "x")
    done = run_cli(plant_hub.data_dir, "schema", "check")
    assert done.returncode == 0
    assert done.stdout.startswith("warning: unknown key 'eds.plant'")
    assert "2 keys checked: 0 errors, 1 warning" in done.stderr


def test_check_of_a_clean_store_exits_0(plant_hub: HubProcess) -> None:
    """With every stored value fitting its rule, `schema check` lists nothing and succeeds."""
    done = run_cli(plant_hub.data_dir, "schema", "check")
    assert done.returncode == 0, done.stdout
    assert done.stdout == ""


def test_show_and_docs_list_the_rules(plant_hub: HubProcess) -> None:
    """`schema show PREFIX` lists the rules under it; `schema docs` is the markdown reference; both have --json."""
    show = run_cli(plant_hub.data_dir, "schema", "show", "plant.north.")
    show_json = json.loads(run_cli(plant_hub.data_dir, "schema", "show", "--json").stdout)
    docs = run_cli(plant_hub.data_dir, "schema", "docs")
    docs_json = json.loads(run_cli(plant_hub.data_dir, "schema", "docs", "--json").stdout)
    assert show.stdout.splitlines()[0] == (
        "plant.north.do: number 0.5..8.0, default 2.0, mg/L  -- "
        "Dissolved-oxygen setpoint of the north basin (smaller blowers)."
    )
    assert "service.*.heartbeat" in {rule["name"] for rule in show_json["rules"]}
    assert show_json["unknown"] == {"eds.": "warn", "plant.": "refuse"}
    assert docs.stdout.startswith("# Known keys\n")
    assert "| `plant.*.rate` | integer 0..500 | `120` | m3/h | Flow setpoint of one train. |" in docs.stdout
    assert {r["name"]: r["allows"] for r in docs_json["rules"]}["plant.mode"] == 'one of "auto", "manual", "maintenance"'


def test_explain_shows_the_schema_default_description_unit_and_rule(plant_hub: HubProcess) -> None:
    """The defaults layer comes from the schema (a pattern's default too); explain names the rule and its words."""
    done = run_cli(plant_hub.data_dir, "explain", "plant.south.rate")
    as_json = json.loads(run_cli(plant_hub.data_dir, "explain", "plant.south.rate", "--json").stdout)
    assert done.stdout.splitlines() == [
        "plant.south.rate = 120  (from the defaults layer)",
        "  environment  STATEHUB_PLANT__SOUTH__RATE = (not set)  ",
        "  stored       (not set)  [not stored]  ",
        "  defaults     120  [schema: plant.*.rate]  <- wins",
        "  schema       integer 0..500, m3/h  [plant.*.rate]",
        "               Flow setpoint of one train.",
    ]
    assert as_json["schema"]["unit"] == "m3/h"


def test_an_environment_override_is_read_by_the_keys_type(plant_hub: HubProcess) -> None:
    """STATEHUB_PLANT__VERSION=1.10 overrides a string key as the string "1.10", not the number 1.1."""
    env = cli_env(STATEHUB_PLANT__VERSION="1.10")
    done = run_cli(plant_hub.data_dir, "explain", "plant.version", "--json", env=env)
    assert json.loads(done.stdout)["value"] == "1.10"


def test_apply_is_compare_and_set_on_the_text_it_replaces(hub: HubProcess, tmp_path: Path) -> None:
    """Applying twice writes two revisions of statehub.schema; the second replaces the first."""
    first = tmp_path / "a.toml"
    first.write_text(SMALL, encoding="utf-8")
    assert run_cli(hub.data_dir, "schema", "apply", str(first)).returncode == 0
    first.write_text(SMALL.replace("max = 500", "max = 600"), encoding="utf-8")
    done = run_cli(hub.data_dir, "schema", "apply", str(first), "--json")
    assert json.loads(done.stdout)["rev"] == 2
    with hub.client() as client:
        assert client.schema().rule_for("plant.x.rate").max == 600  # type: ignore[union-attr]
