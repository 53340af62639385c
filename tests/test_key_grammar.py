"""Keys with '/', '=' and '-' everywhere a key becomes something else: mirror, sync-file, environment, HTTP, GUI."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from statehub.gui.model import matches
from statehub.hub.mirror import parse, render
from statehub.hub.records import Entry
from statehub.sync_file.document import FileError, Header
from statehub.sync_file.document import parse as parse_document
from statehub.sync_file.document import render as render_document
from statehub.testing import HubProcess

from .conftest import cli_env, run_cli

WIDE_KEYS = ["eds.stiles.FI-405/415", "eds.maxson.FI-405/415=UNIT1-NET1", "a.b=c", "x/y.-z"]


def test_wide_keys_round_trip_through_the_mirror() -> None:
    """A mirror line splits at the first ' = ', so '=' and '/' inside a key read back exactly."""
    entries = [Entry(key, msgspec.msgpack.encode({"v": n}), n + 1, n + 1, 1795000000.0, "eds", "") for n, key in enumerate(sorted(WIDE_KEYS))]
    state = parse(render("e", 9, entries, 1795000001.0).decode())
    assert {key: item.value for key, item in state.items.items()} == {key: {"v": n} for n, key in enumerate(sorted(WIDE_KEYS))}


@pytest.mark.parametrize("fmt", ["toml", "json"])
def test_wide_keys_round_trip_through_sync_file_documents(fmt: str) -> None:
    """sync-file writes every key quoted (TOML) or as a JSON string, so wide keys come back unchanged."""
    values = {key: n for n, key in enumerate(WIDE_KEYS)}
    text = render_document(fmt, Header(rev=4, epoch="e", prefix=""), values, "note").decode()  # type: ignore[arg-type]
    assert parse_document(fmt, text, "").values == values  # type: ignore[arg-type]


def test_an_unquoted_wide_key_in_toml_is_refused_with_the_fix() -> None:
    """A person who types eds.x.FI-405/415 = 2 unquoted is told to quote it, with the line."""
    text = render_document("toml", Header(rev=4, epoch="e", prefix="eds."), {"eds.a": 1}, "note").decode()
    text = text.replace('"eds.a" = 1', "eds.x.FI-405/415 = 2")
    with pytest.raises(FileError) as refused:
        parse_document("toml", text, "eds.")
    assert str(refused.value).startswith('write the key in quotes: "eds.x.FI-405/415" = ...')
    assert refused.value.line == text.splitlines().index("eds.x.FI-405/415 = 2") + 1


def test_the_gui_filter_finds_a_point_by_its_tag() -> None:
    """Typing the tag an engineer knows finds the key; a prefix filter keeps working with '/'."""
    assert matches("eds.stiles.FI-405/415", "fi-405/415")
    assert matches("eds.stiles.FI-405/415", "eds.stiles.FI-405/", prefix_only=True)
    assert not matches("eds.stiles.FI-405/415", "FI-406")


def test_an_environment_override_reaches_a_wide_key(hub: HubProcess) -> None:
    """STATEHUB_EDS__STILES__FI_405_415 overrides eds.stiles.FI-405/415, as `statehub explain` shows."""
    assert run_cli(hub.data_dir, "set", "eds.stiles.FI-405/415", "1").returncode == 0
    env = cli_env(STATEHUB_EDS__STILES__FI_405_415="7")
    shown = run_cli(hub.data_dir, "explain", "eds.stiles.FI-405/415", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "STATEHUB_EDS__STILES__FI_405_415" in shown.stdout and "7" in shown.stdout


def test_the_cli_sets_gets_and_lists_wide_keys(hub: HubProcess) -> None:
    """set, get and list take keys with '/' and '=' as they are."""
    for n, key in enumerate(WIDE_KEYS):
        assert run_cli(hub.data_dir, "set", key, str(n)).returncode == 0
    assert run_cli(hub.data_dir, "get", "eds.maxson.FI-405/415=UNIT1-NET1").stdout.strip() == "1"
    listed = run_cli(hub.data_dir, "list", "eds.stiles.").stdout
    assert listed.startswith("eds.stiles.FI-405/415 = 0")
    refused = run_cli(hub.data_dir, "set", "eds.stiles.FI-405/415.UNIT1@NET1", "1")
    assert refused.returncode == 2
    assert "character '@' at position 27" in refused.stderr


# --- the HTTP API: a '/' in a key still routes --------------------------------------------------

web_support = pytest.importorskip("tests.web_support", reason="statehub[web] is not installed")


@pytest.fixture
def web(hub: HubProcess, data_dir: Path) -> Iterator[object]:
    with web_support.WebProcess(data_dir) as process:
        process.wait_following()
        yield process


@pytest.mark.parametrize("encode", [False, True], ids=["as-is", "percent-encoded"])
def test_a_key_with_a_slash_routes_in_the_http_api(hub: HubProcess, web: object, encode: bool) -> None:
    """GET, PUT, history and DELETE of eds.stiles.FI-405/415 reach that key, written as is or encoded."""
    key = "eds.stiles.FI-405/415"
    path = urllib.parse.quote(key, safe="") if encode else key
    with hub.client() as client:
        client.set(key, {"value": 12.5})
    with web.http() as http:  # type: ignore[attr-defined]
        got = http.get(f"/api/keys/{path}")
        assert (got.status_code, got.json()["key"], got.json()["value"]) == (200, key, {"value": 12.5})
        put = http.put(f"/api/keys/{path}", json={"value": {"value": 13.0}}, headers={"If-Match": got.headers["ETag"]})
        assert put.status_code == 200, put.text
        versions = http.get(f"/api/keys/{path}/history").json()
        assert (versions["key"], [v["value"]["value"] for v in versions["versions"]]) == (key, [13.0, 12.5])
        assert http.delete(f"/api/keys/{path}").status_code == 200
    with hub.client() as client:
        assert client.list("eds.").items == []
