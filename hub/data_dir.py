"""Preparing a data dir and making sure only one hub ever serves it."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import IO

from statehub.hub.errors import HubAlreadyRunning, StatehubError
from statehub.hub.paths import Layout, read_hub_info

log = logging.getLogger(__name__)


def prepare_data_dir(layout: Layout, *, mirror_mode: int = 0o600) -> None:
    """Create the data dir, and keep it and the store owner-only (docs/security.md)."""
    try:
        layout.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StatehubError(f"cannot create the data dir {layout.data_dir}: {exc.strerror}") from exc
    if not os.access(layout.data_dir, os.W_OK):
        raise StatehubError(
            f"the data dir {layout.data_dir} is not writable by this user; "
            "fix its permissions or choose another with --data-dir"
        )
    if os.name == "posix":
        _restrict_permissions(layout, mirror_mode)


def _restrict_permissions(layout: Layout, mirror_mode: int) -> None:
    """Take group and other bits off the data dir and the store files, never the owner's.

    A shared mirror (``--mirror-mode 0640``) needs the matching class to traverse
    the folder: it gets x but not r, so it can open state.txt by name but cannot
    list the folder, and every other file there is 0600 anyway.
    """
    traverse = (mirror_mode & 0o044) >> 2  # g+r -> g+x, o+r -> o+x
    _set_class_bits(layout.data_dir, traverse)
    _create_private(layout.store)  # SQLite gives its -wal and -shm files the store's mode
    for path in (layout.store, layout.store.with_name("state.db-wal"), layout.store.with_name("state.db-shm")):
        _set_class_bits(path, 0)


def _create_private(path: Path) -> None:
    """Create an empty 0600 store before SQLite does (it would use the umask); SQLite takes it as new."""
    # Already there, or a read-only data dir: opening the store reports that with a better message.
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _set_class_bits(path: Path, bits: int) -> None:
    """Make the group and other bits of ``path`` exactly ``bits``, keeping the owner's; log a change."""
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        return
    wanted = (mode & 0o700) | bits
    if wanted == mode:
        return
    try:
        path.chmod(wanted)
    except OSError as exc:
        log.warning("%s is mode %04o and cannot be changed to %04o: %s", path, mode, wanted, exc.strerror)
        return
    if mode & ~wanted:
        log.warning("%s was mode %04o; made it %04o (see docs/security.md, File permissions)", path, mode, wanted)


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


