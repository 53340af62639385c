"""The plaintext mirror: the current state as a human-readable file, always whole.

Format (docs/protocol.md, "The mirror file")::

    # statehub mirror: the hub's current state. Do not edit: the hub rewrites this file.
    # format: 1
    # epoch: 3f2a9c0d1e2b4a5f
    # revision: 41
    # written: 2026-11-21T14:02:03.123456Z
    # keys: 2
    plant.name = "Maxson"  # rev=3 created=3 time=2026-11-21T13:00:00.000000Z source=cli user=ana
    plant.rate = 30  # rev=9 created=4 time=2026-11-21T14:02:00.000000Z source=gui user=bob
    eds.password = "<secret>"  # rev=12 created=12 time=... source=cli user=ana secret=yes

Each value is one line of compact JSON.  The hub writes the file from a thread of
its own, at most once per ``interval``, so a burst of commits costs one rewrite.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from statehub.hub.atomic_file import write_atomically
from statehub.hub.errors import (
    MirrorError as MirrorError,  # it lives there so readers need not import this module
)
from statehub.hub.protocol import SECRET_PLACEHOLDER, Item
from statehub.hub.secret_box import is_sealed

log = logging.getLogger(__name__)

MIRROR_FORMAT = 1
_HEADER = re.compile(r"#\s*([a-z]+):\s*(.*?)\s*$")
_META = re.compile(r'([a-z_]+)=("(?:[^"\\]|\\.)*"|\S+)')
_BARE = re.compile(r"[^\s\"=#]+")


@dataclass(frozen=True)
class MirrorState:
    """What a mirror file says: the state at one revision, and when it was written."""

    epoch: str
    rev: int
    written: float
    items: dict[str, Item]

    @property
    def age(self) -> float:
        return max(0.0, time.time() - self.written)


def iso_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _meta_value(text: str) -> str:
    return text if _BARE.fullmatch(text) else json.dumps(text, ensure_ascii=False)


def render(epoch: str, rev: int, rows: Iterable[tuple[Any, ...]], written: float) -> bytes:
    """The mirror text for rows of (key, msgpack value, rev, created_rev, time, source, user)."""
    decode = msgspec.msgpack.Decoder().decode
    to_json = msgspec.json.Encoder().encode
    lines = []
    placeholder = json.dumps(SECRET_PLACEHOLDER)
    for key, blob, key_rev, created_rev, when, source, user in rows:
        secret = is_sealed(blob)
        value = placeholder if secret else to_json(decode(blob)).decode()
        meta = f"rev={key_rev} created={created_rev} time={iso_time(when)}"
        meta += f" source={_meta_value(source)} user={_meta_value(user)}"
        meta += " secret=yes" if secret else ""
        lines.append(f"{key} = {value}  # {meta}\n")
    header = (
        "# statehub mirror: the hub's current state. Do not edit: the hub rewrites this file.\n"
        "# To change a value use `statehub set`; to edit by hand use `statehub sync-file`.\n"
        f"# format: {MIRROR_FORMAT}\n"
        f"# epoch: {epoch}\n"
        f"# revision: {rev}\n"
        f"# written: {iso_time(written)}\n"
        f"# keys: {len(lines)}\n"
    )
    return (header + "".join(lines)).encode()


def parse(text: str) -> MirrorState:
    """Parse mirror text; raise MirrorError naming the line that is wrong."""
    header: dict[str, str] = {}
    items: dict[str, Item] = {}
    decoder = json.JSONDecoder()
    # Only "\n" ends a line: str.splitlines() would also split on U+0085 and
    # U+2028, which compact JSON leaves unescaped inside strings.
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        if line.startswith("#"):
            match = _HEADER.match(line)
            if match and not items:
                header[match.group(1)] = match.group(2)
            continue
        items.update([_parse_item(line, number, decoder)])
    missing = [name for name in ("format", "epoch", "revision", "written", "keys") if name not in header]
    if missing:
        raise MirrorError(f"mirror header lacks {', '.join(missing)}")
    if header["format"] != str(MIRROR_FORMAT):
        raise MirrorError(f"mirror format {header['format']} is not {MIRROR_FORMAT}")
    if int(header["keys"]) != len(items):
        raise MirrorError(f"mirror says {header['keys']} keys but holds {len(items)}: it is incomplete")
    return MirrorState(
        epoch=header["epoch"],
        rev=int(header["revision"]),
        written=parse_iso_time(header["written"]),
        items=items,
    )


def _parse_item(line: str, number: int, decoder: json.JSONDecoder) -> tuple[str, Item]:
    key, sep, rest = line.partition(" = ")
    if not sep:
        raise MirrorError(f"mirror line {number}: expected 'key = value'")
    try:
        value, end = decoder.raw_decode(rest)
    except json.JSONDecodeError as exc:
        raise MirrorError(f"mirror line {number}: bad value: {exc.msg}") from exc
    meta = {name: raw for name, raw in _META.findall(rest[end:].lstrip(" #"))}
    try:
        item = Item(
            key=key,
            value=value,
            rev=int(meta["rev"]),
            created_rev=int(meta["created"]),
            time=parse_iso_time(meta["time"]),
            source=_unquote(meta.get("source", "")),
            user=_unquote(meta.get("user", "")),
            secret=meta.get("secret") == "yes",
        )
    except (KeyError, ValueError) as exc:
        raise MirrorError(f"mirror line {number}: bad metadata: {exc}") from exc
    return key, item


def _unquote(text: str) -> str:
    return str(json.loads(text)) if text.startswith('"') else text


def read_mirror(path: Path) -> MirrorState:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MirrorError(f"there is no mirror at {path}: the hub has never run with this data dir") from None
    return parse(text)


def write_mirror(store_path: Path, mirror_path: Path, mode: int = 0o600) -> int:
    """Write the mirror (file mode ``mode``) from one consistent read of the store; return its revision."""
    from statehub.hub.store import connect  # here, so that clients reading a mirror never load the store

    if not store_path.exists():
        # Opening a missing path would create an empty database there.
        raise OSError(f"the store {store_path} is gone")
    conn = connect(store_path, readonly=True)
    try:
        conn.execute("BEGIN")  # one read transaction: rev and rows from the same instant
        meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
        rows = conn.execute(
            "SELECT key, value, rev, created_rev, time, source, user FROM kv ORDER BY key"
        )
        data = render(str(meta["epoch"]), int(meta["rev"]), rows, time.time())
        conn.execute("COMMIT")
    finally:
        conn.close()
    write_atomically(mirror_path, data, mode=mode)
    return int(meta["rev"])


class MirrorWriter:
    """Rewrites the mirror off the hub's thread, coalescing bursts of commits.

    After ``request()``, the mirror is rewritten within ``interval`` seconds plus
    the time one rewrite takes, or, for a large store, within the pause that keeps
    rewriting to at most 1/DUTY_SHARE of the time: rewriting 100,000 keys takes
    about half a second of the hub's CPU (and its GIL), which back to back would
    halve the hub's write throughput under sustained load.
    """

    DUTY_SHARE = 5

    def __init__(self, store_path: Path, mirror_path: Path, interval: float, *, mode: int = 0o600) -> None:
        self._store_path = store_path
        self._mirror_path = mirror_path
        self._mode = mode  # owner-only unless the operator shares the mirror (docs/security.md)
        self._interval = interval
        self._wanted = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="statehub-mirror", daemon=True)
        self.failures = 0

    def start(self) -> None:
        self._thread.start()

    def request(self) -> None:
        self._wanted.set()

    def stop(self) -> None:
        """Stop the thread and write one last mirror in the caller's thread."""
        self._stopping.set()
        self._wanted.set()
        self._thread.join()
        self._write()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            if self._stopping.is_set():
                return
            self._wanted.clear()
            started = time.monotonic()
            self._write()
            took = time.monotonic() - started
            self._stopping.wait(max(self._interval, (self.DUTY_SHARE - 1) * took))

    def _write(self) -> None:
        try:
            rev = write_mirror(self._store_path, self._mirror_path, self._mode)
            if self.failures:
                log.warning("mirror %s written again at revision %d", self._mirror_path, rev)
            self.failures = 0
        except (OSError, sqlite3.Error) as exc:
            # The store is the authority; a mirror fault must not stop the hub.  Try again later.
            self.failures += 1
            if self.failures == 1:
                log.error("cannot write the mirror %s: %s; will retry", self._mirror_path, exc)
            self._wanted.set()
