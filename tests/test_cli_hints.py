"""Every hint matches its cause: the CLI's `error:` and `hint:` lines for the causes that used to share one.

Also what the CLI does with a remote hub where only the hub's machine can act
(snapshots, restore), restore's order of checks and its file mode, and a user
who may not open the hub's data dir (run as another user with setpriv, as root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from statehub.hub.paths import Layout, read_hub_info
from statehub.testing import HubProcess, wait_until
from tests.conftest import cli_env, run_cli

OTHER_UID = 65534  # nobody
SECURITY_DOC = "docs/security.md, File permissions"


def mirror_holds(hub: HubProcess, key: str) -> bool:
    mirror = Layout(hub.data_dir).mirror
    return mirror.exists() and f"\n{key} = " in mirror.read_text(encoding="utf-8")


def test_set_queue_of_a_secret_says_to_start_the_hub_not_to_add_queue(hub: HubProcess) -> None:
    """A secret is never queued: with the hub down, `set --queue` on one hints to start the hub, then write again."""
    made = run_cli(hub.data_dir, "secret", "set", "db.password", input="s3cret\n")
    assert made.returncode == 0, made.stderr
    assert wait_until(lambda: mirror_holds(hub, "db.password"))
    pid = hub.pid
    hub.kill()
    result = run_cli(hub.data_dir, "set", "--queue", "db.password", "x")
    assert result.returncode == 5
    assert result.stderr.splitlines() == [
        f"error: the hub is not running ({hub.data_dir / 'hub.json'} names pid {pid}, which has exited); "
        "'db.password' is a secret and secrets are never queued (the inbox is plaintext); nothing was written",
        "hint: start it with `statehub serve`, then write it again",
    ]
    assert not (hub.data_dir / "inbox").exists() or not any((hub.data_dir / "inbox").glob("*.json"))


def test_restore_refuses_a_running_hub_before_asking_anything(hub: HubProcess) -> None:
    """With the hub running, `restore` names it and says to stop it, without a confirmation prompt."""
    assert run_cli(hub.data_dir, "snapshot", "create", "--name", "good").returncode == 0
    result = run_cli(hub.data_dir, "restore", "good", input="y\n")
    assert result.returncode == 1
    assert "Replace the store" not in result.stdout
    assert result.stderr.splitlines() == [
        f"error: a hub (pid {hub.pid}) is serving {hub.data_dir}: restore replaces its store, so it cannot run "
        "while the hub does",
        "hint: stop the hub (Ctrl-C, or `systemctl stop statehub`), then run the same restore again",
    ]
    with hub.client() as client:
        assert client.status().rev == 0  # served all along, store untouched


def test_restore_makes_an_owner_only_store_whatever_the_umask(hub: HubProcess) -> None:
    """The restored state.db (and its WAL files) are 0600 from the start, even under umask 022."""
    with hub.client() as client:
        client.set("plant.rate", 30)
    assert run_cli(hub.data_dir, "snapshot", "create", "--name", "good").returncode == 0
    assert hub.terminate() == 0
    result = subprocess.run(
        [sys.executable, "-m", "statehub.cli", "--data-dir", str(hub.data_dir), "restore", "good", "--yes"],
        capture_output=True,
        text=True,
        timeout=60,
        env=cli_env(),
        preexec_fn=lambda: os.umask(0o022),
    )
    assert result.returncode == 0, result.stderr
    store = Layout(hub.data_dir).store
    modes = {p.name: p.stat().st_mode & 0o777 for p in store.parent.glob("state.db*") if "replaced" not in p.name}
    assert modes and set(modes.values()) == {0o600}, modes


def test_snapshot_and_restore_commands_refuse_a_remote_hub(tmp_path: Path) -> None:
    """Snapshots and the store live on the hub's machine: with --hub these commands refuse and say what works."""
    with HubProcess(tmp_path / "data", args=["--tcp"]) as hub:
        info = read_hub_info(Layout(hub.data_dir))
        assert info is not None
        rpc = info.rpc
        here = tmp_path / "client-machine"
        env = cli_env(STATEHUB_CONFIG_DIR=str(tmp_path / "config"))
        created = run_cli(here, "--hub", rpc, "snapshot", "create", env=env)
        rolled = run_cli(here, "--hub", rpc, "rollback", "good", env=env)
        restored = run_cli(here, "--hub", rpc, "restore", "good", "--yes", env=env)
    assert created.returncode == 2
    assert created.stderr.splitlines() == [
        "error: `statehub snapshot create` works on the files in the hub's data dir, on the hub's machine, and "
        "this client talks to a remote hub",
        "hint: run it on the hub's machine, or save the state on this machine with `statehub export -o FILE`",
    ]
    assert rolled.returncode == 2 and rolled.stderr.splitlines()[1] == (
        "hint: run it on the hub's machine, or go back to a revision from here with `statehub rollback --to-rev R`"
    )
    assert restored.returncode == 2 and "`statehub restore` works on the files in the hub's data dir" in restored.stderr
    assert not here.exists()  # nothing written on the client's machine


