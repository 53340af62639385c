"""Why the hub cannot be reached, told from evidence: errors whose message and hint match the cause.

"Not running" is said only on evidence: no hub.json, a hub.json whose pid has
exited, or a refused connection.  A hub that runs but does not answer is
silent (busy, or stopped), never "not running"; a user who may not open the
data dir or the hub's socket, and a key the hub refuses, are told exactly that
and what to do.  ``statehub.connection`` gathers the evidence; this module
words it (docs/protocol.md §6, docs/clients.md "Errors and exit codes").
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import msgspec
import zmq

from statehub.hub.errors import HubUnavailable, OutcomeUnknown
from statehub.hub.paths import HubInfo, Layout
from statehub.remote import Remote

START_HINT = "start it with `statehub serve`"
SILENT_HINT = (
    "it may be busy or stopped: try again, or with a longer --timeout; "
    "if it stays silent, check its log and restart it"
)
SHARE_DOC = "docs/security.md, File permissions"


# --- evidence in the data dir ---------------------------------------------------------------


def announced_hub(layout: Layout) -> HubInfo:
    """The data dir's hub.json; HubUnavailable when there is none, or when this user may not read it.

    Its pid may have exited (a SIGKILLed hub leaves hub.json): that alone does
    not say the endpoint is dead, since a restarting hub binds before it
    rewrites hub.json.  A refused connection to it does (see ``refused``).
    """
    try:
        data = layout.hub_file.read_bytes()
    except FileNotFoundError:
        raise not_running(f"no {layout.hub_file}") from None
    except PermissionError:
        raise permission_denied(layout.hub_file, "use the hub's data dir") from None
    except OSError as exc:  # e.g. the data dir is a file
        raise HubUnavailable(
            f"cannot read {layout.hub_file}: {exc.strerror or exc}", hint="check the data dir (--data-dir)"
        ) from None
    try:
        info = msgspec.json.decode(data, type=HubInfo)
    except msgspec.DecodeError as exc:
        raise HubUnavailable(
            f"{layout.hub_file} is damaged ({exc})",
            hint="if the hub runs, restart it (it rewrites the file); else start it with `statehub serve`",
        ) from None
    return info


def check_ipc_access(endpoint: str) -> None:
    """Refuse early, and clearly, an ipc socket this user may not connect to (connecting needs write access)."""
    if not endpoint.startswith("ipc://"):
        return
    path = Path(endpoint.removeprefix("ipc://"))
    if path.exists() and not os.access(path, os.W_OK):
        raise permission_denied(path, "connect to the hub")


def process_exists(pid: int) -> bool:
    """Is ``pid`` a live process (of any user)?  Always True where that cannot be asked."""
    if sys.platform == "win32":
        return True  # os.kill(pid, 0) would end the process there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False  # a stale hub.json left by a killed hub
    except PermissionError:
        return True  # alive, and another user's
    return True


def not_running(evidence: str) -> HubUnavailable:
    return HubUnavailable(f"the hub is not running ({evidence})", hint=START_HINT, not_running=True)


def permission_denied(path: Path, doing: str) -> HubUnavailable:
    """This user may not ``doing``: name the folder or file in the way, its owner and mode, and what to do."""
    blocker = _first_closed(path)
    owner, mode = _owner_and_mode(blocker)
    owned = f"{blocker} belongs to {owner}" + (f" (mode {mode:04o})" if mode is not None else "")
    return HubUnavailable(
        f"this user ({_current_user()}) may not {doing}: {owned}",
        hint=f"run the command as {owner} (`sudo -u {owner} statehub ...`); to let others read the "
        f"mirror while the hub runs as {owner}, see {SHARE_DOC}",
    )


def closed_folder(path: Path) -> Path | None:
    """The first folder on the way to ``path`` that this user may not enter, if any."""
    for folder in reversed(path.parents):
        if folder.exists() and not os.access(folder, os.X_OK):
            return folder  # every folder above it could be entered, so exists() could look
    return None


def _first_closed(path: Path) -> Path:
    return closed_folder(path) or path


def _owner_and_mode(path: Path) -> tuple[str, int | None]:
    try:
        status = path.stat()
    except OSError:
        return "another user", None
    try:
        import pwd

        return pwd.getpwuid(status.st_uid).pw_name, status.st_mode & 0o777
    except (ImportError, KeyError):
        return f"uid {status.st_uid}", status.st_mode & 0o777


def _current_user() -> str:
    """Who this process runs as (the effective user, not $USER, which sudo and setpriv may keep)."""
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError, AttributeError):
        import getpass

        return getpass.getuser()


# --- evidence on the connection ---------------------------------------------------------------


def where(endpoint: str, pid: int | None) -> str:
    """How a message names the hub: its pid, when hub.json gave one, and its endpoint."""
    return f"the hub (pid {pid}) at {endpoint}" if pid is not None else f"the hub at {endpoint}"


def refused(endpoint: str, local: bool, *, pid: int | None = None, hub_file: Path | None = None) -> HubUnavailable:
    """Connecting failed: nothing listens there (the evidence that no hub runs), named with hub.json's dead pid."""
    if pid is not None and hub_file is not None and not process_exists(pid):
        return not_running(f"{hub_file} names pid {pid}, which has exited")
    if local:
        return not_running(f"nothing accepts connections at {endpoint}")
    return HubUnavailable(
        f"nothing accepts connections at {endpoint} (refused, or the host is unreachable)",
        hint="check the endpoint (--hub, $STATEHUB_HUB or client.toml) and that a hub serves it there",
        not_running=True,
    )


