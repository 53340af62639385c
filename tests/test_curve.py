"""Network access over CURVE (`serve --listen`), the allow-list CLI, and owner-only files.

Every hub here listens on 127.0.0.1 only; the remote clients are real CURVE clients.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
import zmq

from statehub.client import Client
from statehub.hub.errors import HubUnavailable
from statehub.hub.paths import Layout
from statehub.remote import Remote, resolve_remote
from statehub.subscription import Subscription, Update
from statehub.testing import HubProcess, wait_until
from tests.conftest import cli_env, run_cli

# A refused handshake looks like silence: wait this long for a reply that never comes.
REFUSED_WITHIN_MS = 1000
pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="this libzmq has no CURVE")


@dataclass
class RemoteHub:
    hub: HubProcess
    rpc: str
    events: str
    server_key: str
    client_public: str
    config_dir: Path

    def env(self) -> dict[str, str]:
        return cli_env(STATEHUB_CONFIG_DIR=str(self.config_dir))

    def options(self) -> list[str]:
        return ["--hub", self.rpc, "--hub-events", self.events, "--server-key", self.server_key]

    def remote(self) -> Remote:
        remote = resolve_remote(self.rpc, self.events, self.server_key)
        assert remote is not None
        return remote

    def client(self, tmp_path: Path) -> Client:
        # A data dir of its own: a remote client must not touch the hub's files.
        return Client(
            tmp_path / "elsewhere", hub=self.rpc, events=self.events, server_key=self.server_key, timeout=1.0
        )


@pytest.fixture
def remote_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RemoteHub]:
    monkeypatch.setenv("STATEHUB_CONFIG_DIR", str(tmp_path / "client-config"))
    with started_remote_hub(tmp_path) as remote:
        yield remote


@contextlib.contextmanager
def started_remote_hub(tmp_path: Path) -> Iterator[RemoteHub]:
    """A hub with --listen on 127.0.0.1, and a client key pair (made by the CLI) on its allow-list."""
    config_dir = tmp_path / "client-config"
    env = cli_env(STATEHUB_CONFIG_DIR=str(config_dir))
    made = run_cli(tmp_path / "unused", "keys", "init", "--json", env=env)
    assert made.returncode == 0, made.stderr
    public = json.loads(made.stdout)["public_key"]
    with HubProcess(tmp_path / "data", args=["--listen", "tcp://127.0.0.1:*"]) as hub:
        info = json.loads(Layout(hub.data_dir).hub_file.read_text())
        # "--": a Z85 key may start with "-" (1 in 85), which the parser would take for an option.
        added = run_cli(hub.data_dir, "keys", "add", "laptop", "--", public)
        assert added.returncode == 0, added.stderr
        yield RemoteHub(
            hub, info["listen_rpc"], info["listen_events"], info["server_key"], public, config_dir
        )


def _ask_status(
    rpc: str, *, server_key: bytes | None, keys: tuple[bytes, bytes] | None
) -> dict[str, object] | None:
    """One status request on a fresh REQ; None when no reply comes (refused handshakes are silent)."""
    with zmq.Context() as context, context.socket(zmq.REQ) as sock:
        sock.setsockopt(zmq.LINGER, 0)
        if server_key is not None and keys is not None:
            sock.setsockopt(zmq.CURVE_SERVERKEY, server_key)
            sock.setsockopt(zmq.CURVE_PUBLICKEY, keys[0])
            sock.setsockopt(zmq.CURVE_SECRETKEY, keys[1])
        sock.connect(rpc)
        sock.send(msgspec.msgpack.encode({"type": "status", "v": 1}))
        if not sock.poll(REFUSED_WITHIN_MS):
            return None
        reply: dict[str, object] = msgspec.msgpack.decode(sock.recv())
        return reply


def test_an_allowed_client_reads_writes_and_follows_changes(remote_hub: RemoteHub, tmp_path: Path) -> None:
    """A client whose key is allow-listed gets and sets over CURVE, and its subscription sees changes."""
    with remote_hub.client(tmp_path) as client:
        assert client.set("plant.rate", 30).rev == 1
        reading = client.get("plant.rate")
        assert (reading.value, reading.origin.from_mirror) == (30, False)
    with Subscription(
        tmp_path / "elsewhere", prefix="plant.", timeout=1.0, remote=remote_hub.remote()
    ) as sub:
        first = sub.next_event(timeout=10)
        assert first is not None and sub.items["plant.rate"].value == 30
        with remote_hub.hub.client() as local:  # a local write reaches the remote subscriber too
            local.set("plant.rate", 31)
        update = sub.next_event(timeout=10)
        assert isinstance(update, Update) and update.changes[0].value == 31
    assert "admitted remote client 'laptop' from 127.0.0.1" in remote_hub.hub.log


def test_strangers_are_refused_and_logged_while_the_allowed_client_is_served(
    remote_hub: RemoteHub, tmp_path: Path
) -> None:
    """An unknown key, a client without CURVE and one with a wrong server key get nothing; the hub logs
    each refusal and keeps serving the allowed client meanwhile."""
    server_key = remote_hub.server_key.encode()
    stranger = zmq.curve_keypair()
    assert _ask_status(remote_hub.rpc, server_key=server_key, keys=stranger) is None
    assert _ask_status(remote_hub.rpc, server_key=None, keys=None) is None
    assert _ask_status(remote_hub.rpc, server_key=zmq.curve_keypair()[0], keys=stranger) is None
    with remote_hub.client(tmp_path) as client:
        for i in range(20):
            client.set("served.n", i)
        assert client.get("served.n").value == 19
    log = remote_hub.hub.log
    assert wait_until(lambda: "wrong server key" in remote_hub.hub.log, timeout=5), log
    log = remote_hub.hub.log
    assert f"refused a remote client with key {stranger[0].decode()} from 127.0.0.1" in log
    assert "does not use CURVE" in log
    assert "WARNING statehub.hub.access: refused a remote client on tcp://127.0.0.1:" in log
    assert stranger[1].decode() not in log  # never a secret key


def test_a_wrong_server_key_is_named_as_the_cause(remote_hub: RemoteHub, tmp_path: Path) -> None:
    """With a wrong server key the CLI exits 5 at once, blaming the key, and says where to check it."""
    wrong = ["--timeout", "30", "--hub", remote_hub.rpc, "--server-key", zmq.curve_keypair()[0].decode()]
    result = run_cli(tmp_path / "elsewhere", *wrong, "get", "plant.rate", env=remote_hub.env())
    assert result.returncode == 5
    assert result.stderr.splitlines() == [
        f"error: the CURVE handshake with the hub at {remote_hub.rpc} failed: the server key given is most "
        "likely not this hub's",
        "hint: compare it with `statehub keys show-server` on the hub (the hub logs this as a wrong server key)",
    ]


def test_a_key_off_the_allow_list_is_told_how_to_get_on_it(remote_hub: RemoteHub, tmp_path: Path) -> None:
    """A client whose key the hub refuses hears so at once, with the `keys add` line to run on the hub."""
    assert run_cli(remote_hub.hub.data_dir, "keys", "remove", "laptop").returncode == 0
    result = run_cli(
        tmp_path / "elsewhere", "--timeout", "30", *remote_hub.options(), "set", "a", "1", env=remote_hub.env()
    )
    assert result.returncode == 5
    assert result.stderr.splitlines() == [
        f"error: the hub at {remote_hub.rpc} refused this client's key {remote_hub.client_public}: it is not on "
        "the hub's allow-list; nothing was written",
        f"hint: allow it on the hub, as the hub's user: statehub keys add NAME -- '{remote_hub.client_public}'",
    ]


def test_a_curve_listener_reached_without_a_server_key_asks_for_one(remote_hub: RemoteHub, tmp_path: Path) -> None:
    """A loopback --hub that is really a CURVE listener is named as one, not as a hub to start."""
    result = run_cli(tmp_path / "elsewhere", "--timeout", "30", "--hub", remote_hub.rpc, "status", env=remote_hub.env())
    assert result.returncode == 5
    assert result.stderr.splitlines() == [
        f"error: the hub at {remote_hub.rpc} requires CURVE (it is a `statehub serve --listen` endpoint), and "
        "this client has no server key for it",
        "hint: give the hub's public key with --server-key, $STATEHUB_SERVER_KEY or server_key in client.toml "
        "(print it on the hub with `statehub keys show-server`)",
    ]


def test_keys_add_list_remove_take_effect_without_a_restart(remote_hub: RemoteHub, tmp_path: Path) -> None:
    """`keys list` shows the allow-list; a removed key is refused on its next connection; re-added, it works."""
    listed = run_cli(remote_hub.hub.data_dir, "keys", "list", "--json")
    assert json.loads(listed.stdout) == [{"name": "laptop", "public_key": remote_hub.client_public}]
    assert run_cli(remote_hub.hub.data_dir, "keys", "remove", "laptop").returncode == 0
    with remote_hub.client(tmp_path) as client, pytest.raises(HubUnavailable):
        client.status()
    assert run_cli(remote_hub.hub.data_dir, "keys", "remove", "laptop").returncode == 3
    assert run_cli(remote_hub.hub.data_dir, "keys", "add", "laptop", "not-a-key").returncode == 2
    key_file = remote_hub.config_dir / "curve" / "client.key"
    assert run_cli(remote_hub.hub.data_dir, "keys", "add", "laptop", str(key_file)).returncode == 0
    with remote_hub.client(tmp_path) as client:
        assert client.status().rev == 0
    via_cli = run_cli(
        tmp_path / "elsewhere", *remote_hub.options(), "set", "cli.remote", "1", env=remote_hub.env()
    )
    assert via_cli.returncode == 0, via_cli.stderr


def test_show_server_prints_the_key_the_hub_announces(remote_hub: RemoteHub) -> None:
    """`keys show-server` prints the same public key the running hub puts in hub.json."""
    shown = run_cli(remote_hub.hub.data_dir, "keys", "show-server")
    assert shown.stdout.strip() == remote_hub.server_key


def test_listen_needs_a_tcp_endpoint(tmp_path: Path) -> None:
    """`serve --listen` with something other than tcp://HOST:PORT is refused with the expected form."""
    result = subprocess.run(
        [sys.executable, "-m", "statehub.hub", "--data-dir", str(tmp_path / "d"), "--listen", "ipc:///tmp/x"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "is not a tcp://HOST:PORT endpoint" in result.stderr


def test_a_remote_hub_without_a_server_key_is_refused_before_connecting(tmp_path: Path) -> None:
    """A non-loopback --hub without a server key is bad input (exit 2), with where to give the key."""
    result = run_cli(
        tmp_path, "--hub", "tcp://192.0.2.1:5555", "get", "a", env=cli_env(STATEHUB_CONFIG_DIR=str(tmp_path))
    )
    assert result.returncode == 2
    assert "needs its server key" in result.stderr


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_hub_files_are_owner_only(tmp_path: Path) -> None:
    """Data dir 0700; store, WAL, key files and mirror 0600; a looser data dir and store are tightened."""
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    (data / "state.db").touch(mode=0o644)
    (data / "state.db").chmod(0o644)
    with HubProcess(data, args=["--listen", "tcp://127.0.0.1:*"]) as hub:
        with hub.client() as client:
            client.set("a", 1)
        layout = Layout(data)
        assert wait_until(layout.mirror.exists)
        assert _mode(data) == 0o700
        for path in (layout.store, data / "state.db-wal", data / "state.db-shm", layout.mirror, layout.lock):
            assert _mode(path) == 0o600, path
        assert _mode(data / "curve") == 0o700
        for path in (data / "curve" / "server.key", data / "curve" / "server.key_secret"):
            assert _mode(path) == 0o600, path
        assert "was mode 0755; made it 0700" in hub.log
    made = run_cli(tmp_path, "keys", "init", env=cli_env(STATEHUB_CONFIG_DIR=str(tmp_path / "cfg")))
    assert made.returncode == 0
    assert _mode(tmp_path / "cfg" / "curve") == 0o700
    assert _mode(tmp_path / "cfg" / "curve" / "client.key_secret") == 0o600


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_a_shared_mirror_is_group_readable_and_nothing_else_is(tmp_path: Path) -> None:
    """--mirror-mode 0640: the mirror is 0640 and the data dir 0710 (traverse, not list); the store stays 0600."""
    with HubProcess(tmp_path / "data", args=["--mirror-mode", "0640"]) as hub:
        layout = Layout(hub.data_dir)
        assert wait_until(layout.mirror.exists)
        assert _mode(layout.mirror) == 0o640
        assert _mode(hub.data_dir) == 0o710
        assert _mode(layout.store) == 0o600


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777
