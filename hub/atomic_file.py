"""Replace a file so that readers see the old version or the new one, never a mix."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

_REPLACE_ATTEMPTS = 20  # Windows refuses a replace while a reader holds the file open


def write_atomically(path: Path, data: bytes | Iterable[bytes], *, mode: int = 0o600) -> None:
    """Write ``data`` (bytes, or chunks of them) to a temp file beside ``path``, fsync it, rename it over ``path``.

    The file gets exactly ``mode``, whatever the process umask: the caller decides
    who may read it.  The folder is fsynced after the rename so the new name itself
    survives power loss.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # it may have been deleted under us
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            if os.name == "posix":
                os.fchmod(handle.fileno(), mode)  # the umask may have narrowed it; the rename publishes it as asked
            if isinstance(data, bytes):
                handle.write(data)
            else:
                for chunk in data:  # the GIL is free while each chunk is written
                    handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        _replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def _replace(source: Path, target: Path) -> None:
    for attempt in range(_REPLACE_ATTEMPTS):
        try:
            os.replace(source, target)
            return
        except PermissionError:
            if os.name != "nt" or attempt == _REPLACE_ATTEMPTS - 1:
                raise
            time.sleep(0.05)


def fsync_folder(folder: Path) -> None:
    if os.name == "nt":
        return  # Windows cannot open a folder for fsync; NTFS journals the rename.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
