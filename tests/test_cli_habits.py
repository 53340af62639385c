"""The habits users bring from etcdctl, redis-cli and nats kv, driven through the real statehub command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from statehub.cli.argv import normalised
from statehub.cli.typed_value import typed_value
from statehub.testing import HubProcess

from .conftest import cli_env, run_cli


def statehub(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """``statehub ARGS`` exactly as given (no --data-dir put in front)."""
    return subprocess.run(
        [sys.executable, "-m", "statehub.cli", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=cli_env(),
        input=input,
    )


def values_of(hub: HubProcess) -> dict[str, object]:
    items = json.loads(run_cli(hub.data_dir, "list", "--json").stdout)["items"]
    return {item["key"]: item["value"] for item in items}


# --- the command line's shape -----------------------------------------------------------------


def test_global_options_are_moved_before_the_command_and_values_that_look_like_options_stay() -> None:
    """Global options after the command move in front; a command's own option of that name and option values stay."""
    from typer.main import get_command

    from statehub.cli.app import app

    root = get_command(app)
    assert normalised(root, ["get", "k", "--data-dir", "D"]) == ["--data-dir", "D", "get", "k"]
    assert normalised(root, ["status", "--timeout=5", "--json"]) == ["--timeout=5", "status", "--json"]
    assert normalised(root, ["serve", "--data-dir", "D"]) == ["serve", "--data-dir", "D"]
    assert normalised(root, ["set", "k", "--file", "--data-dir"]) == ["set", "--file", "--data-dir", "k"]
    assert normalised(root, ["set", "k", "-5", "--type", "int"]) == ["set", "--type", "int", "--", "k", "-5"]
    assert normalised(root, ["set", "--", "k", "--data-dir"]) == ["set", "--", "k", "--data-dir"]
    assert normalised(root, ["snapshot", "show", "a", "--debug"]) == ["--debug", "snapshot", "show", "a"]


def test_global_options_work_after_the_command_against_a_real_hub(hub: HubProcess) -> None:
    """`statehub set k v --data-dir D` and `statehub status --timeout 5 --data-dir D` reach the hub at D."""
    directory = str(hub.data_dir)
    assert statehub("set", "plant.rate", "30", "--data-dir", directory).returncode == 0
    assert statehub("get", "plant.rate", "--data-dir", directory, "--timeout", "5").stdout == "30\n"
    status = statehub("status", "--timeout", "5", "--json", "--data-dir", directory)
    assert json.loads(status.stdout)["rev"] == 1


def test_a_negative_number_is_a_value_and_double_dash_still_works(hub: HubProcess) -> None:
    """`set plant.offset -5` stores -5, and `set -- k -6` stores -6."""
    result = run_cli(hub.data_dir, "set", "plant.offset", "-5")
    assert (result.returncode, result.stdout) == (0, "plant.offset = -5  (revision 1)\n")
    run_cli(hub.data_dir, "set", "--", "plant.low", "-6.5")
    assert values_of(hub) == {"plant.offset": -5, "plant.low": -6.5}


def test_version_prints_the_package_version() -> None:
    """`statehub --version` prints `statehub X.Y.Z` and exits 0."""
    from statehub import __version__

    result = statehub("--version")
    assert (result.returncode, result.stdout) == (0, f"statehub {__version__}\n")


def test_shell_completion_is_offered() -> None:
    """The installed `statehub --show-completion bash` prints a completion script naming the command."""
    script = Path(sys.executable).parent / "statehub"
    result = subprocess.run(
        [str(script), "--show-completion", "bash"], capture_output=True, text=True, timeout=30, env=cli_env()
    )
    assert result.returncode == 0 and "_STATEHUB_COMPLETE" in result.stdout


def test_help_shows_arguments_in_capitals() -> None:
    """The pinned typer renders `KEY [VALUE]`, not `{key}` placeholders."""
    assert "set [OPTIONS] KEY [VALUE]" in statehub("set", "--help").stdout


