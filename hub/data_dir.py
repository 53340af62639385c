"""Preparing a data dir and making sure only one hub ever serves it."""

from __future__ import annotations

import os
import sys
from typing import IO

from hub.errors import StatehubError
from hub.paths import Layout, read_hub_info


class HubAlreadyRunning(StatehubError):
    code = "already_running"


def prepare_data_dir(layout: Layout) -> None:
    """Create the data dir, readable by its owner only."""
    try:
        layout.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StatehubError(f"cannot create the data dir {layout.data_dir}: {exc.strerror}") from exc
    if not os.access(layout.data_dir, os.W_OK):
        raise StatehubError(
            f"the data dir {layout.data_dir} is not writable by this user; "
            "fix its permissions or choose another with --data-dir"
        )


def acquire_lock(layout: Layout) -> IO[bytes]:
    """Hold an exclusive lock on the data dir for as long as the returned file is open.

    A second bind to the same ipc:// path would silently steal the first hub's
    endpoint, so two hubs on one data dir must be stopped before they bind.
    """
    handle = open(layout.lock, "a+b")  # noqa: SIM115 - held open for the hub's lifetime
    try:
        _lock_file(handle)
    except OSError:
        handle.close()
        info = read_hub_info(layout)
        who = f"another hub (pid {info.pid})" if info else "another hub"
        raise HubAlreadyRunning(
            f"{who} is already serving {layout.data_dir}; stop it first, "
            "or give this one its own --data-dir"
        ) from None
    return handle


def _lock_file(handle: IO[bytes]) -> None:
    if sys.platform == "win32":
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


