"""Where a hub keeps its files and how clients find it without configuration.

Everything lives in one data dir: ``--data-dir``, else $STATEHUB_DATA_DIR, else
the platform's user data folder.  A running hub writes ``hub.json`` there with
the endpoints it bound, which is how clients (Python and Rust) find it.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import msgspec

ENV_DATA_DIR = "STATEHUB_DATA_DIR"
APP_NAME = "statehub"
IPC_PATH_LIMIT = 100  # Linux allows 107 bytes in a socket path; keep a margin


@dataclass(frozen=True)
class Layout:
    """The files of one data dir."""

    data_dir: Path

    @property
    def store(self) -> Path:
        return self.data_dir / "state.db"

    @property
    def mirror(self) -> Path:
        return self.data_dir / "state.txt"

    @property
    def secrets_key(self) -> Path:
        return self.data_dir / "keys" / "secrets.key"

    @property
    def hub_file(self) -> Path:
        return self.data_dir / "hub.json"

    @property
    def lock(self) -> Path:
        return self.data_dir / "hub.lock"

    def ipc_endpoint(self, name: str) -> str:
        return f"ipc://{self.data_dir / (name + '.sock')}"


class HubInfo(msgspec.Struct, kw_only=True):
    """The contents of hub.json: how to reach the hub that wrote it."""

    pid: int
    version: str
    protocol: int
    rpc: str
    events: str
    started: float
    # With --listen: the CURVE endpoints for remote clients and the hub's public key (never the secret).
    listen_rpc: str | None = None
    listen_events: str | None = None
    server_key: str | None = None


def resolve_data_dir(option: str | os.PathLike[str] | None = None) -> Path:
    """The data dir: the option, else $STATEHUB_DATA_DIR, else the platform default."""
    if option:
        return Path(option).expanduser().absolute()
    from_env = os.environ.get(ENV_DATA_DIR)
    if from_env:
        return Path(from_env).expanduser().absolute()
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def ipc_available() -> bool:
    # pyzmq's Windows wheels are built without ipc://.
    return sys.platform != "win32"


def default_endpoints(layout: Layout, *, tcp: bool = False) -> tuple[str, str]:
    """(rpc, events) endpoints: ipc:// in the data dir, or loopback tcp with free ports."""
    rpc, events = layout.ipc_endpoint("rpc"), layout.ipc_endpoint("events")
    if tcp or not ipc_available() or len(rpc) > IPC_PATH_LIMIT + len("ipc://"):
        return "tcp://127.0.0.1:*", "tcp://127.0.0.1:*"
    return rpc, events


def is_loopback(endpoint: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on a loopback address."""
    parts = urlsplit(endpoint)
    if parts.scheme in ("ipc", "inproc"):
        return True
    if parts.scheme != "tcp":
        return False
    host = (parts.hostname or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_tcp_endpoint(endpoint: str, what: str) -> str:
    """``endpoint`` if it is tcp://HOST:PORT (PORT a number, or * to bind a free one), else a clear error."""
    # Imported here: hub.errors loads the protocol module, which most users of paths do not need.
    from statehub.hub.errors import InvalidRequest

    parts = urlsplit(endpoint)
    host, colon, port = parts.netloc.rpartition(":")
    if parts.scheme != "tcp" or not host or not colon or not (port == "*" or port.isdigit()) or parts.path:
        raise InvalidRequest(
            f"{what} {endpoint!r} is not a tcp://HOST:PORT endpoint (for example tcp://plant-pi:5555)"
        )
    return endpoint


def events_endpoint_for(rpc: str) -> str:
    """The change-stream endpoint that goes with a network request endpoint: the same host, port + 1."""
    host, _, port = rpc.rpartition(":")
    return f"{host}:*" if port == "*" else f"{host}:{int(port) + 1}"


def read_hub_info(layout: Layout) -> HubInfo | None:
    """The hub.json of a data dir, or None when there is none (or it is unreadable)."""
    try:
        return msgspec.json.decode(layout.hub_file.read_bytes(), type=HubInfo)
    except (OSError, msgspec.DecodeError):
        return None
