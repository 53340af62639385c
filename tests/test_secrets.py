"""Secrets: encrypted at rest, never shown, never overwritten by their placeholder, key rotation.

The leak test writes known secrets and greps every surface a value can reach
for their plaintext: the data dir (store, WAL, mirror, snapshots), exports,
the raw change stream, history, the hub's DEBUG log, CLI output (get, list,
watch, explain, status, history, secret list/get), error messages, the GUI's
table model and the synced file.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
import zmq

from statehub.hub.paths import Layout, read_hub_info
from statehub.hub.protocol import SECRET_PLACEHOLDER, Op
from statehub.hub.secret_box import is_sealed
from statehub.testing import HubProcess, wait_until
from tests.conftest import cli_env, run_cli

PASSWORD = "hunter2-Plant-Pw-7f3a9"
TOKEN = "tok-ZQX81-uniquely-greppable"
NEWER = "second-Pw-Q4k2-after-conflict"
PLAINTEXTS = (PASSWORD, TOKEN, NEWER)


def _leaks(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [secret for secret in PLAINTEXTS if secret.encode() in data]


def _files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class StreamCapture:
    """A raw SUB socket on the hub's events endpoint: every byte the change stream carries."""

    def __init__(self, data_dir: Path) -> None:
        info = read_hub_info(Layout(data_dir))
        assert info is not None
        self._context = zmq.Context()
        self._sub = self._context.socket(zmq.SUB)
        self._sub.setsockopt(zmq.LINGER, 0)
        self._sub.setsockopt(zmq.SUBSCRIBE, b"")
        self._sub.connect(info.events)
        self.frames: list[bytes] = []

    def wait_live(self, timeout: float = 10.0) -> bool:
        return wait_until(lambda: self.drain() or bool(self.frames), timeout)

    def drain(self) -> bool:
        got = False
        for _ in range(100_000):
            try:
                self.frames.extend(self._sub.recv_multipart(zmq.NOBLOCK))
                got = True
            except zmq.Again:
                break
        return got

    def close(self) -> None:
        self._context.destroy(linger=0)