# --- typed input ----------------------------------------------------------------------------


def test_a_typed_value_keeps_the_keys_type_and_notes_what_does_not_print_back() -> None:
    """The key's current type wins when the text parses as it; 1.10 comes with a note; --type refuses a mismatch."""
    from statehub import InvalidRequest

    assert typed_value("30", current="29").value == "30"
    assert typed_value("31", current=30).value == 31
    assert typed_value("abc", current=30).note.startswith("the key held an int")
    assert typed_value("1.10").value == 1.1 and "1.1" in typed_value("1.10").note
    assert typed_value("1.5").note == ""
    assert typed_value("true", type_name="str").value == "true"
    assert typed_value(" 7 ", type_name="int").value == 7
    with pytest.raises(InvalidRequest, match="'x' is not an int"):
        typed_value("x", type_name="int")


def test_set_of_a_strings_own_output_keeps_it_a_string(hub: HubProcess) -> None:
    """`set k "$(statehub get k)"` keeps "30" a string, and the echo shows the stored value as JSON."""
    from statehub import Client
    from statehub.testing import wait_until

    run_cli(hub.data_dir, "set", "plant.code", "30", "--type", "str")
    with Client(hub.data_dir) as client:  # the key's type is read from the mirror, a moment behind the hub
        assert wait_until(lambda: "plant.code" in client.read_mirror().items)
    again = run_cli(hub.data_dir, "set", "plant.code", run_cli(hub.data_dir, "get", "plant.code").stdout.strip())
    assert again.stdout == 'plant.code = "30"  (revision 2)\n'
    note = run_cli(hub.data_dir, "set", "v", "1.10")
    assert note.stderr == "note: '1.10' is stored as 1.1 (give --type str to keep the text as typed)\n"
    bad = run_cli(hub.data_dir, "set", "n", "x", "--type", "int")
    assert (bad.returncode, bad.stderr.splitlines()[0]) == (2, "error: 'x' is not an int")
    assert values_of(hub) == {"plant.code": "30", "v": 1.1}


def test_set_reads_the_value_from_stdin_or_a_file(hub: HubProcess, tmp_path: Path) -> None:
    """`set k -` reads stdin and `set k --file F` the file, one trailing newline dropped."""
    run_cli(hub.data_dir, "set", "a", "-", input="[1, 2]\n")
    (tmp_path / "motd").write_text("hello\nworld\n")
    run_cli(hub.data_dir, "set", "b", "--file", str(tmp_path / "motd"))
    assert values_of(hub) == {"a": [1, 2], "b": "hello\nworld"}


# --- habits ---------------------------------------------------------------------------------


def test_unset_prefix_removes_a_subtree_in_one_revision_after_confirmation(hub: HubProcess) -> None:
    """`unset --prefix P` asks, and on yes removes every key under P as one revision; no leaves all."""
    for key in ("plant.a", "plant.b", "other"):
        run_cli(hub.data_dir, "set", key, "1")
    refused = run_cli(hub.data_dir, "unset", "--prefix", "plant.", input="n\n")
    assert refused.returncode == 1 and "Unset 2 keys starting with 'plant.'" in refused.stderr
    assert len(values_of(hub)) == 3
    done = run_cli(hub.data_dir, "unset", "--prefix", "plant.", "--yes", "--json")
    assert json.loads(done.stdout) | {"epoch": ""} == {"prefix": "plant.", "count": 2, "rev": 4, "epoch": ""}
    assert values_of(hub) == {"other": 1}


