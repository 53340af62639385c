"""Reaching a hub on another machine: its endpoints, its public key, and this client's key pair.

Each setting is taken from the first place that has it:

1. options: ``--hub``, ``--hub-events``, ``--server-key`` (CLI); ``hub=``, ``events=``,
   ``server_key=`` (``Client``);
2. the environment: ``STATEHUB_HUB``, ``STATEHUB_HUB_EVENTS``, ``STATEHUB_SERVER_KEY``;
3. ``client.toml`` in the client config dir (``$STATEHUB_CONFIG_DIR``, else the
   platform's user config dir, ``~/.config/statehub`` on Linux)::

       [hub]
       rpc = "tcp://plant-pi:5555"
       events = "tcp://plant-pi:5556"   # optional: the rpc port + 1
       server_key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"   # or a file holding it

Without a hub endpoint in any of them the client is local, as always: it finds
the hub through hub.json in the data dir.  The client's own key pair lives in
``curve/client.key`` and ``curve/client.key_secret`` in the config dir
(``statehub keys init`` makes it); the Rust client reads the same files.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from statehub.hub.curve import KeyPair, check_public_key, load_keypair, load_or_create_keypair, require_curve
from statehub.hub.errors import InvalidRequest
from statehub.hub.paths import APP_NAME, check_tcp_endpoint, events_endpoint_for, is_loopback

ENV_HUB = "STATEHUB_HUB"
ENV_HUB_EVENTS = "STATEHUB_HUB_EVENTS"
ENV_SERVER_KEY = "STATEHUB_SERVER_KEY"
ENV_CONFIG_DIR = "STATEHUB_CONFIG_DIR"
CONFIG_FILE = "client.toml"
CLIENT_KEY_STEM = "client"


@dataclass(frozen=True)
class Remote:
    """A hub reached by its endpoints rather than through a data dir.

    ``server_key`` None means a plain connection, allowed only to a loopback
    endpoint (a hub started with ``--tcp`` on this machine).
    """

    rpc: str
    events: str
    server_key: bytes | None = None
    keys: KeyPair | None = None


def config_dir() -> Path:
    """The client config dir: $STATEHUB_CONFIG_DIR, else the platform's user config dir."""
    from_env = os.environ.get(ENV_CONFIG_DIR)
    if from_env:
        return Path(from_env).expanduser().absolute()
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def client_key_dir() -> Path:
    return config_dir() / "curve"


def load_client_keys() -> KeyPair | None:
    return load_keypair(client_key_dir(), CLIENT_KEY_STEM)


def make_client_keys() -> tuple[KeyPair, bool]:
    """This user's CURVE key pair in ``client_key_dir()``, made on first use; True when just made."""
    return load_or_create_keypair(client_key_dir(), CLIENT_KEY_STEM)


def resolve_remote(
    hub: str | None = None, events: str | None = None, server_key: str | None = None
) -> Remote | None:
    """The remote hub the options, environment or client.toml name; None for a local client."""
    file = _config_file()
    rpc = hub or os.environ.get(ENV_HUB) or file.get("rpc")
    if not rpc:
        return None
    check_tcp_endpoint(rpc, "the hub endpoint")
    events = events or os.environ.get(ENV_HUB_EVENTS) or file.get("events") or events_endpoint_for(rpc)
    check_tcp_endpoint(events, "the hub's events endpoint")
    key_text = server_key or os.environ.get(ENV_SERVER_KEY) or file.get("server_key")
    if not key_text:
        if is_loopback(rpc):
            return Remote(rpc, events)
        raise InvalidRequest(
            f"the hub at {rpc} is on another machine, so it needs its server key: give --server-key, "
            f"${ENV_SERVER_KEY} or server_key in {config_dir() / CONFIG_FILE} "
            "(print it on the hub with `statehub keys show-server`)"
        )
    require_curve()
    keys = load_client_keys()
    if keys is None:
        raise InvalidRequest(
            f"this client has no CURVE key pair in {client_key_dir()}: make one with `statehub keys init`, "
            "then have it allow-listed on the hub (`statehub keys add NAME KEY` there)"
        )
    return Remote(rpc, events, _server_key(key_text), keys)


def secure(sock: zmq.Socket[bytes], remote: Remote | None) -> None:
    """Make ``sock`` a CURVE client of ``remote`` (no-op for local and plain loopback hubs).

    Call before ``connect``: the options apply to connections made afterwards.
    """
    if remote is None or remote.server_key is None or remote.keys is None:
        return
    sock.setsockopt(zmq.CURVE_SERVERKEY, remote.server_key)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, remote.keys.public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, remote.keys.secret)


def _server_key(text: str) -> bytes:
    """The key itself, or read from the file ``text`` names."""
    try:
        return check_public_key(text)
    except InvalidRequest:
        path = Path(text).expanduser()
        if not path.is_file():
            raise InvalidRequest(
                f"the server key {text[:60]!r} is neither a 40-character Z85 key nor a readable file"
            ) from None
        return check_public_key(path.read_text(encoding="ascii", errors="replace"))


def _config_file() -> dict[str, Any]:
    """The [hub] table of client.toml; empty when there is no such file."""
    path = config_dir() / CONFIG_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidRequest(f"cannot read the client config {path}: {exc}") from exc
    table = data.get("hub", {})
    known = {"rpc", "events", "server_key"}
    if not isinstance(table, dict) or not all(isinstance(table.get(k, ""), str) for k in known):
        raise InvalidRequest(f"{path}: [hub] must hold strings rpc, events and server_key")
    unknown = set(table) - known
    if unknown:
        raise InvalidRequest(
            f"{path}: unknown setting(s) {', '.join(sorted(unknown))} in [hub]; known: {', '.join(sorted(known))}"
        )
    return table
