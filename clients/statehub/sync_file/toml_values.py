"""Statehub values written as TOML, one value per line, and read back exactly.

TOML has no null.  A value that holds null anywhere (``null``, ``[1, null]``,
``{"a": null}``) is written as an inline table with the single key ``$json``
whose string is the value as JSON: ``{ "$json" = "[1,null]" }``.  A map whose
only key is ``$json`` is escaped the same way, so reading back is never
ambiguous.  Everything else is plain TOML: strings, integers, floats,
booleans, arrays and inline tables (maps), always on one line.

We write TOML ourselves rather than with tomli-w: tomli-w writes maps as
``[table]`` sections (we need inline tables, so a key stays on one line) and
cannot write null at all.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

JSON_ESCAPE = "$json"

_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"', "\\": "\\\\"}


def toml_value(value: Any) -> str:
    """``value`` as one line of TOML (the right-hand side of ``key = ...``)."""
    if _needs_escape(value):
        return (
            "{ " + toml_string(JSON_ESCAPE) + " = " + toml_string(msgspec.json.encode(value).decode()) + " }"
        )
    return _plain(value)


def from_toml(value: Any) -> Any:
    """Undo the ``$json`` escape on a value read by tomllib; other values pass through."""
    if isinstance(value, dict) and list(value) == [JSON_ESCAPE] and isinstance(value[JSON_ESCAPE], str):
        return msgspec.json.decode(value[JSON_ESCAPE])
    return value


def toml_string(text: str) -> str:
    """A TOML basic string; control characters are escaped (TOML forbids them raw)."""
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _needs_escape(value: Any) -> bool:
    return _holds_null(value) or (isinstance(value, dict) and list(value) == [JSON_ESCAPE])


def _holds_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, list):
        return any(_holds_null(element) for element in value)
    if isinstance(value, dict):
        return any(_holds_null(element) for element in value.values())
    return False


def _plain(value: Any) -> str:
    if isinstance(value, bool):  # before int: bool is an int in Python
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a statehub value")
        return repr(value)  # '30.0', '1e-05', '1e+20': all valid TOML floats
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_plain(element) for element in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        pairs = ", ".join(f"{toml_string(name)} = {_plain(element)}" for name, element in value.items())
        return "{ " + pairs + " }"
    raise ValueError(f"a {type(value).__name__} is not a statehub value")