def test_a_hub_that_exits_at_start_is_reported_at_once_with_its_log(tmp_path: Path) -> None:
    """HubProcess.start raises as soon as the hub exits (its exit code and log), not after its timeout."""
    with pytest.raises(RuntimeError) as failed:
        HubProcess(tmp_path / "data", args=["--listen", "ipc:///nowhere"]).start(timeout=600)
    assert "hub exited with 1; log:" in str(failed.value)
    assert "is not a tcp://HOST:PORT endpoint" in str(failed.value)


# --- a user who may not open the hub's data dir --------------------------------------------------------


def _other_user_can_run_python() -> bool:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return False
    probe = subprocess.run(
        ["setpriv", f"--reuid={OTHER_UID}", f"--regid={OTHER_UID}", "--clear-groups", sys.executable, "-c", "import statehub.cli"],
        capture_output=True,
        timeout=60,
        cwd="/",
    )
    return probe.returncode == 0


as_another_user = pytest.mark.skipif(
    not _other_user_can_run_python(), reason="needs root and setpriv to run the CLI as another user"
)


@pytest.fixture
def open_base() -> Iterator[Path]:
    """A folder every user may enter (pytest's own is root's alone), for a data dir that is closed by itself."""
    base = Path(tempfile.mkdtemp(prefix="statehub-perm-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def run_as_other_user(data_dir: Path, *args: str, groups: str = "") -> subprocess.CompletedProcess[str]:
    """``statehub --data-dir DATA_DIR ARGS`` as uid 65534, in ``groups`` (comma-separated gids) or none."""
    group_option = [f"--groups={groups}"] if groups else ["--clear-groups"]
    return subprocess.run(
        ["setpriv", f"--reuid={OTHER_UID}", f"--regid={OTHER_UID}", *group_option,
         sys.executable, "-m", "statehub.cli", "--data-dir", str(data_dir), *args],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        env=cli_env(STATEHUB_CONFIG_DIR="/nonexistent/statehub-config", HOME="/nonexistent"),
    )


@as_another_user
def test_a_user_who_may_not_open_the_data_dir_is_told_who_owns_it(open_base: Path) -> None:
    """get, list, set, status by another user: one line naming the data dir, its owner and mode; run as the owner."""
    import pwd

    owner = pwd.getpwuid(os.geteuid()).pw_name
    other = pwd.getpwuid(OTHER_UID).pw_name
    with HubProcess(open_base / "data") as hub:
        with hub.client() as client:
            client.set("plant.rate", 30)
        problem = f"this user ({other}) may not use the hub's data dir: {hub.data_dir} belongs to {owner} (mode 0700)"
        hint = (
            f"hint: run the command as {owner} (`sudo -u {owner} statehub ...`); to let others read the mirror "
            f"while the hub runs as {owner}, see {SECURITY_DOC}"
        )
        for command in (["get", "plant.rate"], ["list"], ["status"]):
            result = run_as_other_user(hub.data_dir, *command)
            assert (result.returncode, result.stderr.splitlines()) == (5, [f"error: {problem}", hint]), command
        written = run_as_other_user(hub.data_dir, "set", "plant.rate", "31")
        assert written.returncode == 5
        assert written.stderr.splitlines() == [f"error: {problem}; nothing was written", hint]


@as_another_user
def test_a_group_member_reads_the_shared_mirror_and_is_told_why_not_the_hub(open_base: Path) -> None:
    """With --mirror-mode 0640, a group member's `get` shows the mirror, naming the socket it may not use."""
    import pwd

    owner = pwd.getpwuid(os.geteuid()).pw_name
    data = open_base / "data"
    ipc = ["--rpc", f"ipc://{data}/rpc.sock", "--events", f"ipc://{data}/events.sock"]  # a socket file, also under STATEHUB_TEST_TCP
    with HubProcess(data, args=["--mirror-mode", "0640", *ipc]) as hub:
        with hub.client() as client:
            client.set("plant.rate", 30)
        assert wait_until(lambda: mirror_holds(hub, "plant.rate"))
        group = str(hub.data_dir.stat().st_gid)
        result = run_as_other_user(hub.data_dir, "get", "plant.rate", groups=group)
        socket = hub.data_dir / "rpc.sock"
        mode = socket.stat().st_mode & 0o777
        assert result.returncode == 0 and result.stdout == "30\n", result.stderr
        warning = result.stderr.strip()
        assert warning.startswith(
            f"warning: this user ({pwd.getpwuid(OTHER_UID).pw_name}) may not connect to the hub: {socket} belongs "
            f"to {owner} (mode {mode:04o}); showing the mirror at revision 1, "
        )
        assert f"run the command as {owner} (`sudo -u {owner} statehub ...`)" in warning
        written = run_as_other_user(hub.data_dir, "set", "plant.rate", "31", groups=group)
        assert written.returncode == 5 and "may not connect to the hub" in written.stderr
        assert "--queue" not in written.stderr
