"""Front ends with a remote hub configured follow that hub, not the local data dir's.

Each test runs two hubs: a "remote" one with --listen on 127.0.0.1 (reached over
CURVE, as a hub on another machine would be) and a local one on the data dir the
front end is given, holding different values.  The front ends used to write to
the remote hub and follow the local one's change stream.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from statehub import Event
from statehub.cli.base import Settings
from statehub.gui import model
from statehub.testing import HubProcess, wait_until
from tests.test_curve import RemoteHub, started_remote_hub

from .conftest import cli_env

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="this libzmq has no CURVE")


@pytest.fixture
def two_hubs(tmp_path: Path) -> Iterator[tuple[RemoteHub, HubProcess]]:
    """The remote hub (plant.rate 30) and a local hub on tmp_path/local (plant.rate 999)."""
    with started_remote_hub(tmp_path) as remote, HubProcess(tmp_path / "local") as local:
        with remote.hub.client(source="cli") as client:
            client.set("plant.rate", 30)
        with local.client(source="cli") as client:
            client.set("plant.rate", 999)
        yield remote, local


def remote_env(remote: RemoteHub, monkeypatch: pytest.MonkeyPatch) -> None:
    """Configure the remote hub the way a user does: STATEHUB_HUB and its companions."""
    monkeypatch.setenv("STATEHUB_CONFIG_DIR", str(remote.config_dir))
    monkeypatch.setenv("STATEHUB_HUB", remote.rpc)
    monkeypatch.setenv("STATEHUB_HUB_EVENTS", remote.events)
    monkeypatch.setenv("STATEHUB_SERVER_KEY", remote.server_key)


def value_in(hub: HubProcess, key: str) -> Any:
    with hub.client() as client:
        return client.get(key).value


def test_the_gui_model_follows_and_writes_to_the_remote_hub(
    two_hubs: tuple[RemoteHub, HubProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With STATEHUB_HUB set, the GUI's client (built as `statehub gui` builds it) fills the view from
    the remote hub, shows its changes live, and writes there; the local hub is left alone."""
    remote, local = two_hubs
    remote_env(remote, monkeypatch)
    events: queue.Queue[Event] = queue.Queue()
    view = model.View()

    def shows(value: Any) -> bool:
        for _ in range(100):  # the window's loop: apply what the subscription thread posted
            try:
                model.on_event(view, events.get_nowait(), time.time())
            except queue.Empty:
                break
        item = view.items.get("plant.rate")
        return view.phase is model.Phase.LIVE and item is not None and item.value == value

    with Settings(data_dir=str(local.data_dir), timeout=1.0).client(source="gui") as client:
        thread = client.subscribe(callback=events.put)
        try:
            assert wait_until(lambda: shows(30), 15), view
            with remote.hub.client(source="cli") as other:
                other.set("plant.rate", 31)
            assert wait_until(lambda: shows(31), 10), view
            assert [row.value for row in model.visible_rows(view, "plant.")] == ["31"]
            client.set("plant.rate", 32, expect=view.items["plant.rate"].rev)
            assert wait_until(lambda: shows(32), 10), view
        finally:
            thread.stop()
    monkeypatch.undo()  # read each hub through its own data dir again
    assert (value_in(remote.hub, "plant.rate"), value_in(local, "plant.rate")) == (32, 999)


def test_sync_file_follows_and_writes_to_the_remote_hub_named_in_client_toml(
    two_hubs: tuple[RemoteHub, HubProcess], tmp_path: Path
) -> None:
    """`statehub --data-dir LOCAL sync-file` with the remote hub in client.toml writes the remote hub's
    state to the file and sends a save there (source file); the local hub is left alone."""
    remote, local = two_hubs
    (remote.config_dir / "client.toml").write_text(
        f'[hub]\nrpc = "{remote.rpc}"\nevents = "{remote.events}"\nserver_key = "{remote.server_key}"\n'
    )
    path = tmp_path / "plant.toml"
    command = [sys.executable, "-m", "statehub.cli", "--data-dir", str(local.data_dir), "--timeout", "1"]
    process = subprocess.Popen(
        [*command, "sync-file", str(path), "--prefix", "plant.", "--interval", "0.05"],
        env=cli_env(STATEHUB_CONFIG_DIR=str(remote.config_dir)),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_until(lambda: path.exists() and '"plant.rate" = 30\n' in path.read_text(), 20)
        with remote.hub.client(source="cli") as other:
            other.set("plant.rate", 31)
        assert wait_until(lambda: '"plant.rate" = 31\n' in path.read_text(), 10), path.read_text()
        path.write_text(path.read_text().replace('"plant.rate" = 31\n', '"plant.rate" = 7\n'))
        assert wait_until(lambda: value_in(remote.hub, "plant.rate") == 7, 10)
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    with remote.hub.client() as client:
        assert client.history("plant.rate", 1)[0].source == "file"
    assert value_in(local, "plant.rate") == 999