def test_list_keys_only_limit_and_count(hub: HubProcess) -> None:
    """`list --keys-only --limit 2` prints two keys, `count PREFIX` the number under it."""
    for key in ("p.a", "p.b", "p.c", "q"):
        run_cli(hub.data_dir, "set", key, "1")
    assert run_cli(hub.data_dir, "list", "p.", "--keys-only", "--limit", "2").stdout == "p.a\np.b\n"
    data = json.loads(run_cli(hub.data_dir, "list", "--keys-only", "--limit", "3", "--json").stdout)
    assert (data["items"], data["truncated"]) == (["p.a", "p.b", "p.c"], True)
    assert run_cli(hub.data_dir, "count", "p.").stdout == "3\n"
    assert json.loads(run_cli(hub.data_dir, "count", "--json").stdout)["count"] == 4


def test_named_snapshots_are_not_replaced_without_force_and_can_be_deleted(hub: HubProcess) -> None:
    """`snapshot create --name N` twice is refused (exit 2) unless --force; `snapshot delete N` removes it."""
    run_cli(hub.data_dir, "set", "a", "1")
    assert run_cli(hub.data_dir, "snapshot", "create", "--name", "before").returncode == 0
    again = run_cli(hub.data_dir, "snapshot", "create", "--name", "before")
    assert (again.returncode, again.stderr.splitlines()[0]) == (2, "error: a snapshot named 'before' exists already")
    assert run_cli(hub.data_dir, "snapshot", "create", "--name", "before", "--force").returncode == 0
    shown = json.loads(run_cli(hub.data_dir, "snapshot", "show", "before", "--json").stdout)
    assert shown["values"] == {"a": 1}
    assert run_cli(hub.data_dir, "snapshot", "delete", "before").returncode == 0
    assert run_cli(hub.data_dir, "snapshot", "delete", "before").returncode == 3


@pytest.mark.parametrize(
    "command",
    [("snapshot", "show", "nope"), ("rollback", "nope"), ("history", "nope"), ("get", "nope"), ("restore", "nope", "--yes")],
)
def test_not_found_is_exit_3_everywhere(hub: HubProcess, command: tuple[str, ...]) -> None:
    """A missing snapshot or key is exit 3 with one error line, whatever the command."""
    result = run_cli(hub.data_dir, *command)
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith("error: no ")


def test_with_json_an_error_is_one_json_object_on_stderr(hub: HubProcess) -> None:
    """`get nope --json` prints {"error": {code, message, hint}} on stderr and exits 3, on both get paths."""
    for args in (("get", "nope", "--json"), ("--timeout", "2", "get", "--json", "nope")):
        result = run_cli(hub.data_dir, *args)
        assert result.returncode == 3
        assert json.loads(result.stderr) == {"error": {"code": "not_found", "message": "no key 'nope'", "hint": None}}
    conflict = run_cli(hub.data_dir, "set", "k", "1", "--expect-rev", "5", "--json")
    error = json.loads(conflict.stderr)["error"]
    assert (conflict.returncode, error["code"]) == (4, "conflict") and error["hint"]


def test_rollback_json_lists_changes_as_objects(hub: HubProcess) -> None:
    """`rollback --to-rev R --json` gives each change as {key, op, old, new, existed}."""
    run_cli(hub.data_dir, "set", "a", "1")
    run_cli(hub.data_dir, "set", "a", "2")
    data = json.loads(run_cli(hub.data_dir, "rollback", "--to-rev", "1", "--json").stdout)
    assert data["changes"] == [{"key": "a", "op": "set", "old": 2, "existed": True, "new": 1}]
    assert data["applied"] is True


def test_import_reads_stdin_and_plain_documents(hub: HubProcess, tmp_path: Path) -> None:
    """`import -` reads a plain {"key": value} JSON document from stdin; a plain TOML file works too."""
    assert run_cli(hub.data_dir, "import", "-", input='{"plant.rate": 30, "plant.name": "x"}').returncode == 0
    (tmp_path / "more.toml").write_text('"plant.unit" = "MGD"\n')
    assert run_cli(hub.data_dir, "import", str(tmp_path / "more.toml")).returncode == 0
    assert values_of(hub) == {"plant.name": "x", "plant.rate": 30, "plant.unit": "MGD"}