def test_no_secret_plaintext_reaches_any_surface(tmp_path: Path) -> None:
    """Known secrets written by CLI and library appear nowhere but `secret get --reveal`."""
    data = tmp_path / "data"
    outputs: dict[str, str] = {}
    with HubProcess(data, args=["--log-level", "debug"]) as hub:
        capture = StreamCapture(data)
        assert capture.wait_live(), "the change stream never delivered a message"
        watch = subprocess.Popen(
            [sys.executable, "-m", "statehub.cli", "--data-dir", str(data), "watch"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(),
        )
        try:
            assert "# watching" in _first_line(watch, 15.0), "watch did not start"
            stored = run_cli(data, "secret", "set", "eds.password", input=PASSWORD + "\n")
            assert stored.returncode == 0, stored.stderr
            outputs["secret set"] = stored.stdout + stored.stderr
            with hub.client(source="library") as client:
                client.set("eds.url", "https://eds.example/api")
                client.set_secret("eds.token", TOKEN)
                client.set("plant.rate", 30)
                # a conflict on a secret: the error and its details must not carry the value
                with pytest.raises(Exception) as conflict:
                    client.txn([Op(op="set", key="eds.password", value="x", expect=99)])
                outputs["conflict error"] = str(conflict.value) + repr(getattr(conflict.value, "conflicts", ""))
            refused = run_cli(data, "secret", "set", "eds.password", "--expect-rev", "999", input=NEWER)
            assert refused.returncode == 4, refused.stderr
            outputs["secret set conflict"] = refused.stdout + refused.stderr
            for args in (
                ("get", "eds.password"),
                ("get", "eds.password", "--json"),
                ("list",),
                ("list", "--json"),
                ("explain", "eds.password"),
                ("status",),
                ("history", "eds.password"),
                ("history", "eds.password", "--json"),
                ("secret", "list"),
                ("secret", "list", "--json"),
                ("secret", "get", "eds.password"),
                ("export", "--format", "json"),
                ("export", "--format", "toml"),
                ("export", "--include-secrets"),
                ("snapshot", "create", "--name", "with-secrets"),
            ):
                result = run_cli(data, *args, env=cli_env(STATEHUB_EDS_PASSWORD=PASSWORD))
                assert result.returncode == 0, (args, result.stderr)
                outputs[" ".join(args)] = result.stdout + result.stderr
            revealed = run_cli(data, "secret", "get", "eds.password", "--reveal")
            assert revealed.stdout.strip() == PASSWORD, "the one surface that shows a secret must show it"
            gui_rows = _gui_rows(hub)
            outputs["gui table"] = json.dumps(gui_rows)
            assert wait_until(lambda: _mirror_has(data, "eds.token"), 10), "the mirror never showed the secret's key"
            capture.drain()
        finally:
            watch.send_signal(signal.SIGINT)
            try:
                outputs["watch"] = "".join(watch.communicate(timeout=10))
            except subprocess.TimeoutExpired:
                watch.kill()
                outputs["watch"] = "".join(watch.communicate())
            capture.close()
        outputs["hub log (debug)"] = hub.log
    surfaces = {f"data dir: {name}": blob for name, blob in _files_under(data).items()}
    surfaces.update({name: text.encode() for name, text in outputs.items()})
    surfaces["change stream"] = b"".join(capture.frames)
    leaks = {name: found for name, blob in surfaces.items() if (found := _leaks(blob))}
    assert leaks == {}, f"secret plaintext found in: {leaks}"
    # and the surfaces did see the secrets' keys, so the grep looked at the right things
    assert b"eds.password" in surfaces["change stream"] and SECRET_PLACEHOLDER.encode() in surfaces["change stream"]
    assert "eds.password" in outputs["watch"] and "eds.token" in outputs["list"]
    assert SECRET_PLACEHOLDER in (data / "state.txt").read_text()
    assert '"sealed"' in outputs["export --include-secrets"]
    assert len(surfaces) > 25


def _first_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stderr is not None
    ready, _, _ = select.select([process.stderr], [], [], timeout)
    return process.stderr.readline() if ready else ""


def _mirror_has(data: Path, key: str) -> bool:
    return f"\n{key} = " in (data / "state.txt").read_text()


def _gui_rows(hub: HubProcess) -> list[object]:
    from statehub.gui.model import row_for

    with hub.client() as client:
        return [repr(row_for(item)) for item in client.list().items]


def test_a_placeholder_written_back_never_overwrites_the_secret(tmp_path: Path) -> None:
    """`set KEY "<secret>"`, an import of a plain export and a txn with the placeholder all leave the secret as it is."""
    data = tmp_path / "data"
    with HubProcess(data) as hub, hub.client() as client:
        first = client.set_secret("db.password", PASSWORD)
        client.set("db.host", "10.0.0.5")
        exported = run_cli(data, "export", "--format", "toml", "-o", str(tmp_path / "state.toml"))
        assert exported.returncode == 0, exported.stderr
        assert run_cli(data, "set", "db.password", SECRET_PLACEHOLDER).returncode == 0
        client.txn([Op(op="set", key="db.password", value=SECRET_PLACEHOLDER), Op(op="set", key="db.host", value="h2")])
        imported = run_cli(data, "import", str(tmp_path / "state.toml"), "--json")
        assert imported.returncode == 0, imported.stderr
        reading = client.get("db.password", reveal=True)
        assert reading.value == PASSWORD and reading.item.rev == first.rev
        assert client.get("db.host").value == "10.0.0.5", "the import restored the plain key next to the secret"
        # the placeholder is no value of its own: on a key that is no secret it is refused
        refused = run_cli(data, "set", "plant.name", SECRET_PLACEHOLDER)
        assert refused.returncode == 2 and "is not a secret" in refused.stderr


def test_a_plain_set_of_a_secret_keeps_it_secret(tmp_path: Path) -> None:
    """A later plain write to a secret's key (say from the GUI) is encrypted too, never shown."""
    data = tmp_path / "data"
    with HubProcess(data) as hub, hub.client() as client:
        client.set_secret("db.password", PASSWORD)
        client.set("db.password", NEWER)
        assert client.get("db.password").value == SECRET_PLACEHOLDER
        assert client.get("db.password", reveal=True).value == NEWER
        versions = client.history("db.password")
        assert [v.secret for v in versions] == [True, True]
        assert all(SECRET_PLACEHOLDER in (v.value, v.prev_value) for v in versions)
        client.unset("db.password")
        client.set("db.password", "now-plain")
        assert client.get("db.password").value == "now-plain", "after unset the key starts plain again"


def test_sealed_export_imports_back_and_rotation_retires_the_old_key(tmp_path: Path) -> None:
    """--include-secrets exports tokens that import back; rotate-key re-encrypts all and old tokens stop working."""
    data = tmp_path / "data"
    with HubProcess(data) as hub, hub.client() as client:
        client.set_secret("db.password", PASSWORD)
        sealed_file = tmp_path / "sealed.json"
        assert run_cli(data, "export", "--include-secrets", "-o", str(sealed_file)).returncode == 0
        client.set("db.password", NEWER)
        imported = run_cli(data, "import", str(sealed_file))
        assert imported.returncode == 0, imported.stderr
        assert client.get("db.password", reveal=True).value == PASSWORD
        key_file = Layout(data).secrets_key
        old_key = key_file.read_bytes()
        rotated = run_cli(data, "secret", "rotate-key", "--json")
        assert rotated.returncode == 0, rotated.stderr
        counts = json.loads(rotated.stdout)
        assert counts["secrets"] == 1 and counts["versions"] >= 3
        assert key_file.read_bytes() != old_key and len(key_file.read_bytes().split()) == 1
        assert client.get("db.password", reveal=True).value == PASSWORD
        assert [v.value for v in client.history("db.password")][:1] == [SECRET_PLACEHOLDER]
        stale = run_cli(data, "import", str(sealed_file))
        assert stale.returncode == 6 and "cannot be decrypted" in stale.stderr, stale.stderr
    from cryptography.fernet import Fernet, InvalidToken

    conn = sqlite3.connect(data / "state.db")
    blobs = [row[0] for row in conn.execute("SELECT value FROM kv WHERE key = 'db.password'")]
    conn.close()
    assert len(blobs) == 1 and is_sealed(blobs[0])
    token = msgspec.msgpack.decode(blobs[0]).data
    with pytest.raises(InvalidToken):
        Fernet(old_key.strip()).decrypt(token)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_the_key_file_is_owner_only_and_a_missing_one_is_reported(tmp_path: Path) -> None:
    """The key file is 0600 in a 0700 folder; without it the hub says so and plain keys keep working."""
    data = tmp_path / "data"
    with HubProcess(data) as hub, hub.client() as client:
        client.set_secret("db.password", PASSWORD)
        client.set("plant.rate", 30)
    key_file = Layout(data).secrets_key
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert key_file.parent.stat().st_mode & 0o777 == 0o700
    key_file.rename(tmp_path / "aside.key")
    with HubProcess(data) as hub, hub.client() as client:
        assert "secrets key file" in hub.log and "missing" in hub.log
        assert client.get("plant.rate").value == 30
        revealed = run_cli(data, "secret", "get", "db.password", "--reveal")
        assert revealed.returncode == 6 and "restore it from your backup" in revealed.stderr
        # a new secret must not silently start a second key
        refused = run_cli(data, "secret", "set", "db.other", input="x")
        assert refused.returncode == 6, refused.stderr
        assert not key_file.exists()


def test_secrets_are_never_queued_and_cannot_be_revealed_from_the_mirror(tmp_path: Path) -> None:
    """With the hub down, `secret set` fails clearly (the inbox is plaintext) and --reveal says it needs the hub."""
    data = tmp_path / "data"
    with HubProcess(data) as hub, hub.client() as client:
        client.set_secret("db.password", PASSWORD)
        assert hub.terminate() == 0  # a clean stop writes the last mirror
    down = run_cli(data, "secret", "set", "db.password", input=NEWER)
    assert down.returncode == 5 and NEWER not in down.stderr
    # a plain queued set of a key the mirror marks secret is refused too: it would sit in plaintext
    queued = run_cli(data, "set", "db.password", "typed-in-plain", "--queue")
    assert queued.returncode == 5 and "never queued" in queued.stderr, queued.stderr
    assert not (data / "inbox").exists() or not any((data / "inbox").iterdir())
    masked = run_cli(data, "get", "db.password")
    assert masked.returncode == 0 and masked.stdout.strip() == SECRET_PLACEHOLDER
    revealed = run_cli(data, "secret", "get", "db.password", "--reveal")
    assert revealed.returncode == 5 and "only be revealed by the running hub" in revealed.stderr
