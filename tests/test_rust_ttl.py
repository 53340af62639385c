"""`statehub-rs set --ttl` against a real hub: the key expires, and both CLIs answer alike."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from statehub import NotFound
from statehub.testing import HubProcess
from tests.conftest import cli_env
from tests.test_rust import rs, rust_bin, start_watch  # noqa: F401 - the fixture, shared with the Rust tests


def test_a_key_set_by_statehub_rs_with_a_ttl_expires_and_rust_watch_sees_the_hubs_unset(
    rust_bin: Path,  # noqa: F811
    hub: HubProcess,
) -> None:
    """`statehub-rs set KEY V --ttl 1`: the hub unsets KEY with source `ttl`, and `statehub-rs watch` prints it."""
    watch = start_watch(rust_bin, hub, "svc.", "--count", "3")  # the marker, the set, the expiry
    try:
        written = rs(rust_bin, hub.data_dir, "set", "svc.beat", "7", "--ttl", "1")
        assert written.returncode == 0, written.stderr
        out, err = watch.communicate(timeout=30)
    finally:
        watch.kill()
        watch.wait(timeout=10)
    set_line, expiry = (json.loads(line) for line in out.splitlines()[-2:])
    assert (set_line["key"], set_line["op"], set_line["value"], set_line["source"]) == (
        "svc.beat",
        "set",
        7,
        "rust",
    )
    assert (expiry["key"], expiry["op"], expiry["source"]) == ("svc.beat", "unset", "ttl"), err
    assert expiry["prev_rev"] == set_line["rev"]
    with hub.client() as client, pytest.raises(NotFound):
        client.get("svc.beat")


def both_clis(rust_bin: Path, data_dir: Path) -> dict[str, list[str]]:  # noqa: F811
    return {
        "statehub": [sys.executable, "-m", "statehub.cli", "--data-dir", str(data_dir)],
        "statehub-rs": [str(rust_bin), "--data-dir", str(data_dir)],
    }


# (--ttl's argument, what both CLIs say): the option's own check, then the hub's words (checked before sending).
BAD_TTLS = [
    ("0", "\nError: Invalid value for '--ttl': 0.0 is not in the range x>=0.001.\n"),
    ("-1", "\nError: Invalid value for '--ttl': -1.0 is not in the range x>=0.001.\n"),
    ("abc", "\nError: Invalid value for '--ttl': 'abc' is not a valid float range.\n"),
    ("nan", "error: invalid ttl for 'svc.beat': expected seconds > 0, got nan"),
    ("inf", "error: invalid ttl for 'svc.beat': expected seconds > 0, got inf"),
    (
        "31622401",
        "error: invalid ttl for 'svc.beat': 3.16224e+07 s is more than the limit of 31622400 s (a year)",
    ),
]


@pytest.mark.parametrize(("ttl", "message"), BAD_TTLS)
def test_both_clis_refuse_a_bad_ttl_in_the_same_words_with_exit_2(
    rust_bin: Path,  # noqa: F811
    hub: HubProcess,
    ttl: str,
    message: str,
) -> None:
    """A bad `--ttl` is refused by `statehub set` and `statehub-rs set` alike: exit 2, the same words, nothing written."""
    for name, command in both_clis(rust_bin, hub.data_dir).items():
        result = subprocess.run(
            [*command, "set", "svc.beat", "1", "--ttl", ttl],
            capture_output=True,
            text=True,
            timeout=60,
            env=cli_env(),
        )
        assert result.returncode == 2, (name, result.stderr)
        assert message in result.stderr, (name, result.stderr)
    with hub.client() as client:
        assert client.status().rev == 0


# (the command line after the data dir, the option, its usage's command): values an option refuses.
REFUSED_OPTIONS = [
    (["set", "svc.beat", "1", "--ttl", "abc"], "--ttl", "set"),
    (["set", "svc.beat", "1", "--ttl", "0.0005"], "--ttl", "set"),
    (["--timeout", "0", "get", "svc.beat"], "--timeout", ""),
    (["get", "svc.beat", "--timeout", "x"], "--timeout", ""),
]


@pytest.mark.parametrize(("args", "option", "command"), REFUSED_OPTIONS)
def test_both_clis_word_a_value_an_option_refuses_as_click_does_with_exit_2(
    rust_bin: Path,  # noqa: F811
    hub: HubProcess,
    args: list[str],
    option: str,
    command: str,
) -> None:
    """The usage, `Try 'PROG [COMMAND] --help' for help.`, a blank line, then the same `Error: Invalid value
    for '--OPTION': ...` line from both CLIs (a global option's error names no command, wherever it was given)."""
    said = {}
    for name, cli in both_clis(rust_bin, hub.data_dir).items():
        result = subprocess.run([*cli, *args], capture_output=True, text=True, timeout=60, env=cli_env())
        assert result.returncode == 2, (name, result.stderr)
        prog = "python -m statehub.cli" if name == "statehub" else "statehub-rs"
        usage, try_help, blank, error = result.stderr.replace(prog, "PROG").splitlines()
        assert usage.startswith(f"Usage: PROG {command}".rstrip() + " ["), (name, usage)
        assert try_help == f"Try 'PROG {command} --help' for help.".replace("  ", " "), (name, try_help)
        assert blank == ""
        said[name] = error
    assert said["statehub-rs"] == said["statehub"]
    assert said["statehub"].startswith(f"Error: Invalid value for '{option}': ")


def test_both_clis_print_the_same_json_for_a_set_with_a_ttl(rust_bin: Path, hub: HubProcess) -> None:  # noqa: F811
    """`set --ttl 60 --json` prints {rev, epoch, duplicate, warnings} from either CLI, and the hub keeps the key."""
    printed = {}
    for name, command in both_clis(rust_bin, hub.data_dir).items():
        result = subprocess.run(
            [*command, "set", f"svc.{name}", "1", "--ttl", "60", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            env=cli_env(),
        )
        assert result.returncode == 0, (name, result.stderr)
        printed[name] = json.loads(result.stdout)
    assert (
        list(printed["statehub-rs"]) == list(printed["statehub"]) == ["rev", "epoch", "duplicate", "warnings"]
    )
    assert printed["statehub-rs"]["rev"] == printed["statehub"]["rev"] + 1
    assert printed["statehub-rs"]["epoch"] == printed["statehub"]["epoch"]
    with hub.client() as client:
        assert client.get("svc.statehub-rs").value == 1


def test_both_clis_print_the_same_json_for_an_unset(rust_bin: Path, hub: HubProcess) -> None:  # noqa: F811
    """`unset KEY --json` prints {rev, epoch, duplicate} from either CLI (Python's lacked duplicate)."""
    printed = {}
    with hub.client() as client:
        for name in ("statehub", "statehub-rs"):
            client.set(f"gone.{name}", 1)
    for name, command in both_clis(rust_bin, hub.data_dir).items():
        result = subprocess.run(
            [*command, "unset", f"gone.{name}", "--json"], capture_output=True, text=True, timeout=60, env=cli_env()
        )
        assert result.returncode == 0, (name, result.stderr)
        printed[name] = json.loads(result.stdout)
    assert list(printed["statehub-rs"]) == list(printed["statehub"]) == ["rev", "epoch", "duplicate"]
    assert printed["statehub"]["duplicate"] is printed["statehub-rs"]["duplicate"] is False


def test_both_clis_print_the_same_json_for_keys_with_and_without_a_ttl(
    rust_bin: Path,  # noqa: F811
    hub: HubProcess,
) -> None:
    """`get`, `list` and `watch --since 0` --json print the same lines from either CLI for keys with and without a ttl."""
    with hub.client() as client:
        client.set("svc.alive", 1, ttl=300)
        client.set("svc.plain", 2)
    printed: dict[str, list[str]] = {}
    for name, command in both_clis(rust_bin, hub.data_dir).items():
        printed[name] = []
        for args in (
            ["get", "svc.alive"],
            ["get", "svc.plain"],
            ["list", "svc."],
            ["watch", "svc.", "--since", "0", "--count", "2"],
        ):
            result = subprocess.run(
                [*command, *args, "--json"], capture_output=True, text=True, timeout=60, env=cli_env()
            )
            assert result.returncode == 0, (name, args, result.stderr)
            printed[name] += result.stdout.splitlines()
    assert len(printed["statehub"]) == 6  # watch: its synced notice, then the two changes
    assert printed["statehub-rs"] == printed["statehub"]