def test_export_json_and_watch_prints_each_status_line_once(hub: HubProcess) -> None:
    """`export --json` is the state as JSON; `watch` shows its own line when the hub goes down, not a log line too."""
    run_cli(hub.data_dir, "set", "a", "1")
    assert json.loads(run_cli(hub.data_dir, "export", "--json").stdout)["values"] == {"a": 1}
    watch = subprocess.Popen(
        [sys.executable, "-m", "statehub.cli", "--data-dir", str(hub.data_dir), "watch", "--count", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    try:
        assert watch.stderr is not None
        assert watch.stderr.readline().startswith("# watching")
        hub.kill()
        down = watch.stderr.readline()
        assert down.startswith("# hub down"), down
        hub.start()
        run_cli(hub.data_dir, "set", "b", "2")
        out, err = watch.communicate(timeout=30)
    finally:
        watch.kill()
        watch.wait()
    assert out.startswith("[2] b = 2")
    assert "hub down" not in err


def test_web_tokens_report_errors_like_every_command(tmp_path: Path) -> None:
    """`statehub web token revoke` of an unknown name is exit 3, as one JSON error object with --json."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    plain = statehub("web", "token", "revoke", "nobody", "--data-dir", str(data))
    assert (plain.returncode, plain.stderr.splitlines()[0]) == (3, "error: no token named 'nobody'")
    created = statehub("--data-dir", str(data), "web", "token", "create", "panel", "--role", "read", "--json")
    assert json.loads(created.stdout)["role"] == "read"
    listed = statehub("web", "token", "list", "--json", "--data-dir", str(data))
    assert [row["name"] for row in json.loads(listed.stdout)] == ["panel"]
    bad = statehub("--data-dir", str(data), "web", "token", "create", "x", "--role", "admin", "--json")
    assert (bad.returncode, json.loads(bad.stderr)["error"]["code"]) == (2, "invalid")


def test_every_command_that_prints_data_takes_json() -> None:
    """Each command takes --json but the long-running ones and the bare acknowledgements."""
    import click
    from typer.main import get_command

    from statehub.cli.app import app

    exempt = {"serve", "gui", "sync-file", "web", "follow-sites", "keys add", "keys remove", "web token revoke"}
    missing = []

    def walk(command: click.Command, path: list[str]) -> None:
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])
            if not command.invoke_without_command:
                return
        options = {name for param in command.params for name in getattr(param, "opts", [])}
        if "--json" not in options and " ".join(path) not in exempt:
            missing.append(" ".join(path))

    walk(get_command(app), [])
    assert missing == []


def test_local_times_name_their_zone() -> None:
    """A local time for an operator's screen ends with the zone's name, never bare."""
    import time

    from statehub import local_when_text

    shown = local_when_text(1_800_000_000.0)
    assert shown.endswith(" " + time.strftime("%Z", time.localtime(1_800_000_000.0)))


def test_long_work_shows_progress_on_a_terminal_and_nothing_in_a_pipe(hub: HubProcess, tmp_path: Path) -> None:
    """`import` draws its spinner when stderr is a terminal; in a pipe stderr stays empty."""
    import os
    import pty

    document = tmp_path / "big.json"
    document.write_text(json.dumps({f"bulk.k{i}": i for i in range(500)}))
    piped = run_cli(hub.data_dir, "import", str(document))
    assert (piped.returncode, piped.stderr) == (0, "")
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "statehub.cli", "--data-dir", str(hub.data_dir), "import", str(document), "--replace"],
            stdout=subprocess.PIPE,
            stderr=follower,
            text=True,
            env=cli_env(TERM="xterm", COLUMNS="100"),
        )
        os.close(follower)
        follower = -1
        shown = b""
        while True:  # bounded: the child closes the terminal when it exits
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
        out, _ = process.communicate(timeout=30)
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)
    assert process.returncode == 0
    assert "nothing to change" in out
    assert b"reading" in shown
