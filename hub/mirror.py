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

Each value is one line of compact JSON.  This module is the format and its
reading side, which clients load when the hub is down; the hub writes the file
with ``hub.mirror_writer``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from statehub.hub.errors import (
    MirrorError as MirrorError,  # it lives there so readers need not import this module
)
from statehub.hub.protocol import SECRET_PLACEHOLDER, Item
from statehub.hub.secret_box import is_sealed

if TYPE_CHECKING:
    from statehub.hub.records import Entry

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


class LineRenderer:
    """Renders the mirror's lines: one per key, and the header.  Holds its codecs, so make one and reuse it."""

    def __init__(self) -> None:
        self._decode = msgspec.msgpack.Decoder().decode
        self._to_json = msgspec.json.Encoder().encode
        self._placeholder = json.dumps(SECRET_PLACEHOLDER).encode()

    def line(
        self,
        key: str,
        blob: bytes,
        rev: int,
        created_rev: int,
        when: float,
        source: str,
        user: str,
        origin: bytes | None = None,
        ttl: float | None = None,
    ) -> bytes:
        """The line of one key, newline included (an Entry's fields; the mirror shows neither ``origin`` nor ``ttl``)."""
        secret = is_sealed(blob)
        value = self._placeholder if secret else self._to_json(self._decode(blob))
        meta = f"rev={rev} created={created_rev} time={iso_time(when)}"
        meta += f" source={_meta_value(source)} user={_meta_value(user)}"
        meta += " secret=yes" if secret else ""
        return b"".join((key.encode(), b" = ", value, f"  # {meta}\n".encode()))

    @staticmethod
    def header(epoch: str, rev: int, keys: int, written: float) -> bytes:
        return (
            "# statehub mirror: the hub's current state. Do not edit: the hub rewrites this file.\n"
            "# To change a value use `statehub set`; to edit by hand use `statehub sync-file`.\n"
            f"# format: {MIRROR_FORMAT}\n"
            f"# epoch: {epoch}\n"
            f"# revision: {rev}\n"
            f"# written: {iso_time(written)}\n"
            f"# keys: {keys}\n"
        ).encode()


def render(epoch: str, rev: int, entries: Iterable[Entry], written: float) -> bytes:
    """The mirror text of the store's entries at revision ``rev``."""
    renderer = LineRenderer()
    lines = [renderer.line(*entry) for entry in entries]
    return renderer.header(epoch, rev, len(lines), written) + b"".join(lines)


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