def handshake_refused(endpoint: str, remote: Remote | None, event: int, value: int) -> HubUnavailable | None:
    """The hub's process answered but refused the handshake: say why, or None when it may pass."""
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
        if remote is None or remote.keys is None:
            return HubUnavailable(
                f"the hub at {endpoint} requires CURVE (it is a `statehub serve --listen` endpoint), and "
                "this client has no server key for it",
                hint="give the hub's public key with --server-key, $STATEHUB_SERVER_KEY or server_key in "
                "client.toml (print it on the hub with `statehub keys show-server`)",
            )
        return HubUnavailable(
            f"the hub at {endpoint} does not use CURVE, but this client was given a server key for it",
            hint="for a hub's local `serve --tcp` endpoint give no server key; remote clients use its --listen endpoint",
        )
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        if value == 400 and remote is not None and remote.keys is not None:
            public = remote.keys.public.decode()
            return HubUnavailable(
                f"the hub at {endpoint} refused this client's key {public}: it is not on the hub's allow-list",
                hint=f"allow it on the hub, as the hub's user: statehub keys add NAME -- '{public}'",
            )
        if value == 300:
            return None  # a temporary failure: the next attempt may pass
        return HubUnavailable(
            f"the hub at {endpoint} refused the connection (authentication status {value})",
            hint="the hub logs every refusal with its reason",
        )
    if event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL and remote is not None and remote.keys is not None:
        return HubUnavailable(
            f"the CURVE handshake with the hub at {endpoint} failed: the server key given is most likely "
            "not this hub's",
            hint="compare it with `statehub keys show-server` on the hub (the hub logs this as a wrong server key)",
        )
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        return HubUnavailable(
            f"the handshake with {endpoint} failed (ZeroMQ protocol error {value:#x})",
            hint="check that the endpoint is a statehub hub's request endpoint",
        )
    return None


def silent(endpoint: str, pid: int | None, timeout: float, *, connected: bool, local: bool) -> HubUnavailable:
    """Nothing was sent: a connection did not become ready within the whole timeout."""
    if connected or local:
        return HubUnavailable(
            f"{where(endpoint, pid)} is running but did not take the request within {timeout:g} s",
            hint=SILENT_HINT,
        )
    return HubUnavailable(
        f"no connection to the hub at {endpoint} within {timeout:g} s",
        hint="check the endpoint, and that its host is up and reachable (network, firewall)",
    )


def unanswered_read(endpoint: str, pid: int | None, timeout: float) -> HubUnavailable:
    return HubUnavailable(f"{where(endpoint, pid)} did not answer within {timeout:g} s", hint=SILENT_HINT)


def unanswered_write(endpoint: str, pid: int | None, timeout: float, *, dropped: bool) -> OutcomeUnknown:
    """The write reached the hub and no answer came in time: it may be applied, or not."""
    if dropped:
        happened = f"{where(endpoint, pid)} went away after it received the write, and no hub answered it again"
    else:
        happened = f"{where(endpoint, pid)} received the write but did not answer"
    return OutcomeUnknown(f"{happened} within {timeout:g} s")  # the class's hint: it may be applied; repeat it
