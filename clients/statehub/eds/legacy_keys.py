"""The key scheme before readable keys, kept to find and rename keys it made (``eds migrate-keys``).

    eds.<plant>.<point>        e.g.  eds.Maxson.FI-2D405-2F415-2EUNIT1-40NET1

Plant and point names became key segments by a lossless, reversible escape:
ASCII letters, digits and ``_`` stay as they are; every other character is
written as its UTF-8 bytes, each as ``-`` and two upper-case hex digits.  So
``-`` is ``-2D``, ``.`` is ``-2E``, ``/`` is ``-2F``, ``@`` is ``-40``, a space
is ``-20`` and ``é`` is ``-C3-A9``.  Because ``-`` only ever starts an escape,
decoding is unambiguous; because there is exactly one way to write each name
(no lower-case hex, no escaping of characters that stay), escape and unescape
are inverse bijections between non-empty names and canonical segments.  That
is what lets the migration tell an escaped key from a readable one.
"""

from __future__ import annotations

import re

ROOT = "eds"

_KEPT = re.compile(r"[A-Za-z0-9_]")
_HEX = "0123456789ABCDEF"


def escape_segment(name: str) -> str:
    """``name`` as a key segment; raises ValueError for an empty name."""
    if not name:
        raise ValueError("an empty name has no key segment")
    parts: list[str] = []
    for char in name:
        if _KEPT.fullmatch(char):
            parts.append(char)
        else:
            parts.extend(f"-{byte:02X}" for byte in char.encode("utf-8"))
    return "".join(parts)


def unescape_segment(segment: str) -> str:
    """The name a canonical segment stands for; raises ValueError for anything else."""
    if not segment:
        raise ValueError("an empty segment names nothing")
    out = bytearray()
    i = 0
    while i < len(segment):
        char = segment[i]
        if char == "-":
            pair = segment[i + 1 : i + 3]
            if len(pair) != 2 or any(c not in _HEX for c in pair):
                raise ValueError(
                    f"segment {segment!r}: '-' at position {i} is not followed by two upper-case hex digits"
                )
            out.append(int(pair, 16))
            i += 3
        elif _KEPT.fullmatch(char):
            out.append(ord(char))
            i += 1
        else:
            raise ValueError(
                f"segment {segment!r}: character {char!r} at position {i} is never part of an escaped name"
            )
    try:
        name = out.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"segment {segment!r}: the escaped bytes are not UTF-8 ({exc.reason})") from None
    if escape_segment(name) != segment:
        raise ValueError(
            f"segment {segment!r} is not canonical: {name!r} is written {escape_segment(name)!r}"
        )
    return name


def point_key(plant: str, point: str) -> str:
    """The key this scheme gave ``point`` of ``plant``."""
    return f"{ROOT}.{escape_segment(plant)}.{escape_segment(point)}"


def split_point_key(key: str) -> tuple[str, str]:
    """(plant, point) from a key this scheme made; raises ValueError for any other key."""
    parts = key.split(".")
    if len(parts) != 3 or parts[0] != ROOT:
        raise ValueError(f"{key!r} is not an EDS point key (eds.<plant>.<point>)")
    return unescape_segment(parts[1]), unescape_segment(parts[2])
