"""`get`, `list`, `history` and `watch` print the same text and JSON from `statehub` and `statehub-rs`.

JSON means every line, `watch --json`'s notices (synced, caught_up, hub_down) included: a script
reading the stream sees the same from both.

tests/vectors/cli.json holds what each prints for one fixed state (times and
the epoch normalised); both CLIs run against a real hub holding that state and
must print exactly that.  Regenerate the file from the Python CLI with
STATEHUB_WRITE_CLI_VECTORS=1 after a deliberate change, then make Rust agree.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from statehub.client import Client
from statehub.hub.protocol import Op
from statehub.testing import HubProcess, mirror_rev, wait_until
from tests.conftest import cli_env
from tests.test_rust import rust_bin  # noqa: F401 - the fixture, shared with the Rust tests

VECTORS = Path(__file__).parent / "vectors" / "cli.json"
WHEN = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ")

# (name, arguments): each is run as text and with --json.
COMMANDS: list[tuple[str, list[str]]] = [
    ("get_number", ["get", "plant.rate"]),
    ("get_string", ["get", "plant.name"]),
    ("get_table", ["get", "plant.pumps"]),
    ("list", ["list", "plant."]),
    ("history", ["history", "plant.rate"]),
    ("history_unset", ["history", "plant.old"]),
    ("watch_replay", ["watch", "plant.", "--since", "0", "--count", "7"]),
    ("get_float_big", ["get", "floats.big"]),
    ("get_floats", ["get", "floats.list"]),
    ("list_floats", ["list", "floats."]),
    ("watch_floats", ["watch", "floats.", "--since", "6", "--count", "3"]),
]


def fixed_state(hub: HubProcess) -> None:
    """The state every run prints: numbers, strings, a table, non-ASCII, a txn, an unset."""
    with Client(hub.data_dir, timeout=5, source="vectors", user="ana") as client:
        client.set("plant.rate", 30)
        client.set("plant.name", "Maxson Zürich")
        client.set("plant.pumps", {"p1": [1, 2.5], "on": True, "note": None})
        client.set("plant.old", "x")
        client.txn([Op(op="set", key="plant.rate", value=31), Op(op="unset", key="plant.old")])
        client.set("plant.rate", -0.5)
        # Floats as Python's json writes them (1e+20, 1.5e-07), exponents and all, after the plant's six.
        client.set("floats.big", 1e20)
        client.set("floats.tiny", 1.5e-7)
        client.set("floats.list", [-2.5e300, 1e16, 1e15, 0.0001, 1e-5, -0.0, 0.1])


def normalised(text: str, as_json: bool) -> str:
    """``text`` with its times and the epoch replaced, so that runs compare."""
    if not as_json:
        return WHEN.sub("TIME", text)
    lines = []
    for line in text.splitlines():
        lines.append(json.dumps(_blank(json.loads(line)), ensure_ascii=False))
    return "\n".join(lines) + "\n"


def _blank(data: Any) -> Any:
    if isinstance(data, list):
        return [_blank(item) for item in data]
    if isinstance(data, dict):
        return {k: ("T" if k == "time" else "E" if k == "epoch" else _blank(v)) for k, v in data.items()}
    return data


def outputs(command: list[str], hub: HubProcess) -> dict[str, str]:
    """What ``command`` prints for each case, as text and as JSON, normalised."""
    found = {}
    for name, args in COMMANDS:
        for as_json in (False, True):
            run = subprocess.run(
                [*command, "--data-dir", str(hub.data_dir), *args, *(["--json"] if as_json else [])],
                capture_output=True,
                text=True,
                timeout=30,
                env=cli_env(),
            )
            assert run.returncode == 0, (command, args, run.stderr)
            found[f"{name}{'_json' if as_json else ''}"] = normalised(run.stdout, as_json)
    return found


@pytest.fixture(scope="module")
def vector_hub(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with HubProcess(tmp_path_factory.mktemp("cli-vectors") / "data") as hub:
        fixed_state(hub)
        yield hub


def test_the_python_cli_prints_the_vectors(vector_hub: HubProcess) -> None:
    """`statehub get|list|history|watch` print exactly tests/vectors/cli.json, text and JSON."""
    found = outputs([sys.executable, "-m", "statehub.cli"], vector_hub)
    if os.environ.get("STATEHUB_WRITE_CLI_VECTORS"):
        VECTORS.write_text(json.dumps(found, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert found == json.loads(VECTORS.read_text(encoding="utf-8"))


def test_statehub_rs_prints_the_same_vectors(vector_hub: HubProcess, rust_bin: Path) -> None:  # noqa: F811
    """`statehub-rs get|list|history|watch` print what the Python CLI prints, byte for byte."""
    found = outputs([str(rust_bin)], vector_hub)
    expected = json.loads(VECTORS.read_text(encoding="utf-8"))
    for name, text in expected.items():
        assert found[name] == text, name


def test_the_vectors_cover_every_case_in_both_forms() -> None:
    """The vector file holds a text and a JSON answer for every command case, none empty."""
    expected = json.loads(VECTORS.read_text(encoding="utf-8"))
    assert set(expected) == {f"{name}{suffix}" for name, _ in COMMANDS for suffix in ("", "_json")}
    assert all(text.strip() for text in expected.values())


def test_explain_answers_from_the_shipped_defaults_in_both(vector_hub: HubProcess, rust_bin: Path) -> None:  # noqa: F811
    """A key only the shipped defaults.toml holds is explained from the defaults layer by both CLIs, exit 0."""
    for command in ([sys.executable, "-m", "statehub.cli"], [str(rust_bin)]):
        run = subprocess.run(
            [*command, "--data-dir", str(vector_hub.data_dir), "explain", "eds.timezone", "--json"],
            capture_output=True,
            text=True,
            timeout=30,
            env=cli_env(),
        )
        assert run.returncode == 0, (command, run.stderr)
        data = json.loads(run.stdout)
        assert (data["layer"], data["value"]) == ("defaults", "America/Chicago"), command


def test_both_clients_record_the_same_user(vector_hub: HubProcess, rust_bin: Path) -> None:  # noqa: F811
    """With no user variables set, Python and Rust both record the login name of the process's user."""
    import pwd

    env = {k: v for k, v in cli_env().items() if k not in ("LOGNAME", "USER", "LNAME", "USERNAME")}
    for key, command in (("who.py", [sys.executable, "-m", "statehub.cli"]), ("who.rs", [str(rust_bin)])):
        run = subprocess.run(
            [*command, "--data-dir", str(vector_hub.data_dir), "set", key, "1"],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
        )
        assert run.returncode == 0, run.stderr
    with Client(vector_hub.data_dir, timeout=5) as client:
        users = {client.get(key).item.user for key in ("who.py", "who.rs")}
    assert users == {pwd.getpwuid(os.getuid()).pw_name}


