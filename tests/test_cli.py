"""The statehub command as a user runs it: output, error lines and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from statehub.testing import HubProcess

from .conftest import cli_env, run_cli


def test_set_then_get_parses_json_and_keeps_strings(hub: HubProcess) -> None:
    assert run_cli(hub.data_dir, "set", "a.n", "30").stdout.strip() == "a.n = 30  (revision 1)"
    run_cli(hub.data_dir, "set", "a.s", "hello world")
    run_cli(hub.data_dir, "set", "a.forced", "30", "--string")
    run_cli(hub.data_dir, "set", "a.list", "[1, 2]")
    values = {i["key"]: i["value"] for i in json.loads(run_cli(hub.data_dir, "list", "--json").stdout)["items"]}
    assert values == {"a.n": 30, "a.s": "hello world", "a.forced": "30", "a.list": [1, 2]}
    assert run_cli(hub.data_dir, "get", "a.s").stdout == "hello world\n"


def test_get_json_carries_metadata_and_origin(hub: HubProcess) -> None:
    run_cli(hub.data_dir, "set", "a", "1")
    data = json.loads(run_cli(hub.data_dir, "get", "a", "--json").stdout)
    assert (data["value"], data["rev"], data["source"], data["from_mirror"]) == (1, 1, "cli", False)


def test_a_keys_ttl_shows_in_get_list_and_explain_only_when_it_has_one(hub: HubProcess) -> None:
    """set --ttl 30: get/list/watch --json carry "ttl": 30 (absent for a key without); explain says when it expires."""
    run_cli(hub.data_dir, "set", "svc.alive", "true", "--ttl", "30")
    run_cli(hub.data_dir, "set", "svc.plain", "1")
    assert json.loads(run_cli(hub.data_dir, "get", "svc.alive", "--json").stdout)["ttl"] == 30.0
    assert "ttl" not in json.loads(run_cli(hub.data_dir, "get", "svc.plain", "--json").stdout)
    items = json.loads(run_cli(hub.data_dir, "list", "svc.", "--json").stdout)["items"]
    assert [(i["key"], i.get("ttl")) for i in items] == [("svc.alive", 30.0), ("svc.plain", None)]
    assert "ttl" not in items[1]
    explained = run_cli(hub.data_dir, "explain", "svc.alive").stdout
    assert "expires in " in explained and " s unless written again]" in explained
    assert json.loads(run_cli(hub.data_dir, "explain", "svc.alive", "--json").stdout)["stored"]["ttl"] == 30.0
    assert "expires" not in run_cli(hub.data_dir, "explain", "svc.plain").stdout
    lines = run_cli(hub.data_dir, "watch", "svc.", "--json", "--since", "0", "--count", "2").stdout.splitlines()
    replayed = [line for line in map(json.loads, lines) if line["event"] == "changed"]
    assert [(c["key"], c.get("ttl")) for c in replayed] == [("svc.alive", 30.0), ("svc.plain", None)]
    assert "ttl" not in replayed[1]


def test_watch_count_counts_the_initial_values_it_prints_and_stops_at_the_count(hub: HubProcess) -> None:
    """--initial --count N: the current values printed count, as in statehub-rs; printing stops at N exactly."""
    for key in ("w.a", "w.b", "w.c"):
        run_cli(hub.data_dir, "set", key, "1")
    lines = run_cli(hub.data_dir, "watch", "w.", "--initial", "--json", "--count", "2").stdout.splitlines()
    printed = [line for line in map(json.loads, lines) if line["event"] == "changed"]
    assert [(c["key"], c["origin"]) for c in printed] == [("w.a", "snapshot"), ("w.b", "snapshot")]


def test_a_bad_key_is_one_error_line_with_exit_2(hub: HubProcess) -> None:
    result = run_cli(hub.data_dir, "set", "plant..rate", "1")
    assert result.returncode == 2
    assert result.stderr == "error: invalid key 'plant..rate': empty segment at position 6\n"
    assert "Traceback" not in result.stderr


def test_a_missing_key_exits_3(hub: HubProcess) -> None:
    result = run_cli(hub.data_dir, "get", "nope")
    assert (result.returncode, result.stderr) == (3, "error: no key 'nope'\n")


def test_a_conflict_exits_4_and_shows_the_current_value_and_who(hub: HubProcess) -> None:
    run_cli(hub.data_dir, "set", "plant.rate", "30")
    run_cli(hub.data_dir, "set", "plant.rate", "31")
    result = run_cli(hub.data_dir, "set", "plant.rate", "40", "--expect-rev", "1")
    assert result.returncode == 4
    assert "error: conflict on 'plant.rate': you expected revision 1, it is at revision 2 (value 31, set by cli at" in result.stderr
    assert "hint: read the current value, then retry with --expect-rev" in result.stderr


def test_with_no_hub_reads_fail_clearly_when_there_is_no_mirror_either(tmp_path: Path) -> None:
    result = run_cli(tmp_path / "empty", "get", "a")
    assert result.returncode == 5
    assert "the hub is not running" in result.stderr and "statehub serve" in result.stderr
    assert "there is no mirror" in result.stderr


def test_history_shows_who_and_old_to_new(hub: HubProcess) -> None:
    for value in ("1", "2"):
        run_cli(hub.data_dir, "set", "h", value)
    run_cli(hub.data_dir, "unset", "h")
    lines = run_cli(hub.data_dir, "history", "h").stdout.splitlines()
    assert [line.split("  ")[-1].split()[-3:] for line in lines] == [["2", "->", "(unset)"], ["1", "->", "2"], ["(new)", "->", "1"]]
    assert all("cli/" in line for line in lines)


def test_status_json_names_the_files_and_endpoints(hub: HubProcess) -> None:
    data = json.loads(run_cli(hub.data_dir, "status", "--json").stdout)
    assert data["data_dir"] == str(hub.data_dir)
    assert set(data["endpoints"]) == {"rpc", "events"}


def test_explain_names_the_winning_layer(hub: HubProcess, tmp_path: Path) -> None:
    defaults = tmp_path / "defaults.toml"
    defaults.write_text('[plant]\nrate = 10\nunit = "MGD"\n')
    env = cli_env(STATEHUB_DEFAULTS=str(defaults))
    run_cli(hub.data_dir, "set", "plant.rate", "20")

    def layer(key: str, **extra: str) -> str:
        result = run_cli(hub.data_dir, "explain", key, "--json", env={**env, **extra})
        data = json.loads(result.stdout)
        return f"{data['layer']}={data['value']}"

    assert layer("plant.unit") == "defaults=MGD"
    assert layer("plant.rate") == "stored=20"
    assert layer("plant.rate", STATEHUB_PLANT__RATE="30") == "environment=30"
    missing = run_cli(hub.data_dir, "explain", "plant.none", env=env)
    assert missing.returncode == 3 and "has no value in any layer" in missing.stdout


@pytest.mark.parametrize("command", ["get", "set", "list", "watch", "history", "status", "explain", "serve"])
def test_every_command_has_help(command: str, tmp_path: Path) -> None:
    result = run_cli(tmp_path, command, "--help")
    assert result.returncode == 0 and "usage" in result.stdout.lower()


def test_the_fast_get_path_answers_like_typer_without_loading_typer(hub: HubProcess) -> None:
    """`statehub get` skips typer (and the pydantic its parser imports) but prints, errs and exits the same."""
    import subprocess
    import sys

    run_cli(hub.data_dir, "set", "fast.k", '{"a": [1, 2]}')
    probe = (
        "import sys; from statehub.cli.fast_get import fast_get; code = fast_get(sys.argv[1:]); "
        "print(code, 'pydantic' in sys.modules, 'typer' in sys.modules, file=sys.stderr)"
    )
    fast = subprocess.run(
        [sys.executable, "-c", probe, "--data-dir", str(hub.data_dir), "get", "fast.k", "--json"],
        capture_output=True, text=True, timeout=30, env=cli_env(),
    )  # fmt: skip
    assert fast.stderr.strip().splitlines()[-1] == "0 False False", fast.stderr
    # `--timeout 2` is still the fast path; `--debug` goes through typer: both print the same thing
    through_typer = run_cli(hub.data_dir, "--debug", "get", "fast.k", "--json")
    assert json.loads(fast.stdout) == json.loads(through_typer.stdout)
    missing_fast = run_cli(hub.data_dir, "--timeout", "2", "get", "nope")
    missing_typer = run_cli(hub.data_dir, "get", "nope", "--no-such-option")
    assert (missing_fast.returncode, missing_fast.stderr) == (3, "error: no key 'nope'\n")
    assert missing_typer.returncode == 2, "an unknown option must still reach typer's error"


def test_serve_takes_the_same_options_as_the_hubs_own_command() -> None:
    """`statehub serve` (typer) and `python -m statehub.hub` (argparse) declare the same options."""
    import typer.main

    from statehub.cli.app import app
    from statehub.hub.command import parser

    serve = typer.main.get_command(app).commands["serve"]
    typer_options = {option for param in serve.params for option in param.opts}
    hub_options = {option for action in parser()._actions for option in action.option_strings}
    assert typer_options == hub_options - {"-h", "--help"}


def test_serve_runs_the_hub_on_the_global_data_dir_and_stops_on_sigterm(tmp_path: Path) -> None:
    """`statehub --data-dir D serve` serves D (hub.json appears there, a client reads it) and exits 0 on SIGTERM."""
    import signal
    import subprocess
    import sys

    from statehub import Client
    from statehub.testing import READY_MARK, wait_until

    data_dir = tmp_path / "served"
    log = tmp_path / "hub.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "statehub.cli", "--data-dir", str(data_dir), "serve", "--heartbeat", "0.2"],
            stderr=stderr,
            env=cli_env(),
        )
        try:
            assert wait_until(lambda: READY_MARK in log.read_text(), 20), log.read_text()
            with Client(data_dir, timeout=2.0) as client:
                assert client.set("served.by", "serve").rev == 1
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(20)
    assert code == 0, log.read_text()
    assert not (data_dir / "hub.json").exists()


def test_help_looks_alike_everywhere_and_ends_with_the_exit_codes(tmp_path: Path) -> None:
    """serve's help is typer's like every command's, and each help lists every exit code of the error tree."""
    from statehub.hub.errors import ERROR_CLASSES

    for command in (["serve"], ["set"], ["secret", "set"], ["ingest-eds"], ["sync-file"]):
        shown = run_cli(tmp_path, *command, "--help").stdout
        assert shown.startswith(f"Usage: python -m statehub.cli {' '.join(command)} [OPTIONS]"), shown
        flat = " ".join(shown.split())
        assert "Exit codes: 0 ok, 1 other error, 2 bad input" in flat, flat
        assert all(f" {cls.exit_code} " in flat.split("Exit codes:")[1] for cls in ERROR_CLASSES)


def test_a_file_the_command_cannot_write_is_one_error_line_and_exit_1(hub: HubProcess, tmp_path: Path) -> None:
    """An OSError is reported like any error (the path and the reason), not as a traceback."""
    (tmp_path / "a-file").write_text("")
    result = run_cli(hub.data_dir, "export", "--output", str(tmp_path / "a-file" / "state.json"))
    assert result.returncode == 1
    assert result.stderr == f"error: {tmp_path / 'a-file'}: File exists\n"