def test_statehub_rs_prints_shell_completions(rust_bin: Path) -> None:  # noqa: F811
    """`statehub-rs completions bash` prints a bash completion script for statehub-rs."""
    run = subprocess.run([str(rust_bin), "completions", "bash"], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0 and "_statehub-rs()" in run.stdout


def test_both_clis_echo_a_set_as_json(vector_hub: HubProcess, rust_bin: Path) -> None:  # noqa: F811
    """`set k Maxson` echoes `k = "Maxson"  (revision N)` from both CLIs, and a negative number is a value."""
    for key, command in (("echo.py", [sys.executable, "-m", "statehub.cli"]), ("echo.rs", [str(rust_bin)])):
        for value, shown in (("Maxson", '"Maxson"'), ("-5", "-5")):
            run = subprocess.run(
                [*command, "--data-dir", str(vector_hub.data_dir), "set", f"{key}{len(value)}", value],
                capture_output=True,
                text=True,
                timeout=30,
                env=cli_env(),
            )
            expected = rf"{re.escape(key)}{len(value)} = {re.escape(shown)}  \(revision \d+\)\n"
            assert re.fullmatch(expected, run.stdout), run


class _Watch:
    """`watch PREFIX --json` running in the background, its stdout lines collected as they come."""

    def __init__(self, command: list[str]) -> None:
        self.lines: list[dict[str, Any]] = []
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout or []:
            self.lines.append(json.loads(line))

    def printed(self, event: str) -> bool:
        return any(line["event"] == event for line in list(self.lines))

    def stop(self) -> str:
        """Stop it (it is ours) and return what it said on stderr."""
        self.process.terminate()
        _, err = self.process.communicate(timeout=10)
        self._reader.join(10)
        return err


def test_both_clis_print_the_same_watch_json_through_an_outage(hub: HubProcess, rust_bin: Path) -> None:  # noqa: F811
    """`watch --json` prints the same lines from both CLIs as the hub stops and comes back: synced, the
    changes, hub_down with the mirror's revision, caught_up (a reconnect) and the next live change."""
    with hub.client() as client:
        client.set("o.a", 1)
    watches = {
        name: _Watch([*command, "--data-dir", str(hub.data_dir), "watch", "o.", "--initial", "--json"])
        for name, command in (("statehub", [sys.executable, "-m", "statehub.cli"]), ("statehub-rs", [str(rust_bin)]))
    }
    errors = {}
    try:
        assert wait_until(lambda: all(w.printed("changed") for w in watches.values()), 30)  # both are live
        with hub.client() as client:
            client.set("o.b", 2.5e-7)
        assert wait_until(lambda: all(len(w.lines) == 3 for w in watches.values()), 30)
        assert wait_until(lambda: mirror_rev(hub.data_dir) == 2)  # so both read the same mirror when it is down
        hub.kill()
        assert wait_until(lambda: all(w.printed("hub_down") for w in watches.values()), 30)
        hub.start()
        assert wait_until(lambda: all(w.printed("caught_up") for w in watches.values()), 30)
        with hub.client() as client:
            client.set("o.a", 1e20)
        assert wait_until(lambda: all(len(w.lines) == 6 for w in watches.values()), 30)
    finally:
        for name, watch in watches.items():
            errors[name] = watch.stop()
    seen = {name: [_outage_blank(line) for line in watch.lines] for name, watch in watches.items()}
    assert seen["statehub-rs"] == seen["statehub"], errors
    events = [(line["event"], line.get("origin") or line.get("cause")) for line in seen["statehub"]]
    assert events == [
        ("synced", "start"),
        ("changed", "snapshot"),
        ("changed", "live"),
        ("hub_down", None),
        ("caught_up", "reconnect"),
        ("changed", "live"),
    ]
    assert seen["statehub"][3] == {"event": "hub_down", "reason": "R", "mirror_rev": 2}


def _outage_blank(line: dict[str, Any]) -> dict[str, Any]:
    """A line with what differs between runs blanked: times, and hub_down's reason (each CLI's own words)."""
    return {k: ("R" if k == "reason" and line["event"] == "hub_down" else "T" if k == "time" else v) for k, v in line.items()}
